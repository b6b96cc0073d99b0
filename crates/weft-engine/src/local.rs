//! The local orchestrator: runs a static pipeline's invocations in dependency order on this
//! machine, at most `max_parallelism` at a time, each body on a step thread.
//!
//! Before anything starts, a pre-pass resolves every invocation whose result can be reused
//! (a resumed run's finished steps, cache hits whose upstreams were reused too): those are
//! recorded as `cached` and never scheduled. Then the loop starts what is ready, and reacts
//! to bodies finishing, retry delays and timeouts expiring, and stop requests.
//!
//! It is the run's only writer, and it writes in batches: whatever happened since the last
//! write (bodies that finished, the invocations they unblock, skips and stops decided by the
//! scheduler) is recorded in one transaction. In a chain, finishing one step and starting the
//! next is a single batch; when many steps finish together, their records share one.
//!
//! Batches that need nothing back from the store (inline steps to start, completions,
//! failures, cache hits outside the pre-pass) do not wait for their commit: their steps
//! start, or their cache hits resolve, at once, and the batches are written together, in
//! order, in one transaction, when [`COMMIT_INTERVAL`] has passed since the first of them,
//! when [`COMMIT_BATCH`] step runs wait, or before anything that must see them (an isolated
//! step's host reads its step run from the store; a cache lookup whose key a waiting
//! completion registers; the end of the run). On a disk, each commit rewrites every B-tree
//! page it touches: a chain's steps then share those pages instead of writing each of them
//! once per step. What this costs: other processes see the run up to
//! [`COMMIT_INTERVAL`] late, and a process that dies loses the records of its last steps
//! (their output files are removed when the run is reconciled, like any step run's whose
//! process died).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use weft_core::parameters::Name;
use weft_core::schedule::{Decision, Outcome as Scheduled, Scheduler, SkipReason};
use weft_core::snapshot::{ExecutionMode, Invocation};
use weft_core::{Snapshot, Status, StepRunId, canonical};
use weft_store::model::{Applied, Changes, StepError, StepErrorKind, StepOutput, StepRun};

use crate::context::StepContext;
use crate::dynamic::{Command, FunctionEnd, Limit, Resolution, Shared, Slot, StepFailure};
use crate::engine::Engine;
use crate::isolated;
use crate::launcher::{self, Launch, Outcome, Prepared, RunScope, Upstream, after, human};
use crate::pool::StepThreads;
use crate::recorded::Recorded;
use crate::runner::{self, Finished, Job};
use crate::{Binding, StepDef};
use crate::{Error, Result};

/// The longest a batch whose steps started waits for its commit.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(20);

/// A commit is made once this many step runs wait for one.
pub const COMMIT_BATCH: usize = 512;

/// The pre-pass hands its records to a commit on another thread once at least this many wait
/// and the commit before ended: a cached pipeline's lookups and the writing of its records
/// then share the cores.
const PRE_PASS_BATCH: usize = 32;

/// What one run of the local orchestrator needs besides the snapshot.
#[derive(Clone, Debug)]
pub struct Settings {
    /// At most this many bodies run at once.
    pub max_parallelism: usize,
    /// How often the orchestrator records a sign of life (and learns of stop requests).
    pub heartbeat: Duration,
    /// Step runs to reuse, by invocation id (a resumed run's finished steps).
    pub reuse: HashMap<String, (StepRun, Vec<StepOutput>)>,
    /// The executable that hosts isolated steps.
    pub worker: Option<std::path::PathBuf>,
    /// Stops the run when requested from outside (a signal to the process).
    pub interrupt: Option<crate::Interrupt>,
}

#[derive(Default)]
struct Node {
    /// The step run of the current attempt.
    step_run: Option<StepRunId>,
    attempt: u32,
    /// It reused a result of the run it resumes.
    reused: bool,
    /// Where a dynamic pipeline's function learns how the invocation ended.
    slot: Option<Arc<Slot>>,
    /// The attempt that runs or waits for its retry, boxed and dropped once the invocation
    /// completed: a map keeps a node per item, and most of them are waiting or done.
    current: Option<Box<Attempt>>,
    /// What few nodes have, boxed like `current`.
    reasons: Option<Box<Reasons>>,
}

/// What a node knows of its attempt while it runs or waits for its retry.
#[derive(Default)]
struct Attempt {
    /// The step run whose body is running and whose result is awaited.
    awaiting: Option<StepRunId>,
    /// Tells the body to stop.
    stopped: Option<Arc<AtomicBool>>,
    started: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
    retry_at: Option<DateTime<Utc>>,
    /// The process of an isolated step.
    process: Option<Arc<crate::isolated::ProcessHandle>>,
}

/// Why a node did not run as planned.
#[derive(Default)]
struct Reasons {
    /// Why it could not start, when it failed before its body ran.
    error: Option<String>,
    /// Why it was stopped while its step run was being recorded (in the same batch as the
    /// failure that stopped it): recorded `stopped` instead of started.
    stopped_before_start: Option<String>,
}

impl Node {
    fn reasons(&mut self) -> &mut Reasons {
        self.reasons.get_or_insert_default()
    }

    /// The current attempt, made if there is none.
    fn attempt_mut(&mut self) -> &mut Attempt {
        self.current.get_or_insert_default()
    }

    fn awaiting(&self) -> Option<StepRunId> {
        self.current.as_ref()?.awaiting
    }

    fn started(&self) -> Option<DateTime<Utc>> {
        self.current.as_ref()?.started
    }

    fn deadline(&self) -> Option<DateTime<Utc>> {
        self.current.as_ref()?.deadline
    }

    fn retry_at(&self) -> Option<DateTime<Utc>> {
        self.current.as_ref()?.retry_at
    }

    fn has_process(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|attempt| attempt.process.is_some())
    }

    /// Takes the awaited step run: the body's result, when it comes, is dropped.
    fn take_awaiting(&mut self) -> Option<StepRunId> {
        self.current.as_mut()?.awaiting.take()
    }

    fn take_retry(&mut self) -> Option<DateTime<Utc>> {
        self.current.as_mut()?.retry_at.take()
    }

    fn take_process(&mut self) -> Option<Arc<crate::isolated::ProcessHandle>> {
        self.current.as_mut()?.process.take()
    }

    fn clear_deadline(&mut self) {
        if let Some(attempt) = &mut self.current {
            attempt.deadline = None;
        }
    }

    fn error(&self) -> Option<&str> {
        self.reasons.as_ref()?.error.as_deref()
    }

    fn stopped_before_start(&self) -> Option<&str> {
        self.reasons.as_ref()?.stopped_before_start.as_deref()
    }

    /// Tells the body of the current attempt, if one started, to stop.
    fn signal_stop(&self) {
        if let Some(stopped) = self.current.as_ref().and_then(|a| a.stopped.as_ref()) {
            stopped.store(true, Ordering::Release);
        }
    }
}

/// A created step run's role once the batch is written.
enum Created {
    /// Start this step's body with these arguments.
    Start(usize, &'static StepDef, Vec<(Name, Binding)>),
    /// Report this invocation as resolved to the scheduler.
    Resolved(usize, Scheduled),
    /// Nothing to do (skipped or reused in the pre-pass).
    Recorded,
}

/// An attempt to start: its step run's id, number, cache key, and what says when its record
/// is written (`None`: it is already).
type Started<'a> = (StepRunId, u32, Option<&'a str>, Option<Arc<Recorded>>);

/// What is recorded at the next write, and what to do once it is.
#[derive(Default)]
struct Batch {
    changes: Changes,
    created: Vec<Created>,
    /// Output files of completions, removed if the write fails.
    written: Vec<Arc<weft_artifacts::StoredArtifact>>,
    /// What the bodies of its `started` step runs wait for before they store a file.
    recorded: Vec<Arc<Recorded>>,
}

/// A commit of unrecorded batches going on on another thread: the orchestrator starts and
/// finishes steps meanwhile, so writing records and orchestrating share the cores.
struct InFlight {
    /// Which commit of the run it is: the loop settles it when this one says it ended.
    number: u64,
    applied: tokio::task::JoinHandle<weft_store::Result<Vec<Applied>>>,
    /// Output files of its completions, removed if it fails.
    written: Vec<Arc<weft_artifacts::StoredArtifact>>,
    /// What bodies of its started step runs wait for.
    recorded: Vec<Arc<Recorded>>,
    /// The cache keys its completions register.
    keys: Vec<String>,
}

struct Orchestrator<'a> {
    engine: &'a Engine,
    mode: ExecutionMode,
    /// Every invocation, by node; a dynamic run adds to them while it goes on.
    invocations: Vec<Arc<Invocation>>,
    scope: RunScope,
    settings: &'a Settings,
    scheduler: Scheduler,
    nodes: Vec<Node>,
    finished: HashMap<Arc<str>, Upstream>,
    batch: Batch,
    /// Batches whose steps started before they were written, oldest first.
    unrecorded: Vec<Batch>,
    /// When the unrecorded batches must be written at the latest.
    commit_due: Option<tokio::time::Instant>,
    /// How many step runs the unrecorded batches start, create or complete.
    unrecorded_step_runs: usize,
    /// The cache keys of running step runs.
    running_keys: HashMap<StepRunId, String>,
    /// The cache keys of completions not written yet: looking one up writes them first.
    unrecorded_keys: HashSet<String>,
    /// The unrecorded batches being written while the orchestrator goes on.
    in_flight: Option<InFlight>,
    /// Where a commit in flight says it ended, by number; how many were started.
    committed: mpsc::UnboundedSender<u64>,
    ended_commits: Option<mpsc::UnboundedReceiver<u64>>,
    commits: u64,
    threads: StepThreads,
    /// Where bodies waiting for their record ask for a commit.
    ask: mpsc::UnboundedSender<()>,
    asked: Option<mpsc::UnboundedReceiver<()>>,
    done: mpsc::UnboundedSender<(usize, StepRunId, Finished)>,
    results: Option<mpsc::UnboundedReceiver<(usize, StepRunId, Finished)>>,
    /// Nodes that may have a retry delay or a deadline set; the others are never scanned
    /// for timers (a wide map would make every scan long).
    timed: std::collections::BTreeSet<usize>,
    /// Nodes that failed (their last attempt), in order.
    failures: Vec<usize>,
    dynamic: Option<DynamicState>,
}

/// What the orchestrator knows of a dynamic pipeline's function.
struct DynamicState {
    shared: Arc<Shared>,
    /// Nodes by invocation id.
    index: HashMap<Arc<str>, usize>,
    /// Invocations waiting for others to start (`start_after`) before they are scheduled.
    held: Vec<Held>,
    /// Groups (maps) with a concurrency limit, by id.
    groups: HashMap<String, Group>,
    /// How the function ended, once it did.
    ended: Option<FunctionEnd>,
    /// A stop of the run was requested: nothing new starts.
    stopped: bool,
}

/// Whether an invocation of a dynamic pipeline must wait before it is scheduled: one of
/// `start_after` has not started, or one of its upstream invocations is not scheduled yet
/// (itself waiting, or in a map waiting for room).
fn must_wait(
    dynamic: &DynamicState,
    nodes: &[Node],
    scheduler: &Scheduler,
    invocation: &Invocation,
    start_after: &[String],
) -> bool {
    invocation
        .upstream
        .iter()
        .any(|id| !dynamic.index.contains_key(&**id))
        || start_after.iter().any(|id| {
            dynamic
                .index
                .get(id.as_str())
                .is_none_or(|&node| nodes[node].started().is_none() && !scheduler.is_resolved(node))
        })
}

impl DynamicState {
    /// Whether the function returned an error or panicked.
    fn function_failed(&self) -> bool {
        matches!(
            self.ended,
            Some(FunctionEnd::Failed(_) | FunctionEnd::Panicked(_))
        )
    }
}

/// An invocation waiting for others to start before it is scheduled.
struct Held {
    invocation: Arc<Invocation>,
    start_after: Vec<String>,
    slot: Arc<Slot>,
    limit: Option<Limit>,
}

/// A map whose invocations are scheduled a few at a time.
#[derive(Default)]
struct Group {
    max: usize,
    /// Its scheduled invocations; finished ones are dropped when room is looked for.
    scheduled: Vec<usize>,
    /// Its invocations waiting for room, in call order.
    waiting: std::collections::VecDeque<(Arc<Invocation>, Arc<Slot>)>,
}

/// How a dynamic run ended, as its runtime decides.
#[derive(Debug)]
pub struct DynamicOutcome {
    /// `completed`, `failed` or `stopped`.
    pub status: Status,
    /// Why, when it did not complete.
    pub reason: Option<String>,
}

/// Drives one run to its end. Returns an error only if the metadata store failed; failures
/// inside steps are recorded on their step runs.
pub async fn execute(
    engine: &Engine,
    snapshot: Arc<Snapshot>,
    scope: RunScope,
    settings: &Settings,
) -> Result<()> {
    let mut orchestrator = Orchestrator::new(engine, snapshot.execution_mode, scope, settings)?;
    orchestrator.scheduler = Scheduler::new(&snapshot);
    orchestrator.invocations = snapshot.invocations.iter().cloned().map(Arc::new).collect();
    orchestrator.nodes = snapshot
        .invocations
        .iter()
        .map(|_| Node::default())
        .collect();
    orchestrator.pre_pass(snapshot.topological_order()).await?;
    let driven = orchestrator.drive(None).await;
    if driven.is_err() {
        orchestrator.abandon_unrecorded(Vec::new());
    }
    driven
}

/// Drives a dynamic run: the invocations come from its function through `commands`, until
/// the function ended and everything it started ended too. Returns the run's outcome, or an
/// error if the metadata store failed (every invocation still waiting is then failed, so
/// the function is never left blocked).
pub(crate) async fn execute_dynamic(
    engine: &Engine,
    mode: ExecutionMode,
    scope: RunScope,
    settings: &Settings,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> Result<DynamicOutcome> {
    let mut orchestrator = Orchestrator::new(engine, mode, scope, settings)?;
    orchestrator.scheduler = Scheduler::empty(mode);
    orchestrator.dynamic = Some(DynamicState {
        shared,
        index: HashMap::new(),
        held: Vec::new(),
        groups: HashMap::new(),
        ended: None,
        stopped: false,
    });
    let driven = orchestrator.drive(Some(&mut commands)).await;
    if driven.is_err() {
        orchestrator.abandon_unrecorded(Vec::new());
    }
    commands.close();
    let abandoned = |slot: &Slot, reason: String| {
        slot.finish(Resolution::Failed(Box::new(StepFailure {
            invocation: slot.invocation().to_owned(),
            message: reason,
            cause: None,
        })))
    };
    if let Err(error) = &driven {
        let reason = format!("was abandoned: the orchestrator failed ({error})");
        for node in &orchestrator.nodes {
            if let Some(slot) = &node.slot {
                abandoned(slot, reason.clone());
            }
        }
        if let Some(dynamic) = &orchestrator.dynamic {
            for held in &dynamic.held {
                abandoned(&held.slot, reason.clone());
            }
            for group in dynamic.groups.values() {
                for (_, slot) in &group.waiting {
                    abandoned(slot, reason.clone());
                }
            }
        }
    }
    while let Ok(command) = commands.try_recv() {
        if let Command::Add { slot, .. } = command {
            abandoned(&slot, "was not started: the run has ended".into());
        }
    }
    driven?;
    Ok(orchestrator.outcome())
}

/// However the orchestrator goes (an error, a panic, its future dropped), no body is left
/// waiting for a record that will never be written.
impl Drop for Orchestrator<'_> {
    fn drop(&mut self) {
        let in_flight = self.in_flight.iter().flat_map(|f| &f.recorded);
        for recorded in self
            .unrecorded
            .iter()
            .flat_map(|batch| &batch.recorded)
            .chain(in_flight)
        {
            recorded.lost("the orchestrator stopped");
        }
    }
}

impl<'a> Orchestrator<'a> {
    fn new(
        engine: &'a Engine,
        mode: ExecutionMode,
        scope: RunScope,
        settings: &'a Settings,
    ) -> Result<Self> {
        let threads = StepThreads::new(settings.max_parallelism);
        let (done, results) = mpsc::unbounded_channel();
        let (ask, asked) = mpsc::unbounded_channel();
        let (committed, ended_commits) = mpsc::unbounded_channel();
        Ok(Self {
            engine,
            mode,
            invocations: Vec::new(),
            scope,
            settings,
            scheduler: Scheduler::empty(mode),
            nodes: Vec::new(),
            finished: HashMap::new(),
            batch: Batch::default(),
            unrecorded: Vec::new(),
            commit_due: None,
            unrecorded_step_runs: 0,
            running_keys: HashMap::new(),
            unrecorded_keys: HashSet::new(),
            in_flight: None,
            committed,
            ended_commits: Some(ended_commits),
            commits: 0,
            threads,
            ask,
            asked: Some(asked),
            done,
            results: Some(results),
            timed: std::collections::BTreeSet::new(),
            failures: Vec::new(),
            dynamic: None,
        })
    }

    /// The loop: start what may start, write what happened, then wait for the next event (a
    /// body finishing, a timer, a heartbeat, a dynamic pipeline's command).
    async fn drive(
        &mut self,
        mut commands: Option<&mut mpsc::UnboundedReceiver<Command>>,
    ) -> Result<()> {
        let engine = self.engine;
        let mut results = self.results.take().expect("driven once");
        let mut asked = self.asked.take().expect("driven once");
        let mut ended_commits = self.ended_commits.take().expect("driven once");
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let interrupt = self.settings.interrupt.clone();
        // Once interrupted: when inline steps still running are given up on.
        let mut grace_ends: Option<tokio::time::Instant> = None;
        loop {
            self.start_ready().await?;
            self.start_due_retries().await?;
            if !self.batch.changes.is_empty() {
                if self.may_start_unrecorded() && !self.stop_requested_elsewhere().await? {
                    self.start_unrecorded();
                    if self.commit_is_due() {
                        self.commit().await?;
                    }
                } else {
                    self.flush().await?;
                }
                continue;
            }
            if self.is_done() {
                if self.unrecorded.is_empty() && self.in_flight.is_none() {
                    return Ok(());
                }
                // What it says (a stop) may give work to record.
                self.commit_now().await?;
                continue;
            }
            let timer = self.next_timer();
            let commit_due = self.commit_due;
            let clock = engine.clock().clone();
            let listening = self
                .dynamic
                .as_ref()
                .is_some_and(|dynamic| dynamic.ended.is_none());
            tokio::select! {
                result = results.recv() => {
                    let Some(first) = result else {
                        return Err(Error::Task("the step threads stopped unexpectedly".into()));
                    };
                    self.body_finished(first);
                    while let Ok(next) = results.try_recv() {
                        self.body_finished(next);
                    }
                }
                command = async { commands.as_mut().expect("guarded").recv().await }, if listening => {
                    match command {
                        Some(command) => {
                            self.command(command);
                            // Take every call already made, so their records share writes.
                            while let Some(Ok(next)) = commands.as_mut().map(|c| c.try_recv()) {
                                self.command(next);
                            }
                        }
                        // Every handle is gone without a word: the function thread died.
                        None => self.command(Command::Ended(FunctionEnd::Panicked(
                            "the pipeline function's thread ended without reporting".into(),
                        ))),
                    }
                }
                () = async { clock.sleep_until(timer.expect("guarded")).await }, if timer.is_some() => {
                    self.time_out();
                }
                () = async { tokio::time::sleep_until(commit_due.expect("guarded")).await }, if commit_due.is_some() => {
                    self.commit().await?;
                }
                Some(()) = asked.recv() => {
                    while asked.try_recv().is_ok() {}
                    self.commit().await?;
                }
                Some(number) = ended_commits.recv() => {
                    // One settled meanwhile (by a write that had to wait for it) is gone;
                    // a later one in flight is left to run.
                    if self.in_flight.as_ref().is_some_and(|f| f.number == number) {
                        self.settle().await?;
                    }
                }
                _ = heartbeat.tick() => {
                    let status = engine.metadata().heartbeat(self.scope.run_id).await?;
                    if status == Status::Stopping && !self.stop_was_requested() {
                        self.stop_requested();
                    }
                }
                () = async { interrupt.as_ref().expect("guarded").wait().await },
                    if interrupt.is_some() && grace_ends.is_none() =>
                {
                    self.interrupted().await?;
                    grace_ends = Some(tokio::time::Instant::now() + crate::interrupt::GRACE);
                }
                () = async { tokio::time::sleep_until(grace_ends.expect("guarded")).await },
                    if grace_ends.is_some() && self.bodies_running() =>
                {
                    self.stop_running("the process was interrupted");
                }
            }
        }
    }

    /// Whether the run is over: everything scheduled resolved, and for a dynamic run, its
    /// function ended and nothing waits to be scheduled.
    fn is_done(&self) -> bool {
        self.scheduler.is_finished()
            && self.dynamic.as_ref().is_none_or(|dynamic| {
                dynamic.ended.is_some()
                    && dynamic.held.is_empty()
                    && dynamic
                        .groups
                        .values()
                        .all(|group| group.waiting.is_empty())
            })
    }

    fn stop_was_requested(&self) -> bool {
        match &self.dynamic {
            Some(dynamic) => dynamic.stopped,
            None => self.scheduler.is_stopping(),
        }
    }

    /// Resolves, in dependency order, every invocation whose result can be reused while all
    /// its upstreams were reused too: resumed steps first, then cache hits. They are
    /// recorded in one transaction and never scheduled.
    async fn pre_pass(&mut self, order: Vec<usize>) -> Result<()> {
        let mut resolved = Vec::new();
        for node in order {
            let invocation = &self.invocations[node];
            if !invocation
                .upstream
                .iter()
                .all(|id| self.finished.contains_key(&**id))
            {
                continue;
            }
            if let Some((original, outputs)) = self.settings.reuse.get(&*invocation.id)
                && let Some((step_run, upstream)) =
                    launcher::reuse(&self.scope, invocation, &self.finished, original, outputs)
            {
                self.record_reuse(node, step_run, upstream, Created::Recorded);
                resolved.push(node);
            } else if self.scope.caches(invocation)
                && let Launch::Reuse { step_run, upstream } = launcher::prepare(
                    self.engine,
                    &self.scope,
                    invocation,
                    &self.finished,
                    &HashSet::new(),
                )
                .await
            {
                self.record_reuse(node, step_run, upstream, Created::Recorded);
                resolved.push(node);
            }
            // Written on another thread while the next lookups go on, whenever the commit
            // before is done: the last records, written after the pass, are few.
            let writer_idle = self
                .in_flight
                .as_ref()
                .is_none_or(|in_flight| in_flight.applied.is_finished());
            if self.batch.created.len() >= PRE_PASS_BATCH && writer_idle {
                self.start_unrecorded();
                self.commit().await?;
            }
        }
        if !resolved.is_empty() {
            self.start_unrecorded();
            self.commit_now().await?;
        }
        for node in resolved {
            self.nodes[node].reused = true;
            self.scheduler.settle(node);
        }
        Ok(())
    }

    /// A command of a dynamic pipeline's function.
    fn command(&mut self, command: Command) {
        match command {
            Command::Add {
                invocation,
                start_after,
                slot,
                limit,
            } => {
                let dynamic = self.dynamic.as_ref().expect("dynamic run");
                let waits = must_wait(
                    dynamic,
                    &self.nodes,
                    &self.scheduler,
                    &invocation,
                    &start_after,
                );
                let dynamic = self.dynamic.as_mut().expect("dynamic run");
                if waits {
                    dynamic.held.push(Held {
                        invocation,
                        start_after,
                        slot,
                        limit,
                    });
                } else {
                    self.add_limited(invocation, slot, limit);
                }
            }
            Command::Ended(end) => {
                match &end {
                    FunctionEnd::Returned => {
                        tracing::info!(target: "weft", "the pipeline function returned; waiting for the steps it started")
                    }
                    FunctionEnd::Failed(message) | FunctionEnd::Panicked(message) => {
                        tracing::error!(target: "weft", "the pipeline function failed: {message}");
                    }
                }
                let failed = end != FunctionEnd::Returned;
                let dynamic = self.dynamic.as_mut().expect("dynamic run");
                dynamic.ended = Some(end);
                // Waiting invocations are scheduled as what they wait for is (all at once if
                // the function failed, to be skipped per the mode).
                self.release_held();
                if failed && self.mode != ExecutionMode::ContinueOnFailure {
                    let decisions = self.scheduler.stop_starting();
                    self.decide(decisions);
                    if self.mode == ExecutionMode::FailFast {
                        self.stop_running("the pipeline function failed (fail_fast)");
                    }
                }
            }
        }
    }

    /// Schedules an invocation of a dynamic pipeline now, or once its group has room.
    fn add_limited(&mut self, invocation: Arc<Invocation>, slot: Arc<Slot>, limit: Option<Limit>) {
        let Some(limit) = limit else {
            self.add(invocation, slot);
            return;
        };
        let dynamic = self.dynamic.as_mut().expect("dynamic run");
        let group = dynamic.groups.entry(limit.group).or_default();
        group.max = limit.max.max(1);
        group.waiting.push_back((invocation, slot));
        self.fill_groups();
    }

    /// Schedules waiting group members while their group has room (all of them once the
    /// function failed or the run was stopped: they are then skipped per the mode).
    fn fill_groups(&mut self) {
        let Some(dynamic) = self.dynamic.as_mut() else {
            return;
        };
        let everything = dynamic.stopped
            || matches!(
                dynamic.ended,
                Some(FunctionEnd::Failed(_) | FunctionEnd::Panicked(_))
            );
        let mut ready = Vec::new();
        for (id, group) in &mut dynamic.groups {
            if group.waiting.is_empty() {
                continue;
            }
            group
                .scheduled
                .retain(|&node| !self.scheduler.is_resolved(node));
            let mut room = group.max.saturating_sub(group.scheduled.len());
            while everything || room > 0 {
                let Some((invocation, slot)) = group.waiting.pop_front() else {
                    break;
                };
                room = room.saturating_sub(1);
                ready.push((id.clone(), invocation, slot));
            }
        }
        for (group, invocation, slot) in ready {
            let node = self.add(invocation, slot);
            if let Some(group) = self
                .dynamic
                .as_mut()
                .and_then(|dynamic| dynamic.groups.get_mut(&group))
            {
                group.scheduled.push(node);
            }
        }
    }

    /// Schedules an invocation of a dynamic pipeline; returns its node.
    fn add(&mut self, invocation: Arc<Invocation>, slot: Arc<Slot>) -> usize {
        let dynamic = self.dynamic.as_mut().expect("dynamic run");
        let upstream: Vec<usize> = invocation
            .upstream
            .iter()
            .filter_map(|id| dynamic.index.get(&**id).copied())
            .collect();
        let node = self.invocations.len();
        dynamic.index.insert(invocation.id.clone(), node);
        // Nothing new starts once the run was asked to stop, nor after the function failed
        // unless the mode lets the rest go on.
        let stopped = dynamic.stopped
            || (self.mode != ExecutionMode::ContinueOnFailure && dynamic.function_failed());
        self.invocations.push(invocation);
        self.nodes.push(Node {
            slot: Some(slot),
            ..Node::default()
        });
        let (added, skip) = self.scheduler.add(&upstream);
        debug_assert_eq!(added, node);
        if let Some(decision) = skip {
            self.decide(vec![decision]);
        } else if stopped {
            let decisions = self.scheduler.stop_starting();
            self.decide(decisions);
        } else if let Some(failed) = self.unseen_failure() {
            let decisions = self.scheduler.skip(node, failed);
            self.decide(decisions);
        }
        node
    }

    /// A failure the function has not seen, if the execution mode stops new work on one.
    fn unseen_failure(&self) -> Option<usize> {
        if self.mode == ExecutionMode::ContinueOnFailure {
            return None;
        }
        let dynamic = self.dynamic.as_ref()?;
        let seen = dynamic
            .shared
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.failures
            .iter()
            .copied()
            .find(|node| !seen.contains(node))
    }

    /// Schedules held invocations whose `start_after` invocations have all started.
    fn release_held(&mut self) {
        self.fill_groups();
        let Some(dynamic) = self.dynamic.as_mut() else {
            return;
        };
        if dynamic.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut dynamic.held);
        let mut still = Vec::new();
        let mut ready = Vec::new();
        for waiting in held {
            let waits = must_wait(
                dynamic,
                &self.nodes,
                &self.scheduler,
                &waiting.invocation,
                &waiting.start_after,
            );
            if waits {
                still.push(waiting);
            } else {
                ready.push(waiting);
            }
        }
        dynamic.held = still;
        for held in ready {
            self.add_limited(held.invocation, held.slot, held.limit);
        }
    }

    /// Tells a dynamic pipeline's function how an invocation ended.
    fn notify(&self, node: usize, resolution: Resolution) {
        if let Some(slot) = &self.nodes[node].slot {
            slot.finish(resolution);
        }
    }

    /// Tells a dynamic pipeline's function an invocation failed or will never run.
    fn notify_failure(&self, node: usize, message: String, cause: Option<usize>) {
        self.notify(
            node,
            Resolution::Failed(Box::new(StepFailure {
                invocation: self.invocations[node].id.to_string(),
                message,
                cause,
            })),
        );
    }

    /// How a dynamic run ended: stopped if asked to, failed if its function failed or a step
    /// failed without the function seeing it, completed otherwise.
    fn outcome(&self) -> DynamicOutcome {
        let dynamic = self.dynamic.as_ref().expect("dynamic run");
        let (status, reason) = match &dynamic.ended {
            _ if dynamic.stopped => (Status::Stopped, Some("a stop was requested".to_owned())),
            Some(FunctionEnd::Failed(message)) => (
                Status::Failed,
                Some(format!("the pipeline function failed: {message}")),
            ),
            Some(FunctionEnd::Panicked(message)) => (
                Status::Failed,
                Some(format!("the pipeline function panicked: {message}")),
            ),
            _ => {
                let seen = dynamic
                    .shared
                    .seen
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match self
                    .failures
                    .iter()
                    .copied()
                    .find(|node| !seen.contains(node))
                {
                    Some(node) => (
                        Status::Failed,
                        Some(format!(
                            "step `{}` failed and the pipeline function did not handle it",
                            self.invocations[node].id
                        )),
                    ),
                    None => (Status::Completed, None),
                }
            }
        };
        DynamicOutcome { status, reason }
    }

    /// The process was interrupted: the run stops as `weft runs stop` stops it (recorded, so
    /// that other processes see it, and nothing new starts), and isolated steps are killed at
    /// once; inline ones get the grace period.
    async fn interrupted(&mut self) -> Result<()> {
        tracing::warn!(target: "weft", "interrupted: the run stops (interrupt again to exit at once)");
        self.commit_now().await?;
        match self.engine.metadata().request_stop(self.scope.run_id).await {
            // A run that already ended, or is ending, has nothing more to stop.
            Ok(_) | Err(weft_store::Error::Transition { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        if !self.stop_was_requested() {
            self.stop_requested();
        }
        for node in 0..self.nodes.len() {
            if self.nodes[node].has_process() {
                self.stop_body(node, "the process was interrupted");
            }
        }
        Ok(())
    }

    /// Whether any body is running.
    fn bodies_running(&self) -> bool {
        self.nodes.iter().any(|node| node.awaiting().is_some())
    }

    /// Stops every running body (fail-fast after the function failed).
    fn stop_running(&mut self, reason: &str) {
        for node in 0..self.nodes.len() {
            self.stop_body(node, reason);
        }
    }

    /// Stops the body of `node` if it runs: told to stop (killed if isolated), recorded
    /// `stopped`, resolved, and its result dropped when it comes.
    fn stop_body(&mut self, node: usize, reason: &str) {
        let Some(step_run) = self.nodes[node].take_awaiting() else {
            return;
        };
        self.nodes[node].signal_stop();
        self.nodes[node].clear_deadline();
        self.kill_process(node);
        self.batch
            .changes
            .stopped
            .push((step_run, reason.to_owned()));
        self.scheduler.abandon(node);
        self.notify_failure(node, format!("was stopped: {reason}"), None);
    }

    fn record_reuse(
        &mut self,
        node: usize,
        step_run: weft_store::model::NewStepRun,
        upstream: Upstream,
        then: Created,
    ) {
        let invocation = &self.invocations[node];
        self.finished.insert(invocation.id.clone(), upstream);
        self.batch.changes.created.push(step_run);
        self.batch.created.push(then);
    }

    /// Prepares every invocation that may start now.
    async fn start_ready(&mut self) -> Result<()> {
        while self.scheduler.running() < self.settings.max_parallelism.max(1) {
            let Some(node) = self.scheduler.pop_ready() else {
                break;
            };
            self.nodes[node].attempt = 1;
            self.launch(node).await?;
        }
        Ok(())
    }

    /// Prepares the next attempt of every invocation whose retry delay has passed.
    async fn start_due_retries(&mut self) -> Result<()> {
        let now = self.engine.clock().now();
        let due: Vec<usize> = self
            .timed
            .iter()
            .copied()
            .filter(|&node| self.nodes[node].retry_at().is_some_and(|at| at <= now))
            .collect();
        for node in due {
            self.nodes[node].take_retry();
            self.nodes[node].attempt += 1;
            self.launch(node).await?;
        }
        Ok(())
    }

    async fn launch(&mut self, node: usize) -> Result<()> {
        let invocation = self.invocations[node].clone();
        if self.dynamic.is_some()
            && let Some((original, outputs)) = self.settings.reuse.get(&*invocation.id)
        {
            // A resumed dynamic run: the function is called again, and its calls are matched
            // to the finished step runs of the original by invocation id.
            let parameters = invocation.parameters.to_json();
            if *original.step != *invocation.step || original.parameters.value() != parameters {
                let message = format!(
                    "the pipeline function took another path than in run {}: invocation `{}` was a call of `{}` with {} there, and is a call of `{}` with {} now",
                    original.run_id,
                    invocation.id,
                    original.step,
                    original.parameters,
                    invocation.step,
                    canonical::to_string(&parameters),
                );
                tracing::error!(target: "weft", "{message}");
                let mut step_run =
                    launcher::step_run(&self.scope, &invocation, &self.finished, Status::Failed);
                step_run.error = Some(StepError {
                    kind: StepErrorKind::System,
                    message: message.clone(),
                    chain: vec![message.clone()],
                    backtrace: None,
                    retryable: false,
                });
                self.nodes[node].reasons().error = Some(message);
                self.batch.changes.created.push(step_run);
                self.batch
                    .created
                    .push(Created::Resolved(node, Scheduled::Failed));
                return Ok(());
            }
            let index = &self.dynamic.as_ref().expect("dynamic run").index;
            let upstream_reused = invocation
                .upstream
                .iter()
                .all(|id| index.get(&**id).is_some_and(|&up| self.nodes[up].reused));
            if upstream_reused
                && let Some((step_run, upstream)) =
                    launcher::reuse(&self.scope, &invocation, &self.finished, original, outputs)
            {
                self.nodes[node].reused = true;
                self.record_reuse(
                    node,
                    step_run,
                    upstream,
                    Created::Resolved(node, Scheduled::Succeeded),
                );
                return Ok(());
            }
        }
        let launched = loop {
            let invocation = &self.invocations[node];
            match launcher::prepare(
                self.engine,
                &self.scope,
                invocation,
                &self.finished,
                &self.unrecorded_keys,
            )
            .await
            {
                // Written, the completion is a cache candidate like any other.
                Launch::RecordFirst => self.flush().await?,
                launched => break launched,
            }
        };
        match launched {
            Launch::Start(prepared) => {
                let Prepared {
                    step,
                    step_run,
                    bindings,
                } = prepared;
                self.batch.changes.created.push(step_run);
                self.batch
                    .created
                    .push(Created::Start(node, step, bindings));
            }
            Launch::Reuse { step_run, upstream } => {
                self.record_reuse(
                    node,
                    step_run,
                    upstream,
                    Created::Resolved(node, Scheduled::Succeeded),
                );
            }
            Launch::Fail(step_run) => {
                self.nodes[node].reasons().error =
                    step_run.error.as_ref().map(|e| e.message.clone());
                self.batch.changes.created.push(step_run);
                self.batch
                    .created
                    .push(Created::Resolved(node, Scheduled::Failed));
            }
            Launch::RecordFirst => unreachable!("prepared again until it is not"),
        }
        Ok(())
    }

    /// Whether the batch can be left for a later commit: it starts only inline steps (or
    /// none), records nothing whose result the orchestrator waits for, and the run is not
    /// stopping (a stopping run's store turns starts away, which only a commit tells). An
    /// invocation resolved from the cache (or reused) is resolved at once: a store takes its
    /// finished record whatever the run's status, so nothing waits on the commit, and a
    /// cached chain goes on at the speed of its cache lookups, its records written in
    /// batches.
    fn may_start_unrecorded(&self) -> bool {
        !self.stop_was_requested()
            && self.batch.created.iter().all(|role| match role {
                Created::Start(node, ..) => {
                    !self.invocations[*node].config.isolated
                        && self.nodes[*node].stopped_before_start().is_none()
                }
                Created::Recorded | Created::Resolved(_, Scheduled::Succeeded) => true,
                Created::Resolved(_, Scheduled::Failed) => false,
            })
    }

    /// Whether another process asked the run to stop, when the batch starts steps: they
    /// start only if it did not (its store would turn them away, which only a commit
    /// tells).
    async fn stop_requested_elsewhere(&mut self) -> Result<bool> {
        let starts = self
            .batch
            .created
            .iter()
            .any(|role| matches!(role, Created::Start(..)));
        if !starts {
            return Ok(false);
        }
        let status = self.engine.metadata().run_status(self.scope.run_id).await?;
        Ok(status == Status::Stopping)
    }

    /// Starts the batch's steps before the batch is written, and leaves it for the next
    /// commit.
    fn start_unrecorded(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        batch.changes.at = Some(Utc::now());
        let roles = std::mem::take(&mut batch.created);
        let created = std::mem::take(&mut batch.changes.created);
        for (role, step_run) in roles.into_iter().zip(created) {
            match role {
                Created::Start(node, step, bindings) => {
                    let attempt = self.nodes[node].attempt;
                    let key = step_run.cache_key.as_deref();
                    let recorded = Arc::new(Recorded::new(self.ask.clone()));
                    batch.recorded.push(recorded.clone());
                    let started = (step_run.id, attempt, key, Some(recorded));
                    self.dispatch(node, started, step, bindings);
                    batch.changes.started.push(step_run);
                }
                Created::Resolved(node, outcome) => {
                    batch.changes.created.push(step_run);
                    self.resolved(node, outcome);
                }
                Created::Recorded => batch.changes.created.push(step_run),
            }
        }
        let changes = &batch.changes;
        self.unrecorded_step_runs +=
            changes.started.len() + changes.created.len() + changes.completed.len();
        self.unrecorded.push(batch);
        self.commit_due
            .get_or_insert_with(|| tokio::time::Instant::now() + COMMIT_INTERVAL);
        self.release_held();
    }

    /// Whether the unrecorded batches are to be written now.
    fn commit_is_due(&self) -> bool {
        self.unrecorded_step_runs >= COMMIT_BATCH
            || self
                .commit_due
                .is_some_and(|due| due <= tokio::time::Instant::now())
    }

    /// Starts writing the unrecorded batches on another thread, once the commit in flight
    /// (if any) ended; the loop goes on and settles it when it ends.
    async fn commit(&mut self) -> Result<()> {
        debug_assert!(
            self.batch.changes.is_empty(),
            "commits come between batches"
        );
        self.settle().await?;
        if self.unrecorded.is_empty() {
            return Ok(());
        }
        let unrecorded = std::mem::take(&mut self.unrecorded);
        self.commit_due = None;
        self.unrecorded_step_runs = 0;
        let (mut written, mut recorded) = (Vec::new(), Vec::new());
        let mut batches = Vec::with_capacity(unrecorded.len());
        for batch in unrecorded {
            written.extend(batch.written);
            recorded.extend(batch.recorded);
            batches.push(batch.changes);
        }
        let metadata = Arc::clone(self.engine.metadata());
        let committed = self.committed.clone();
        self.commits += 1;
        let number = self.commits;
        let applied = tokio::spawn(async move {
            let applied = metadata.apply_in_order(batches).await;
            let _ = committed.send(number);
            applied
        });
        self.in_flight = Some(InFlight {
            number,
            applied,
            written,
            recorded,
            // Every key not written yet is one of these batches': the commit before them
            // was settled first.
            keys: self.unrecorded_keys.iter().cloned().collect(),
        });
        Ok(())
    }

    /// Writes the unrecorded batches (after the commit in flight) before going on.
    async fn commit_now(&mut self) -> Result<()> {
        self.settle().await?;
        if self.unrecorded.is_empty() {
            return Ok(());
        }
        let (_, stopping) = self.write(Vec::new()).await?;
        if stopping {
            self.stop_requested();
        }
        Ok(())
    }

    /// Waits for the commit in flight, if any, and does what its end calls for: the bodies
    /// waiting for its records go on; if it failed, nothing unrecorded will be written and
    /// the run fails.
    async fn settle(&mut self) -> Result<()> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let applied = in_flight.applied.await.map_err(|error| {
            Error::Task(format!(
                "the commit of step records ended abnormally: {error}"
            ))
        });
        match applied.and_then(|applied| applied.map_err(Error::from)) {
            Ok(applied) => {
                for recorded in &in_flight.recorded {
                    recorded.written();
                }
                for key in &in_flight.keys {
                    self.unrecorded_keys.remove(key);
                }
                if applied.iter().any(|applied| applied.stopping) {
                    self.stop_requested();
                }
                Ok(())
            }
            Err(error) => {
                for recorded in &in_flight.recorded {
                    recorded.lost(&error.to_string());
                }
                self.abandon_unrecorded(in_flight.written);
                Err(error)
            }
        }
    }

    /// Writes the unrecorded batches, then `changes`, in one transaction (after the commit in
    /// flight), and returns what applying each of `changes` recorded, and whether the run is
    /// stopping. If the write fails, the output files of every unrecorded batch are removed:
    /// nothing registers them.
    async fn write(&mut self, changes: Vec<Changes>) -> Result<(Vec<Applied>, bool)> {
        self.settle().await?;
        let unrecorded = std::mem::take(&mut self.unrecorded);
        self.commit_due = None;
        self.unrecorded_step_runs = 0;
        let skip = unrecorded.len();
        let mut written = Vec::new();
        let mut recorded = Vec::new();
        let mut batches = Vec::with_capacity(skip + changes.len());
        for batch in unrecorded {
            written.extend(batch.written);
            recorded.extend(batch.recorded);
            batches.push(batch.changes);
        }
        batches.extend(changes);
        match self.engine.metadata().apply_in_order(batches).await {
            Ok(mut applied) => {
                for recorded in &recorded {
                    recorded.written();
                }
                self.unrecorded_keys.clear();
                let stopping = applied.iter().any(|applied| applied.stopping);
                Ok((applied.split_off(skip), stopping))
            }
            Err(error) => {
                for recorded in &recorded {
                    recorded.lost(&error.to_string());
                }
                self.abandon_unrecorded(written);
                Err(error.into())
            }
        }
    }

    /// Removes the output files of batches that will never be written.
    fn abandon_unrecorded(&mut self, mut written: Vec<Arc<weft_artifacts::StoredArtifact>>) {
        for batch in std::mem::take(&mut self.unrecorded) {
            written.extend(batch.written);
            for recorded in &batch.recorded {
                recorded.lost("the orchestrator stopped");
            }
        }
        written.extend(std::mem::take(&mut self.batch.written));
        for stored in &written {
            let _ = self.engine.artifacts().delete(stored);
        }
    }

    /// Writes the unrecorded batches and this one, then starts the bodies it recorded and
    /// reports what it resolved.
    async fn flush(&mut self) -> Result<()> {
        // The batch being written now starts its steps once it is: none waits for a record.
        let Batch {
            changes,
            created,
            written,
            recorded: _,
        } = std::mem::take(&mut self.batch);
        let (applied, stopping) = match self.write(vec![changes]).await {
            Ok((mut applied, stopping)) => (applied.remove(0), stopping),
            Err(error) => {
                // Nothing of the batch was recorded: the outputs it would have registered
                // must not stay behind.
                for stored in &written {
                    let _ = self.engine.artifacts().delete(stored);
                }
                return Err(error);
            }
        };
        let mut refused = Vec::new();
        for (step_run, role) in applied.created.into_iter().zip(created) {
            match (step_run, role) {
                (Some(step_run), Created::Start(node, step, bindings)) => {
                    match self.nodes[node]
                        .reasons
                        .as_mut()
                        .and_then(|reasons| reasons.stopped_before_start.take())
                    {
                        Some(reason) => {
                            self.nodes[node].step_run = Some(step_run.id);
                            self.batch.changes.stopped.push((step_run.id, reason));
                        }
                        None => {
                            let key = step_run.cache_key.as_deref();
                            let started = (step_run.id, step_run.attempt, key, None);
                            self.dispatch(node, started, step, bindings);
                        }
                    }
                }
                (None, Created::Start(node, ..)) => refused.push(node),
                (_, Created::Resolved(node, outcome)) => self.resolved(node, outcome),
                (_, Created::Recorded) => {}
            }
        }
        self.release_held();
        if stopping {
            self.stop_requested();
        }
        if !refused.is_empty() {
            // The run is stopping: those never started.
            self.stop_requested();
            for node in refused {
                self.scheduler.abandon(node);
                self.skip(node, "the run was stopped before it started".into());
            }
        }
        Ok(())
    }

    /// Reports an invocation that ended without a body (from the cache, reused, or failed
    /// before it could start) to whatever waits for it and to the scheduler.
    fn resolved(&mut self, node: usize, outcome: Scheduled) {
        match outcome {
            Scheduled::Succeeded => {
                let outputs = self.finished[&self.invocations[node].id].outputs.clone();
                self.notify(node, Resolution::Completed(outputs));
            }
            Scheduled::Failed => {
                self.failures.push(node);
                let error = self.nodes[node].error().unwrap_or_default().to_owned();
                self.notify_failure(node, format!("could not start: {error}"), Some(node));
            }
        }
        let decisions = self.scheduler.resolve(node, outcome);
        self.decide(decisions);
        if outcome == Scheduled::Failed {
            self.after_failure();
        }
    }

    /// Starts the body of `node`'s attempt: its step run's id, the attempt's number, its
    /// cache key, and, for a step run not recorded yet, what says when it is.
    fn dispatch(
        &mut self,
        node: usize,
        (id, attempt, cache_key, recorded): Started<'_>,
        step: &'static StepDef,
        bindings: Vec<(Name, Binding)>,
    ) {
        let now = self.engine.clock().now();
        if let Some(key) = cache_key {
            self.running_keys.insert(id, key.to_owned());
        }
        let invocation = &self.invocations[node];
        let stopped = Arc::new(AtomicBool::new(false));
        let state = &mut self.nodes[node];
        state.step_run = Some(id);
        let deadline = invocation.config.timeout.map(|timeout| after(now, timeout));
        *state.attempt_mut() = Attempt {
            awaiting: Some(id),
            stopped: Some(stopped.clone()),
            started: Some(now),
            deadline,
            retry_at: None,
            process: None,
        };
        if deadline.is_some() {
            self.timed.insert(node);
        }
        let last_attempt = !invocation.config.retry.allows_another(attempt);
        let job = Job {
            step,
            bindings,
            artifacts: self.engine.artifacts().clone(),
            context: StepContext {
                pipeline: self.scope.pipeline.clone(),
                run_id: self.scope.run_id,
                step_run_id: id,
                invocation: invocation.id.to_string(),
                attempt,
                stopped,
                reported: Arc::default(),
            },
            last_attempt,
            recorded,
        };
        if let Some(slot) = &self.nodes[node].slot {
            slot.start();
        }
        let done = self.done.clone();
        // An isolated step runs in a process of its own, waited for on the step thread.
        let isolated = invocation.config.isolated.then(|| {
            let handle = Arc::new(isolated::ProcessHandle::default());
            let spawn = isolated::Spawn {
                worker: self.settings.worker.clone().unwrap_or_default(),
                metadata: self.engine.metadata().url(),
                artifacts: self.engine.artifacts().root().to_owned(),
                base: self.scope.project_root.clone(),
                step: job.step,
                run: self.scope.run_id,
                step_run: id,
                last_attempt,
                env: invocation.config.env.clone(),
                operator: crate::operator::for_step(invocation.config.slurm.as_ref()),
                invocation: invocation.id.to_string(),
            };
            (spawn, handle)
        });
        self.nodes[node].attempt_mut().process =
            isolated.as_ref().map(|(_, handle)| handle.clone());
        let refused = self.done.clone();
        let started = self.threads.run(move || {
            // A panic outside the step body (in weft itself) must still report the step as
            // finished, or the run would wait for it forever.
            let finished =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match isolated {
                    Some((spawn, handle)) => isolated::spawn(spawn, &job.artifacts, &handle),
                    None => runner::run(job),
                }))
                .unwrap_or_else(runner::Finished::crashed);
            // The orchestrator may be gone (a stopped step finishing late).
            let _ = done.send((node, id, finished));
        });
        if let Err(error) = started {
            let reason = format!("no thread could be started for the step: {error}");
            let _ = refused.send((node, id, runner::Finished::crashed(Box::new(reason))));
        }
    }

    /// Kills the process of an isolated step that will not be waited for any more.
    fn kill_process(&mut self, node: usize) {
        if let Some(process) = self.nodes[node].take_process() {
            // Where it ran, recorded now: its body's result may never be read.
            let facts = process.facts();
            if let (false, Some(step_run)) = (facts.is_empty(), self.nodes[node].step_run) {
                self.batch.changes.system_metadata.push((step_run, facts));
            }
            process.kill();
        }
    }

    /// Records what a body produced; a result nobody waits for any more (its attempt timed
    /// out or was stopped) is dropped, and its outputs removed.
    fn body_finished(&mut self, (node, step_run, body): (usize, StepRunId, Finished)) {
        let mut body = body;
        // Where it ran is worth keeping even for an attempt nobody waits for any more (a
        // timed-out Slurm job's id).
        if !body.system.is_empty() {
            let facts = std::mem::take(&mut body.system);
            self.batch.changes.system_metadata.push((step_run, facts));
        }
        let cache_key = self.running_keys.remove(&step_run);
        if self.nodes[node].awaiting() != Some(step_run) {
            discard(self.engine, body);
            return;
        }
        let attempt = self.nodes[node].attempt_mut();
        attempt.awaiting = None;
        attempt.deadline = None;
        attempt.stopped = None;
        let invocation = &self.invocations[node];
        let elapsed = self.nodes[node]
            .started()
            .and_then(|started| (self.engine.clock().now() - started).to_std().ok())
            .map(human)
            .unwrap_or_default();
        match launcher::finish(&self.scope, invocation, step_run, body) {
            Outcome::Completed {
                completion,
                upstream,
            } => {
                tracing::info!(target: "weft", "step `{}` completed in {elapsed}", invocation.id);
                for output in upstream.outputs.iter() {
                    self.batch.written.push(output.stored.clone());
                }
                self.batch.changes.completed.push((step_run, completion));
                self.unrecorded_keys.extend(cache_key);
                self.notify(node, Resolution::Completed(upstream.outputs.clone()));
                self.nodes[node].current = None;
                self.finished.insert(invocation.id.clone(), upstream);
                let decisions = self.scheduler.resolve(node, Scheduled::Succeeded);
                self.decide(decisions);
            }
            Outcome::Failed { error, log_uri } => self.failed(node, step_run, error, log_uri),
            // Only a stopped step ends stopped, and its result is not awaited.
            Outcome::Stopped => {}
        }
    }

    /// A failed attempt: retried after its delay if the policy allows and the error is worth
    /// another try, otherwise the invocation fails.
    fn failed(
        &mut self,
        node: usize,
        step_run: StepRunId,
        error: StepError,
        log_uri: Option<String>,
    ) {
        let invocation = &self.invocations[node];
        let attempt = self.nodes[node].attempt.max(1);
        let policy = &invocation.config.retry;
        if error.retryable && policy.allows_another(attempt) && !self.scheduler.is_stopping() {
            let delay = policy.delay_before(attempt + 1, self.engine.clock().random());
            tracing::warn!(target: "weft", "step `{}` failed (attempt {attempt} of {}), retrying in {}: {}", invocation.id, policy.max_attempts, human(delay), error.chain.join(": "));
            self.nodes[node].attempt_mut().retry_at = Some(after(self.engine.clock().now(), delay));
            self.timed.insert(node);
            self.batch.changes.retrying.push((step_run, error, log_uri));
            return;
        }
        tracing::error!(target: "weft", "step `{}` failed: {}", invocation.id, error.chain.join(": "));
        self.failures.push(node);
        self.notify_failure(
            node,
            format!("failed: {}", error.chain.join(": ")),
            Some(node),
        );
        self.batch.changes.failed.push((step_run, error, log_uri));
        let decisions = self.scheduler.resolve(node, Scheduled::Failed);
        self.decide(decisions);
        self.after_failure();
    }

    /// In a dynamic run, a failure stops the work queued when it happened (per the execution
    /// mode, already carried out); new calls are refused only while the function has not
    /// seen it (see [`Orchestrator::add`]), so the scheduler may start invocations again.
    fn after_failure(&mut self) {
        if self
            .dynamic
            .as_ref()
            .is_some_and(|dynamic| !dynamic.stopped && !dynamic.function_failed())
        {
            self.scheduler.resume_starting();
        }
    }

    /// The earliest moment something is due: a retry or a timeout.
    fn next_timer(&mut self) -> Option<DateTime<Utc>> {
        let nodes = &self.nodes;
        self.timed
            .retain(|&node| nodes[node].retry_at().is_some() || nodes[node].deadline().is_some());
        self.timed
            .iter()
            .flat_map(|&node| [nodes[node].retry_at(), nodes[node].deadline()])
            .flatten()
            .min()
    }

    /// Fails every attempt past its deadline. Its thread cannot be killed: it is told to stop
    /// (its outputs are refused), a replacement thread keeps the run's parallelism, and its
    /// late result is dropped.
    fn time_out(&mut self) {
        let now = self.engine.clock().now();
        let timed: Vec<usize> = self.timed.iter().copied().collect();
        for node in timed {
            let state = &mut self.nodes[node];
            let (Some(deadline), Some(step_run)) = (state.deadline(), state.awaiting()) else {
                continue;
            };
            if deadline > now {
                continue;
            }
            state.clear_deadline();
            state.take_awaiting();
            state.signal_stop();
            // An inline body keeps its thread: a new one keeps the run's parallelism. An
            // isolated one is killed, and its thread is back as soon as the process is gone.
            if self.nodes[node].has_process() {
                self.kill_process(node);
            } else {
                self.threads.add();
            }
            let timeout = self.invocations[node].config.timeout.unwrap_or_default();
            let message = format!("the step timed out after {}", human(timeout));
            let error = StepError {
                kind: StepErrorKind::Timeout,
                message: message.clone(),
                chain: vec![message],
                backtrace: None,
                retryable: true,
            };
            self.failed(node, step_run, error, None);
        }
    }

    /// A stop of the run was requested: nothing new starts; running steps finish.
    fn stop_requested(&mut self) {
        if self.stop_was_requested() {
            return;
        }
        tracing::warn!(target: "weft", "the run is stopping: no new step starts");
        if let Some(dynamic) = self.dynamic.as_mut() {
            dynamic.stopped = true;
        }
        let decisions = self.scheduler.stop_starting();
        self.decide(decisions);
        let timed: Vec<usize> = self.timed.iter().copied().collect();
        for node in timed {
            if self.nodes[node].take_retry().is_some() {
                if let Some(step_run) = self.nodes[node].step_run {
                    self.batch.changes.stopped.push((
                        step_run,
                        "the run was stopped before its next attempt".into(),
                    ));
                }
                self.scheduler.abandon(node);
                self.notify_failure(node, "was stopped: the run was stopped".into(), None);
            }
        }
        // Slurm jobs are cancelled: the cluster's time is not spent on a stopped run.
        let jobs: Vec<usize> = (0..self.nodes.len())
            .filter(|&node| {
                self.nodes[node].awaiting().is_some()
                    && self.invocations[node].config.slurm.is_some()
            })
            .collect();
        for node in jobs {
            self.stop_body(node, "the run was stopped: its Slurm job was cancelled");
        }
    }

    /// Turns the scheduler's decisions into records: skipped invocations get `skipped` step
    /// runs, stopped ones are marked `stopped` (and told to stop).
    fn decide(&mut self, decisions: Vec<Decision>) {
        for decision in decisions {
            match decision {
                Decision::Skip { node, reason } => {
                    let reason = match reason {
                        SkipReason::UpstreamFailed { failed } => {
                            format!("upstream `{}` failed", self.invocations[failed].id)
                        }
                        SkipReason::RunStopping { failed } => format!(
                            "no new step starts after `{}` failed ({})",
                            self.invocations[failed].id, self.mode
                        ),
                        SkipReason::RunStopped => match &self.dynamic {
                            Some(DynamicState {
                                ended: Some(FunctionEnd::Failed(_) | FunctionEnd::Panicked(_)),
                                stopped: false,
                                ..
                            }) => "the pipeline function failed".to_owned(),
                            _ => "the run was stopped".to_owned(),
                        },
                    };
                    self.skip(node, reason);
                }
                Decision::Stop { node, failed } => {
                    let reason = format!(
                        "stopped because `{}` failed (fail_fast)",
                        self.invocations[failed].id
                    );
                    tracing::warn!(target: "weft", "step `{}` {reason}", self.invocations[node].id);
                    let state = &mut self.nodes[node];
                    state.signal_stop();
                    let running = state.take_awaiting().is_some();
                    let retrying = state.take_retry().is_some();
                    state.clear_deadline();
                    if let Some(step_run) = state.step_run {
                        self.batch.changes.stopped.push((step_run, reason.clone()));
                    }
                    if !running && !retrying {
                        // Its step run is in the batch being written: it must not start.
                        state.reasons().stopped_before_start = Some(reason.clone());
                    }
                    self.kill_process(node);
                    self.notify_failure(node, format!("was {reason}"), Some(failed));
                }
            }
        }
    }

    fn skip(&mut self, node: usize, reason: String) {
        let invocation = &self.invocations[node];
        tracing::warn!(target: "weft", "step `{}` skipped: {reason}", invocation.id);
        self.notify_failure(
            node,
            format!("was not run: {reason}"),
            self.scheduler.cause(node),
        );
        let mut skipped =
            launcher::step_run(&self.scope, invocation, &self.finished, Status::Skipped);
        skipped.status_reason = Some(reason);
        self.batch.changes.created.push(skipped);
        self.batch.created.push(Created::Recorded);
    }
}

/// Drops the result of a body nobody waits for.
fn discard(engine: &Engine, body: Finished) {
    if let runner::Ended::Completed(saved) = body.ended {
        for (_, output) in saved {
            let _ = engine.artifacts().delete(&output.to_stored());
        }
    }
}
