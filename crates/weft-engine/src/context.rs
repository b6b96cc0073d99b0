//! The context of the step running on the current thread.
//!
//! The runner sets it for the duration of a step body; user code reads it through
//! `weft::context()`. It is one documented thread-local: a step body runs on exactly one
//! thread, and threads it spawns do not inherit it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use weft_core::{RunId, StepRunId};

/// What a running step knows about itself, and what it reports besides its outputs.
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
    pub(crate) reported: Arc<Mutex<Reported>>,
}

/// Metadata and tags a step reports while it runs, recorded with its completion.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    pub(crate) metadata: Vec<(String, serde_json::Value)>,
    pub(crate) output_tags: Vec<(String, Vec<String>)>,
}

impl StepContext {
    /// Whether the run asked this step to stop (fail-fast mode). A long step can check it and
    /// return early; its outputs are discarded anyway.
    pub fn is_stopping(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Records `key = value` on this step run (a key logged again replaces the value).
    pub fn log_metadata(&self, key: impl Into<String>, value: serde_json::Value) {
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let key = key.into();
        reported.metadata.retain(|(existing, _)| *existing != key);
        reported.metadata.push((key, value));
    }

    /// Attaches `tags` to the version saved for output `output`.
    pub fn add_output_tags(&self, output: impl Into<String>, tags: &[&str]) {
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        reported
            .output_tags
            .push((output.into(), tags.iter().map(|t| t.to_string()).collect()));
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
