//! The parts of launching one invocation that every orchestrator shares, in the order of
//! semantics §4: resolve its inputs and describe its step run ([`prepare`]); after the body
//! ran (see [`crate::runner`]), turn what it produced into what the metadata store records
//! ([`finish`]).

use std::collections::HashMap;

use serde_json::Value;
use weft_artifacts::StoredArtifact;
use weft_core::snapshot::{InputSpec, Invocation, OutputRef};
use weft_core::{ArtifactVersionId, RunId, Status, StepRunId};
use weft_store::model::{
    Completion, InputKind, NewArtifactVersion, NewInput, NewStepRun, SaveType, StepError,
    StepErrorKind,
};

use crate::Error;
use crate::engine::Engine;
use crate::runner::{Ended, Finished};
use crate::step::{Binding, StepDef};

/// The run an invocation belongs to.
#[derive(Clone, Debug)]
pub struct RunScope {
    /// The run.
    pub run_id: RunId,
    /// Its pipeline's name.
    pub pipeline: String,
}

/// What downstream invocations need to know about a completed one.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Its step run.
    pub step_run: StepRunId,
    /// Its outputs: name, version id, and where the version's files are.
    pub outputs: Vec<(String, ArtifactVersionId, StoredArtifact)>,
}

/// An invocation ready to start: its step run and its arguments.
#[derive(Debug)]
pub struct Prepared {
    /// The step.
    pub step: &'static StepDef,
    /// The step run to record, as `running`.
    pub step_run: NewStepRun,
    /// How each argument is passed.
    pub bindings: Vec<(String, Binding)>,
}

/// Resolves `invocation`'s inputs from its finished upstream invocations (and external
/// artifact versions) and describes its step run. An invocation that cannot start comes back
/// as a step run to record as `failed`, with the reason.
pub async fn prepare(
    engine: &Engine,
    scope: &RunScope,
    invocation: &Invocation,
    upstream: &HashMap<String, Upstream>,
) -> Result<Prepared, NewStepRun> {
    let mut step_run = step_run(scope, invocation, upstream, Status::Running);
    let Some(step) = engine.registry().get(&invocation.step) else {
        let error = Error::UnknownStep {
            step: invocation.step.clone(),
            invocation: invocation.id.clone(),
        };
        return Err(failed_before_start(step_run, &error));
    };
    match resolve_inputs(engine, invocation, upstream).await {
        Ok((inputs, bindings)) => {
            step_run.inputs = inputs;
            Ok(Prepared {
                step,
                step_run,
                bindings,
            })
        }
        Err(error) => Err(failed_before_start(step_run, &error)),
    }
}

/// The step run of `invocation` as it is about to be recorded with `status`, its parents
/// being the finished invocations it waited for.
pub fn step_run(
    scope: &RunScope,
    invocation: &Invocation,
    upstream: &HashMap<String, Upstream>,
    status: Status,
) -> NewStepRun {
    NewStepRun {
        run_id: scope.run_id,
        invocation: invocation.id.clone(),
        step: invocation.step.clone(),
        code_hash: invocation.code_hash.clone(),
        parameters: Value::Object(invocation.parameters.clone().into_iter().collect()),
        config: serde_json::to_value(&invocation.config).unwrap_or(Value::Null),
        status,
        status_reason: None,
        error: None,
        inputs: Vec::new(),
        parents: invocation
            .upstream
            .iter()
            .filter_map(|id| upstream.get(id).map(|up| up.step_run))
            .collect(),
        cache_key: None,
        original_step_run: None,
    }
}

fn failed_before_start(mut step_run: NewStepRun, error: &Error) -> NewStepRun {
    let message = error.to_string();
    tracing::error!(target: "weft", "step `{}` cannot start: {message}", step_run.invocation);
    step_run.status = Status::Failed;
    step_run.error = Some(StepError {
        kind: StepErrorKind::System,
        message: message.clone(),
        chain: vec![message],
        backtrace: None,
    });
    step_run
}

async fn resolve_inputs(
    engine: &Engine,
    invocation: &Invocation,
    upstream: &HashMap<String, Upstream>,
) -> Result<(Vec<NewInput>, Vec<(String, Binding)>), Error> {
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
    let find = |name: &str, output: &OutputRef| {
        upstream
            .get(&output.invocation)
            .and_then(|up| up.outputs.iter().find(|(o, _, _)| *o == output.output))
            .map(|(_, id, stored)| (*id, stored.clone()))
            .ok_or_else(|| {
                input_error(
                    name,
                    format!(
                        "output `{}` of `{}` is not available",
                        output.output, output.invocation
                    ),
                )
            })
    };
    for (name, spec) in &invocation.inputs {
        match spec {
            InputSpec::Artifact(output) => {
                let (id, stored) = find(name, output)?;
                inputs.push(NewInput {
                    name: name.clone(),
                    position: 0,
                    artifact_version: id,
                    kind: InputKind::StepOutput,
                });
                bindings.push((name.clone(), Binding::Artifact(stored)));
            }
            InputSpec::Artifacts { items } => {
                let mut list = Vec::with_capacity(items.len());
                for (position, output) in items.iter().enumerate() {
                    let (id, stored) = find(name, output)?;
                    inputs.push(NewInput {
                        name: name.clone(),
                        position: position as u32,
                        artifact_version: id,
                        kind: InputKind::StepOutput,
                    });
                    list.push(stored);
                }
                bindings.push((name.clone(), Binding::Artifacts(list)));
            }
            InputSpec::External { artifact_version } => {
                let version = engine
                    .metadata()
                    .artifact_version(*artifact_version)
                    .await
                    .map_err(|e| input_error(name, e.to_string()))?;
                inputs.push(NewInput {
                    name: name.clone(),
                    position: 0,
                    artifact_version: version.id,
                    kind: InputKind::External,
                });
                bindings.push((name.clone(), Binding::Artifact(stored(&version))));
            }
        }
    }
    Ok((inputs, bindings))
}

/// How a step body's end is recorded.
#[derive(Debug)]
pub enum Outcome {
    /// Register these outputs and mark the step run completed; `upstream` is what downstream
    /// invocations read.
    Completed {
        /// The registration.
        completion: Completion,
        /// For downstream invocations.
        upstream: Upstream,
    },
    /// Mark the step run failed.
    Failed {
        /// Why.
        error: StepError,
        /// Its log.
        log_uri: Option<String>,
    },
    /// The run stopped the step.
    Stopped,
}

/// Turns a finished body into what the metadata store records: output artifact versions
/// (with ids chosen here, so that downstream step runs can be recorded in the same
/// transaction) or the error.
pub fn finish(
    scope: &RunScope,
    invocation: &Invocation,
    step_run: StepRunId,
    finished: Finished,
) -> Outcome {
    match finished.ended {
        Ended::Completed(saved) => {
            let mut outputs = Vec::with_capacity(saved.len());
            let mut for_downstream = Vec::with_capacity(saved.len());
            for (name, saved) in saved {
                let spec = invocation.outputs.iter().find(|output| output.name == name);
                let (artifact_name, has_custom_name) = match spec {
                    Some(spec) => (
                        spec.artifact_name(&scope.pipeline, &invocation.id),
                        spec.artifact_name.is_some(),
                    ),
                    None => (
                        format!("{}::{}::{name}", scope.pipeline, invocation.id),
                        false,
                    ),
                };
                let id = ArtifactVersionId::new();
                for_downstream.push((name.clone(), id, saved.to_stored()));
                outputs.push((
                    name,
                    NewArtifactVersion {
                        id,
                        name: artifact_name,
                        has_custom_name,
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
                    },
                ));
            }
            Outcome::Completed {
                completion: Completion {
                    outputs,
                    log_uri: finished.log_uri,
                },
                upstream: Upstream {
                    step_run,
                    outputs: for_downstream,
                },
            }
        }
        Ended::Failed(error) => Outcome::Failed {
            error,
            log_uri: finished.log_uri,
        },
        Ended::Stopped => Outcome::Stopped,
    }
}

/// What the artifact store needs to load a recorded version.
pub fn stored(version: &weft_store::model::ArtifactVersion) -> StoredArtifact {
    StoredArtifact {
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
