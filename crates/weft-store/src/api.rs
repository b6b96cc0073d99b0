//! The metadata store's traits, one per aggregate.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use weft_core::{ArtifactVersionId, RunId, Snapshot, SnapshotId, Status, StepRunId};

use crate::Result;
use crate::model::{
    ApiKey, Applied, Artifact, ArtifactVersion, CacheEntry, CacheExpiry, Changes, Completion,
    Direction, Lineage, LogRef, MetadataEntry, MetadataSource, NewApiKey, NewArtifactVersion,
    NewRun, NewStepRun, Resource, Run, RunFilter, RunGraph, RunOverview, StepError, StepInput,
    StepOutput, StepRun, StepRunPage, StepRunSummary,
};

/// Runs and their snapshots.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores the snapshot (once per content) and records a run of it as `initializing`.
    async fn create_run(&self, new: NewRun) -> Result<Run>;

    /// The run with this id.
    async fn run(&self, id: RunId) -> Result<Run>;

    /// The status of run `id` alone: what an orchestrator reads before it starts steps
    /// whose records it writes later, to start nothing once a stop was requested.
    async fn run_status(&self, id: RunId) -> Result<Status>;

    /// The run named by `reference`: a full id, a unique id prefix, or `latest`.
    async fn find_run(&self, reference: &str) -> Result<Run>;

    /// Runs matching `filter`, newest first.
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>>;

    /// Attaches tags to a run (tags it has are kept) and returns the run.
    async fn tag_run(&self, id: RunId, tags: &[String]) -> Result<Run>;

    /// Detaches tags from a run (tags it does not have are ignored) and returns the run.
    async fn untag_run(&self, id: RunId, tags: &[String]) -> Result<Run>;

    /// A stored snapshot.
    async fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot>;

    /// A stored snapshot's outline: its invocations without their settings, read in a
    /// fraction of the time the whole snapshot takes when it plans thousands of steps.
    async fn snapshot_outline(&self, id: &SnapshotId) -> Result<weft_core::snapshot::Outline>;

    /// Sets a static run's status from its step runs (see
    /// `weft_core::status::derive_static_run_status`) and returns the run.
    async fn refresh_static_run(&self, id: RunId) -> Result<Run>;

    /// Marks a run failed with `reason` (for failures outside any step); its unfinished step
    /// runs fail with it.
    async fn fail_run(&self, id: RunId, reason: &str) -> Result<Run>;

    /// Ends a dynamic run, whose status its runtime decides: `completed`, `failed` or
    /// `stopped` (a run asked to stop ends `stopped` rather than `completed`). Its unfinished
    /// step runs end with it, and its invocation count is set from its step runs.
    async fn finish_dynamic_run(
        &self,
        id: RunId,
        status: Status,
        reason: Option<&str>,
    ) -> Result<Run>;

    /// Records a sign of life of the run's orchestrator (and of its running step runs) and
    /// returns the run's status, so the orchestrator learns of a stop request.
    async fn heartbeat(&self, id: RunId) -> Result<Status>;

    /// Asks a run to stop: it becomes `stopping`, no new step starts, and it ends `stopped`.
    async fn request_stop(&self, id: RunId) -> Result<Run>;

    /// Every run that has not finished (initializing, provisioning, running or stopping).
    async fn unfinished_runs(&self) -> Result<Vec<Run>>;
}

/// Step runs: creation and every status change after it.
#[async_trait]
pub trait StepRunStore: Send + Sync {
    /// Records step runs with their inputs and parents, in one transaction. The first step
    /// run of an `initializing` run moves it to `running`.
    async fn create_step_runs(&self, new: Vec<NewStepRun>) -> Result<Vec<StepRun>>;

    /// Registers the outputs of a running step run as artifact versions (numbered without
    /// races), links them, and marks it `completed`, in one transaction.
    async fn complete_step_run(
        &self,
        id: StepRunId,
        completion: Completion,
    ) -> Result<Vec<StepOutput>>;

    /// Marks a running step run `failed` with `error`.
    async fn fail_step_run(
        &self,
        id: StepRunId,
        error: StepError,
        log_uri: Option<String>,
    ) -> Result<StepRun>;

    /// Marks an unfinished step run `stopped` with `reason`.
    async fn stop_step_run(&self, id: StepRunId, reason: &str) -> Result<StepRun>;

    /// Applies several changes in one transaction: all of them, or none if one is refused.
    /// This is how an orchestrator records a step's completion together with the start of
    /// the steps it unblocks, in one round trip.
    async fn apply(&self, changes: Changes) -> Result<Applied> {
        let mut applied = self.apply_in_order(vec![changes]).await?;
        Ok(applied.pop().unwrap_or_default())
    }

    /// Applies batches of changes one after the other, in one transaction: all of them, or
    /// none if one is refused. A later batch may name step runs an earlier one creates (an
    /// orchestrator that started steps before their records were written completes them
    /// in a later batch), so several steps' records cost one commit.
    async fn apply_in_order(&self, batches: Vec<Changes>) -> Result<Vec<Applied>>;

    /// The step run with this id.
    async fn step_run(&self, id: StepRunId) -> Result<StepRun>;

    /// The step runs of a run, in creation order, without their cache key parts (`None`:
    /// [`StepRunStore::step_run`] and [`StepRunStore::attempts`] read them). A map's items
    /// have nearly the same parts each, which would be most of a large run's list.
    async fn step_runs(&self, run: RunId) -> Result<Vec<StepRun>>;

    /// For each step run of `run` that reuses another's outputs (cached or resumed), the run
    /// of that original, in one query.
    async fn original_runs(&self, run: RunId) -> Result<Vec<(StepRunId, RunId)>>;

    /// The latest attempt of `invocation` in `run`, found by invocation id or unique prefix
    /// of a step run id.
    async fn find_step_run(&self, run: RunId, reference: &str) -> Result<StepRun>;

    /// Every attempt of `invocation` in `run`, oldest first (none for an unknown one).
    async fn attempts(&self, run: RunId, invocation: &str) -> Result<Vec<StepRun>>;

    /// Where a step run's log is, if it has one.
    async fn log(&self, id: StepRunId) -> Result<Option<LogRef>>;

    /// The newest `completed` step run with this cache key that has not expired at `now`,
    /// with its outputs. Cached step runs are never candidates themselves.
    async fn cache_candidate(&self, key: &str, now: DateTime<Utc>) -> Result<Option<CacheEntry>>;

    /// Makes cache entries (completed step runs with a cache key; cached step runs only
    /// point at one) expire now; returns how many did.
    async fn expire_cache(&self, which: CacheExpiry) -> Result<u64>;
}

/// Artifacts, their versions and tags.
#[async_trait]
pub trait ArtifactRecords: Send + Sync {
    /// Every artifact, by name; with `custom_only`, only those with user-chosen names.
    async fn artifacts(&self, custom_only: bool) -> Result<Vec<Artifact>>;

    /// The versions of the artifact `name`, newest first.
    async fn artifact_versions(&self, name: &str) -> Result<Vec<ArtifactVersion>>;

    /// The version with this id.
    async fn artifact_version(&self, id: ArtifactVersionId) -> Result<ArtifactVersion>;

    /// The version named by `reference`: a full id, a unique id prefix, or `<name>:<version>`
    /// (`<name>:latest` for the newest).
    async fn find_artifact_version(&self, reference: &str) -> Result<ArtifactVersion>;

    /// Registers a version saved outside any step run (an external upload).
    async fn create_artifact_version(&self, new: NewArtifactVersion) -> Result<ArtifactVersion>;

    /// Attaches tags to a version (existing tags are kept).
    async fn tag_artifact_version(&self, id: ArtifactVersionId, tags: &[String]) -> Result<()>;

    /// Detaches tags from a version (tags it does not have are ignored).
    async fn untag_artifact_version(&self, id: ArtifactVersionId, tags: &[String]) -> Result<()>;
}

/// Links between step runs and artifact versions.
#[async_trait]
pub trait LineageStore: Send + Sync {
    /// A step run's inputs, by name and position.
    async fn step_run_inputs(&self, id: StepRunId) -> Result<Vec<StepInput>>;

    /// A step run's outputs, by name.
    async fn step_run_outputs(&self, id: StepRunId) -> Result<Vec<StepOutput>>;

    /// The step runs a step run waited for.
    async fn step_run_parents(&self, id: StepRunId) -> Result<Vec<StepRunId>>;

    /// A run's step runs with their parents, inputs and outputs, in a few queries.
    async fn run_graph(&self, run: RunId) -> Result<RunGraph>;

    /// What showing run `run` takes, without the rest of its records: see [`RunOverview`].
    /// Without `links`, its inputs and outputs are left empty, unread (a picture of the run
    /// needs its steps and their parents only).
    async fn run_overview(&self, run: RunId, links: bool) -> Result<RunOverview>;

    /// One page of a run's step runs (see [`StepRunPage`]) with their parents and, when
    /// asked, their inputs and outputs: a run of 100,000 steps read a page at a time. The
    /// step runs come in page order, the links as in [`RunOverview`]. An `after` that is not
    /// a step run of `run` is [`Error::NotFound`](crate::Error::NotFound).
    async fn step_run_page(&self, run: RunId, page: &StepRunPage) -> Result<RunOverview>;

    /// The summaries of a run's step runs, in creation order; with `since`, only those
    /// created, started or ended at or after it (what may have changed since a look).
    async fn step_run_summaries(
        &self,
        run: RunId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<StepRunSummary>>;

    /// The step run that produced a version, if a step did.
    async fn producer(&self, id: ArtifactVersionId) -> Result<Option<StepRun>>;

    /// The step runs that read a version.
    async fn consumers(&self, id: ArtifactVersionId) -> Result<Vec<StepRun>>;

    /// The lineage of a version in one direction, across runs, at most `depth` steps deep
    /// and, when `limit` is given, with at most that many step runs and versions besides
    /// the version itself (the walk stops at the limit and says so: a fan-in's output has
    /// 100,000 inputs, too many for a picture).
    async fn lineage(
        &self,
        id: ArtifactVersionId,
        direction: Direction,
        depth: u32,
        limit: Option<usize>,
    ) -> Result<Lineage>;
}

/// Key/value metadata on runs, step runs and artifact versions.
#[async_trait]
pub trait MetadataRecords: Send + Sync {
    /// Sets entries on a resource (a key set again is replaced).
    async fn log_metadata(
        &self,
        resource: Resource,
        entries: Vec<(String, serde_json::Value)>,
        source: MetadataSource,
    ) -> Result<()>;

    /// The entries of a resource, by key.
    async fn metadata(&self, resource: Resource) -> Result<Vec<MetadataEntry>>;

    /// The metadata of every step run of `run`, by step run, in one query (for showing a run
    /// of many steps).
    async fn step_runs_metadata(&self, run: RunId) -> Result<Vec<(StepRunId, MetadataEntry)>>;
}

/// The keys of `weft server`'s API.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Records a new key; its id must be new.
    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey>;

    /// The key with this id, revoked and expired ones included.
    async fn api_key(&self, id: &str) -> Result<ApiKey>;

    /// Every key, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKey>>;

    /// Revokes a key from now on (revoking it again keeps the first time).
    async fn revoke_api_key(&self, id: &str) -> Result<ApiKey>;

    /// Records that the key was used at `at`.
    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
}

/// The whole metadata store, as the engine and the CLI use it.
pub trait MetadataStore:
    RunStore
    + StepRunStore
    + ArtifactRecords
    + LineageStore
    + MetadataRecords
    + ApiKeyStore
    + std::fmt::Debug
{
    /// Where the store is, for messages (without any password).
    fn location(&self) -> String;

    /// The URL another process opens this store with, credentials included: hand it to
    /// children, never print it.
    fn url(&self) -> String;

    /// Whether the store was opened read-only (it may be read; every write fails).
    fn read_only(&self) -> bool {
        false
    }
}
