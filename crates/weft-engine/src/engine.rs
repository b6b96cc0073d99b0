//! [`Engine`]: the stores, the steps and the clock of one binary; running a snapshot on them,
//! resuming a run, and reconciling runs whose orchestrator died.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use weft_artifacts::ArtifactStore;
use weft_core::{RunId, Snapshot, Status, StepRunId};
use weft_store::MetadataStore;
use weft_store::model::{MetadataSource, NewRun, Resource, Run, StepRun};

use crate::clock::{Clock, SystemClock};
use crate::dynamic::{FunctionEnd, Runtime, Shared};
use crate::launcher::RunScope;
use crate::owner::{self, Liveness};
use crate::step::Registry;
use crate::{Error, Result, local};

/// The stores, steps and clock a pipeline runs with; cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metadata: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// At most this many steps run at once. Default: the number of cores.
    pub max_parallelism: usize,
    /// How often a running orchestrator records a sign of life. Default: 5 s.
    pub heartbeat: Duration,
    /// Where relative cache file dependencies are read from. Default: the current folder.
    pub project_root: PathBuf,
    /// Cache key functions by name.
    pub key_fns: HashMap<String, fn() -> String>,
    /// Look nothing up in the cache and record no entries, whatever the snapshot's
    /// policies say. A resume still reuses its original's finished steps.
    pub no_cache: bool,
    /// The executable that hosts isolated steps (see [`crate::isolated`]). Default:
    /// `WEFT_WORKER` (for a cluster whose nodes see the binary under another path), else the
    /// current executable; it must call `weft::main()`.
    pub worker: Option<PathBuf>,
    /// Stops the run when requested (by the process's signal handler; see
    /// [`crate::interrupt`]).
    pub interrupt: Option<crate::Interrupt>,
    /// Tags to attach to the run. A resumed run also keeps its original's tags.
    pub tags: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            max_parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            heartbeat: Duration::from_secs(5),
            project_root: std::env::current_dir().unwrap_or_default(),
            key_fns: HashMap::new(),
            no_cache: false,
            worker: std::env::var_os("WEFT_WORKER")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::current_exe().ok()),
            interrupt: None,
            tags: Vec::new(),
        }
    }
}

/// A dynamic pipeline's function, as the engine runs it: on a thread of its own, making its
/// step calls through the [`Runtime`] it is given.
pub type PipelineFunction = Box<dyn FnOnce(Runtime) -> FunctionEnd + Send>;

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run, with its final status.
    pub run: Run,
    /// Its step runs, in creation order, without their cache key parts (see
    /// [`weft_store::StepRunStore::step_runs`]).
    pub step_runs: Vec<StepRun>,
}

impl RunReport {
    /// The step runs that failed (the last attempt of each failed invocation).
    pub fn failed_steps(&self) -> impl Iterator<Item = &StepRun> {
        self.step_runs
            .iter()
            .filter(|step_run| step_run.status == Status::Failed)
    }
}

/// A run found without a living orchestrator, and failed.
#[derive(Clone, Debug)]
pub struct Reconciled {
    /// The run, now failed.
    pub run: Run,
    /// Why it was failed.
    pub reason: String,
}

impl Engine {
    /// An engine over these stores and steps, on the system clock.
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        artifacts: ArtifactStore,
        registry: Arc<Registry>,
    ) -> Self {
        Self::with_clock(metadata, artifacts, registry, Arc::new(SystemClock))
    }

    /// An engine with a clock of its own (tests use a manual one).
    pub fn with_clock(
        metadata: Arc<dyn MetadataStore>,
        artifacts: ArtifactStore,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                metadata,
                artifacts,
                registry,
                clock,
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

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Stores `snapshot`, records a run of it and runs it to its end on the local
    /// orchestrator.
    pub async fn run(&self, snapshot: Snapshot, options: RunOptions) -> Result<RunReport> {
        self.start(snapshot, options, None, None).await
    }

    /// Records a run of a dynamic pipeline (`snapshot` says what its function is called
    /// with) and runs `function` on a thread of its own; its step calls are scheduled as
    /// they come. The run ends once the function returned and every step it started ended.
    pub async fn run_dynamic(
        &self,
        snapshot: Snapshot,
        options: RunOptions,
        function: PipelineFunction,
    ) -> Result<RunReport> {
        self.start(snapshot, options, None, Some(function)).await
    }

    /// Resumes a dynamic run: `function` is called again, and each of its calls whose
    /// invocation finished in run `original` reuses that result (see [`Engine::resume`]).
    pub async fn resume_dynamic(
        &self,
        original: RunId,
        options: RunOptions,
        function: PipelineFunction,
    ) -> Result<RunReport> {
        let snapshot = self.original_snapshot(original).await?;
        self.start(snapshot, options, Some(original), Some(function))
            .await
    }

    /// Starts a new run of the snapshot of run `original` that reuses every step that
    /// finished successfully in it (whatever the cache settings) and runs only the rest.
    pub async fn resume(&self, original: RunId, options: RunOptions) -> Result<RunReport> {
        let snapshot = self.original_snapshot(original).await?;
        self.start(snapshot, options, Some(original), None).await
    }

    /// The snapshot of run `original`, to resume it.
    pub async fn original_snapshot(&self, original: RunId) -> Result<Snapshot> {
        let run = self.metadata().run(original).await?;
        let snapshot_id = run.snapshot_id.as_ref().ok_or_else(|| Error::Input {
            invocation: String::new(),
            input: String::new(),
            reason: format!("run {original} has no snapshot to resume"),
        })?;
        Ok(self.metadata().snapshot(snapshot_id).await?)
    }

    async fn start(
        &self,
        snapshot: Snapshot,
        options: RunOptions,
        resumed_from: Option<RunId>,
        function: Option<PipelineFunction>,
    ) -> Result<RunReport> {
        let mut reuse = HashMap::new();
        let mut tags = options.tags.clone();
        if let Some(original) = resumed_from {
            tags.extend(self.metadata().run(original).await?.tags);
            let graph = self.metadata().run_graph(original).await?;
            let mut latest: HashMap<&str, &StepRun> = HashMap::new();
            for step_run in &graph.step_runs {
                let entry = latest
                    .entry(step_run.invocation.as_str())
                    .or_insert(step_run);
                if step_run.attempt > entry.attempt {
                    *entry = step_run;
                }
            }
            for (invocation, step_run) in latest {
                if matches!(step_run.status, Status::Completed | Status::Cached) {
                    let outputs = graph
                        .outputs
                        .iter()
                        .filter(|(id, _)| *id == step_run.id)
                        .map(|(_, output)| output.clone())
                        .collect();
                    reuse.insert(invocation.to_owned(), (step_run.clone(), outputs));
                }
            }
        }
        let config = json!({
            "orchestrator": "local",
            "max_parallelism": options.max_parallelism,
            "dynamic": snapshot.dynamic,
        });
        let owner = owner::current();
        let run = self
            .metadata()
            .create_run(NewRun {
                snapshot: snapshot.clone(),
                config,
                owner: Some(owner.clone()),
                resumed_from,
                tags,
            })
            .await?;
        if let Some(interrupt) = &options.interrupt {
            interrupt.started(run.id);
        }
        let system = vec![
            ("weft_version".to_owned(), json!(env!("CARGO_PKG_VERSION"))),
            ("host".to_owned(), json!(owner.host)),
            ("pid".to_owned(), json!(owner.pid)),
        ];
        self.metadata()
            .log_metadata(Resource::Run(run.id), system, MetadataSource::System)
            .await?;
        match resumed_from {
            Some(original) => {
                tracing::info!(target: "weft", "run {} ({}) started, resuming run {original}: {} steps, {} reused", run.name, run.id, snapshot.invocations.len(), reuse.len())
            }
            None => {
                tracing::info!(target: "weft", "run {} ({}) started: {} steps", run.name, run.id, snapshot.invocations.len())
            }
        }
        let scope = RunScope {
            run_id: run.id,
            pipeline: snapshot.pipeline.clone(),
            project_root: options.project_root.clone(),
            key_fns: Arc::new(options.key_fns.clone()),
            no_cache: options.no_cache,
            last_config: Default::default(),
        };
        let settings = local::Settings {
            max_parallelism: options.max_parallelism,
            heartbeat: options.heartbeat,
            reuse,
            worker: options.worker.clone(),
            interrupt: options.interrupt.clone(),
        };
        let run = match function {
            None => {
                let executed = local::execute(self, Arc::new(snapshot), scope, &settings).await;
                self.fail_on_error(run.id, executed).await?;
                self.metadata().refresh_static_run(run.id).await?
            }
            Some(function) => {
                let (commands, received) = tokio::sync::mpsc::unbounded_channel();
                let shared = Arc::new(Shared::default());
                let runtime =
                    Runtime::new(commands, shared.clone(), self.artifacts().clone(), run.id);
                std::thread::Builder::new()
                    .name(format!("weft-pipeline-{}", snapshot.pipeline))
                    .spawn(move || {
                        let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            function(runtime.clone())
                        }))
                        .unwrap_or_else(|panic| FunctionEnd::Panicked(panic_text(&*panic)));
                        runtime.end(end);
                    })
                    .map_err(|error| {
                        Error::Task(format!(
                            "cannot start the pipeline function's thread: {error}"
                        ))
                    })?;
                let mode = snapshot.execution_mode;
                let executed =
                    local::execute_dynamic(self, mode, scope, &settings, shared, received).await;
                let outcome = self.fail_on_error(run.id, executed).await?;
                self.metadata()
                    .finish_dynamic_run(run.id, outcome.status, outcome.reason.as_deref())
                    .await?
            }
        };
        let step_runs = self.metadata().step_runs(run.id).await?;
        Ok(RunReport { run, step_runs })
    }

    /// Fails the run if its orchestrator failed (the metadata store could not be written).
    async fn fail_on_error<T>(&self, run: RunId, executed: Result<T>) -> Result<T> {
        if let Err(error) = &executed {
            let reason = format!(
                "the orchestrator failed: {}",
                weft_core::message::one_line(std::iter::successors(
                    Some(error as &dyn std::error::Error),
                    |error| error.source()
                ))
            );
            // A store that just refused a write (a full disk) may take this one once the
            // failed steps' files are gone; if it never does, reconciling fails the run later.
            for attempt in 0..5 {
                match self.metadata().fail_run(run, &reason).await {
                    Ok(_) | Err(weft_store::Error::Transition { .. }) => break,
                    Err(_) if attempt < 4 => {
                        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    }
                    Err(failure) => {
                        tracing::warn!(target: "weft", "run {run} could not be recorded failed: {failure}");
                    }
                }
            }
        }
        executed
    }

    /// Fails every unfinished run whose orchestrator is gone: on this host, one whose process
    /// no longer exists; elsewhere, one without a heartbeat for `grace`. Its unfinished step
    /// runs fail with it, and what they left is removed (see `remove_staged`), Slurm job
    /// folders under `project_root` included.
    pub async fn reconcile(&self, grace: Duration, project_root: &Path) -> Result<Vec<Reconciled>> {
        let now = self.clock().now();
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let mut reconciled = Vec::new();
        for run in self.metadata().unfinished_runs().await? {
            let liveness = run
                .owner
                .as_ref()
                .map_or(Liveness::Unknown, owner::liveness);
            let silent = run.heartbeat_at.is_none_or(|beat| now - beat > grace);
            let reason = match (liveness, &run.owner) {
                (Liveness::Dead, Some(owner)) => {
                    format!(
                        "orchestrator process died (process {} on {})",
                        owner.pid, owner.host
                    )
                }
                (Liveness::Unknown, owner) if silent => format!(
                    "orchestrator process died: no heartbeat since {} ({})",
                    run.heartbeat_at
                        .map_or("the run started".to_owned(), |t| t.to_rfc3339()),
                    owner
                        .as_ref()
                        .map_or("unknown process".to_owned(), |o| format!(
                            "process {} on {}",
                            o.pid, o.host
                        ))
                ),
                _ => continue,
            };
            let step_runs = self.metadata().step_runs(run.id).await?;
            match self.metadata().fail_run(run.id, &reason).await {
                Ok(run) => {
                    tracing::warn!(target: "weft", "run {} failed: {reason}", run.id);
                    self.remove_staged(&run, &step_runs, project_root).await;
                    reconciled.push(Reconciled { run, reason });
                }
                // It finished meanwhile: nothing to reconcile.
                Err(weft_store::Error::Transition { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(reconciled)
    }

    /// Ends what step runs of a dead run left behind: their Slurm jobs are cancelled (a
    /// local step process ended with its orchestrator, see `isolated::PARENT_ENV`), and the
    /// files they were writing, their live logs and their processes' temporary folders on
    /// this machine are removed: none of them was registered, and each is unique to its step
    /// run.
    async fn remove_staged(&self, run: &Run, step_runs: &[StepRun], project_root: &Path) {
        let artifacts = self.artifacts().clone();
        let unfinished: Vec<StepRun> = step_runs
            .iter()
            .filter(|step_run| !step_run.status.is_finished())
            .cloned()
            .collect();
        let finished: std::collections::HashSet<StepRunId> = step_runs
            .iter()
            .filter(|step_run| step_run.status.is_finished())
            .map(|step_run| step_run.id)
            .collect();
        let (run_id, pipeline) = (run.id, run.pipeline.clone());
        let jobs_folder = project_root.join(".weft").join("jobs");
        crate::blocking(move || {
            // The logs of step runs that never finished, recorded or not: the last steps of a
            // run that starts steps before their records are written may have none.
            let unfinished_log = |name: &str| {
                name.split('.')
                    .next()
                    .and_then(|id| id.parse::<StepRunId>().ok())
                    .is_some_and(|id| !finished.contains(&id))
            };
            let logs = format!("logs/{run_id}");
            if let Some(folder) = artifacts.local_path(&logs) {
                // Read from the folder itself: a log being put when the process died is a
                // staging file (`<name>#<n>`) that the store's listing does not show.
                for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
                    if unfinished_log(&entry.file_name().to_string_lossy()) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            } else if let Ok(paths) = artifacts.list_objects(&logs) {
                for path in paths {
                    if path.rsplit('/').next().is_some_and(unfinished_log) {
                        artifacts.remove_objects(&path);
                    }
                }
            }
            if unfinished.is_empty() {
                return;
            }
            let ids: Vec<_> = unfinished.iter().map(|step_run| step_run.id).collect();
            for operator in crate::operator::all() {
                operator.end_orphans(&ids);
            }
            // A local process's folder is in the temporary folder; a Slurm job's in the
            // project's, which the nodes share.
            let prefixes: Vec<String> = unfinished
                .iter()
                .flat_map(|step_run| {
                    [
                        crate::isolated::temporary_prefix(step_run.id),
                        format!("{}-", step_run.id),
                    ]
                })
                .collect();
            for folder in [std::env::temp_dir(), jobs_folder] {
                let Ok(entries) = std::fs::read_dir(&folder) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if prefixes
                        .iter()
                        .any(|prefix| name.starts_with(prefix.as_str()))
                    {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
            for step_run in &unfinished {
                artifacts.remove_objects(&format!("{}/{}", crate::isolated::EXCHANGE, step_run.id));
                crate::isolated::remove_outputs(
                    &artifacts,
                    &pipeline,
                    &step_run.invocation,
                    step_run.id,
                );
                crate::logs::remove_live(
                    artifacts.local_path(&crate::logs::live_path(run_id, step_run.id)),
                );
            }
        })
        .await;
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into())
}
