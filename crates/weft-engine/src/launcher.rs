//! Launching one invocation, in the order of semantics §4: resolve its inputs, record the
//! step run, run the body on a worker thread, then register the outputs (or the error) in one
//! transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use weft_core::snapshot::{InputSpec, Invocation, OutputRef};
use weft_core::{RunId, Status, StepRunId};
use weft_store::model::{
    Completion, InputKind, NewArtifactVersion, NewInput, NewStepRun, SaveType, StepError,
    StepErrorKind, StepOutput,
};

use crate::context::StepContext;
use crate::engine::Engine;
use crate::runner::{self, Ended, Job};
use crate::step::Binding;
use crate::{Error, Result};

/// What a downstream invocation needs to know about a finished upstream one.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Its step run.
    pub step_run: StepRunId,
    /// Its outputs.
    pub outputs: Vec<StepOutput>,
}

/// Shared between the orchestrator and one launch, so that either can stop the step run,
/// whichever learns of the other first.
#[derive(Debug, Default)]
pub struct Stopper {
    pub(crate) stopped: Arc<AtomicBool>,
    pub(crate) step_run: Mutex<Option<StepRunId>>,
}

impl Stopper {
    /// Asks the step to stop; returns its step run if it has one already (the caller then
    /// records the stop), else the launch will see the flag and record it itself.
    pub fn stop(&self) -> Option<StepRunId> {
        let step_run = self.step_run.lock().unwrap_or_else(|p| p.into_inner());
        self.stopped.store(true, Ordering::Release);
        *step_run
    }

    fn started(&self, id: StepRunId) -> bool {
        let mut step_run = self.step_run.lock().unwrap_or_else(|p| p.into_inner());
        *step_run = Some(id);
        !self.stopped.load(Ordering::Acquire)
    }
}

/// How a launch ended.
#[derive(Debug)]
pub enum Launched {
    /// Completed; its outputs are registered.
    Completed(Upstream),
    /// Failed; the error is recorded on the step run.
    Failed(StepRunId),
    /// Stopped by the run.
    Stopped,
}

/// The run an invocation belongs to.
#[derive(Clone, Debug)]
pub struct RunScope {
    /// The run.
    pub run_id: RunId,
    /// Its pipeline's name.
    pub pipeline: String,
}

/// Launches `invocation` of the run in `scope`, given its finished upstream invocations.
pub async fn launch(
    engine: &Engine,
    scope: &RunScope,
    invocation: &Invocation,
    upstream: &HashMap<String, Upstream>,
    stopper: &Stopper,
) -> Result<Launched> {
    let started = Instant::now();
    let parents: Vec<StepRunId> = invocation
        .upstream
        .iter()
        .filter_map(|id| upstream.get(id).map(|up| up.step_run))
        .collect();
    let mut new = NewStepRun {
        run_id: scope.run_id,
        invocation: invocation.id.clone(),
        step: invocation.step.clone(),
        code_hash: invocation.code_hash.clone(),
        parameters: Value::Object(invocation.parameters.clone().into_iter().collect()),
        config: serde_json::to_value(&invocation.config).unwrap_or(Value::Null),
        status: Status::Running,
        status_reason: None,
        error: None,
        inputs: Vec::new(),
        parents,
        cache_key: None,
        original_step_run: None,
    };
    let Some(step) = engine.registry().get(&invocation.step) else {
        let error = Error::UnknownStep { step: invocation.step.clone(), invocation: invocation.id.clone() };
        return record_failed_before_start(engine, new, error).await;
    };
    let (inputs, bindings) = match resolve_inputs(engine, invocation, upstream).await {
        Ok(resolved) => resolved,
        Err(error) => return record_failed_before_start(engine, new, error).await,
    };
    new.inputs = inputs;
    let step_run = engine.metadata().create_step_runs(vec![new]).await?.remove(0);
    if !stopper.started(step_run.id) {
        stop(engine, step_run.id).await;
        return Ok(Launched::Stopped);
    }
    tracing::debug!(target: "weft", "step `{}` started", invocation.id);
    let job = Job {
        step,
        bindings,
        artifacts: engine.artifacts().clone(),
        context: StepContext {
            pipeline: scope.pipeline.clone(),
            run_id: scope.run_id,
            step_run_id: step_run.id,
            invocation: invocation.id.clone(),
            attempt: step_run.attempt,
            stopped: stopper.stopped.clone(),
        },
    };
    let finished = tokio::task::spawn_blocking(move || runner::run(job))
        .await
        .map_err(|error| Error::Task(error.to_string()))?;
    let elapsed = started.elapsed();
    match finished.ended {
        Ended::Completed(saved) => {
            let stored: Vec<_> = saved.iter().map(|(_, s)| s.to_stored()).collect();
            let outputs = saved
                .into_iter()
                .map(|(name, saved)| {
                    let spec = invocation.outputs.iter().find(|o| o.name == name);
                    let (artifact_name, custom) = match spec {
                        Some(spec) => (spec.artifact_name(&scope.pipeline, &invocation.id), spec.artifact_name.is_some()),
                        None => (format!("{}::{}::{name}", scope.pipeline, invocation.id), false),
                    };
                    let version = NewArtifactVersion {
                        name: artifact_name,
                        has_custom_name: custom,
                        version: None,
                        artifact_type: saved.artifact_type,
                        uri: saved.uri,
                        materializer: saved.materializer.to_owned(),
                        materializer_version: saved.materializer_version,
                        data_type: saved.data_type.to_owned(),
                        content_hash: saved.content_hash,
                        size: saved.size,
                        files: saved.files,
                        save_type: SaveType::StepOutput,
                        metadata: saved.metadata,
                        tags: Vec::new(),
                    };
                    (name, version)
                })
                .collect();
            let completion = Completion { outputs, log_uri: finished.log_uri.clone() };
            match engine.metadata().complete_step_run(step_run.id, completion).await {
                Ok(outputs) => {
                    tracing::info!(target: "weft", "step `{}` completed in {}", invocation.id, human(elapsed));
                    Ok(Launched::Completed(Upstream { step_run: step_run.id, outputs }))
                }
                Err(error) => {
                    for output in &stored {
                        let _ = engine.artifacts().delete(output);
                    }
                    if matches!(error, weft_store::Error::Transition { .. }) {
                        return Ok(Launched::Stopped);
                    }
                    let failure = StepError {
                        kind: StepErrorKind::System,
                        message: format!("the outputs could not be registered: {error}"),
                        chain: vec![format!("the outputs could not be registered: {error}")],
                        backtrace: None,
                    };
                    engine.metadata().fail_step_run(step_run.id, failure, finished.log_uri).await?;
                    Ok(Launched::Failed(step_run.id))
                }
            }
        }
        Ended::Failed(error) => {
            let message = error.chain.join(": ");
            match engine.metadata().fail_step_run(step_run.id, error, finished.log_uri).await {
                Err(weft_store::Error::Transition { .. }) => Ok(Launched::Stopped),
                Err(other) => Err(other.into()),
                Ok(_) => {
                    tracing::error!(target: "weft", "step `{}` failed after {}: {message}", invocation.id, human(elapsed));
                    Ok(Launched::Failed(step_run.id))
                }
            }
        }
        Ended::Stopped => {
            stop(engine, step_run.id).await;
            Ok(Launched::Stopped)
        }
    }
}

/// Records a stop; a step run already stopped (by the orchestrator) is left as it is.
async fn stop(engine: &Engine, step_run: StepRunId) {
    let _ = engine.metadata().stop_step_run(step_run, "the run stopped it (fail_fast)").await;
}

/// An invocation that cannot start still gets a step run, failed with the reason.
async fn record_failed_before_start(engine: &Engine, mut new: NewStepRun, error: Error) -> Result<Launched> {
    let message = error.to_string();
    tracing::error!(target: "weft", "step `{}` cannot start: {message}", new.invocation);
    new.status = Status::Failed;
    new.error = Some(StepError {
        kind: StepErrorKind::System,
        message: message.clone(),
        chain: vec![message],
        backtrace: None,
    });
    let step_run = engine.metadata().create_step_runs(vec![new]).await?.remove(0);
    Ok(Launched::Failed(step_run.id))
}

/// Resolves every argument: artifact inputs by upstream output (or external id), parameters
/// as they are.
async fn resolve_inputs(
    engine: &Engine,
    invocation: &Invocation,
    upstream: &HashMap<String, Upstream>,
) -> Result<(Vec<NewInput>, Vec<(String, Binding)>)> {
    let mut inputs = Vec::new();
    let mut bindings = Vec::with_capacity(invocation.parameters.len() + invocation.inputs.len());
    for (name, value) in &invocation.parameters {
        bindings.push((name.clone(), Binding::Parameter(value.clone())));
    }
    let input_error = |name: &str, reason: String| Error::Input {
        invocation: invocation.id.clone(),
        input: name.to_owned(),
        reason,
    };
    let find = |name: &str, output: &OutputRef| -> Result<weft_store::model::ArtifactVersion> {
        upstream
            .get(&output.invocation)
            .and_then(|up| up.outputs.iter().find(|o| o.name == output.output))
            .map(|o| o.artifact_version.clone())
            .ok_or_else(|| {
                input_error(name, format!("output `{}` of `{}` is not available", output.output, output.invocation))
            })
    };
    for (name, spec) in &invocation.inputs {
        match spec {
            InputSpec::Artifact(output) => {
                let version = find(name, output)?;
                inputs.push(NewInput { name: name.clone(), position: 0, artifact_version: version.id, kind: InputKind::StepOutput });
                bindings.push((name.clone(), Binding::Artifact(stored(&version))));
            }
            InputSpec::Artifacts { items } => {
                let mut list = Vec::with_capacity(items.len());
                for (position, output) in items.iter().enumerate() {
                    let version = find(name, output)?;
                    inputs.push(NewInput { name: name.clone(), position: position as u32, artifact_version: version.id, kind: InputKind::StepOutput });
                    list.push(stored(&version));
                }
                bindings.push((name.clone(), Binding::Artifacts(list)));
            }
            InputSpec::External { artifact_version } => {
                let version = engine
                    .metadata()
                    .artifact_version(*artifact_version)
                    .await
                    .map_err(|e| input_error(name, e.to_string()))?;
                inputs.push(NewInput { name: name.clone(), position: 0, artifact_version: version.id, kind: InputKind::External });
                bindings.push((name.clone(), Binding::Artifact(stored(&version))));
            }
        }
    }
    Ok((inputs, bindings))
}

/// What the artifact store needs to load a recorded version.
pub fn stored(version: &weft_store::model::ArtifactVersion) -> weft_artifacts::StoredArtifact {
    weft_artifacts::StoredArtifact {
        uri: version.uri.clone(),
        files: version.files.clone(),
        materializer: version.materializer.clone(),
        materializer_version: version.materializer_version,
        data_type: version.data_type.clone(),
    }
}

/// A duration for people: `850 µs`, `12 ms`, `3.2 s`.
pub fn human(duration: std::time::Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{} ms", micros / 1_000)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}
