//! The context of the step running on the current thread.
//!
//! The runner sets it for the duration of a step body; user code reads it through
//! `weft::context()`. It is one documented thread-local: a step body runs on exactly one
//! thread, and threads it spawns do not inherit it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use weft_core::{RunId, StepRunId};

/// What a running step knows about itself.
#[derive(Clone, Debug)]
pub struct StepContext {
    /// The pipeline's name.
    pub pipeline: String,
    /// The run.
    pub run_id: RunId,
    /// This attempt's step run.
    pub step_run_id: StepRunId,
    /// The invocation id.
    pub invocation: String,
    /// The attempt number (1 for the first).
    pub attempt: u32,
    pub(crate) stopped: Arc<AtomicBool>,
}

impl StepContext {
    /// Whether the run asked this step to stop (fail-fast mode). A long step can check it and
    /// return early; its outputs are discarded anyway.
    pub fn is_stopping(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<StepContext>> = const { RefCell::new(None) };
}

/// The context of the step running on this thread, if any.
pub fn current() -> Option<StepContext> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Whether a step body is running on this thread.
pub fn in_step() -> bool {
    CURRENT.with(|current| current.borrow().is_some())
}

/// Sets the context for the lifetime of the guard.
pub(crate) fn enter(context: StepContext) -> impl Drop {
    struct Reset(Option<StepContext>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
    Reset(CURRENT.with(|current| current.borrow_mut().replace(context)))
}
