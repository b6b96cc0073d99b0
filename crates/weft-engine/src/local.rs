//! The local orchestrator: runs a static pipeline's invocations in dependency order on this
//! machine, at most `max_parallelism` at a time, each body on a step thread.
//!
//! It is the run's only writer, and it writes in batches: whatever happened since the last
//! write (bodies that finished, the invocations they unblock, skips and stops decided by the
//! scheduler) is recorded in one transaction. In a chain, finishing one step and starting the
//! next is a single commit; when many steps finish together, their records share one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;
use weft_artifacts::StoredArtifact;
use weft_core::schedule::{Decision, Outcome as Scheduled, Scheduler, SkipReason};
use weft_core::{Snapshot, Status, StepRunId};
use weft_store::model::{Changes, Run};

use crate::context::StepContext;
use crate::engine::Engine;
use crate::launcher::{self, Outcome, Prepared, RunScope, Upstream, human};
use crate::pool::StepThreads;
use crate::runner::{self, Finished, Job};
use crate::{Error, Result};

#[derive(Default)]
struct Node {
    step_run: Option<StepRunId>,
    stopped: Arc<AtomicBool>,
    started: Option<Instant>,
}

/// What is recorded at the next write, and what to do once it is.
#[derive(Default)]
struct Batch {
    changes: Changes,
    /// Invocations whose `running` step runs are in `changes.created`, to start after the write.
    starting: Vec<(usize, Prepared)>,
    /// Invocations recorded as failed before they could start, to report to the scheduler.
    failed_to_start: Vec<usize>,
    /// Where `changes.created` entries go: `Some(index into starting)` for running ones.
    created_for: Vec<Option<usize>>,
    /// Output files of completions, removed if the write fails.
    written: Vec<StoredArtifact>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Drives one run to its end. Returns an error only if the metadata store failed; failures
/// inside steps are recorded on their step runs.
pub async fn execute(
    engine: &Engine,
    run: &Run,
    snapshot: Arc<Snapshot>,
    max_parallelism: usize,
) -> Result<()> {
    let max_parallelism = max_parallelism.max(1);
    let scope = RunScope {
        run_id: run.id,
        pipeline: snapshot.pipeline.clone(),
    };
    let threads = StepThreads::new(max_parallelism)
        .map_err(|error| Error::Task(format!("cannot start the step threads: {error}")))?;
    let (done, mut results) = mpsc::unbounded_channel::<(usize, Finished)>();
    let mut scheduler = Scheduler::new(&snapshot);
    let mut nodes: Vec<Node> = snapshot
        .invocations
        .iter()
        .map(|_| Node::default())
        .collect();
    let mut finished: HashMap<String, Upstream> = HashMap::new();
    let mut batch = Batch::default();

    loop {
        while scheduler.running() < max_parallelism {
            let Some(node) = scheduler.pop_ready() else {
                break;
            };
            let invocation = &snapshot.invocations[node];
            match launcher::prepare(engine, &scope, invocation, &finished).await {
                Ok(prepared) => {
                    batch.created_for.push(Some(batch.starting.len()));
                    batch.changes.created.push(prepared.step_run.clone());
                    batch.starting.push((node, prepared));
                }
                Err(failed) => {
                    batch.created_for.push(None);
                    batch.changes.created.push(failed);
                    batch.failed_to_start.push(node);
                }
            }
        }
        if !batch.is_empty() {
            let written = std::mem::take(&mut batch);
            let failed_to_start = written.failed_to_start.clone();
            let started = flush(engine, written).await?;
            for (node, step_run, prepared) in started {
                nodes[node].step_run = Some(step_run.id);
                nodes[node].started = Some(Instant::now());
                let job = Job {
                    step: prepared.step,
                    bindings: prepared.bindings,
                    artifacts: engine.artifacts().clone(),
                    context: StepContext {
                        pipeline: scope.pipeline.clone(),
                        run_id: scope.run_id,
                        step_run_id: step_run.id,
                        invocation: step_run.invocation.clone(),
                        attempt: step_run.attempt,
                        stopped: nodes[node].stopped.clone(),
                    },
                };
                let done = done.clone();
                threads.run(move || {
                    // A panic outside the step body (in weft itself) must still report the
                    // step as finished, or the run would wait for it forever.
                    let finished =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner::run(job)))
                            .unwrap_or_else(runner::Finished::crashed);
                    // The orchestrator may be gone (a stopped step finishing late).
                    let _ = done.send((node, finished));
                });
            }
            for node in failed_to_start {
                let decisions = scheduler.resolve(node, Scheduled::Failed);
                decide(&snapshot, &scope, &nodes, &finished, decisions, &mut batch);
            }
            continue;
        }
        if scheduler.is_finished() {
            break;
        }
        let Some(first) = results.recv().await else {
            return Err(Error::Task("the step threads stopped unexpectedly".into()));
        };
        let mut arrived = vec![first];
        while let Ok(next) = results.try_recv() {
            arrived.push(next);
        }
        for (node, body) in arrived {
            let invocation = &snapshot.invocations[node];
            let Some(step_run) = nodes[node].step_run else {
                continue;
            };
            let elapsed = nodes[node]
                .started
                .map(|s| human(s.elapsed()))
                .unwrap_or_default();
            if nodes[node].stopped.load(Ordering::Acquire) {
                // Stopped (fail fast) while it ran: its step run is already `stopped`.
                discard(engine, body);
                continue;
            }
            let decisions = match launcher::finish(&scope, invocation, step_run, body) {
                Outcome::Completed {
                    completion,
                    upstream,
                } => {
                    tracing::info!(target: "weft", "step `{}` completed in {elapsed}", invocation.id);
                    for (_, _, stored) in &upstream.outputs {
                        batch.written.push(stored.clone());
                    }
                    batch.changes.completed.push((step_run, completion));
                    finished.insert(invocation.id.clone(), upstream);
                    scheduler.resolve(node, Scheduled::Succeeded)
                }
                Outcome::Failed { error, log_uri } => {
                    tracing::error!(target: "weft", "step `{}` failed after {elapsed}: {}", invocation.id, error.chain.join(": "));
                    batch.changes.failed.push((step_run, error, log_uri));
                    scheduler.resolve(node, Scheduled::Failed)
                }
                // Only a stopped step ends stopped, and those were handled above.
                Outcome::Stopped => Vec::new(),
            };
            decide(&snapshot, &scope, &nodes, &finished, decisions, &mut batch);
        }
    }
    Ok(())
}

/// Writes a batch; returns the started invocations with their step runs.
async fn flush(
    engine: &Engine,
    batch: Batch,
) -> Result<Vec<(usize, weft_store::model::StepRun, Prepared)>> {
    let Batch {
        changes,
        starting,
        created_for,
        written,
        ..
    } = batch;
    let applied = match engine.metadata().apply(changes).await {
        Ok(applied) => applied,
        Err(error) => {
            // Nothing of the batch was recorded: the outputs it would have registered must
            // not stay behind.
            for stored in &written {
                let _ = engine.artifacts().delete(stored);
            }
            return Err(error.into());
        }
    };
    let mut starting: Vec<Option<(usize, Prepared)>> = starting.into_iter().map(Some).collect();
    let mut started = Vec::with_capacity(starting.len());
    for (step_run, slot) in applied.created.into_iter().zip(created_for) {
        if let Some((node, prepared)) = slot.and_then(|index| starting[index].take()) {
            started.push((node, step_run, prepared));
        }
    }
    Ok(started)
}

/// Turns the scheduler's decisions into records: skipped invocations get `skipped` step
/// runs, stopped ones are marked `stopped` (and told to stop).
fn decide(
    snapshot: &Snapshot,
    scope: &RunScope,
    nodes: &[Node],
    finished: &HashMap<String, Upstream>,
    decisions: Vec<Decision>,
    batch: &mut Batch,
) {
    for decision in decisions {
        match decision {
            Decision::Skip { node, reason } => {
                let invocation = &snapshot.invocations[node];
                let reason = match reason {
                    SkipReason::UpstreamFailed { failed } => {
                        format!("upstream `{}` failed", snapshot.invocations[failed].id)
                    }
                    SkipReason::RunStopping { failed } => format!(
                        "no new step starts after `{}` failed ({})",
                        snapshot.invocations[failed].id, snapshot.execution_mode
                    ),
                };
                tracing::warn!(target: "weft", "step `{}` skipped: {reason}", invocation.id);
                batch.created_for.push(None);
                let mut skipped = launcher::step_run(scope, invocation, finished, Status::Skipped);
                skipped.status_reason = Some(reason);
                batch.changes.created.push(skipped);
            }
            Decision::Stop { node, failed } => {
                let invocation = &snapshot.invocations[node];
                let reason = format!(
                    "stopped because `{}` failed (fail_fast)",
                    snapshot.invocations[failed].id
                );
                tracing::warn!(target: "weft", "step `{}` {reason}", invocation.id);
                nodes[node].stopped.store(true, Ordering::Release);
                if let Some(step_run) = nodes[node].step_run {
                    batch.changes.stopped.push((step_run, reason));
                }
            }
        }
    }
}

/// Drops the result of a body that was stopped while it ran.
fn discard(engine: &Engine, body: Finished) {
    if let runner::Ended::Completed(saved) = body.ended {
        for (_, output) in saved {
            let _ = engine.artifacts().delete(&output.to_stored());
        }
    }
}
