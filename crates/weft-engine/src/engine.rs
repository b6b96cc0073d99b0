//! [`Engine`]: the stores and the steps of one binary, and running a snapshot on them.

use std::sync::Arc;

use weft_artifacts::ArtifactStore;
use weft_core::Snapshot;
use weft_store::MetadataStore;
use weft_store::model::{NewRun, Run, StepRun};

use crate::step::Registry;
use crate::{Result, local};

/// The stores and the steps a pipeline runs with; cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metadata: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    registry: Arc<Registry>,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// At most this many steps run at once. Default: the number of cores.
    pub max_parallelism: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            max_parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run, with its final status.
    pub run: Run,
    /// Its step runs, in creation order.
    pub step_runs: Vec<StepRun>,
}

impl RunReport {
    /// The step runs that failed.
    pub fn failed_steps(&self) -> impl Iterator<Item = &StepRun> {
        self.step_runs
            .iter()
            .filter(|step_run| step_run.status == weft_core::Status::Failed)
    }
}

impl Engine {
    /// An engine over these stores and steps.
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        artifacts: ArtifactStore,
        registry: Arc<Registry>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                metadata,
                artifacts,
                registry,
            }),
        }
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.metadata
    }

    /// The artifact store.
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.inner.artifacts
    }

    /// The steps of this binary.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Stores `snapshot`, records a run of it and runs it to its end on the local
    /// orchestrator.
    pub async fn run(&self, snapshot: Snapshot, options: RunOptions) -> Result<RunReport> {
        let config = serde_json::json!({
            "orchestrator": "local",
            "max_parallelism": options.max_parallelism,
        });
        let run = self
            .metadata()
            .create_run(NewRun {
                snapshot: snapshot.clone(),
                config,
            })
            .await?;
        self.execute(&run, snapshot, options).await
    }

    /// Runs an already recorded run of `snapshot` to its end.
    pub async fn execute(
        &self,
        run: &Run,
        snapshot: Snapshot,
        options: RunOptions,
    ) -> Result<RunReport> {
        tracing::info!(target: "weft", "run {} ({}) started: {} steps", run.name, run.id, snapshot.invocations.len());
        let executed = local::execute(self, run, Arc::new(snapshot), options.max_parallelism).await;
        if let Err(error) = &executed {
            let _ = self
                .metadata()
                .fail_run(run.id, &format!("the orchestrator failed: {error}"))
                .await;
            return Err(executed.unwrap_err());
        }
        let run = self.metadata().refresh_static_run(run.id).await?;
        let step_runs = self.metadata().step_runs(run.id).await?;
        Ok(RunReport { run, step_runs })
    }
}
