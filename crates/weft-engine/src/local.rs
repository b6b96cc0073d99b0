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
//! next is a single commit; when many steps finish together, their records share one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use weft_core::schedule::{Decision, Outcome as Scheduled, Scheduler, SkipReason};
use weft_core::{Snapshot, Status, StepRunId};
use weft_store::model::{Changes, StepError, StepErrorKind, StepOutput, StepRun};

use crate::context::StepContext;
use crate::engine::Engine;
use crate::launcher::{self, Launch, Outcome, Prepared, RunScope, Upstream, after, human};
use crate::pool::StepThreads;
use crate::runner::{self, Finished, Job};
use crate::{Error, Result};

/// What one run of the local orchestrator needs besides the snapshot.
#[derive(Clone, Debug)]
pub struct Settings {
    /// At most this many bodies run at once.
    pub max_parallelism: usize,
    /// How often the orchestrator records a sign of life (and learns of stop requests).
    pub heartbeat: Duration,
    /// Step runs to reuse, by invocation id (a resumed run's finished steps).
    pub reuse: HashMap<String, (StepRun, Vec<StepOutput>)>,
}

#[derive(Default)]
struct Node {
    /// The step run of the current attempt.
    step_run: Option<StepRunId>,
    attempt: u32,
    /// The step run whose body is running and whose result is awaited.
    awaiting: Option<StepRunId>,
    stopped: Arc<AtomicBool>,
    started: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
    retry_at: Option<DateTime<Utc>>,
}

/// A created step run's role once the batch is written.
enum Created {
    /// Start this body.
    Start(usize, Box<Prepared>),
    /// Report this invocation as resolved to the scheduler.
    Resolved(usize, Scheduled),
    /// Nothing to do (skipped or reused in the pre-pass).
    Recorded,
}

/// What is recorded at the next write, and what to do once it is.
#[derive(Default)]
struct Batch {
    changes: Changes,
    created: Vec<Created>,
    /// Output files of completions, removed if the write fails.
    written: Vec<weft_artifacts::StoredArtifact>,
}

struct Orchestrator<'a> {
    engine: &'a Engine,
    snapshot: Arc<Snapshot>,
    scope: RunScope,
    settings: &'a Settings,
    scheduler: Scheduler,
    nodes: Vec<Node>,
    finished: HashMap<String, Upstream>,
    batch: Batch,
    threads: StepThreads,
    done: mpsc::UnboundedSender<(usize, StepRunId, Finished)>,
}

/// Drives one run to its end. Returns an error only if the metadata store failed; failures
/// inside steps are recorded on their step runs.
pub async fn execute(
    engine: &Engine,
    snapshot: Arc<Snapshot>,
    scope: RunScope,
    settings: &Settings,
) -> Result<()> {
    let max_parallelism = settings.max_parallelism.max(1);
    let threads = StepThreads::new(max_parallelism)
        .map_err(|error| Error::Task(format!("cannot start the step threads: {error}")))?;
    let (done, mut results) = mpsc::unbounded_channel();
    let mut orchestrator = Orchestrator {
        engine,
        scheduler: Scheduler::new(&snapshot),
        nodes: snapshot
            .invocations
            .iter()
            .map(|_| Node::default())
            .collect(),
        snapshot,
        scope,
        settings,
        finished: HashMap::new(),
        batch: Batch::default(),
        threads,
        done,
    };
    orchestrator.pre_pass().await?;
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;

    loop {
        orchestrator.start_ready().await;
        orchestrator.start_due_retries().await;
        if !orchestrator.batch.changes.is_empty() {
            orchestrator.flush().await?;
            continue;
        }
        if orchestrator.scheduler.is_finished() {
            break;
        }
        let timer = orchestrator.next_timer();
        let clock = engine.clock().clone();
        tokio::select! {
            result = results.recv() => {
                let Some(first) = result else {
                    return Err(Error::Task("the step threads stopped unexpectedly".into()));
                };
                orchestrator.body_finished(first);
                while let Ok(next) = results.try_recv() {
                    orchestrator.body_finished(next);
                }
            }
            () = async { clock.sleep_until(timer.expect("guarded")).await }, if timer.is_some() => {
                orchestrator.time_out();
            }
            _ = heartbeat.tick() => {
                let status = engine.metadata().heartbeat(orchestrator.scope.run_id).await?;
                if status == Status::Stopping && !orchestrator.scheduler.is_stopping() {
                    orchestrator.stop_requested();
                }
            }
        }
    }
    Ok(())
}

impl Orchestrator<'_> {
    /// Resolves, in dependency order, every invocation whose result can be reused while all
    /// its upstreams were reused too: resumed steps first, then cache hits. They are
    /// recorded in one transaction and never scheduled.
    async fn pre_pass(&mut self) -> Result<()> {
        let mut resolved = Vec::new();
        for node in self.snapshot.topological_order() {
            let invocation = &self.snapshot.invocations[node];
            if !invocation
                .upstream
                .iter()
                .all(|id| self.finished.contains_key(id))
            {
                continue;
            }
            if let Some((original, outputs)) = self.settings.reuse.get(&invocation.id) {
                let (step_run, upstream) =
                    launcher::reuse(&self.scope, invocation, &self.finished, original, outputs);
                self.record_reuse(node, step_run, upstream, Created::Recorded);
                resolved.push(node);
            } else if self.scope.caches(invocation)
                && let Launch::Reuse { step_run, upstream } =
                    launcher::prepare(self.engine, &self.scope, invocation, &self.finished).await
            {
                self.record_reuse(node, step_run, upstream, Created::Recorded);
                resolved.push(node);
            }
        }
        if !resolved.is_empty() {
            self.flush().await?;
        }
        for node in resolved {
            self.scheduler.settle(node);
        }
        Ok(())
    }

    fn record_reuse(
        &mut self,
        node: usize,
        step_run: weft_store::model::NewStepRun,
        upstream: Upstream,
        then: Created,
    ) {
        let invocation = &self.snapshot.invocations[node];
        self.finished.insert(invocation.id.clone(), upstream);
        self.batch.changes.created.push(step_run);
        self.batch.created.push(then);
    }

    /// Prepares every invocation that may start now.
    async fn start_ready(&mut self) {
        while self.scheduler.running() < self.settings.max_parallelism.max(1) {
            let Some(node) = self.scheduler.pop_ready() else {
                break;
            };
            self.nodes[node].attempt = 1;
            self.launch(node).await;
        }
    }

    /// Prepares the next attempt of every invocation whose retry delay has passed.
    async fn start_due_retries(&mut self) {
        let now = self.engine.clock().now();
        for node in 0..self.nodes.len() {
            if self.nodes[node].retry_at.is_some_and(|at| at <= now) {
                self.nodes[node].retry_at = None;
                self.nodes[node].attempt += 1;
                self.launch(node).await;
            }
        }
    }

    async fn launch(&mut self, node: usize) {
        let invocation = &self.snapshot.invocations[node];
        match launcher::prepare(self.engine, &self.scope, invocation, &self.finished).await {
            Launch::Start(prepared) => {
                self.batch.changes.created.push(prepared.step_run.clone());
                self.batch
                    .created
                    .push(Created::Start(node, Box::new(prepared)));
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
                self.batch.changes.created.push(step_run);
                self.batch
                    .created
                    .push(Created::Resolved(node, Scheduled::Failed));
            }
        }
    }

    /// Writes the batch, then starts the bodies it recorded and reports what it resolved.
    async fn flush(&mut self) -> Result<()> {
        let Batch {
            changes,
            created,
            written,
        } = std::mem::take(&mut self.batch);
        let applied = match self.engine.metadata().apply(changes).await {
            Ok(applied) => applied,
            Err(error) => {
                // Nothing of the batch was recorded: the outputs it would have registered
                // must not stay behind.
                for stored in &written {
                    let _ = self.engine.artifacts().delete(stored);
                }
                return Err(error.into());
            }
        };
        let mut refused = Vec::new();
        for (step_run, role) in applied.created.into_iter().zip(created) {
            match (step_run, role) {
                (Some(step_run), Created::Start(node, prepared)) => {
                    self.dispatch(node, step_run, *prepared)
                }
                (None, Created::Start(node, _)) => refused.push(node),
                (_, Created::Resolved(node, outcome)) => {
                    let decisions = self.scheduler.resolve(node, outcome);
                    self.decide(decisions);
                }
                (_, Created::Recorded) => {}
            }
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

    fn dispatch(&mut self, node: usize, step_run: StepRun, prepared: Prepared) {
        let now = self.engine.clock().now();
        let invocation = &self.snapshot.invocations[node];
        let stopped = Arc::new(AtomicBool::new(false));
        let state = &mut self.nodes[node];
        state.step_run = Some(step_run.id);
        state.awaiting = Some(step_run.id);
        state.stopped = stopped.clone();
        state.started = Some(now);
        state.deadline = invocation.config.timeout.map(|timeout| after(now, timeout));
        let last_attempt = !invocation.config.retry.allows_another(step_run.attempt);
        let job = Job {
            step: prepared.step,
            bindings: prepared.bindings,
            artifacts: self.engine.artifacts().clone(),
            context: StepContext {
                pipeline: self.scope.pipeline.clone(),
                run_id: self.scope.run_id,
                step_run_id: step_run.id,
                invocation: step_run.invocation.clone(),
                attempt: step_run.attempt,
                stopped,
                reported: Arc::default(),
            },
            last_attempt,
        };
        let done = self.done.clone();
        let id = step_run.id;
        self.threads.run(move || {
            // A panic outside the step body (in weft itself) must still report the step as
            // finished, or the run would wait for it forever.
            let finished =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner::run(job)))
                    .unwrap_or_else(runner::Finished::crashed);
            // The orchestrator may be gone (a stopped step finishing late).
            let _ = done.send((node, id, finished));
        });
    }

    /// Records what a body produced; a result nobody waits for any more (its attempt timed
    /// out or was stopped) is dropped, and its outputs removed.
    fn body_finished(&mut self, (node, step_run, body): (usize, StepRunId, Finished)) {
        if self.nodes[node].awaiting != Some(step_run) {
            discard(self.engine, body);
            return;
        }
        self.nodes[node].awaiting = None;
        self.nodes[node].deadline = None;
        let invocation = &self.snapshot.invocations[node];
        let elapsed = self.nodes[node]
            .started
            .and_then(|started| (self.engine.clock().now() - started).to_std().ok())
            .map(human)
            .unwrap_or_default();
        match launcher::finish(&self.scope, invocation, step_run, body) {
            Outcome::Completed {
                completion,
                upstream,
            } => {
                tracing::info!(target: "weft", "step `{}` completed in {elapsed}", invocation.id);
                for output in &upstream.outputs {
                    self.batch.written.push(output.stored.clone());
                }
                self.batch.changes.completed.push((step_run, completion));
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
        let invocation = &self.snapshot.invocations[node];
        let attempt = self.nodes[node].attempt.max(1);
        let policy = &invocation.config.retry;
        if error.retryable && policy.allows_another(attempt) && !self.scheduler.is_stopping() {
            let delay = policy.delay_before(attempt + 1, self.engine.clock().random());
            tracing::warn!(target: "weft", "step `{}` failed (attempt {attempt} of {}), retrying in {}: {}", invocation.id, policy.max_attempts, human(delay), error.chain.join(": "));
            self.nodes[node].retry_at = Some(after(self.engine.clock().now(), delay));
            self.batch.changes.retrying.push((step_run, error, log_uri));
            return;
        }
        tracing::error!(target: "weft", "step `{}` failed: {}", invocation.id, error.chain.join(": "));
        self.batch.changes.failed.push((step_run, error, log_uri));
        let decisions = self.scheduler.resolve(node, Scheduled::Failed);
        self.decide(decisions);
    }

    /// The earliest moment something is due: a retry or a timeout.
    fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.nodes
            .iter()
            .flat_map(|node| [node.retry_at, node.deadline])
            .flatten()
            .min()
    }

    /// Fails every attempt past its deadline. Its thread cannot be killed: it is told to stop
    /// (its outputs are refused), a replacement thread keeps the run's parallelism, and its
    /// late result is dropped.
    fn time_out(&mut self) {
        let now = self.engine.clock().now();
        for node in 0..self.nodes.len() {
            let state = &mut self.nodes[node];
            let (Some(deadline), Some(step_run)) = (state.deadline, state.awaiting) else {
                continue;
            };
            if deadline > now {
                continue;
            }
            state.deadline = None;
            state.awaiting = None;
            state.stopped.store(true, Ordering::Release);
            self.threads.add();
            let timeout = self.snapshot.invocations[node]
                .config
                .timeout
                .unwrap_or_default();
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
        if self.scheduler.is_stopping() {
            return;
        }
        tracing::warn!(target: "weft", "the run is stopping: no new step starts");
        let decisions = self.scheduler.stop_starting();
        self.decide(decisions);
        for node in 0..self.nodes.len() {
            if self.nodes[node].retry_at.take().is_some() {
                if let Some(step_run) = self.nodes[node].step_run {
                    self.batch.changes.stopped.push((
                        step_run,
                        "the run was stopped before its next attempt".into(),
                    ));
                }
                self.scheduler.abandon(node);
            }
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
                            format!("upstream `{}` failed", self.snapshot.invocations[failed].id)
                        }
                        SkipReason::RunStopping { failed } => format!(
                            "no new step starts after `{}` failed ({})",
                            self.snapshot.invocations[failed].id, self.snapshot.execution_mode
                        ),
                        SkipReason::RunStopped => "the run was stopped".to_owned(),
                    };
                    self.skip(node, reason);
                }
                Decision::Stop { node, failed } => {
                    let reason = format!(
                        "stopped because `{}` failed (fail_fast)",
                        self.snapshot.invocations[failed].id
                    );
                    tracing::warn!(target: "weft", "step `{}` {reason}", self.snapshot.invocations[node].id);
                    let state = &mut self.nodes[node];
                    state.stopped.store(true, Ordering::Release);
                    state.awaiting = None;
                    state.deadline = None;
                    state.retry_at = None;
                    if let Some(step_run) = state.step_run {
                        self.batch.changes.stopped.push((step_run, reason));
                    }
                }
            }
        }
    }

    fn skip(&mut self, node: usize, reason: String) {
        let invocation = &self.snapshot.invocations[node];
        tracing::warn!(target: "weft", "step `{}` skipped: {reason}", invocation.id);
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
