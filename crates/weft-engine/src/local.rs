//! The local orchestrator: runs a static pipeline's invocations in dependency order on this
//! machine, at most `max_parallelism` at a time, each body on its own worker thread.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinSet;
use weft_core::schedule::{Decision, Outcome, Scheduler, SkipReason};
use weft_core::{Snapshot, Status};
use weft_store::model::{NewStepRun, Run};

use crate::engine::Engine;
use crate::launcher::{self, Launched, RunScope, Stopper, Upstream};
use crate::{Error, Result};

/// Drives one run to its end. Returns an error only if the metadata store failed; failures
/// inside steps are recorded on their step runs.
pub async fn execute(
    engine: &Engine,
    run: &Run,
    snapshot: Arc<Snapshot>,
    max_parallelism: usize,
) -> Result<()> {
    let max_parallelism = max_parallelism.max(1);
    let scope = RunScope { run_id: run.id, pipeline: snapshot.pipeline.clone() };
    let mut scheduler = Scheduler::new(&snapshot);
    let stoppers: Vec<Arc<Stopper>> =
        (0..snapshot.invocations.len()).map(|_| Arc::default()).collect();
    let mut finished: HashMap<String, Upstream> = HashMap::new();
    let mut tasks: JoinSet<(usize, Result<Launched>)> = JoinSet::new();
    let mut store_error: Option<Error> = None;

    loop {
        while store_error.is_none() && scheduler.running() < max_parallelism {
            let Some(node) = scheduler.pop_ready() else { break };
            let invocation = &snapshot.invocations[node];
            let upstream: HashMap<String, Upstream> = invocation
                .upstream
                .iter()
                .filter_map(|id| finished.get(id).map(|up| (id.clone(), up.clone())))
                .collect();
            let (engine, scope, snapshot) = (engine.clone(), scope.clone(), snapshot.clone());
            let stopper = stoppers[node].clone();
            tasks.spawn(async move {
                let invocation = &snapshot.invocations[node];
                let launched = launcher::launch(&engine, &scope, invocation, &upstream, &stopper).await;
                (node, launched)
            });
        }
        if scheduler.is_finished() || (store_error.is_some() && tasks.is_empty()) {
            break;
        }
        let Some(joined) = tasks.join_next().await else { break };
        let (node, launched) = joined.map_err(|error| Error::Task(error.to_string()))?;
        let outcome = match launched {
            Ok(Launched::Completed(upstream)) => {
                finished.insert(snapshot.invocations[node].id.clone(), upstream);
                Outcome::Succeeded
            }
            Ok(Launched::Failed(_)) | Ok(Launched::Stopped) => Outcome::Failed,
            Err(error) => {
                tracing::error!(target: "weft", "invocation `{}` could not be recorded: {error}", snapshot.invocations[node].id);
                store_error.get_or_insert(error);
                Outcome::Failed
            }
        };
        let decisions = scheduler.resolve(node, outcome);
        if let Err(error) = apply(engine, &scope, &snapshot, &finished, &stoppers, decisions).await {
            store_error.get_or_insert(error);
        }
    }
    // Steps stopped in fail-fast mode may still be running: their threads cannot be killed.
    // They finish on their own, and the store refuses anything they try to record.
    tasks.detach_all();
    match store_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Carries out the scheduler's decisions: skipped invocations get `skipped` step runs (in one
/// transaction), stopped ones are marked `stopped`.
async fn apply(
    engine: &Engine,
    scope: &RunScope,
    snapshot: &Snapshot,
    finished: &HashMap<String, Upstream>,
    stoppers: &[Arc<Stopper>],
    decisions: Vec<Decision>,
) -> Result<()> {
    let mut skipped = Vec::new();
    for decision in decisions {
        match decision {
            Decision::Skip { node, reason } => {
                let invocation = &snapshot.invocations[node];
                let reason = match reason {
                    SkipReason::UpstreamFailed { failed } => {
                        format!("upstream `{}` failed", snapshot.invocations[failed].id)
                    }
                    SkipReason::RunStopping { failed } => format!(
                        "the run stopped starting steps after `{}` failed ({})",
                        snapshot.invocations[failed].id, snapshot.execution_mode
                    ),
                };
                tracing::warn!(target: "weft", "step `{}` skipped: {reason}", invocation.id);
                skipped.push(NewStepRun {
                    run_id: scope.run_id,
                    invocation: invocation.id.clone(),
                    step: invocation.step.clone(),
                    code_hash: invocation.code_hash.clone(),
                    parameters: Value::Object(invocation.parameters.clone().into_iter().collect()),
                    config: serde_json::to_value(&invocation.config).unwrap_or(Value::Null),
                    status: Status::Skipped,
                    status_reason: Some(reason),
                    error: None,
                    inputs: Vec::new(),
                    parents: invocation
                        .upstream
                        .iter()
                        .filter_map(|id| finished.get(id).map(|up| up.step_run))
                        .collect(),
                    cache_key: None,
                    original_step_run: None,
                });
            }
            Decision::Stop { node, failed } => {
                let invocation = &snapshot.invocations[node];
                tracing::warn!(target: "weft", "stopping step `{}`: `{}` failed (fail_fast)", invocation.id, snapshot.invocations[failed].id);
                if let Some(step_run) = stoppers[node].stop() {
                    let reason = format!("stopped because `{}` failed (fail_fast)", snapshot.invocations[failed].id);
                    let _ = engine.metadata().stop_step_run(step_run, &reason).await;
                }
            }
        }
    }
    engine.metadata().create_step_runs(skipped).await?;
    Ok(())
}
