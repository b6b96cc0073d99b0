//! Compiling a static pipeline: running its function once with step calls recorded instead
//! of executed, then validating the plan (see `weft_core::compile`).
//!
//! Which mode a step call is in is one documented thread-local, set only while a pipeline
//! function compiles on this thread: inside it, calls record invocations; anywhere else
//! (including inside a running step) they run the step's plain function.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use weft_core::Snapshot;
use weft_core::compile::{self, Compiler, StepCall, StepOverride, StepSignature};
use weft_core::parameters::ByName;
use weft_core::snapshot::{InputSpec, OutputRef, StepConfig};
use weft_engine::StepDef;

use crate::config::RunConfig;
use crate::input::{AfterRef, ArgumentBinding, CallOptions, Invocation, Placeholder};
use crate::registry::{self, PipelineDef};
use crate::{Error, Result};

/// A pipeline being compiled on this thread.
#[doc(hidden)]
pub struct CompileSession {
    id: u64,
    compiler: RefCell<Compiler>,
    defaults: Defaults,
}

/// Settings that apply to every step of the pipeline being compiled, unless the step says
/// otherwise.
pub(crate) struct Defaults {
    pipeline: weft_core::policy::CacheSettings,
    retry: weft_core::policy::RetrySettings,
    timeout_ms: Option<u64>,
    isolated: Option<bool>,
    stack: Option<crate::config::Stack>,
    run: weft_core::policy::CacheSettings,
    no_cache: bool,
}

impl Defaults {
    /// The defaults of `pipeline`'s steps in a run configured by `run`.
    pub(crate) fn new(pipeline: &PipelineDef, run: &RunConfig) -> Self {
        Self {
            pipeline: pipeline.settings.cache(),
            retry: pipeline.settings.retry(),
            timeout_ms: pipeline.settings.timeout_ms,
            isolated: pipeline.settings.isolated,
            stack: run.stack.clone(),
            run: run.cache.clone(),
            no_cache: run.no_cache,
        }
    }

    /// The resolved settings of one call of `step`: step, then pipeline, then run, then
    /// weft's defaults; `no_cache` turns caching off whatever the step says.
    pub(crate) fn for_step(&self, step: &StepDef) -> StepConfig {
        let mut cache = step
            .settings
            .cache()
            .or(&self.pipeline)
            .or(&self.run)
            .resolve();
        if self.no_cache {
            cache.enabled = false;
        }
        StepConfig {
            cache,
            retry: step.settings.retry().or(&self.retry).resolve(),
            timeout: step
                .settings
                .timeout_ms
                .or(self.timeout_ms)
                .map(std::time::Duration::from_millis),
            isolated: step.settings.isolated.or(self.isolated).unwrap_or(false)
                || self
                    .stack
                    .as_ref()
                    .is_some_and(|stack| stack.isolates(step.name)),
            env: self
                .stack
                .as_ref()
                .map(|stack| stack.env(step.name))
                .unwrap_or_default(),
            slurm: self
                .stack
                .as_ref()
                .and_then(|stack| stack.slurm_job(step.name)),
            extra: Default::default(),
        }
    }
}

/// What a step call does on this thread.
#[doc(hidden)]
pub enum Mode {
    /// Run the step's plain function.
    Plain,
    /// Record an invocation.
    Compile(Rc<CompileSession>),
    /// Run an invocation of a dynamic pipeline.
    Dynamic(Rc<crate::dynamic::DynamicSession>),
}

thread_local! {
    static SESSION: RefCell<Option<Rc<CompileSession>>> = const { RefCell::new(None) };
}

/// The mode of a step call made now, on this thread.
#[doc(hidden)]
pub fn mode() -> Mode {
    if weft_engine::context::in_step() {
        return Mode::Plain;
    }
    if let Some(session) = SESSION.with(|session| session.borrow().clone()) {
        return Mode::Compile(session);
    }
    match crate::dynamic::current() {
        Some(session) => Mode::Dynamic(session),
        None => Mode::Plain,
    }
}

impl CompileSession {
    /// Records one step call and returns its invocation.
    #[doc(hidden)]
    pub fn record(
        &self,
        step: &'static StepDef,
        options: CallOptions,
        arguments: Vec<(&'static str, ArgumentBinding)>,
    ) -> Result<Invocation> {
        let mut compiler = self.compiler.borrow_mut();
        let options = options.options;
        if let Some(upstream) = options.start_after.first() {
            let error = compile::Error::InvalidArgument {
                step: step.name.to_owned(),
                argument: format!("start_after({})", upstream.id),
                reason: "orders starts, which only a dynamic pipeline does; use `.after(..)`"
                    .into(),
            };
            return Err(remember(&mut compiler, error));
        }
        let mut config = self.defaults.for_step(step);
        config.isolated |= options.isolated;
        let call = build_call(
            self.id,
            step,
            signature(step),
            options.id,
            options.after,
            arguments,
            config.into(),
        )
        .map_err(|error| remember(&mut compiler, error))?;
        let id = compiler.add(call)?;
        Ok(Invocation {
            session: self.id,
            id,
        })
    }
}

/// What the compiler knows of `step`. Its parts are shared: the invocations made with one
/// signature (every item of a map) keep one copy of them.
pub(crate) fn signature(step: &StepDef) -> StepSignature {
    StepSignature {
        name: step.name.to_owned(),
        path: step.path.into(),
        code_hash: step.code_hash.into(),
        arguments: step
            .inputs
            .iter()
            .map(|input| input.name.to_owned())
            .collect(),
        outputs: step.output_specs().into(),
    }
}

/// One step call as the compiler takes it, from the arguments' bindings. Outputs and
/// `after` handles must come from the session `session`.
pub(crate) fn build_call(
    session: u64,
    step: &'static StepDef,
    signature: StepSignature,
    id: Option<String>,
    after: Vec<AfterRef>,
    arguments: Vec<(&'static str, ArgumentBinding)>,
    config: std::sync::Arc<StepConfig>,
) -> std::result::Result<StepCall, compile::Error> {
    // Both lists at their final size: a map's calls each keep theirs.
    let (values, artifacts) = arguments
        .iter()
        .fold((0, 0), |(values, artifacts), (_, binding)| match binding {
            ArgumentBinding::Parameter(_) => (values + 1, artifacts),
            ArgumentBinding::Configured | ArgumentBinding::Invalid(_) => (values, artifacts),
            _ => (values, artifacts + 1),
        });
    let mut call = StepCall {
        step: signature,
        id,
        parameters: ByName::with_capacity(values),
        inputs: ByName::with_capacity(artifacts),
        configured: Vec::new(),
        after: Vec::new(),
        config,
    };
    // The invocation id is not allocated yet; the step's name identifies the call.
    let foreign = |argument: &str| compile::Error::ForeignOutput {
        invocation: step.name.to_owned(),
        input: argument.to_owned(),
    };
    for (argument, binding) in arguments {
        match binding {
            ArgumentBinding::Parameter(value) => {
                call.parameters.insert(argument, value);
            }
            ArgumentBinding::Artifact(placeholder) => {
                if placeholder.session != session {
                    return Err(foreign(argument));
                }
                call.inputs
                    .insert(argument, InputSpec::Artifact(output_ref(&placeholder)));
            }
            ArgumentBinding::Artifacts(placeholders) => {
                if placeholders.iter().any(|p| p.session != session) {
                    return Err(foreign(argument));
                }
                let items = placeholders.iter().map(output_ref).collect();
                call.inputs.insert(argument, InputSpec::Artifacts { items });
            }
            ArgumentBinding::Item(placeholder, index) => {
                if placeholder.session != session {
                    return Err(foreign(argument));
                }
                call.inputs.insert(
                    argument,
                    InputSpec::Item {
                        output: output_ref(&placeholder),
                        index,
                    },
                );
            }
            ArgumentBinding::External(artifact_version) => {
                call.inputs
                    .insert(argument, InputSpec::External { artifact_version });
            }
            ArgumentBinding::Configured => call.configured.push(argument.to_owned()),
            ArgumentBinding::Invalid(reason) => {
                return Err(compile::Error::InvalidArgument {
                    step: step.name.to_owned(),
                    argument: argument.to_owned(),
                    reason,
                });
            }
        }
    }
    for upstream in after {
        if upstream.session.is_some_and(|other| other != session) {
            return Err(compile::Error::ForeignOutput {
                invocation: step.name.to_owned(),
                input: format!("after({})", upstream.id),
            });
        }
        call.after.push(upstream.id);
    }
    Ok(call)
}

fn remember(compiler: &mut Compiler, error: compile::Error) -> Error {
    compiler.record_error(error.clone());
    error.into()
}

fn output_ref(placeholder: &Placeholder) -> OutputRef {
    OutputRef {
        invocation: placeholder.invocation.clone(),
        output: placeholder.output.into(),
    }
}

/// A new session id, unique in this process: outputs of one session (a compile, or a dynamic
/// run) cannot be passed into another.
pub(crate) fn next_session() -> u64 {
    static SESSIONS: AtomicU64 = AtomicU64::new(1);
    SESSIONS.fetch_add(1, Ordering::Relaxed)
}

/// Compiles `pipeline` with `parameters` (already resolved and checked) into a validated
/// snapshot. Nothing is stored.
pub(crate) fn compile(
    pipeline: &PipelineDef,
    parameters: Map<String, Value>,
    run: &RunConfig,
) -> Result<Snapshot> {
    let execution_mode = run.execution_mode.unwrap_or_default();
    let overrides = &run.step_overrides();
    let session = Rc::new(CompileSession {
        id: next_session(),
        compiler: RefCell::new(Compiler::new(pipeline.name)),
        defaults: Defaults::new(pipeline, run),
    });
    let previous = SESSION.with(|current| current.borrow_mut().replace(session.clone()));
    if previous.is_some() {
        SESSION.with(|current| *current.borrow_mut() = previous);
        return Err(Error::msg(format!(
            "pipeline `{}` cannot be compiled while another pipeline compiles on this thread; call its function directly to add its steps",
            pipeline.name
        )));
    }
    let wrapped = registry::Parameters::new(pipeline.name, parameters.clone());
    let called = catch_unwind(AssertUnwindSafe(|| (pipeline.compile)(&wrapped)));
    SESSION.with(|current| *current.borrow_mut() = None);
    let compiler = Rc::try_unwrap(session)
        .map_err(|_| Error::msg("the pipeline function kept a handle on its compile session"))?
        .compiler
        .into_inner();
    match called {
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            return Err(Error::msg(format!(
                "the function of pipeline `{}` panicked while compiling: {message}",
                pipeline.name
            )));
        }
        Ok(Err(error)) => {
            // A compile error recorded by a step call explains more than what the function
            // made of it.
            return Err(
                match compiler.finish(BTreeMap::new(), execution_mode, &BTreeMap::new()) {
                    Err(compile_error) => compile_error.into(),
                    Ok(_) => error.context(format!(
                        "the function of pipeline `{}` failed while compiling",
                        pipeline.name
                    )),
                },
            );
        }
        Ok(Ok(())) => {}
    }
    let parameters: BTreeMap<String, Value> = parameters.into_iter().collect();
    let snapshot = compiler.finish(parameters, execution_mode, overrides)?;
    check_configured_parameters(&snapshot, overrides)?;
    Ok(snapshot)
}

/// Parameters set by the run configuration are checked against the step's declared types
/// before anything runs.
fn check_configured_parameters(
    snapshot: &Snapshot,
    overrides: &BTreeMap<String, StepOverride>,
) -> Result<()> {
    let registry = registry::steps();
    for (invocation_id, step_override) in overrides {
        let Some(invocation) = snapshot.invocation(invocation_id) else {
            continue;
        };
        let Some(step) = registry.get(&invocation.step) else {
            continue;
        };
        for (name, value) in &step_override.parameters {
            if let Some(input) = step.input(name) {
                (input.check_parameter)(value).map_err(|reason| {
                    Error::msg(format!(
                        "the run configuration sets parameter `{name}` of invocation `{invocation_id}` to {value}, but it expects `{}`: {reason}",
                        (input.type_name)()
                    ))
                })?;
            }
        }
    }
    Ok(())
}
