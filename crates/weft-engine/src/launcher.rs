//! The parts of launching one invocation that every orchestrator shares, in the order of
//! semantics §4: resolve its inputs, compute its cache key and look for a usable earlier
//! result ([`prepare`]); after the body ran (see [`crate::runner`]), turn what it produced
//! into what the metadata store records ([`finish`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use weft_artifacts::StoredArtifact;
use weft_core::cache::{
    InputIdentity, InputVersionsBuilder, KEY_FORMAT, KeyParts, VersionIdentity,
};
use weft_core::parameters::Name;
use weft_core::snapshot::{InputSpec, Invocation, OutputRef, StepConfig};
use weft_core::{ArtifactVersionId, Digest, RunId, Status, StepRunId};
use weft_store::model::{
    ArtifactVersion, CacheEntry, Completion, InputKind, JsonText, NewArtifactVersion, NewInput,
    NewStepRun, SaveType, StepError, StepErrorKind, StepOutput, StepRun,
};

use crate::engine::Engine;
use crate::runner::{Ended, Finished};
use crate::step::{Binding, StepDef};
use crate::{Error, blocking};

/// The run an invocation belongs to, and what its launches need from it.
#[derive(Clone, Debug)]
pub struct RunScope {
    /// The run.
    pub run_id: RunId,
    /// Its pipeline's name.
    pub pipeline: String,
    /// Where relative cache file dependencies are read from.
    pub project_root: PathBuf,
    /// The cache key functions of this binary, by name.
    pub key_fns: Arc<HashMap<String, fn() -> String>>,
    /// Caching is off for the whole run, whatever the snapshot says (`--no-cache` on a
    /// resume, whose snapshot was compiled with caching on).
    pub no_cache: bool,
    /// The text of the settings last recorded: the items of a map share one settings value,
    /// encoded once.
    pub last_config: Arc<std::sync::Mutex<Option<ConfigText>>>,
}

/// Settings and their canonical text.
type ConfigText = (Arc<StepConfig>, JsonText);

impl RunScope {
    /// The canonical text of `config`, encoded once for consecutive step runs that share it.
    pub fn config_text(&self, config: &Arc<StepConfig>) -> JsonText {
        let mut last = self.last_config.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, text)) = &*last
            && Arc::ptr_eq(known, config)
        {
            return text.clone();
        }
        let text = JsonText::of(&**config).expect("settings are JSON");
        *last = Some((Arc::clone(config), text.clone()));
        text
    }

    /// Whether `invocation` looks up and records cache entries in this run.
    pub fn caches(&self, invocation: &Invocation) -> bool {
        invocation.config.cache.enabled && !self.no_cache
    }
}

/// One output of a finished invocation, as downstream invocations read it.
#[derive(Clone, Debug)]
pub struct UpstreamOutput {
    /// The output's name.
    pub name: String,
    /// Its artifact version.
    pub version: ArtifactVersionId,
    /// The version's content hash (for downstream cache keys).
    pub content_hash: Digest,
    /// Where its files are.
    pub stored: std::sync::Arc<StoredArtifact>,
}

/// What downstream invocations need to know about a finished invocation.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Its step run.
    pub step_run: StepRunId,
    /// Its outputs, shared with whatever waits for them (a dynamic pipeline's futures).
    pub outputs: std::sync::Arc<[UpstreamOutput]>,
}

impl Upstream {
    /// The upstream record of a step run whose outputs are already registered, or why they
    /// cannot be reused: an output's recorded content hash is not a BLAKE3 hash.
    pub fn registered(step_run: StepRunId, outputs: &[StepOutput]) -> Result<Self, String> {
        let outputs = outputs
            .iter()
            .map(|output| {
                let version = &output.artifact_version;
                Ok(UpstreamOutput {
                    name: output.name.clone(),
                    version: version.id,
                    content_hash: Digest::from_hex(&version.content_hash).map_err(|error| {
                        format!("output `{}` (version {}): {error}", output.name, version.id)
                    })?,
                    stored: stored(version).into(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { step_run, outputs })
    }
}

/// An invocation ready to start: its step run and its arguments.
#[derive(Debug)]
pub struct Prepared {
    /// The step.
    pub step: &'static StepDef,
    /// The step run to record, as `running`.
    pub step_run: NewStepRun,
    /// How each argument is passed.
    pub bindings: Vec<(Name, Binding)>,
}

/// What launching an invocation comes to before any body runs.
#[derive(Debug)]
pub enum Launch {
    /// Run it.
    Start(Prepared),
    /// Reuse an earlier result: record this `cached` step run; downstream reads `upstream`.
    Reuse {
        /// The step run to record.
        step_run: NewStepRun,
        /// Its outputs, for downstream invocations.
        upstream: Upstream,
    },
    /// It cannot start: record this `failed` step run.
    Fail(NewStepRun),
    /// Its cache key is one of the keys given as unrecorded (a completion of this run not
    /// written yet): prepare it again once they are written.
    RecordFirst,
}

/// Prepares `invocation` given its finished upstream invocations: resolves its inputs,
/// computes its cache key, and reuses a cached result whose outputs are intact. A cached
/// result that is no longer usable is skipped, and the new step run says why.
pub async fn prepare(
    engine: &Engine,
    scope: &RunScope,
    invocation: &Invocation,
    upstream: &HashMap<Arc<str>, Upstream>,
    unrecorded_keys: &HashSet<String>,
) -> Launch {
    let mut step_run = step_run(scope, invocation, upstream, Status::Running);
    let Some(step) = engine.registry().get(&invocation.step) else {
        let error = Error::UnknownStep {
            step: invocation.step.to_string(),
            invocation: invocation.id.to_string(),
        };
        return Launch::Fail(failed_before_start(step_run, &error));
    };
    let (inputs, hashes, bindings) = match resolve_inputs(engine, invocation, upstream).await {
        Ok(resolved) => resolved,
        Err(error) => return Launch::Fail(failed_before_start(step_run, &error)),
    };
    step_run.inputs = inputs;
    if scope.caches(invocation) {
        let parts = match key_parts(engine, scope, invocation, &hashes, &step_run).await {
            Ok(parts) => parts,
            Err(error) => return Launch::Fail(failed_before_start(step_run, &error)),
        };
        let key = parts.key();
        if unrecorded_keys.contains(&key) {
            return Launch::RecordFirst;
        }
        match cached(engine, &key, step_run.id).await {
            Ok(Some((original, upstream))) => {
                tracing::info!(target: "weft", "step `{}` reuses the outputs of step run {} (cached)", invocation.id, original.step_run);
                step_run.status = Status::Cached;
                step_run.original_step_run = Some(original.step_run);
                step_run.cache_key = Some(key);
                // A cached step run's parts are its original's (the same key): none to store.
                step_run.status_reason = Some(format!(
                    "cached: reuses step run {} of run {}",
                    original.step_run, original.run_id
                ));
                return Launch::Reuse { step_run, upstream };
            }
            Ok(None) => {}
            Err(unusable) => {
                tracing::warn!(target: "weft", "step `{}` runs again: {unusable}", invocation.id);
                step_run.status_reason = Some(format!("ran again: {unusable}"));
            }
        }
        step_run.cache_expires_at = invocation
            .config
            .cache
            .expires_after
            .and_then(|after| chrono::Duration::from_std(after).ok())
            .map(|after| engine.clock().now() + after);
        step_run.cache_key = Some(key);
        step_run.cache_parts = JsonText::of(&parts).ok();
    }
    Launch::Start(Prepared {
        step,
        step_run,
        bindings,
    })
}

/// The newest usable cache entry for `key`, with its outputs as the upstream record of
/// `step_run` (downstream step runs name this run's cached step run as their parent):
/// `Ok(None)` if there is none, `Err` with the reason if the newest one's outputs are missing
/// or damaged.
async fn cached(
    engine: &Engine,
    key: &str,
    step_run: StepRunId,
) -> Result<Option<(CacheEntry, Upstream)>, String> {
    let now = engine.clock().now();
    let candidate = match engine.metadata().cache_candidate(key, now).await {
        Ok(candidate) => candidate,
        Err(error) => return Err(format!("the cache could not be read: {error}")),
    };
    let Some(entry) = candidate else {
        return Ok(None);
    };
    // The records made for downstream steps are the ones checked: no second copy of them.
    let artifacts = engine.artifacts().clone();
    let verified = match Upstream::registered(step_run, &entry.outputs) {
        Ok(upstream) => {
            blocking(move || {
                for output in upstream.outputs.iter() {
                    artifacts
                        .check(&output.stored)
                        .map_err(|error| format!("output `{}`: {error}", output.name))?;
                }
                Ok(upstream)
            })
            .await
        }
        Err(reason) => Err(reason),
    };
    match verified {
        Ok(upstream) => Ok(Some((entry, upstream))),
        Err(reason) => Err(format!(
            "the cached outputs of step run {} are unusable ({reason})",
            entry.step_run
        )),
    }
}

/// What the cache key of `invocation` is made of, per its cache policy; `hashes` holds the
/// content hash of each of `step_run`'s inputs that an upstream step produced.
pub async fn key_parts(
    engine: &Engine,
    scope: &RunScope,
    invocation: &Invocation,
    hashes: &[Option<&Digest>],
    step_run: &NewStepRun,
) -> Result<KeyParts, Error> {
    let policy = &invocation.config.cache;
    let key_error = |reason: String| Error::Input {
        invocation: invocation.id.to_string(),
        input: "cache key".into(),
        reason,
    };
    let mut inputs: BTreeMap<String, InputVersionsBuilder> = BTreeMap::new();
    for (input, hash) in step_run.inputs.iter().zip(hashes) {
        if policy
            .ignored_inputs
            .iter()
            .any(|ignored| **ignored == *input.name)
        {
            continue;
        }
        let content = match hash {
            Some(hash) => Some(VersionIdentity::Content(**hash)),
            // Outside the run: the hash recorded with the version, as it was recorded.
            None if policy.include_artifact_values => engine
                .metadata()
                .artifact_version(input.artifact_version)
                .await
                .ok()
                .map(|version| match Digest::from_hex(&version.content_hash) {
                    Ok(hash) => VersionIdentity::Content(hash),
                    Err(_) => {
                        VersionIdentity::Other(format!("content:{}", version.content_hash).into())
                    }
                }),
            None => None,
        };
        let version = match content {
            Some(content) if policy.include_artifact_values => content,
            _ if policy.include_artifact_ids => VersionIdentity::Id(input.artifact_version),
            _ => VersionIdentity::Any,
        };
        let item = (input.kind == InputKind::Item).then_some(input.position);
        // A fan-in's items come in a row under one name: no copy of the name per item.
        match inputs.last_entry() {
            Some(last) if **last.key() == *input.name => last.into_mut(),
            _ => inputs.entry(input.name.to_string()).or_default(),
        }
        .push(InputIdentity { version, item });
    }
    let mut files = BTreeMap::new();
    for path in &policy.file_dependencies {
        let full = scope.project_root.join(path);
        let hash = blocking(move || {
            std::fs::read(&full).map(|bytes| blake3::hash(&bytes).to_hex().to_string())
        })
        .await
        .map_err(|error| {
            key_error(format!(
                "cache file dependency `{path}` cannot be read: {error}"
            ))
        })?;
        files.insert(path.clone(), hash);
    }
    let key_fn = match &policy.key_fn {
        None => None,
        Some(name) => {
            let function = scope.key_fns.get(name).ok_or_else(|| {
                key_error(format!(
                    "cache key function `{name}` is not part of this binary"
                ))
            })?;
            let value = std::panic::catch_unwind(*function)
                .map_err(|_| key_error(format!("cache key function `{name}` panicked")))?;
            Some(value)
        }
    };
    Ok(KeyParts {
        format: KEY_FORMAT.to_owned(),
        artifact_store: engine.artifacts().id().to_owned(),
        step: invocation.step.to_string(),
        code_hash: policy
            .include_code
            .then(|| invocation.code_hash.to_string()),
        parameters: policy
            .include_parameters
            .then(|| step_run.parameters.as_str().to_owned()),
        inputs: inputs
            .into_iter()
            .map(|(name, versions)| (name, versions.finish()))
            .collect(),
        outputs: invocation
            .outputs
            .iter()
            .map(|output| {
                (
                    output.name.clone(),
                    output.materializer.clone(),
                    output.materializer_version,
                )
            })
            .collect(),
        env: policy
            .env
            .iter()
            .map(|name| (name.clone(), std::env::var(name).ok()))
            .collect(),
        files,
        key_fn,
    })
}

/// The step run of `invocation` as it is about to be recorded with `status`, its parents
/// being the finished invocations it waited for.
pub fn step_run(
    scope: &RunScope,
    invocation: &Invocation,
    upstream: &HashMap<Arc<str>, Upstream>,
    status: Status,
) -> NewStepRun {
    NewStepRun {
        id: StepRunId::new(),
        run_id: scope.run_id,
        invocation: invocation.id.to_string(),
        step: invocation.step.to_string(),
        code_hash: invocation.code_hash.to_string(),
        parameters: JsonText::of(&invocation.parameters).expect("parameters are JSON"),
        config: scope.config_text(&invocation.config),
        status,
        status_reason: None,
        error: None,
        inputs: Vec::new(),
        parents: invocation
            .upstream
            .iter()
            .filter_map(|id| upstream.get(&**id).map(|up| up.step_run))
            .collect(),
        cache_key: None,
        cache_parts: None,
        cache_expires_at: None,
        original_step_run: None,
    }
}

/// Reuses the step run `original` of an earlier run (resume): a `cached` step run with its
/// outputs; `None`, with a warning, if their records cannot be reused (the step runs again).
pub fn reuse(
    scope: &RunScope,
    invocation: &Invocation,
    upstream: &HashMap<Arc<str>, Upstream>,
    original: &StepRun,
    outputs: &[StepOutput],
) -> Option<(NewStepRun, Upstream)> {
    let mut step_run = step_run(scope, invocation, upstream, Status::Cached);
    step_run.original_step_run = Some(original.id);
    step_run.status_reason = Some(format!(
        "resumed: reuses step run {} of run {}",
        original.id, original.run_id
    ));
    match Upstream::registered(step_run.id, outputs) {
        Ok(upstream) => Some((step_run, upstream)),
        Err(reason) => {
            tracing::warn!(target: "weft", "step `{}` runs again: step run {} cannot be resumed ({reason})", invocation.id, original.id);
            None
        }
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
        retryable: false,
    });
    step_run
}

/// The inputs of `invocation` to record, the content hash of each that an upstream step
/// produced, and how each argument is passed.
type Resolved<'a> = (Vec<NewInput>, Vec<Option<&'a Digest>>, Vec<(Name, Binding)>);

async fn resolve_inputs<'a>(
    engine: &Engine,
    invocation: &Invocation,
    upstream: &'a HashMap<Arc<str>, Upstream>,
) -> Result<Resolved<'a>, Error> {
    let count = invocation
        .inputs
        .values()
        .map(|spec| spec.refs().len().max(1))
        .sum();
    let mut inputs = Vec::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);
    let mut bindings = Vec::with_capacity(invocation.parameters.len() + invocation.inputs.len());
    for (name, value) in &invocation.parameters {
        bindings.push((name.clone(), Binding::Parameter(value.clone())));
    }
    let input_error = |name: &str, reason: String| Error::Input {
        invocation: invocation.id.to_string(),
        input: name.to_owned(),
        reason,
    };
    let find = |name: &str, output: &OutputRef| {
        upstream
            .get(&*output.invocation)
            .and_then(|up| up.outputs.iter().find(|o| o.name == output.output))
            .map(|o| (o.version, o.stored.clone(), &o.content_hash))
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
        // One copy of the argument's name for all its records (a fan-in has one per item).
        let record_name: Arc<str> = (**name).into();
        match spec {
            InputSpec::Artifact(output) => {
                let (id, stored, hash) = find(name, output)?;
                hashes.push(Some(hash));
                inputs.push(NewInput {
                    name: record_name.clone(),
                    position: 0,
                    artifact_version: id,
                    kind: InputKind::StepOutput,
                });
                bindings.push((name.clone(), Binding::Artifact(stored)));
            }
            InputSpec::Artifacts { items } => {
                let mut list = Vec::with_capacity(items.len());
                for (position, output) in items.iter().enumerate() {
                    let (id, stored, hash) = find(name, output)?;
                    hashes.push(Some(hash));
                    inputs.push(NewInput {
                        name: record_name.clone(),
                        position: position as u32,
                        artifact_version: id,
                        kind: InputKind::StepOutput,
                    });
                    list.push(stored);
                }
                bindings.push((name.clone(), Binding::Artifacts(list)));
            }
            InputSpec::Item { output, index } => {
                let (id, stored, hash) = find(name, output)?;
                hashes.push(Some(hash));
                inputs.push(NewInput {
                    name: record_name.clone(),
                    position: *index,
                    artifact_version: id,
                    kind: InputKind::Item,
                });
                bindings.push((name.clone(), Binding::Item(stored, *index)));
            }
            InputSpec::External { artifact_version } => {
                let version = engine
                    .metadata()
                    .artifact_version(*artifact_version)
                    .await
                    .map_err(|e| input_error(name, e.to_string()))?;
                // Outside the run: its hash, if the policy wants it, is read with the key.
                hashes.push(None);
                inputs.push(NewInput {
                    name: record_name.clone(),
                    position: 0,
                    artifact_version: version.id,
                    kind: InputKind::External,
                });
                bindings.push((name.clone(), Binding::Artifact(stored(&version).into())));
            }
        }
    }
    Ok((inputs, hashes, bindings))
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
    /// Mark the step run failed (or retrying).
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
/// transaction), metadata and tags, or the error.
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
                let tags: Vec<String> = finished
                    .output_tags
                    .iter()
                    .filter(|(output, _)| *output == name)
                    .flat_map(|(_, tags)| tags.iter().cloned())
                    .collect();
                let id = ArtifactVersionId::new();
                for_downstream.push(UpstreamOutput {
                    name: name.clone(),
                    version: id,
                    content_hash: saved.content_hash,
                    stored: saved.to_stored().into(),
                });
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
                        content_hash: saved.content_hash.to_string(),
                        size: saved.size,
                        files: saved.files,
                        save_type: SaveType::StepOutput,
                        metadata: saved.metadata,
                        tags,
                    },
                ));
            }
            Outcome::Completed {
                completion: Completion {
                    outputs,
                    log_uri: finished.log_uri,
                    metadata: finished.metadata,
                },
                upstream: Upstream {
                    step_run,
                    outputs: for_downstream.into(),
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
pub fn stored(version: &ArtifactVersion) -> StoredArtifact {
    StoredArtifact {
        uri: version.uri.clone(),
        files: version.files.clone(),
        materializer: version.materializer.clone().into(),
        materializer_version: version.materializer_version,
        data_type: version.data_type.clone().into(),
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

/// `time` plus `duration`, saturating.
pub(crate) fn after(time: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| time.checked_add_signed(d))
        .unwrap_or(time)
}
