//! Errors of the engine.

/// What went wrong while running a pipeline (as opposed to inside a step, which is recorded
/// as a failed step run).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] weft_store::Error),
    /// The artifact store failed.
    #[error(transparent)]
    Artifacts(#[from] weft_artifacts::Error),
    /// A snapshot names a step this binary does not have.
    #[error(
        "step `{step}` (invocation `{invocation}`) is not part of this binary; rebuild it with the step, or run the pipeline with the binary that defines it"
    )]
    UnknownStep {
        /// The step's name.
        step: String,
        /// The invocation that calls it.
        invocation: String,
    },
    /// A step's input cannot be resolved.
    #[error("input `{input}` of invocation `{invocation}`: {reason}")]
    Input {
        /// The invocation.
        invocation: String,
        /// The input.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A task of the engine died.
    #[error("an engine task failed: {0}")]
    Task(String),
}
