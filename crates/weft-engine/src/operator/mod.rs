//! Step operators: where the host of an isolated step runs.
//!
//! The orchestrator runs an isolated step by starting the pipeline binary's step host (see
//! [`crate::isolated`]) through a [`StepOperator`]: a local child process
//! ([`ProcessOperator`]) or a Slurm job ([`SlurmOperator`]). An operator only starts a host
//! with its arguments and environment, says how it ended, and ends it on demand; everything
//! the step produced comes back through files in the step run's exchange folder (its result,
//! standard output and error), which the operator makes where both sides can reach it. A new
//! operator (a Kubernetes job, a pool of warm workers) is one more implementation that passes
//! [`conformance`].

pub mod conformance;
mod process;
pub(crate) mod slurm;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weft_core::StepRunId;
use weft_core::snapshot::SlurmJob;

pub use process::ProcessOperator;
pub use slurm::SlurmOperator;

/// One step host to start.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The executable (the pipeline binary).
    pub program: PathBuf,
    /// Its arguments.
    pub arguments: Vec<OsString>,
    /// Environment variables of the host, which an operator may write into a job script.
    pub env: BTreeMap<String, String>,
    /// Environment variables that may hold secrets (the metadata store's URL): handed to the
    /// host without ever being written to a file or a command line.
    pub secret_env: BTreeMap<String, String>,
    /// The folder the host starts in.
    pub workdir: PathBuf,
    /// The step run's exchange folder (from [`StepOperator::exchange_folder`]), on the
    /// orchestrator's side.
    pub folder: PathBuf,
    /// How the host's standard output and error come back.
    pub capture: Capture,
    /// A short readable name (the invocation id), for job names.
    pub name: String,
    /// The step run it hosts: what an operator starts carries it, so that reconciling a dead
    /// run finds what is left of it ([`StepOperator::end_orphans`]).
    pub step_run: StepRunId,
}

/// How a host's standard output and error come back to the orchestrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capture {
    /// Into `stdout` and `stderr` in the exchange folder, which the host reaches.
    Folder,
    /// Into files of the host's own machine, handed back once the host ended by running
    /// `program` with `arguments` and the two files' paths after them (the step host's
    /// upload to the artifact store), where the host runs: nothing needs a folder both sides
    /// see.
    Upload {
        /// The program that hands the files back.
        program: PathBuf,
        /// Its arguments, before the two paths.
        arguments: Vec<OsString>,
    },
}

impl Launch {
    /// Where the host's standard output goes, with [`Capture::Folder`].
    pub fn stdout(&self) -> PathBuf {
        self.folder.join("stdout")
    }

    /// Where the host's standard error goes, with [`Capture::Folder`].
    pub fn stderr(&self) -> PathBuf {
        self.folder.join("stderr")
    }
}

/// How a host ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEnd {
    /// Whether it exited successfully.
    pub success: bool,
    /// How, for messages: `the step's process exited with status 3`, `the Slurm job 12
    /// ended FAILED (exit code 3:0)`.
    pub description: String,
}

/// Starts step hosts somewhere and ends them on demand.
pub trait StepOperator: Send + Sync + std::fmt::Debug {
    /// The operator's name in messages (`process`, `slurm`).
    fn name(&self) -> &'static str;

    /// Whether its hosts run on the orchestrator's machine, and so see its files.
    fn is_local(&self) -> bool {
        false
    }

    /// A new, empty exchange folder for step run `step_run`, which this operator's hosts
    /// and the orchestrator both reach; removed when the handle is dropped. `base` is the
    /// project's folder.
    fn exchange_folder(
        &self,
        base: &Path,
        step_run: StepRunId,
    ) -> std::io::Result<tempfile::TempDir>;

    /// Starts one host and returns once it started (or was submitted); an error says why
    /// it could not.
    fn launch(&self, launch: &Launch) -> Result<Box<dyn Launched>, String>;

    /// Ends whatever this operator still runs for `step_runs`, whose orchestrator died.
    /// Nothing by default: a local host ends with its orchestrator on its own.
    fn end_orphans(&self, step_runs: &[StepRunId]) {
        let _ = step_runs;
    }
}

/// A host that was started.
pub trait Launched: Send + Sync {
    /// What it is known by: a process id, a Slurm job id.
    fn id(&self) -> String;

    /// Blocks until it ended, and says how; an error says why that cannot be known.
    fn wait(&self) -> Result<HostEnd, String>;

    /// Ends it and everything it started, at once (a timeout, a stop, fail-fast); a `wait`
    /// in progress then returns. Does nothing once it ended; may be called more than once.
    fn cancel(&self);
}

/// The operator a step's configuration asks for: a Slurm job when it has Slurm resources,
/// else a local process.
pub fn for_step(slurm: Option<&SlurmJob>) -> Arc<dyn StepOperator> {
    match slurm {
        Some(job) => Arc::new(SlurmOperator::new(job.clone())),
        None => Arc::new(ProcessOperator),
    }
}

/// Every kind of operator, to end what a dead run left on each.
pub(crate) fn all() -> Vec<Arc<dyn StepOperator>> {
    vec![
        Arc::new(ProcessOperator),
        Arc::new(SlurmOperator::new(SlurmJob::default())),
    ]
}
