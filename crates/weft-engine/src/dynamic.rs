//! What a dynamic pipeline's function talks to while it runs: the [`Runtime`] handle, through
//! which it adds invocations to the run, and the [`Slot`] of each invocation, through which it
//! learns how the invocation ended.
//!
//! The function runs on a thread of its own. Each step call becomes an invocation handed to
//! the local orchestrator (see [`crate::local`]), which schedules it exactly like an
//! invocation of a static snapshot: same launch sequence, caching, retries, timeouts,
//! batching and records. The orchestrator fills the slot once what it decided is written.
//!
//! Failures and the execution mode: a step that fails stops the work that was waiting to
//! start (`stop_on_failure`, and running steps too with `fail_fast`), and every new call is
//! refused while the function has not *seen* a failure. The function sees one when a call or
//! a wait returns it as an error; from then on it decides (it may handle the error and go on).
//! A failure the function never saw fails the run when it ends.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::mpsc;
use weft_artifacts::ArtifactStore;
use weft_core::RunId;
use weft_core::snapshot::Invocation;

use crate::launcher::UpstreamOutput;

/// How an invocation of a dynamic pipeline ended.
#[derive(Clone, Debug)]
pub enum Resolution {
    /// It completed, or reused an earlier result: its outputs.
    Completed(Arc<[UpstreamOutput]>),
    /// It failed, or never ran because of a failure or a stop (boxed: every slot of a map
    /// has room for a resolution, and few hold a failure).
    Failed(Box<StepFailure>),
}

/// Why an invocation produced no outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    /// The invocation.
    pub invocation: String,
    /// What happened, for people.
    pub message: String,
    /// The failed invocation this is a consequence of (itself if it failed), by position in
    /// the run; `None` when the run was stopped or its function failed.
    pub cause: Option<usize>,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step `{}` {}", self.invocation, self.message)
    }
}

impl std::error::Error for StepFailure {}

#[derive(Debug)]
enum SlotState {
    Waiting,
    Started,
    Done(Resolution),
}

/// Where the orchestrator tells how one invocation of a dynamic pipeline is doing.
#[derive(Debug)]
pub struct Slot {
    invocation: Arc<str>,
    state: Mutex<SlotState>,
    changed: Condvar,
}

impl Slot {
    /// The slot of a new invocation.
    pub fn new(invocation: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            invocation,
            state: Mutex::new(SlotState::Waiting),
            changed: Condvar::new(),
        })
    }

    /// The invocation id.
    pub fn invocation(&self) -> &str {
        &self.invocation
    }

    /// The invocation id, shared.
    pub fn invocation_id(&self) -> &Arc<str> {
        &self.invocation
    }

    /// Blocks until the invocation ended, and tells how.
    pub fn wait(&self) -> Resolution {
        let mut state = self.lock();
        loop {
            if let SlotState::Done(resolution) = &*state {
                return resolution.clone();
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// How it ended, if it did.
    pub fn resolution(&self) -> Option<Resolution> {
        match &*self.lock() {
            SlotState::Done(resolution) => Some(resolution.clone()),
            _ => None,
        }
    }

    /// Whether its body has started and not ended.
    pub fn is_running(&self) -> bool {
        matches!(&*self.lock(), SlotState::Started)
    }

    /// Whether it ended.
    pub fn is_finished(&self) -> bool {
        matches!(&*self.lock(), SlotState::Done(_))
    }

    pub(crate) fn start(&self) {
        let mut state = self.lock();
        if matches!(*state, SlotState::Waiting) {
            *state = SlotState::Started;
            self.changed.notify_all();
        }
    }

    /// Records how it ended; only the first resolution counts.
    pub(crate) fn finish(&self, resolution: Resolution) {
        let mut state = self.lock();
        if !matches!(*state, SlotState::Done(_)) {
            *state = SlotState::Done(resolution);
            self.changed.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How a dynamic pipeline's function ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionEnd {
    /// It returned `Ok`.
    Returned,
    /// It returned an error.
    Failed(String),
    /// It panicked.
    Panicked(String),
}

/// A message from the function to the orchestrator.
#[derive(Debug)]
pub(crate) enum Command {
    /// Schedule `invocation` once every invocation of `start_after` has started.
    Add {
        invocation: Arc<Invocation>,
        start_after: Vec<String>,
        slot: Arc<Slot>,
        limit: Option<Limit>,
    },
    /// The function ended; once everything it started has ended, so does the run.
    Ended(FunctionEnd),
}

/// At most `max` invocations of group `group` (a map) are scheduled at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The group's id (the map's).
    pub group: String,
    /// How many may be scheduled at once (at least one).
    pub max: usize,
}

/// What the function and the orchestrator share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Failed invocations (by position) whose failure the function has seen.
    pub(crate) seen: Mutex<HashSet<usize>>,
}

/// The dynamic pipeline's handle on its run, cheap to clone (one pointer: every output
/// handle of a map of 100,000 items holds one).
#[derive(Clone, Debug)]
pub struct Runtime(Arc<RuntimeParts>);

#[derive(Debug)]
struct RuntimeParts {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    artifacts: ArtifactStore,
    run_id: RunId,
}

impl Runtime {
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        shared: Arc<Shared>,
        artifacts: ArtifactStore,
        run_id: RunId,
    ) -> Self {
        Self(Arc::new(RuntimeParts {
            commands,
            shared,
            artifacts,
            run_id,
        }))
    }

    /// Adds `invocation` to the run; it starts once its upstream invocations finished and
    /// every invocation of `start_after` started. Returns at once.
    ///
    /// With a `limit`, it is scheduled only while fewer than `limit.max` invocations of its
    /// group are scheduled and not finished.
    pub fn submit(
        &self,
        invocation: Arc<Invocation>,
        start_after: Vec<String>,
        limit: Option<Limit>,
    ) -> Arc<Slot> {
        let slot = Slot::new(invocation.id.clone());
        let command = Command::Add {
            invocation,
            start_after,
            slot: slot.clone(),
            limit,
        };
        if self.0.commands.send(command).is_err() {
            slot.finish(Resolution::Failed(Box::new(StepFailure {
                invocation: slot.invocation().to_owned(),
                message: "was not started: the run has ended".into(),
                cause: None,
            })));
        }
        slot
    }

    /// Records that the function has seen `failure`: it no longer stops new calls, nor fails
    /// the run at its end.
    pub fn saw(&self, failure: &StepFailure) {
        if let Some(cause) = failure.cause {
            self.0
                .shared
                .seen
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(cause);
        }
    }

    /// Tells the orchestrator the function ended.
    pub(crate) fn end(&self, end: FunctionEnd) {
        let _ = self.0.commands.send(Command::Ended(end));
    }

    /// The artifact store outputs are loaded from.
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.0.artifacts
    }

    /// The run.
    pub fn run_id(&self) -> RunId {
        self.0.run_id
    }
}
