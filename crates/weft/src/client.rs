//! [`Client`]: connect to the stores, run pipelines and inspect everything they recorded.

use std::ops::Deref;
use std::sync::Arc;

use weft_artifacts::{Artifact, ArtifactStore};
use weft_engine::{Engine, RunOptions, RunReport};
use weft_store::MetadataStore;
use weft_store::model::{self, Direction, Lineage, RunFilter};

use crate::compile;
use crate::config::{RunConfig, StoreConfig};
use crate::input::External;
use crate::registry::{self, PipelineCall};
use crate::{Error, Result};

/// How many steps of a run on the Slurm orchestrator may be submitted at once by default.
const SLURM_PARALLELISM: usize = 256;

/// How long a run on another host may be silent before it is taken for dead: six missed
/// heartbeats.
const RECONCILE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a client may create and write the stores.
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// An empty (0-byte) SQLite file beside an artifact store that holds files is a store whose
/// history was lost (a truncated copy, a failed restore): starting afresh there would orphan
/// every file. Refused; an empty file beside an empty artifact store is just a new store.
fn refuse_lost_history(config: &StoreConfig, artifacts: &ArtifactStore) -> Result<()> {
    let Some(("sqlite", path)) = config.metadata.split_once("://") else {
        return Ok(());
    };
    let path = config.base.join(path);
    let empty = std::fs::metadata(&path).is_ok_and(|file| file.is_file() && file.len() == 0);
    // The store's own marker files (`.weft-store-id`) are not history.
    let holds_files = artifacts
        .local_folder()
        .and_then(|folder| std::fs::read_dir(folder).ok())
        .is_some_and(|mut entries| {
            entries.any(|entry| {
                entry.is_ok_and(|entry| !entry.file_name().to_string_lossy().starts_with(".weft-"))
            })
        });
    if empty && holds_files {
        return Err(weft_store::Error::Empty {
            location: path.display().to_string(),
        }
        .into());
    }
    Ok(())
}

/// A connection to a metadata store and an artifact store: runs pipelines and reads what
/// they recorded. Its methods block; it runs its own small async runtime, so call it from
/// ordinary (non-async) code.
#[derive(Clone)]
pub struct Client {
    runtime: Arc<tokio::runtime::Runtime>,
    engine: Engine,
    config: StoreConfig,
    reconciled_on_open: Vec<weft_engine::Reconciled>,
    interrupt: Option<weft_engine::Interrupt>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("stores", &self.config)
            .finish()
    }
}

impl Client {
    /// Connects to the stores found from the current directory (see [`StoreConfig::discover`]).
    pub fn discover() -> Result<Self> {
        Self::open(&StoreConfig::discover()?)
    }

    /// Connects to the default stores inside `folder` (created if needed).
    pub fn in_folder(folder: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::open(&StoreConfig::in_folder(folder))
    }

    /// Connects to the stores of `config`, creating them if needed. Runs left unfinished by
    /// an orchestrator that died are failed on the way (see [`Client::reconcile`]).
    pub fn open(config: &StoreConfig) -> Result<Self> {
        Self::open_with_clock(config, Arc::new(weft_engine::clock::SystemClock))
    }

    /// Like [`Client::open`], with a clock of its own: tests use a manual clock to check
    /// retry delays and timeouts without waiting for them.
    pub fn open_with_clock(
        config: &StoreConfig,
        clock: Arc<dyn weft_engine::clock::Clock>,
    ) -> Result<Self> {
        let mut client = Self::connect(config, clock)?;
        client.reconciled_on_open = client.reconcile()?;
        Ok(client)
    }

    /// Connects to the stores to read them (the `weft` command's inspections): nothing is
    /// created (a store that does not exist reads as empty), and a store this process may not
    /// write is opened read-only (and then not reconciled). An empty (0-byte) metadata store
    /// file is an error that says so.
    pub fn open_existing(config: &StoreConfig) -> Result<Self> {
        let mut client = Self::connect_with(
            config,
            Arc::new(weft_engine::clock::SystemClock),
            Access::Read,
        )?;
        if !client.metadata_store().read_only() {
            client.reconciled_on_open = client.reconcile()?;
        }
        Ok(client)
    }

    /// Connects without reconciling (a process hosting one step of a running run).
    pub(crate) fn connect(
        config: &StoreConfig,
        clock: Arc<dyn weft_engine::clock::Clock>,
    ) -> Result<Self> {
        Self::connect_with(config, clock, Access::Write)
    }

    fn connect_with(
        config: &StoreConfig,
        clock: Arc<dyn weft_engine::clock::Clock>,
        access: Access,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weft")
            .enable_all()
            .build()
            .map_err(|e| Error::msg(format!("cannot start weft's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (metadata, artifacts) = match access {
            Access::Read => (
                runtime.block_on(weft_store::open_existing(&config.metadata, &config.base))?,
                ArtifactStore::open_existing(&config.artifacts, &config.base, handle)?,
            ),
            Access::Write => {
                let artifacts = ArtifactStore::open(&config.artifacts, &config.base, handle)?;
                refuse_lost_history(config, &artifacts)?;
                let metadata =
                    runtime.block_on(weft_store::open(&config.metadata, &config.base))?;
                (metadata, artifacts)
            }
        };
        let engine = Engine::with_clock(metadata, artifacts, registry::steps(), clock);
        Ok(Self {
            runtime: Arc::new(runtime),
            engine,
            config: config.clone(),
            reconciled_on_open: Vec::new(),
            interrupt: None,
        })
    }

    /// Runs started by this client stop when `interrupt` is requested (a signal handler's
    /// handle; see `weft_engine::interrupt`).
    pub fn set_interrupt(&mut self, interrupt: weft_engine::Interrupt) {
        self.interrupt = Some(interrupt);
    }

    /// The engine (for the process that hosts an isolated step).
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The runs that opening this client failed because their orchestrator had died.
    pub fn reconciled_on_open(&self) -> &[weft_engine::Reconciled] {
        &self.reconciled_on_open
    }

    /// Where the stores are.
    pub fn stores(&self) -> &StoreConfig {
        &self.config
    }

    /// The metadata store, for queries beyond this client's.
    pub fn metadata_store(&self) -> &Arc<dyn MetadataStore> {
        self.engine.metadata()
    }

    /// The artifact store.
    pub fn artifact_store(&self) -> &ArtifactStore {
        self.engine.artifacts()
    }

    /// Runs `future` to completion on the client's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The client's async runtime, to run tasks beside its calls.
    pub(crate) fn runtime_handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// Compiles and runs a pipeline with default options; see [`Client::run_with`].
    pub fn run(&self, call: PipelineCall) -> Result<RunReport> {
        self.run_with(call, &RunConfig::default())
    }

    /// Compiles `call`'s pipeline, stores its snapshot and runs it to its end.
    ///
    /// Parameters come from `call`, then from `config`, then from defaults; all are checked
    /// against the pipeline's declared types first. The result is `Ok` when the run was
    /// recorded, whatever its status: check `report.run.status` (or
    /// [`RunReport::failed_steps`]). `Err` means nothing could run (bad parameters, an
    /// invalid pipeline, an unreachable store).
    ///
    /// A dynamic pipeline (`#[pipeline(dynamic)]`) has no plan before it runs: its function
    /// runs now, and its steps run as it calls them.
    pub fn run_with(&self, call: PipelineCall, config: &RunConfig) -> Result<RunReport> {
        if call.pipeline.dynamic {
            let snapshot = self.dynamic_snapshot(call, config)?;
            let function = dynamic_function(snapshot.pipeline.clone(), &snapshot, config)?;
            return Ok(self.block_on(self.engine.run_dynamic(
                snapshot,
                self.options(config),
                function,
            ))?);
        }
        let snapshot = self.compile(call, config)?;
        self.run_snapshot(snapshot, config)
    }

    /// What a dynamic run records before its function runs: the pipeline, its checked
    /// parameters and the execution mode (`stop_on_failure` unless configured).
    fn dynamic_snapshot(
        &self,
        call: PipelineCall,
        config: &RunConfig,
    ) -> Result<weft_core::Snapshot> {
        if let Some(error) = call.errors.first() {
            return Err(Error::msg(error.clone()));
        }
        if let Some(invocation) = config.steps.keys().next() {
            return Err(Error::msg(format!(
                "the run configuration sets invocation `{invocation}`, but pipeline `{}` is dynamic: its invocations do not exist before it runs",
                call.pipeline.name
            )));
        }
        let mut given = config.parameters.clone();
        given.extend(call.parameters);
        let parameters = call.pipeline.resolve_parameters(&given)?;
        Ok(weft_core::Snapshot {
            format_version: weft_core::snapshot::FORMAT_VERSION,
            pipeline: call.pipeline.name.to_owned(),
            parameters: parameters.into_iter().collect(),
            execution_mode: config
                .execution_mode
                .unwrap_or(weft_core::ExecutionMode::StopOnFailure),
            invocations: Vec::new(),
            dynamic: true,
        })
    }

    /// Compiles `call`'s pipeline into a validated snapshot, without recording or running
    /// anything.
    pub fn compile(&self, call: PipelineCall, config: &RunConfig) -> Result<weft_core::Snapshot> {
        if call.pipeline.dynamic {
            return Err(Error::msg(format!(
                "pipeline `{}` is dynamic: it has no plan before it runs (run it instead)",
                call.pipeline.name
            )));
        }
        if let Some(error) = call.errors.first() {
            return Err(Error::msg(error.clone()));
        }
        let mut given = config.parameters.clone();
        given.extend(call.parameters);
        let parameters = call.pipeline.resolve_parameters(&given)?;
        let snapshot = compile::compile(call.pipeline, parameters, config)?;
        check_key_fns(&snapshot)?;
        Ok(snapshot)
    }

    /// Records and runs an already compiled snapshot (from [`Client::compile`], or a stored
    /// one). Its steps must be part of this binary.
    pub fn run_snapshot(
        &self,
        snapshot: weft_core::Snapshot,
        config: &RunConfig,
    ) -> Result<RunReport> {
        Ok(self.block_on(self.engine.run(snapshot, self.options(config)))?)
    }

    /// Starts a new run of the same plan as run `reference` that reuses every step that
    /// finished successfully in it (even with caching off) and runs only the rest: the way to
    /// finish a run that failed or whose process died. The steps must be part of this binary.
    pub fn resume(&self, reference: &str, config: &RunConfig) -> Result<RunReport> {
        let original = self.run_record(reference)?;
        if !original.status.is_finished() {
            return Err(Error::msg(format!(
                "run {} is still {}: stop it (weft runs stop) or wait for it before resuming it",
                original.id, original.status
            )));
        }
        let snapshot = self.block_on(self.engine.original_snapshot(original.id))?;
        if snapshot.dynamic {
            let function = dynamic_function(snapshot.pipeline.clone(), &snapshot, config)?;
            return Ok(self.block_on(self.engine.resume_dynamic(
                original.id,
                self.options(config),
                function,
            ))?);
        }
        Ok(self.block_on(self.engine.resume(original.id, self.options(config)))?)
    }

    fn options(&self, config: &RunConfig) -> RunOptions {
        let mut options = RunOptions {
            project_root: self.config.base.clone(),
            key_fns: registry::key_fns(),
            no_cache: config.no_cache,
            interrupt: self.interrupt.clone(),
            tags: config.tags.clone(),
            ..RunOptions::default()
        };
        match config.max_parallelism {
            Some(max_parallelism) => options.max_parallelism = max_parallelism,
            // On Slurm the cluster decides how many jobs run at once; this process only
            // waits for them.
            None if config.stack.as_ref().is_some_and(|stack| {
                stack.orchestrator == crate::config::OrchestratorKind::Slurm
            }) =>
            {
                options.max_parallelism = SLURM_PARALLELISM;
            }
            None => {}
        }
        options
    }

    /// Fails every unfinished run whose orchestrator is gone (a process on this host that
    /// no longer exists, or no heartbeat for 30 s from elsewhere), with its running steps, and
    /// removes the files they were writing. Called when a client opens, so the next command
    /// that touches the stores cleans up after a crash.
    pub fn reconcile(&self) -> Result<Vec<weft_engine::Reconciled>> {
        Ok(self.block_on(self.engine.reconcile(RECONCILE_GRACE, &self.config.base))?)
    }

    /// Run `id` and its step runs as they are now.
    pub fn report(&self, id: weft_core::RunId) -> Result<RunReport> {
        let run = self.block_on(self.metadata_store().run(id))?;
        let step_runs = self.block_on(self.metadata_store().step_runs(id))?;
        Ok(RunReport { run, step_runs })
    }

    /// Asks run `reference` to stop: no new step starts, running steps finish, and the run
    /// ends `stopped`. Its orchestrator notices at its next heartbeat or step.
    pub fn stop(&self, reference: &str) -> Result<model::Run> {
        let run = self.run_record(reference)?;
        Ok(self.block_on(self.metadata_store().request_stop(run.id))?)
    }

    /// Runs, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<model::Run>> {
        Ok(self.block_on(self.metadata_store().runs(filter))?)
    }

    /// The run named by `reference`: an id, a unique id prefix, a run name, or `latest`.
    pub fn run_record(&self, reference: &str) -> Result<model::Run> {
        Ok(self.block_on(self.metadata_store().find_run(reference))?)
    }

    /// The step runs of a run, without their cache key parts (`weft cache explain` reads
    /// those of one step run).
    pub fn step_runs(&self, run: &model::Run) -> Result<Vec<model::StepRun>> {
        Ok(self.block_on(self.metadata_store().step_runs(run.id))?)
    }

    /// The latest attempt of `invocation` in `run`, with its outputs.
    pub fn step_run(&self, run: &model::Run, invocation: &str) -> Result<model::StepRun> {
        Ok(self.block_on(self.metadata_store().find_step_run(run.id, invocation))?)
    }

    /// The step run with id `id`, as it is now.
    pub fn step_run_by_id(&self, id: weft_core::StepRunId) -> Result<model::StepRun> {
        Ok(self.block_on(self.metadata_store().step_run(id))?)
    }

    /// The output `name` of a step run, as a loadable artifact version.
    pub fn output(&self, step_run: &model::StepRun, name: &str) -> Result<ArtifactVersion> {
        let outputs = self.block_on(self.metadata_store().step_run_outputs(step_run.id))?;
        let output = outputs
            .into_iter()
            .find(|output| output.name == name)
            .ok_or_else(|| {
                Error::msg(format!(
                    "step run `{}` has no output `{name}`",
                    step_run.invocation
                ))
            })?;
        Ok(self.handle(output.artifact_version))
    }

    /// Every artifact (or only those with custom names).
    pub fn artifacts(&self, custom_only: bool) -> Result<Vec<model::Artifact>> {
        Ok(self.block_on(self.metadata_store().artifacts(custom_only))?)
    }

    /// The versions of artifact `name`, newest first.
    pub fn artifact_versions(&self, name: &str) -> Result<Vec<ArtifactVersion>> {
        let versions = self.block_on(self.metadata_store().artifact_versions(name))?;
        Ok(versions
            .into_iter()
            .map(|version| self.handle(version))
            .collect())
    }

    /// The versions of artifact `name` whose metadata meets every condition, newest first,
    /// each with its metadata.
    pub fn artifact_versions_where(
        &self,
        name: &str,
        conditions: &[crate::MetadataCondition],
    ) -> Result<Vec<(ArtifactVersion, Vec<model::MetadataEntry>)>> {
        let mut matching = Vec::new();
        for version in self.artifact_versions(name)? {
            let metadata = self.block_on(
                self.metadata_store()
                    .metadata(model::Resource::ArtifactVersion(version.id)),
            )?;
            let recorded = |key: &str| metadata.iter().find(|e| e.key == key).map(|e| &e.value);
            if conditions.iter().all(|c| c.matches(recorded(c.key()))) {
                matching.push((version, metadata));
            }
        }
        Ok(matching)
    }

    /// The version named by `reference`: an id, a unique id prefix, `name:version` or
    /// `name:latest`.
    pub fn artifact_version(&self, reference: &str) -> Result<ArtifactVersion> {
        let version = self.block_on(self.metadata_store().find_artifact_version(reference))?;
        Ok(self.handle(version))
    }

    /// Attaches tags to a version (tags it has already are kept).
    pub fn tag(&self, version: &ArtifactVersion, tags: &[String]) -> Result<()> {
        Ok(self.block_on(self.metadata_store().tag_artifact_version(version.id, tags))?)
    }

    /// The lineage of a version, `depth` steps deep in one direction.
    pub fn lineage(
        &self,
        version: &ArtifactVersion,
        direction: Direction,
        depth: u32,
    ) -> Result<Lineage> {
        Ok(self.block_on(
            self.metadata_store()
                .lineage(version.id, direction, depth, None),
        )?)
    }

    /// The log records of a step run (empty if it logged nothing).
    pub fn logs(&self, step_run: &model::StepRun) -> Result<Vec<weft_engine::logs::Record>> {
        let Some(log) = self.block_on(self.metadata_store().log(step_run.id))? else {
            return Ok(Vec::new());
        };
        let bytes = self.artifact_store().get_object(&log.uri)?.ok_or_else(|| {
            Error::msg(format!(
                "the log of step run {} is recorded at {} but is missing",
                step_run.id, log.uri
            ))
        })?;
        Ok(weft_engine::logs::parse(&bytes))
    }

    fn handle(&self, record: model::ArtifactVersion) -> ArtifactVersion {
        ArtifactVersion {
            record,
            artifacts: self.artifact_store().clone(),
        }
    }
}

/// A stored artifact version that can be loaded. Derefs to its record.
#[derive(Clone, Debug)]
pub struct ArtifactVersion {
    record: model::ArtifactVersion,
    artifacts: ArtifactStore,
}

impl Deref for ArtifactVersion {
    type Target = model::ArtifactVersion;

    fn deref(&self) -> &model::ArtifactVersion {
        &self.record
    }
}

impl ArtifactVersion {
    /// Loads the value as a `T`. Fails with an error naming both types if the version holds
    /// another type, and with an integrity error if its files changed since they were written.
    pub fn load<T: Artifact>(&self) -> Result<T> {
        Ok(self
            .artifacts
            .load(&weft_engine::launcher::stored(&self.record))?)
    }

    /// Reads up to `limit` bytes of file `name` of this version (verified against its hash
    /// when the whole file fits), for previews.
    pub fn read_head(&self, name: &str, limit: usize) -> Result<Vec<u8>> {
        Ok(self
            .artifacts
            .read_head(&weft_engine::launcher::stored(&self.record), name, limit)?)
    }

    /// The files that show this version (histograms, samples, the image itself, a report),
    /// with their types.
    pub fn visualizations(
        &self,
    ) -> Vec<(
        weft_artifacts::FileRecord,
        weft_artifacts::VisualizationType,
    )> {
        let stored = weft_engine::launcher::stored(&self.record);
        weft_artifacts::visualizations(&stored)
            .into_iter()
            .map(|(file, kind)| (file.clone(), kind))
            .collect()
    }

    /// Where file `name` of this version is on this machine, for a local artifact store;
    /// `None` for a file kept in its record (a small one: see
    /// [`INLINE_LIMIT`](crate::materializers::INLINE_LIMIT); [`export_file`](Self::export_file)
    /// writes any file out).
    pub fn local_path(&self, name: &str) -> Option<std::path::PathBuf> {
        let record = self.record.files.iter().find(|file| file.name == name)?;
        if record.is_inline() {
            return None;
        }
        let root = self.artifacts.root();
        let relative = self.record.uri.strip_prefix(root)?;
        self.artifacts.local_path(&format!("{relative}{name}"))
    }

    /// Copies file `name` of this version to `destination` (written beside it, checked
    /// against its hash, then moved into place); returns its size.
    pub fn export_file(&self, name: &str, destination: &std::path::Path) -> Result<u64> {
        let folder = destination.parent().unwrap_or(std::path::Path::new("."));
        let mut staged = tempfile::NamedTempFile::new_in(folder)
            .map_err(|e| Error::msg(format!("cannot write in {}: {e}", folder.display())))?;
        let size = self.artifacts.copy_file(
            &weft_engine::launcher::stored(&self.record),
            name,
            staged.as_file_mut(),
        )?;
        staged.persist(destination).map_err(|e| {
            Error::msg(format!(
                "cannot write {}: {}",
                destination.display(),
                e.error
            ))
        })?;
        Ok(size)
    }

    /// Reads every file of this version and checks it against its recorded hash.
    pub fn verify(&self) -> Result<()> {
        Ok(self
            .artifacts
            .verify(&weft_engine::launcher::stored(&self.record))?)
    }

    /// Passes this version into a pipeline as a step input of type `T`.
    pub fn as_input<T: Artifact>(&self) -> External<T> {
        External::new(self.record.id)
    }

    /// The record.
    pub fn record(&self) -> &model::ArtifactVersion {
        &self.record
    }
}

/// Fails before anything is recorded if an invocation's cache policy names a key function
/// this binary does not have (a run configuration file can name any).
fn check_key_fns(snapshot: &weft_core::Snapshot) -> Result<()> {
    let known = registry::key_fns();
    for invocation in &snapshot.invocations {
        if let Some(name) = &invocation.config.cache.key_fn
            && !known.contains_key(name)
        {
            let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
            names.sort_unstable();
            let known = if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            };
            return Err(Error::msg(format!(
                "step `{}`: cache key function `{name}` is not part of this binary (known: {known}); \
                 name a function given as `key_fn` to a #[step] or #[pipeline]",
                invocation.id
            )));
        }
    }
    Ok(())
}

/// The function of dynamic pipeline `name`, called with the snapshot's parameters, as the
/// engine runs it.
fn dynamic_function(
    name: String,
    snapshot: &weft_core::Snapshot,
    config: &RunConfig,
) -> Result<weft_engine::PipelineFunction> {
    let pipeline = registry::pipeline(&name)?;
    let parameters = registry::Parameters::new(
        pipeline.name,
        snapshot.parameters.clone().into_iter().collect(),
    );
    let defaults = crate::compile::Defaults::new(pipeline, config);
    Ok(Box::new(move |runtime| {
        crate::dynamic::run_function(pipeline, parameters, defaults, runtime)
    }))
}
