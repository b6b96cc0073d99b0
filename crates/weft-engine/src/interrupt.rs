//! A run interrupted from outside its orchestrator: a signal to the pipeline process.
//!
//! The process's signal handler calls [`Interrupt::request`]; the orchestrator of the run in
//! progress is woken at once and stops the run as `weft runs stop` does (the stop is recorded,
//! nothing new starts), kills its isolated steps, and gives inline steps [`GRACE`] to finish
//! before marking them `stopped`. The run then ends `stopped`. The handler learns the run's id
//! from [`Interrupt::run`], to record the run failed itself when a second signal means the
//! process exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_core::RunId;

/// How long inline steps of an interrupted run may go on before they are marked `stopped`
/// (their threads cannot be killed; the process ends without them).
pub const GRACE: Duration = Duration::from_secs(5);

/// A handle to interrupt the run in progress; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requested: AtomicBool,
    wake: tokio::sync::Notify,
    run: Mutex<Option<RunId>>,
}

impl Interrupt {
    /// A handle no one has interrupted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run in progress (or the next one to start) to stop.
    pub fn request(&self) {
        self.inner.requested.store(true, Ordering::Release);
        self.inner.wake.notify_one();
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.inner.requested.load(Ordering::Acquire)
    }

    /// The run in progress, once it was recorded.
    pub fn run(&self) -> Option<RunId> {
        *self.inner.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn started(&self, run: RunId) {
        *self.inner.run.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
    }

    /// Completes once a stop was requested (at once if one already was).
    pub(crate) async fn wait(&self) {
        while !self.requested() {
            self.inner.wake.notified().await;
        }
    }
}
