//! The records of the metadata store and the requests that create them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_core::artifact::{ArtifactType, FileRecord};
use weft_core::{ArtifactId, ArtifactVersionId, RunId, Snapshot, SnapshotId, Status, StepRunId};

/// Key/value facts attached to a run, step run or artifact version.
pub type Metadata = BTreeMap<String, Value>;

/// One pipeline run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The run's id.
    pub id: RunId,
    /// A readable name: `<pipeline>-<date>-<time>`.
    pub name: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The plan it executes.
    pub snapshot_id: Option<SnapshotId>,
    /// How many invocations the plan has.
    pub invocations: u32,
    /// Its status.
    pub status: Status,
    /// Why it has this status, when that needs saying (for example why it failed).
    pub status_reason: Option<String>,
    /// The options it was started with.
    pub config: Value,
    /// The process that orchestrates it.
    pub owner: Option<Owner>,
    /// The run this one resumes.
    pub resumed_from: Option<RunId>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When its first step started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub ended_at: Option<DateTime<Utc>>,
    /// The last sign of life of its orchestrator.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Its tags, in name order.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The process orchestrating a run, so that another process can tell whether it still lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The host's name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// When the process started, in the host's own clock ticks (tells a reused pid apart).
    pub started: Option<u64>,
    /// The PID namespace the process id belongs to (`pid:[4026531836]`): a process in a
    /// container that shares the host's name has ids another namespace cannot look up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    /// The host's boot id: a process id means nothing after a reboot, nor on another machine
    /// with the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// A request to record a new run of a snapshot, as `initializing`.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The compiled plan; stored once per content.
    pub snapshot: Snapshot,
    /// The options it is started with.
    pub config: Value,
    /// The process that orchestrates it.
    pub owner: Option<Owner>,
    /// The run it resumes.
    pub resumed_from: Option<RunId>,
    /// Tags to attach to it (more can be attached later).
    pub tags: Vec<String>,
}

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only runs of this pipeline.
    pub pipeline: Option<String>,
    /// Only runs with this status.
    pub status: Option<Status>,
    /// At most this many, newest first (oldest first with `oldest_first`).
    pub limit: Option<u32>,
    /// Only runs created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only runs that come after this one in the order asked for: the next page after a page
    /// ending with it (run ids grow with creation time, so the order is stable however many
    /// runs are added meanwhile).
    pub after: Option<RunId>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// Only runs with this tag.
    pub tag: Option<String>,
}

/// Which of a run's step runs [`LineageStore::step_run_page`](crate::LineageStore::step_run_page)
/// reads: one page of them, in creation order, as the whole run is read (an index keeps a
/// run's step runs in that order, so that a page costs its own size, not the run's).
#[derive(Clone, Debug)]
pub struct StepRunPage {
    /// Only those after this step run of the run: the last of the previous page.
    pub after: Option<StepRunId>,
    /// At most this many.
    pub limit: u32,
    /// Only those with this status.
    pub status: Option<Status>,
    /// With their inputs and outputs; without, those lists are left empty, unread.
    pub links: bool,
}

/// A JSON document kept as its text. A run's step runs are read by the ten thousand (its
/// report, `runs show`): their larger documents (settings, cache key parts) stay one string
/// each instead of a tree of maps, a tenth of the memory, and a text many of them hold (the
/// settings of a map's items) is one shared string; a clone shares it too. It serializes as
/// the document itself; [`JsonText::value`] parses it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonText(pub(crate) std::sync::Arc<serde_json::value::RawValue>);

impl JsonText {
    /// The canonical text of `value` (keys sorted).
    pub fn new(value: &Value) -> Self {
        Self::parse(weft_core::canonical::to_string(value)).expect("serialized JSON is JSON")
    }

    /// The canonical text of any serializable value.
    pub fn of(value: &impl Serialize) -> serde_json::Result<Self> {
        let text = weft_core::canonical::to_vec(value)?;
        Self::parse(String::from_utf8(text).expect("JSON output is UTF-8"))
    }

    /// Takes `text` if it is one JSON document.
    pub fn parse(text: String) -> serde_json::Result<Self> {
        serde_json::value::RawValue::from_string(text).map(|raw| Self(raw.into()))
    }

    /// The document's text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The document, parsed.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.as_str()).expect("checked to be JSON when made")
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> Self {
        Self::new(value)
    }
}

/// One attempt of one invocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRun {
    /// The step run's id.
    pub id: StepRunId,
    /// The run it belongs to.
    pub run_id: RunId,
    /// The invocation id, unique in the run.
    pub invocation: String,
    /// The step's name.
    pub step: String,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// Its status.
    pub status: Status,
    /// Why it has this status, when that needs saying (skipped because ..., stopped because ...).
    pub status_reason: Option<String>,
    /// Hash of the step's code.
    pub code_hash: String,
    /// Parameters it was called with (a JSON object).
    pub parameters: JsonText,
    /// Its settings.
    pub config: JsonText,
    /// The key it is cached under, if caching applied.
    pub cache_key: Option<String>,
    /// What the key is made of (`weft_core::cache::KeyParts`).
    pub cache_parts: Option<JsonText>,
    /// When it stops being a cache candidate.
    pub cache_expires_at: Option<DateTime<Utc>>,
    /// For a cached step run: the step run whose outputs it reuses.
    pub original_step_run: Option<StepRunId>,
    /// What went wrong, for a failed step run.
    pub error: Option<Box<StepError>>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it started executing.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub ended_at: Option<DateTime<Utc>>,
}

/// The error of a failed step run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// Whether the step returned an error or panicked (or something else stopped it).
    pub kind: StepErrorKind,
    /// The top-level message.
    pub message: String,
    /// The messages of the causes, outermost first (the first is `message`).
    pub chain: Vec<String>,
    /// A backtrace, when one was captured.
    pub backtrace: Option<String>,
    /// Whether another attempt could succeed (errors marked non-retryable say no).
    #[serde(default = "yes")]
    pub retryable: bool,
}

fn yes() -> bool {
    true
}

/// How a step run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepErrorKind {
    /// The step function returned `Err`.
    Error,
    /// The step function panicked.
    Panic,
    /// weft could not prepare or finish the step (inputs, outputs, storage).
    System,
    /// The step ran past its timeout.
    Timeout,
    /// The process orchestrating the run died.
    Orphaned,
}

/// A request to record a step run.
#[derive(Clone, Debug)]
pub struct NewStepRun {
    /// Its id, chosen by the caller so that step runs recorded in the same batch (a cached
    /// step and its downstream) can name each other as parents.
    pub id: StepRunId,
    /// The run.
    pub run_id: RunId,
    /// The invocation id.
    pub invocation: String,
    /// The step's name.
    pub step: String,
    /// Hash of the step's code.
    pub code_hash: String,
    /// Parameters (a JSON object), as canonical text.
    pub parameters: JsonText,
    /// Settings (a JSON object), as canonical text: made once for every step run that shares
    /// them (the items of a map).
    pub config: JsonText,
    /// The initial status: running, skipped, cached, failed, ...
    pub status: Status,
    /// Why, when the status needs it.
    pub status_reason: Option<String>,
    /// The error, for a step run created as failed.
    pub error: Option<StepError>,
    /// Artifact versions it reads.
    pub inputs: Vec<NewInput>,
    /// Step runs it waited for (data and ordering).
    pub parents: Vec<StepRunId>,
    /// Its cache key.
    pub cache_key: Option<String>,
    /// What the key is made of, as canonical text. Not stored for a cached step run with
    /// its original and key: it reads back as its original's.
    pub cache_parts: Option<JsonText>,
    /// When it stops being a cache candidate.
    pub cache_expires_at: Option<DateTime<Utc>>,
    /// For a cached step run: the original.
    pub original_step_run: Option<StepRunId>,
}

/// One artifact version read by a step run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInput {
    /// The argument name (shared by the items of a fan-in: 100,000 inputs hold one copy).
    pub name: std::sync::Arc<str>,
    /// Index inside a fan-in input, or the item of a collection (kind `item`); 0 otherwise.
    pub position: u32,
    /// The version read.
    pub artifact_version: ArtifactVersionId,
    /// Where it came from.
    pub kind: InputKind,
}

/// Where an input artifact version came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// An output of an upstream step of the same run.
    StepOutput,
    /// A version that existed before the run, passed in by id.
    External,
    /// Loaded by the step's own code.
    Manual,
    /// One item of an upstream step's output that is a collection; `position` is the item's.
    Item,
}

/// How an artifact version came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveType {
    /// Returned by a step.
    StepOutput,
    /// Uploaded from outside any run.
    External,
    /// Saved by code inside a step.
    Manual,
}

macro_rules! text_enum {
    ($ty:ty, $what:literal, { $($variant:path => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The name used in storage and output.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),* }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($variant),)*
                    _ => Err(format!("unknown {} `{text}`", $what)),
                }
            }
        }
    };
}

text_enum!(InputKind, "input kind", {
    InputKind::StepOutput => "step_output",
    InputKind::External => "external",
    InputKind::Manual => "manual",
    InputKind::Item => "item",
});
text_enum!(SaveType, "save type", {
    SaveType::StepOutput => "step_output",
    SaveType::External => "external",
    SaveType::Manual => "manual",
});

/// A named series of artifact versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The artifact's id.
    pub id: ArtifactId,
    /// Its name: a custom one, or `<pipeline>::<invocation>::<output>`.
    pub name: String,
    /// Whether the name was chosen by the user.
    pub has_custom_name: bool,
    /// How many versions it has.
    pub version_count: u64,
    /// Its newest version.
    pub latest_version: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One stored, immutable value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactVersion {
    /// The version's id.
    pub id: ArtifactVersionId,
    /// The artifact it belongs to.
    pub artifact_id: ArtifactId,
    /// The artifact's name.
    pub name: String,
    /// The version: `1`, `2`, ... or an explicit string.
    pub version: String,
    /// The kind of artifact.
    pub artifact_type: ArtifactType,
    /// Where its files are.
    pub uri: String,
    /// The materializer that wrote it.
    pub materializer: String,
    /// The version of that materializer's format.
    pub materializer_version: u32,
    /// The Rust type of the value.
    pub data_type: String,
    /// Hash of its content, used to verify it and for caching.
    pub content_hash: String,
    /// Total size in bytes.
    pub size: u64,
    /// Its files, with sizes and hashes.
    pub files: Vec<FileRecord>,
    /// How it came to be.
    pub save_type: SaveType,
    /// The step run that produced it.
    pub producer: Option<StepRunId>,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A request to register a stored artifact version.
#[derive(Clone, Debug)]
pub struct NewArtifactVersion {
    /// The version's id, chosen by the writer so that step runs created in the same batch
    /// can already read it.
    pub id: ArtifactVersionId,
    /// The artifact's name; the artifact is created on first use.
    pub name: String,
    /// Whether the name was chosen by the user.
    pub has_custom_name: bool,
    /// An explicit version; `None` takes the next integer.
    pub version: Option<String>,
    /// The kind of artifact.
    pub artifact_type: ArtifactType,
    /// Where its files are.
    pub uri: String,
    /// The materializer that wrote it.
    pub materializer: String,
    /// The version of that materializer's format.
    pub materializer_version: u32,
    /// The Rust type.
    pub data_type: String,
    /// Hash of its content.
    pub content_hash: String,
    /// Total size in bytes.
    pub size: u64,
    /// Its files.
    pub files: Vec<FileRecord>,
    /// How it came to be.
    pub save_type: SaveType,
    /// Facts about it (stored as system metadata).
    pub metadata: Metadata,
    /// Tags to attach.
    pub tags: Vec<String>,
}

/// A cache entry found for a key: the step run whose outputs can be reused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The completed step run.
    pub step_run: StepRunId,
    /// Its run.
    pub run_id: RunId,
    /// Its outputs.
    pub outputs: Vec<StepOutput>,
}

/// A step run's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    /// The output's name.
    pub name: String,
    /// The version it produced (or reused).
    pub artifact_version: ArtifactVersion,
}

/// A step run's input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepInput {
    /// The argument name.
    pub name: String,
    /// Index inside a fan-in input.
    pub position: u32,
    /// Where it came from.
    pub kind: InputKind,
    /// The version read.
    pub artifact_version: ArtifactVersion,
}

/// How a step run finished successfully.
#[derive(Clone, Debug, Default)]
pub struct Completion {
    /// Outputs to register, by output name.
    pub outputs: Vec<(String, NewArtifactVersion)>,
    /// Where its log is, if it logged anything.
    pub log_uri: Option<String>,
    /// Metadata the step logged, recorded on the step run.
    pub metadata: Vec<(String, Value)>,
}

/// Step-run changes applied together, in one transaction: completions, failures and stops
/// first, then new step runs (which may read the versions the completions register).
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Running step runs that completed, with their outputs.
    pub completed: Vec<(StepRunId, Completion)>,
    /// Step runs that failed, with their errors and logs.
    pub failed: Vec<(StepRunId, StepError, Option<String>)>,
    /// Step runs that failed and will be attempted again (they become `retrying`).
    pub retrying: Vec<(StepRunId, StepError, Option<String>)>,
    /// Unfinished step runs to stop, with the reason.
    pub stopped: Vec<(StepRunId, String)>,
    /// New step runs.
    pub created: Vec<NewStepRun>,
    /// New step runs whose bodies already started (an orchestrator that starts a step
    /// before its record is written, to record several steps in one commit): recorded
    /// whatever their run's status, since they run; a stopping run's orchestrator learns
    /// from [`Applied::stopping`] that it must stop them. Recorded before `created`.
    pub started: Vec<NewStepRun>,
    /// weft's own facts about step runs of this batch or earlier ones (where an isolated
    /// step's host ran), recorded as system metadata.
    pub system_metadata: Vec<(StepRunId, Vec<(String, Value)>)>,
    /// When these changes happened, for the times recorded on step runs (started, ended);
    /// when they are applied if `None`. A batch written later than it happened keeps its
    /// steps' true times.
    pub at: Option<DateTime<Utc>>,
}

impl Changes {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.completed.is_empty()
            && self.failed.is_empty()
            && self.retrying.is_empty()
            && self.stopped.is_empty()
            && self.created.is_empty()
            && self.started.is_empty()
            && self.system_metadata.is_empty()
    }
}

/// What applying [`Changes`] recorded.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The registered outputs of each completion, in the order given.
    pub outputs: Vec<Vec<StepOutput>>,
    /// The created step runs, in the order given; `None` where a step run that would start
    /// was refused because its run is stopping.
    pub created: Vec<Option<StepRun>>,
    /// Whether the run of a created or started step run is stopping.
    pub stopping: bool,
}

/// Which cache entries to expire.
#[derive(Clone, Debug)]
pub enum CacheExpiry {
    /// These step runs.
    StepRuns(Vec<StepRunId>),
    /// Every step run of this step (`module::path::name`, or a name it ends with).
    Step(String),
    /// Every cache entry.
    All,
}

/// Everything needed to draw a run: its step runs and how they connect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunGraph {
    /// Every step run, in creation order.
    pub step_runs: Vec<StepRun>,
    /// `(parent, child)` pairs.
    pub parents: Vec<(StepRunId, StepRunId)>,
    /// Inputs per step run.
    pub inputs: Vec<(StepRunId, StepInput)>,
    /// Outputs per step run.
    pub outputs: Vec<(StepRunId, StepOutput)>,
}

/// A run's step runs and how they connect, with only what showing the run takes (no
/// configuration, cache key parts or whole artifact versions): several times cheaper to read
/// than a [`RunGraph`] for a run of thousands of steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunOverview {
    /// Every step run, in creation order.
    pub step_runs: Vec<StepRunSummary>,
    /// `(parent, child)` pairs.
    pub parents: Vec<(StepRunId, StepRunId)>,
    /// What each step run read.
    pub inputs: Vec<InputLink>,
    /// What each step run wrote (or reused).
    pub outputs: Vec<OutputLink>,
}

/// A step run as a run's overview shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRunSummary {
    /// Its id.
    pub id: StepRunId,
    /// The invocation it executes.
    pub invocation: String,
    /// The step's name.
    pub step: String,
    /// Its attempt number, from 1.
    pub attempt: u32,
    /// Its status.
    pub status: Status,
    /// Why it has that status, where something says.
    pub status_reason: Option<String>,
    /// Its parameters.
    pub parameters: JsonText,
    /// Its cache key, if it had one.
    pub cache_key: Option<String>,
    /// The step run whose outputs it reuses (cached or resumed).
    pub original_step_run: Option<StepRunId>,
    /// How it failed.
    pub error: Option<StepError>,
    /// When its body started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
}

/// A step run read an artifact version as an input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputLink {
    /// The step run.
    pub step_run: StepRunId,
    /// The input's name.
    pub name: String,
    /// Its place in a list input.
    pub position: u32,
    /// The version read.
    pub artifact_version: ArtifactVersionId,
}

/// A step run wrote (or reused) an artifact version as an output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputLink {
    /// The step run.
    pub step_run: StepRunId,
    /// The output's name.
    pub name: String,
    /// The version.
    pub artifact_version: ArtifactVersionId,
    /// The version's artifact name.
    pub artifact: String,
    /// The version's version (`1`, `2`, or an explicit one).
    pub version: String,
}

/// What a resource's metadata belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A run.
    Run(RunId),
    /// A step run.
    StepRun(StepRunId),
    /// An artifact version.
    ArtifactVersion(ArtifactVersionId),
}

impl Resource {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Resource::Run(_) => "run",
            Resource::StepRun(_) => "step_run",
            Resource::ArtifactVersion(_) => "artifact_version",
        }
    }

    pub(crate) fn id(&self) -> String {
        match self {
            Resource::Run(id) => id.to_string(),
            Resource::StepRun(id) => id.to_string(),
            Resource::ArtifactVersion(id) => id.to_string(),
        }
    }
}

/// Who wrote a metadata entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataSource {
    /// weft itself (sizes, durations, ...).
    System,
    /// User code (`log_metadata`).
    User,
}

text_enum!(MetadataSource, "metadata source", {
    MetadataSource::System => "system",
    MetadataSource::User => "user",
});

/// One metadata entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetadataEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Who wrote it.
    pub source: MetadataSource,
}

/// A step run's log, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRef {
    /// The run.
    pub run_id: RunId,
    /// The step run, or `None` for the pipeline's own log.
    pub step_run_id: Option<StepRunId>,
    /// Where the log's chunks are in the artifact store.
    pub uri: String,
}

/// The lineage of an artifact version across runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The version asked about.
    pub root: Option<ArtifactVersion>,
    /// Step runs involved, by id.
    pub step_runs: Vec<StepRun>,
    /// Artifact versions involved, by id.
    pub artifact_versions: Vec<ArtifactVersion>,
    /// `(artifact version, step run, input name)`: the step run read the version.
    pub reads: Vec<(ArtifactVersionId, StepRunId, String)>,
    /// `(step run, artifact version, output name)`: the step run produced the version.
    pub writes: Vec<(StepRunId, ArtifactVersionId, String)>,
    /// The walk stopped at its limit: there is more lineage than is listed (and the reads and
    /// writes listed are those between what is listed).
    #[serde(default)]
    pub truncated: bool,
}

/// Which way to follow lineage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Towards what a version was made from.
    Upstream,
    /// Towards what was made from a version.
    Downstream,
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Reads everything and acts: stops runs, tags versions, expires cache entries.
    Editor,
}

impl Role {
    /// Its name as stored and written.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            other => Err(format!(
                "`{other}` is not a role: use `viewer` (reads) or `editor` (reads and acts)"
            )),
        }
    }
}

/// A key of the server's API, as recorded: the secret itself is never stored, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The public part of the key, which finds it.
    pub id: String,
    /// What it is for, as its creator said.
    pub name: Option<String>,
    /// What it may do.
    pub role: Role,
    /// A hash of the secret part (hex).
    #[serde(skip_serializing)]
    pub secret_hash: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used to sign in or call the API (recorded at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether it can be used at `now`: neither revoked nor expired.
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| now < expires)
    }
}

/// A key to record.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    /// The public part of the key.
    pub id: String,
    /// What it is for.
    pub name: Option<String>,
    /// What it may do.
    pub role: Role,
    /// A hash of the secret part (hex).
    pub secret_hash: String,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}
