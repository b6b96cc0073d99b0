//! The execution engine: how one step is launched and run, and how a static pipeline's DAG
//! is driven.
//!
//! - [`step`]: the type-erased description of a step ([`StepDef`]) that `#[step]` generates,
//!   and [`StepIo`], through which generated code loads inputs and saves outputs;
//! - [`runner`]: running one step body on a worker thread: inputs, call, outputs, panics,
//!   log capture;
//! - [`launcher`]: the bookkeeping around it, in the order of semantics §4: resolve inputs
//!   and describe the step run, then turn the body's result into outputs or an error to record;
//! - [`local`]: the local orchestrator, which drives `weft_core::schedule::Scheduler` with a
//!   bounded number of steps in parallel on its own threads, recording in batches;
//! - [`logs`]: per-step log capture through `tracing` (and the `log` crate), stored as JSON
//!   lines in the artifact store;
//! - [`context`]: the step context a running step can read (and report metadata through);
//! - [`clock`]: time, injectable so that retries and timeouts are tested without sleeping;
//! - [`owner`]: which process orchestrates a run and whether it lives (crash detection).
//!
//! Invariants: the engine names no concrete storage backend (it holds an
//! `Arc<dyn MetadataStore>` and an [`weft_artifacts::ArtifactStore`]); every status change
//! goes through the metadata store, which checks it against `weft_core::status`; nothing here
//! parses command lines or speaks HTTP.

pub mod clock;
pub mod context;
pub mod dynamic;
mod engine;
mod error;
pub mod interrupt;
pub mod isolated;
pub mod launcher;
pub mod local;
pub mod logs;
pub mod operator;
pub mod owner;
mod pool;
pub mod recorded;
pub mod runner;
pub mod step;

pub use engine::{Engine, PipelineFunction, Reconciled, RunOptions, RunReport};
pub use error::Error;
pub use interrupt::Interrupt;
pub use step::{
    Binding, InputDef, KeyFn, NonRetryable, OutputDef, Registry, StepDef, StepFailure, StepIo,
    StepSettings,
};

/// Runs blocking work (file or database IO) from async code. On a multi-threaded runtime it
/// runs right on the calling thread (`block_in_place` moves other tasks away if that thread
/// is a worker); elsewhere it goes to the blocking pool.
pub(crate) async fn blocking<T, F>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .expect("blocking work does not panic")
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
