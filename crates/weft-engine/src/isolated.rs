//! Isolated steps: one step run in a process of its own.
//!
//! The pipeline binary is its own worker. The orchestrator records the step run as usual,
//! then starts the same executable with the hidden command [`COMMAND`], the protocol version,
//! the stores and the step run's id ([`spawn`]). The child checks the protocol, rebuilds the
//! step's context from the metadata store (the step run's parameters and recorded inputs),
//! runs the body through the same runner as an inline step ([`host`]), and writes what it
//! produced to a result file. The orchestrator reads it, adds the process's standard output
//! and error to the step's log, and records everything as for an inline step: it stays the
//! run's only writer, and retries, timeouts and stops work the same way. A child that dies
//! without a result fails the step with its exit status and the tail of its standard error;
//! one that overruns its timeout, or is stopped, is killed with its whole process group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_artifacts::{ArtifactStore, SavedArtifact};
use weft_core::artifact::{ArtifactType, FileRecord};
use weft_core::{Digest, RunId, StepRunId};
use weft_store::model::{InputKind, StepError, StepErrorKind};

use crate::context::StepContext;
use crate::engine::Engine;
use crate::logs::StepLog;
use crate::operator::{Capture, Launch, Launched, StepOperator};
use crate::runner::{self, Ended, Executed, Finished, Job};
use crate::step::{Binding, StepDef};
use crate::{Error, Result};

/// The hidden command of every pipeline binary that hosts one step.
pub const COMMAND: &str = "__weft-step";

/// The version of the parent/child protocol: the command's arguments and the result file.
pub const PROTOCOL: u32 = 3;

/// The hidden command that hands a remote host's standard output and error back through the
/// artifact store, run after the host where it ran (see [`crate::operator::Capture`]).
pub const HAND_BACK_COMMAND: &str = "__weft-hand-back";

/// Where, in an artifact store, the files a remote host hands back are kept while its step
/// runs: `<EXCHANGE>/<step run>/<unique>/{result.json,stdout,stderr}`.
pub const EXCHANGE: &str = ".weft/exchange";

/// The environment variable that hands the metadata store's URL to the step host: a URL may
/// hold a password, and a process's arguments are visible to every user of the machine.
pub const METADATA_ENV: &str = "WEFT_WORKER_METADATA";

/// Set (to the parent's process id) for a step host whose standard input is a pipe from the
/// orchestrator that started it. The orchestrator never writes to it: the host reads it only
/// to learn, from its end, that the orchestrator is gone (however it ended, even `kill -9`),
/// and then kills its own process group, so no step outlives its run.
pub const PARENT_ENV: &str = "WEFT_WORKER_PARENT";

/// The name a step run's temporary folder (its process's result, output and error) starts
/// with, in the system's temporary folder, so that reconciling a dead run finds it.
pub fn temporary_prefix(step_run: StepRunId) -> String {
    format!("weft-step-{step_run}-")
}

/// Exit codes of the host command.
pub mod exit {
    /// The step ran (its result says how it ended).
    pub const RAN: u8 = 0;
    /// Bad arguments or another protocol version: nothing ran.
    pub const USAGE: u8 = 2;
    /// The stores or the step run could not be read: nothing ran.
    pub const UNAVAILABLE: u8 = 3;
}

/// How much of a dead child's standard error its failure quotes.
const STDERR_TAIL: usize = 4096;

/// One output as the result file carries it.
#[derive(Debug, Serialize, Deserialize)]
struct SavedRecord {
    uri: String,
    files: Vec<FileRecord>,
    content_hash: Digest,
    size: u64,
    materializer: String,
    materializer_version: u32,
    data_type: String,
    artifact_type: ArtifactType,
    metadata: BTreeMap<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "ended", rename_all = "snake_case")]
enum EndedRecord {
    Completed { outputs: Vec<(String, SavedRecord)> },
    Failed { error: StepError },
    Stopped,
}

/// What the child hands back: everything [`Executed`] holds, in a file.
#[derive(Debug, Serialize, Deserialize)]
struct HostResult {
    protocol: u32,
    ended: EndedRecord,
    log: String,
    log_records: usize,
    log_dropped: usize,
    metadata: Vec<(String, Value)>,
    output_tags: Vec<(String, Vec<String>)>,
}

impl HostResult {
    fn new(executed: Executed) -> Self {
        let ended = match executed.ended {
            Ended::Completed(saved) => EndedRecord::Completed {
                outputs: saved
                    .into_iter()
                    .map(|(name, saved)| {
                        let record = SavedRecord {
                            uri: saved.uri,
                            files: saved.files,
                            content_hash: saved.content_hash,
                            size: saved.size,
                            materializer: saved.materializer.to_owned(),
                            materializer_version: saved.materializer_version,
                            data_type: saved.data_type.to_owned(),
                            artifact_type: saved.artifact_type,
                            metadata: saved.metadata,
                        };
                        (name, record)
                    })
                    .collect(),
            },
            Ended::Failed(error) => EndedRecord::Failed { error },
            Ended::Stopped => EndedRecord::Stopped,
        };
        Self {
            protocol: PROTOCOL,
            ended,
            log: String::from_utf8_lossy(&executed.log.lines).into_owned(),
            log_records: executed.log.records,
            log_dropped: executed.log.dropped,
            metadata: executed.metadata,
            output_tags: executed.output_tags,
        }
    }

    /// Back to what the runner produced; the materializer and type names are the step's own
    /// (this is the same binary), and must match what the child wrote.
    fn into_executed(self, step: &'static StepDef) -> std::result::Result<Executed, String> {
        let ended = match self.ended {
            EndedRecord::Completed { outputs } => {
                let mut saved = Vec::with_capacity(outputs.len());
                for (name, record) in outputs {
                    let output = step
                        .outputs
                        .iter()
                        .find(|output| output.name == name)
                        .ok_or_else(|| format!("the step has no output `{name}`"))?;
                    let (materializer, version) = (output.materializer)();
                    let data_type = (output.data_type)();
                    if record.materializer != materializer
                        || record.materializer_version != version
                        || record.data_type != data_type
                    {
                        return Err(format!(
                            "output `{name}` was saved as `{}` by {} v{}, not as `{data_type}` by {materializer} v{version}",
                            record.data_type, record.materializer, record.materializer_version
                        ));
                    }
                    saved.push((
                        name,
                        SavedArtifact {
                            uri: record.uri,
                            files: record.files,
                            content_hash: record.content_hash,
                            size: record.size,
                            materializer,
                            materializer_version: version,
                            data_type,
                            artifact_type: record.artifact_type,
                            metadata: record.metadata,
                        },
                    ));
                }
                Ended::Completed(saved)
            }
            EndedRecord::Failed { error } => Ended::Failed(error),
            EndedRecord::Stopped => Ended::Stopped,
        };
        Ok(Executed {
            ended,
            log: StepLog {
                lines: self.log.into_bytes(),
                records: self.log_records,
                dropped: self.log_dropped,
            },
            metadata: self.metadata,
            output_tags: self.output_tags,
        })
    }
}

/// What the orchestrator needs to start a step's host.
#[derive(Clone, Debug)]
pub struct Spawn {
    /// The executable that hosts steps (the pipeline binary).
    pub worker: PathBuf,
    /// The metadata store's URL.
    pub metadata: String,
    /// The artifact store's URL.
    pub artifacts: String,
    /// The folder relative store paths are taken from.
    pub base: PathBuf,
    /// The step.
    pub step: &'static StepDef,
    /// The run.
    pub run: RunId,
    /// The step run.
    pub step_run: StepRunId,
    /// Whether no attempt follows this one if it fails.
    pub last_attempt: bool,
    /// Extra environment variables of the host.
    pub env: BTreeMap<String, String>,
    /// Where the host runs: a local process, a Slurm job.
    pub operator: Arc<dyn StepOperator>,
    /// The invocation (names a Slurm job).
    pub invocation: String,
}

/// The host of a running isolated step, to end it when it overruns or is stopped (also
/// before it started: it is then ended as soon as it starts).
#[derive(Default)]
pub struct ProcessHandle {
    host: Mutex<Option<Arc<dyn Launched>>>,
    killed: AtomicBool,
    /// weft's facts about where the host runs, once it started (kept after it ended).
    facts: Mutex<Vec<(String, Value)>>,
}

impl std::fmt::Debug for ProcessHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("killed", &self.killed())
            .finish_non_exhaustive()
    }
}

impl ProcessHandle {
    /// Ends the step's host and everything it started.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        if let Some(host) = self.host.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            host.cancel();
        }
    }

    pub(crate) fn killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Where the host runs (its operator, its id), once it started; empty before.
    pub fn facts(&self) -> Vec<(String, Value)> {
        self.facts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn started(&self, host: Option<Arc<dyn Launched>>) {
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = host;
    }
}

/// Runs the step's host through its operator and waits for it (on a step thread); how it
/// ended, with its log stored (the host's records, then its standard output and error).
pub fn spawn(spawn: Spawn, artifacts: &ArtifactStore, handle: &ProcessHandle) -> Finished {
    let mut system = vec![(
        "weft.operator".to_owned(),
        Value::from(spawn.operator.name()),
    )];
    let executed = match run_child(&spawn, artifacts, handle, &mut system) {
        Ok(executed) => executed,
        Err(failure) => Executed {
            ended: Ended::Failed(StepError {
                kind: StepErrorKind::System,
                message: failure.message.clone(),
                chain: vec![failure.message],
                backtrace: None,
                retryable: true,
            }),
            log: failure.log,
            metadata: Vec::new(),
            output_tags: Vec::new(),
        },
    };
    let log_uri = runner::store_log(artifacts, spawn.run, spawn.step_run, executed.log);
    crate::logs::remove_live(
        artifacts.local_path(&crate::logs::live_path(spawn.run, spawn.step_run)),
    );
    Finished {
        ended: executed.ended,
        log_uri,
        metadata: executed.metadata,
        output_tags: executed.output_tags,
        system,
    }
}

struct ChildFailure {
    message: String,
    log: StepLog,
}

/// Runs the host; `system` gets what it is known by once it started.
fn run_child(
    spawn: &Spawn,
    artifacts: &ArtifactStore,
    handle: &ProcessHandle,
    system: &mut Vec<(String, Value)>,
) -> std::result::Result<Executed, ChildFailure> {
    let fail = |message: String| ChildFailure {
        message,
        log: StepLog::default(),
    };
    let folder = spawn
        .operator
        .exchange_folder(&spawn.base, spawn.step_run)
        .map_err(|e| fail(format!("cannot make a folder for the step's host: {e}")))?;
    let result_path = folder.path().join("result.json");
    // A host on another machine with the artifacts in object storage hands everything back
    // through the store: it needs no folder the orchestrator sees.
    let through_store = !spawn.operator.is_local() && artifacts.local_folder().is_none();
    let exchange = through_store.then(|| {
        let unique = folder
            .path()
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{EXCHANGE}/{}/{unique}", spawn.step_run)
    });
    let (result_argument, result_value): (&str, std::ffi::OsString) = match &exchange {
        Some(prefix) => ("--result-object", format!("{prefix}/result.json").into()),
        None => ("--result", result_path.clone().into()),
    };
    // The arguments both hidden commands start with: which one, the protocol, the stores.
    let command = |name: &str| -> Vec<std::ffi::OsString> {
        vec![
            name.into(),
            "--protocol".into(),
            PROTOCOL.to_string().into(),
            "--artifacts".into(),
            spawn.artifacts.clone().into(),
            "--base".into(),
            spawn.base.clone().into(),
        ]
    };
    let capture = match &exchange {
        Some(prefix) => Capture::Upload {
            program: spawn.worker.clone(),
            arguments: [
                command(HAND_BACK_COMMAND),
                vec!["--prefix".into(), prefix.into()],
            ]
            .concat(),
        },
        None => Capture::Folder,
    };
    let launch = Launch {
        program: spawn.worker.clone(),
        arguments: [
            command(COMMAND),
            vec![
                "--step-run".into(),
                spawn.step_run.to_string().into(),
                "--last-attempt".into(),
                spawn.last_attempt.to_string().into(),
                result_argument.into(),
                result_value,
            ],
        ]
        .concat(),
        env: spawn.env.clone(),
        secret_env: BTreeMap::from([(METADATA_ENV.to_owned(), spawn.metadata.clone())]),
        workdir: spawn.base.clone(),
        folder: folder.path().to_owned(),
        capture,
        name: spawn.invocation.clone(),
        step_run: spawn.step_run,
    };
    let host: Arc<dyn Launched> = Arc::from(spawn.operator.launch(&launch).map_err(fail)?);
    system.push(("weft.host".to_owned(), Value::from(host.id())));
    *handle.facts.lock().unwrap_or_else(|p| p.into_inner()) = system.clone();
    handle.started(Some(host.clone()));
    if handle.killed() {
        host.cancel();
    }
    let ended = host.wait();
    handle.started(None);
    let ended = ended.map_err(fail)?.description;
    let (stdout, stderr, result) = match &exchange {
        None => (
            std::fs::read(launch.stdout()).unwrap_or_default(),
            std::fs::read(launch.stderr()).unwrap_or_default(),
            std::fs::read(&result_path).ok(),
        ),
        Some(prefix) => {
            let get = |name: &str| {
                artifacts
                    .get_object(&format!("{prefix}/{name}"))
                    .ok()
                    .flatten()
                    .map(|bytes| bytes.to_vec())
            };
            let stdout = get("stdout");
            let stderr = get("stderr").unwrap_or_else(|| {
                // Said in the log rather than lost without a word.
                format!("weft: the host's output was not handed back ({ended})").into_bytes()
            });
            let read = (stdout.unwrap_or_default(), stderr, get("result.json"));
            artifacts.remove_objects(&format!("{EXCHANGE}/{}", spawn.step_run));
            read
        }
    };
    let result = result
        .and_then(|bytes| serde_json::from_slice::<HostResult>(&bytes).ok())
        .filter(|result| result.protocol == PROTOCOL);
    let mut executed = match result {
        Some(result) => result.into_executed(spawn.step).map_err(|reason| {
            fail(format!(
                "the step's process returned an unusable result: {reason}"
            ))
        })?,
        None => {
            let mut log = StepLog::default();
            append_output(&mut log, &stdout, &stderr);
            let tail = tail(&stderr);
            let message = format!(
                "{ended}{}",
                if tail.is_empty() {
                    " without a result".to_owned()
                } else {
                    format!(" without a result; its standard error ended with:\n{tail}")
                }
            );
            return Err(ChildFailure { message, log });
        }
    };
    append_output(&mut executed.log, &stdout, &stderr);
    Ok(executed)
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let start = text.len().saturating_sub(STDERR_TAIL);
    let start = (start..=text.len())
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

/// Adds the process's output to the step's log, one record per line.
fn append_output(log: &mut StepLog, stdout: &[u8], stderr: &[u8]) {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for (stream, level, bytes) in [("stdout", "INFO", stdout), ("stderr", "WARN", stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            let record = serde_json::json!({
                "time": time, "level": level, "target": stream, "fields": {}, "message": line,
            });
            log.lines
                .extend_from_slice(format!("{record}\n").as_bytes());
            log.records += 1;
        }
    }
}

/// The child's side: runs step run `step_run` as its own process, and writes what it
/// produced to `result`.
pub async fn host(engine: &Engine, step_run: StepRunId, last_attempt: bool) -> Result<Job> {
    let metadata = engine.metadata();
    let record = metadata.step_run(step_run).await?;
    let run = metadata.run(record.run_id).await?;
    let step = engine
        .registry()
        .get(&record.step)
        .ok_or_else(|| Error::UnknownStep {
            step: record.step.clone(),
            invocation: record.invocation.clone(),
        })?;
    let mut bindings: Vec<(weft_core::parameters::Name, Binding)> = Vec::new();
    if let Value::Object(parameters) = record.parameters.value() {
        for (name, value) in parameters {
            bindings.push((name.into(), Binding::Parameter(value)));
        }
    }
    let mut inputs: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for input in metadata.step_run_inputs(step_run).await? {
        inputs.entry(input.name.clone()).or_default().push(input);
    }
    for (name, mut list) in inputs {
        list.sort_by_key(|input| input.position);
        let declared = step
            .input(&name)
            .map(|input| (input.type_name)())
            .unwrap_or_default();
        let binding = match list.as_slice() {
            [one] if one.kind == InputKind::Item => Binding::Item(
                crate::launcher::stored(&one.artifact_version).into(),
                one.position,
            ),
            // A `Vec<T>` argument reads either one version holding a `Vec<T>` or a list of
            // versions each holding a `T` (fan-in): the stored type tells which.
            [one] if one.position == 0 && one.artifact_version.data_type == declared => {
                Binding::Artifact(crate::launcher::stored(&one.artifact_version).into())
            }
            list => Binding::Artifacts(
                list.iter()
                    .map(|input| crate::launcher::stored(&input.artifact_version).into())
                    .collect(),
            ),
        };
        bindings.push((name.into(), binding));
    }
    Ok(Job {
        step,
        bindings,
        artifacts: engine.artifacts().clone(),
        context: StepContext {
            pipeline: run.pipeline.clone(),
            run_id: run.id,
            step_run_id: record.id,
            invocation: record.invocation.clone(),
            attempt: record.attempt,
            stopped: Arc::new(AtomicBool::new(false)),
            reported: Arc::default(),
        },
        last_attempt,
        // The host read its step run from the store: it is recorded.
        recorded: None,
    })
}

/// The child's side of [`PARENT_ENV`]: when standard input (the pipe from the
/// orchestrator) ends, the orchestrator is gone, and this process group is killed, the step
/// and whatever it started with it. Does nothing where the variable is not set (a Slurm job,
/// which reconciling cancels instead).
pub fn watch_parent() {
    if std::env::var_os(PARENT_ENV).is_none() {
        return;
    }
    let watcher = std::thread::Builder::new()
        .name("weft-parent-watch".into())
        .spawn(|| {
            let mut buffer = [0u8; 64];
            loop {
                match std::io::Read::read(&mut std::io::stdin(), &mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ =
                nix::sys::signal::killpg(nix::unistd::getpgrp(), nix::sys::signal::Signal::SIGKILL);
        });
    if let Err(error) = watcher {
        tracing::warn!(target: "weft", "cannot watch the orchestrator: {error}");
    }
}

/// Whether step run `step_run` ended already (its orchestrator died and the run was
/// reconciled, or it was stopped): a host then publishes nothing and removes what it saved.
pub async fn finished_elsewhere(engine: &Engine, step_run: StepRunId) -> bool {
    engine
        .metadata()
        .step_run(step_run)
        .await
        .is_ok_and(|record| record.status.is_finished())
}

/// Removes the output files step run `step_run` of `invocation` in `pipeline` saved.
pub fn remove_outputs(
    artifacts: &ArtifactStore,
    pipeline: &str,
    invocation: &str,
    step_run: StepRunId,
) {
    artifacts.remove_partial(&format!("{pipeline}/{invocation}/"), &step_run.to_string());
}

/// Where a host writes its result.
#[derive(Clone, Debug)]
pub enum ResultTarget {
    /// A file the orchestrator reads.
    File(PathBuf),
    /// An object of the artifact store (a host that shares no folder with its orchestrator).
    Object(String),
}

impl std::fmt::Display for ResultTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultTarget::File(path) => write!(f, "{}", path.display()),
            ResultTarget::Object(key) => write!(f, "object {key} of the artifact store"),
        }
    }
}

/// Runs a job built by [`host`] on this thread and writes its result (atomically: a file
/// is renamed into place; an object appears whole).
pub fn run_hosted(job: Job, result: &ResultTarget) -> std::io::Result<()> {
    let artifacts = job.artifacts.clone();
    let executed = runner::execute(job);
    let text = serde_json::to_vec(&HostResult::new(executed)).map_err(std::io::Error::other)?;
    match result {
        ResultTarget::File(path) => {
            let staged = path.with_extension("partial");
            std::fs::write(&staged, text)?;
            std::fs::rename(&staged, path)
        }
        ResultTarget::Object(key) => artifacts
            .put_object(key, text)
            .map_err(std::io::Error::other),
    }
}

/// Removes a result nobody will read (its step run ended elsewhere).
pub fn remove_result(artifacts: &ArtifactStore, result: &ResultTarget) {
    match result {
        ResultTarget::File(path) => {
            let _ = std::fs::remove_file(path);
        }
        ResultTarget::Object(key) => artifacts.remove_objects(key),
    }
}

/// The host's side of [`HAND_BACK_COMMAND`]: uploads its captured standard output and error
/// under `prefix` of the artifact store.
pub fn hand_back(
    artifacts: &ArtifactStore,
    prefix: &str,
    stdout: &Path,
    stderr: &Path,
) -> std::result::Result<(), String> {
    for (name, path) in [("stdout", stdout), ("stderr", stderr)] {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the step's {name} at {}: {e}", path.display()))?;
        artifacts
            .put_object(&format!("{prefix}/{name}"), bytes)
            .map_err(|e| format!("cannot hand the step's {name} back: {e}"))?;
    }
    Ok(())
}
