//! What a step call returns and accepts: [`Output`] placeholders, [`Invocation`] handles, and
//! the [`IntoInput`] conversions that decide, by type, whether an argument is a parameter or
//! an artifact.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use weft_artifacts::{ArtifactStore, StoredArtifact};
use weft_core::ArtifactVersionId;

use crate::dynamic::Handle;
use crate::{Error, Result};

/// One output of a step call.
///
/// Inside a static pipeline it is a placeholder for an artifact that does not exist yet: pass
/// it (or a reference to it) to other steps. Inside a dynamic pipeline it is the output of an
/// invocation that ran or is running: pass it on, or [`Output::load`] its value (which waits
/// for the invocation). Outside any pipeline, where steps run as plain functions, it holds
/// the value.
pub struct Output<T> {
    repr: OutputRepr<T>,
}

enum OutputRepr<T> {
    Placeholder(Placeholder),
    Plain(Arc<PlainValue<T>>),
    Dynamic(Placeholder, DynamicOutput<T>),
}

/// Loads a stored value of type `T` (generated where `T` is known to be an artifact).
#[doc(hidden)]
pub(crate) type Loader<T> = fn(&ArtifactStore, &StoredArtifact) -> weft_artifacts::Result<T>;

struct DynamicOutput<T> {
    handle: Handle,
    loader: Loader<T>,
}

impl<T> Clone for DynamicOutput<T> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            loader: self.loader,
        }
    }
}

/// An output of an invocation recorded in a compile session.
#[derive(Clone, Debug)]
#[doc(hidden)]
pub struct Placeholder {
    pub(crate) session: u64,
    pub(crate) invocation: Arc<str>,
    pub(crate) output: &'static str,
}

struct PlainValue<T> {
    value: Mutex<Option<T>>,
    clone: Option<fn(&T) -> T>,
    step: &'static str,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            OutputRepr::Placeholder(placeholder) => OutputRepr::Placeholder(placeholder.clone()),
            OutputRepr::Plain(value) => OutputRepr::Plain(value.clone()),
            OutputRepr::Dynamic(placeholder, output) => {
                OutputRepr::Dynamic(placeholder.clone(), output.clone())
            }
        };
        Self { repr }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            OutputRepr::Placeholder(p) | OutputRepr::Dynamic(p, _) => {
                write!(f, "Output({}.{})", p.invocation, p.output)
            }
            OutputRepr::Plain(value) => write!(f, "Output(value of `{}`)", value.step),
        }
    }
}

impl<T> Output<T> {
    #[doc(hidden)]
    pub fn placeholder(invocation: &Invocation, output: &'static str) -> Self {
        Self {
            repr: OutputRepr::Placeholder(Placeholder {
                session: invocation.session,
                invocation: invocation.id.clone(),
                output,
            }),
        }
    }

    #[doc(hidden)]
    pub fn plain(value: T, clone: Option<fn(&T) -> T>, step: &'static str) -> Self {
        Self {
            repr: OutputRepr::Plain(Arc::new(PlainValue {
                value: Mutex::new(Some(value)),
                clone,
                step,
            })),
        }
    }

    #[doc(hidden)]
    pub fn dynamic(handle: &Handle, output: &'static str, loader: Loader<T>) -> Self {
        Self {
            repr: OutputRepr::Dynamic(
                Placeholder {
                    session: handle.session,
                    invocation: handle.id().clone(),
                    output,
                },
                DynamicOutput {
                    handle: handle.clone(),
                    loader,
                },
            ),
        }
    }

    /// The invocation that produces this output, inside a pipeline.
    pub fn invocation_id(&self) -> Option<&str> {
        match &self.repr {
            OutputRepr::Placeholder(placeholder) | OutputRepr::Dynamic(placeholder, _) => {
                Some(&placeholder.invocation)
            }
            OutputRepr::Plain(_) => None,
        }
    }

    /// The value. Inside a dynamic pipeline it is loaded from the artifact store, once the
    /// invocation that produces it has completed (this waits for it; its failure is the
    /// error). Outside a pipeline, where the step ran as a plain function, this is a copy of
    /// its result (the type must be `Clone`; [`Output::into_value`] needs no copy). While a
    /// static pipeline compiles, no value exists yet: the error says so.
    pub fn load(&self) -> Result<T> {
        match &self.repr {
            OutputRepr::Placeholder(placeholder) => Err(placeholder.no_value()),
            OutputRepr::Plain(value) => value.copy(),
            OutputRepr::Dynamic(placeholder, output) => output.load(placeholder.output),
        }
    }

    /// The output of a dynamic pipeline's invocation, as a reference.
    pub(crate) fn dynamic_placeholder(&self) -> Option<&Placeholder> {
        match &self.repr {
            OutputRepr::Dynamic(placeholder, _) => Some(placeholder),
            _ => None,
        }
    }

    /// Whether the invocation that produces this output has ended (always true outside a
    /// dynamic pipeline).
    pub fn is_ready(&self) -> bool {
        match &self.repr {
            OutputRepr::Dynamic(_, output) => output.handle.is_finished(),
            _ => true,
        }
    }

    /// The value, without copying it when this is the last handle on it.
    pub fn into_value(self) -> Result<T> {
        match self.repr {
            OutputRepr::Placeholder(placeholder) => Err(placeholder.no_value()),
            OutputRepr::Dynamic(placeholder, output) => output.load(placeholder.output),
            OutputRepr::Plain(value) => match Arc::try_unwrap(value) {
                Ok(value) => value
                    .value
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .ok_or_else(|| Error::msg("the value was already taken")),
                Err(shared) => shared.copy(),
            },
        }
    }

    /// Converts into what a step argument of the same type needs: the placeholder inside a
    /// pipeline, the value outside one.
    pub(crate) fn to_input(&self, owned: bool) -> InputRepr<T> {
        match &self.repr {
            OutputRepr::Placeholder(placeholder) | OutputRepr::Dynamic(placeholder, _) => {
                InputRepr::Placeholder(placeholder.clone())
            }
            OutputRepr::Plain(value) => {
                let taken = if owned && Arc::strong_count(value) == 1 {
                    value.take()
                } else {
                    value.copy()
                };
                match taken {
                    Ok(value) => InputRepr::Plain(value),
                    Err(error) => InputRepr::Error(error.to_string()),
                }
            }
        }
    }
}

impl<T> Output<Vec<T>>
where
    Vec<T>: weft_artifacts::Artifact,
    <Vec<T> as weft_artifacts::Artifact>::Materializer: weft_artifacts::ItemFormat<T>,
{
    /// How many items the collection holds, in a dynamic pipeline once the invocation that
    /// produces it completed, without loading them.
    pub(crate) fn item_count(&self) -> Result<u64> {
        let OutputRepr::Dynamic(placeholder, output) = &self.repr else {
            return Err(Error::msg(
                "only an output of a step of this dynamic pipeline can be mapped over item by item",
            ));
        };
        let stored = output.handle.stored(placeholder.output)?;
        output
            .handle
            .artifacts()
            .item_count::<T>(&stored)
            .map_err(|error| {
                Error::new(error).context(format!(
                    "output `{}` of `{}` cannot be read",
                    placeholder.output,
                    output.handle.id()
                ))
            })
    }
}

impl<T> DynamicOutput<T> {
    fn load(&self, output: &str) -> Result<T> {
        let stored = self.handle.stored(output)?;
        (self.loader)(self.handle.artifacts(), &stored).map_err(|error| {
            Error::new(error).context(format!(
                "output `{output}` of `{}` cannot be loaded",
                self.handle.id()
            ))
        })
    }
}

impl Placeholder {
    fn no_value(&self) -> Error {
        Error::msg(format!(
            "output `{}` of `{}` has no value yet: a static pipeline is compiled before any step runs, so its function cannot look at results (load artifact versions after the run with `weft::Client`)",
            self.output, self.invocation
        ))
    }
}

impl<T> PlainValue<T> {
    fn copy(&self) -> Result<T> {
        let guard = self.value.lock().unwrap_or_else(|p| p.into_inner());
        let value = guard
            .as_ref()
            .ok_or_else(|| Error::msg("the value was already taken"))?;
        match self.clone {
            Some(clone) => Ok(clone(value)),
            None => Err(Error::msg(format!(
                "the output of `{}` is used more than once, but its type `{}` is not `Clone`; pass it by value (`x`, not `&x`) to use it once",
                self.step,
                std::any::type_name::<T>()
            ))),
        }
    }

    fn take(&self) -> Result<T> {
        self.value
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| Error::msg("the value was already taken"))
    }
}

/// A handle on one invocation (one step call) of a pipeline, for ordering with `.after(..)`.
/// Steps that return nothing return one.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub(crate) session: u64,
    pub(crate) id: Arc<str>,
}

impl Invocation {
    /// The invocation id.
    pub fn id(&self) -> &str {
        &self.id
    }

    #[doc(hidden)]
    pub fn plain(step: &str) -> Self {
        Self {
            session: 0,
            id: step.into(),
        }
    }
}

/// Something a step call can be ordered after: an [`Invocation`], an [`Output`], or an
/// invocation id (which may name an invocation made later in the pipeline).
pub trait After {
    #[doc(hidden)]
    fn upstream(&self) -> AfterRef;
}

#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct AfterRef {
    pub(crate) session: Option<u64>,
    pub(crate) id: String,
}

impl After for Invocation {
    fn upstream(&self) -> AfterRef {
        AfterRef {
            session: Some(self.session),
            id: self.id.to_string(),
        }
    }
}

impl<T> After for Output<T> {
    fn upstream(&self) -> AfterRef {
        match &self.repr {
            OutputRepr::Placeholder(p) | OutputRepr::Dynamic(p, _) => AfterRef {
                session: Some(p.session),
                id: p.invocation.to_string(),
            },
            OutputRepr::Plain(value) => AfterRef {
                session: Some(0),
                id: value.step.to_owned(),
            },
        }
    }
}

impl After for &str {
    fn upstream(&self) -> AfterRef {
        AfterRef {
            session: None,
            id: (*self).to_owned(),
        }
    }
}

impl After for String {
    fn upstream(&self) -> AfterRef {
        AfterRef {
            session: None,
            id: self.clone(),
        }
    }
}

impl<A: After + ?Sized> After for &A {
    fn upstream(&self) -> AfterRef {
        (**self).upstream()
    }
}

/// An existing artifact version passed into a pipeline as a step input.
///
/// Get one from [`crate::ArtifactVersion::as_input`]; the step loads it when it runs, and a
/// version that holds another type than the step expects is a clear error then.
pub struct External<T> {
    pub(crate) id: ArtifactVersionId,
    _type: PhantomData<fn() -> T>,
}

impl<T> External<T> {
    /// The version with this id, as an input of type `T`.
    pub fn new(id: ArtifactVersionId) -> Self {
        Self {
            id,
            _type: PhantomData,
        }
    }
}

impl<T> Clone for External<T> {
    fn clone(&self) -> Self {
        Self::new(self.id)
    }
}

/// Leaves a parameter to the run configuration (`[steps.<invocation>.parameters]` in the
/// file given with `--config`); a run without a value for it fails before anything runs.
pub fn configured() -> Configured {
    Configured
}

/// See [`configured`].
#[derive(Clone, Copy, Debug)]
pub struct Configured;

/// What a step argument was given, before it is known whether a pipeline is being compiled.
#[doc(hidden)]
pub struct Input<T> {
    pub(crate) repr: InputRepr<T>,
}

pub(crate) enum InputRepr<T> {
    Value {
        value: T,
        to_json: fn(&T) -> serde_json::Result<serde_json::Value>,
    },
    Plain(T),
    Placeholder(Placeholder),
    Placeholders(Vec<Placeholder>),
    External(ArtifactVersionId),
    Configured,
    Error(String),
}

/// How an argument is bound in a compiled invocation.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub enum ArgumentBinding {
    Parameter(serde_json::Value),
    Artifact(Placeholder),
    Artifacts(Vec<Placeholder>),
    External(ArtifactVersionId),
    /// One item of an output that is a collection.
    Item(Placeholder, u32),
    Configured,
    Invalid(String),
}

impl<T> Input<T> {
    #[doc(hidden)]
    pub fn into_binding(self) -> ArgumentBinding {
        match self.repr {
            InputRepr::Value { value, to_json } => match to_json(&value) {
                Ok(json) => ArgumentBinding::Parameter(json),
                Err(error) => ArgumentBinding::Invalid(format!("cannot be stored as a JSON parameter: {error}")),
            },
            InputRepr::Plain(_) => ArgumentBinding::Invalid(
                "is an output computed outside the pipeline; inside a pipeline, pass outputs of its own steps or plain values".into(),
            ),
            InputRepr::Placeholder(placeholder) => ArgumentBinding::Artifact(placeholder),
            InputRepr::Placeholders(placeholders) => ArgumentBinding::Artifacts(placeholders),
            InputRepr::External(id) => ArgumentBinding::External(id),
            InputRepr::Configured => ArgumentBinding::Configured,
            InputRepr::Error(error) => ArgumentBinding::Invalid(error),
        }
    }

    #[doc(hidden)]
    pub fn into_value(self, step: &str, argument: &str) -> Result<T> {
        let refuse = |what: &str| {
            Err(Error::msg(format!(
                "argument `{argument}` of step `{step}` {what}"
            )))
        };
        match self.repr {
            InputRepr::Value { value, .. } | InputRepr::Plain(value) => Ok(value),
            InputRepr::Placeholder(_) | InputRepr::Placeholders(_) => refuse(
                "is an output of a pipeline being compiled, but the step is called outside that pipeline",
            ),
            InputRepr::External(_) => refuse(
                "is an existing artifact version, which only a step inside a pipeline can load; load it with `weft::Client` instead",
            ),
            InputRepr::Configured => {
                refuse("is left to the run configuration, which only exists inside a pipeline run")
            }
            InputRepr::Error(error) => refuse(&error),
        }
    }
}

/// A value that can be passed as a step argument of type `T`.
///
/// A plain value of type `T` is a *parameter* (stored as JSON, so it must implement
/// `serde::Serialize`); an [`Output<T>`] (or a reference to one) is an *artifact input*; a
/// `Vec` of outputs feeds a `Vec<T>` argument (fan-in); an [`External<T>`] passes an existing
/// artifact version. Anything else does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed as a step argument of type `{T}`",
    label = "this argument expects `{T}`",
    note = "a step argument of type `T` accepts an `Output<T>` (or `&Output<T>`) or a `StepFuture<T>` of another step, a `Vec` of those when `T` is `Vec<U>`, or a plain `T` value that implements `serde::Serialize`"
)]
pub trait IntoInput<T> {
    #[doc(hidden)]
    fn into_input(self) -> Input<T>;
}

impl<T: Serialize + 'static> IntoInput<T> for T {
    fn into_input(self) -> Input<T> {
        Input {
            repr: InputRepr::Value {
                value: self,
                to_json: |value| serde_json::to_value(value),
            },
        }
    }
}

impl<T> IntoInput<T> for &Output<T> {
    fn into_input(self) -> Input<T> {
        Input {
            repr: self.to_input(false),
        }
    }
}

impl<T> IntoInput<T> for Output<T> {
    fn into_input(self) -> Input<T> {
        Input {
            repr: self.to_input(true),
        }
    }
}

pub(crate) fn gather<'a, T: 'a>(
    outputs: impl ExactSizeIterator<Item = (&'a Output<T>, bool)>,
) -> InputRepr<Vec<T>> {
    let mut placeholders = Vec::with_capacity(outputs.len());
    let mut values = Vec::with_capacity(outputs.len());
    for (output, owned) in outputs {
        match output.to_input(owned) {
            InputRepr::Placeholder(placeholder) => placeholders.push(placeholder),
            InputRepr::Plain(value) => values.push(value),
            InputRepr::Error(error) => return InputRepr::Error(error),
            _ => unreachable!("an output converts to a placeholder or a value"),
        }
    }
    match (placeholders.is_empty(), values.is_empty()) {
        (_, true) => InputRepr::Placeholders(placeholders),
        (true, false) => InputRepr::Plain(values),
        (false, false) => InputRepr::Error(
            "mixes outputs of a pipeline being compiled with values computed outside it".into(),
        ),
    }
}

impl<T> IntoInput<Vec<T>> for Vec<Output<T>> {
    fn into_input(self) -> Input<Vec<T>> {
        let owned = self.len() == 1;
        Input {
            repr: gather(self.iter().map(|output| (output, owned))),
        }
    }
}

impl<T> IntoInput<Vec<T>> for &Vec<Output<T>> {
    fn into_input(self) -> Input<Vec<T>> {
        Input {
            repr: gather(self.iter().map(|output| (output, false))),
        }
    }
}

impl<T> IntoInput<Vec<T>> for &[Output<T>] {
    fn into_input(self) -> Input<Vec<T>> {
        Input {
            repr: gather(self.iter().map(|output| (output, false))),
        }
    }
}

impl<T> IntoInput<T> for External<T> {
    fn into_input(self) -> Input<T> {
        Input {
            repr: InputRepr::External(self.id),
        }
    }
}

impl<T> IntoInput<T> for &External<T> {
    fn into_input(self) -> Input<T> {
        Input {
            repr: InputRepr::External(self.id),
        }
    }
}

impl<T: Serialize + 'static> IntoInput<T> for Configured {
    fn into_input(self) -> Input<T> {
        Input {
            repr: InputRepr::Configured,
        }
    }
}

/// Per-invocation options for a step call: `my_step::with(StepOptions::new().id("x"))`.
#[derive(Clone, Debug, Default)]
pub struct StepOptions {
    pub(crate) id: Option<String>,
    pub(crate) after: Vec<AfterRef>,
    pub(crate) start_after: Vec<AfterRef>,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) isolated: bool,
}

/// Runs one call of a step in a process of its own: `my_step::with(Isolated).call(..)`.
#[derive(Clone, Copy, Debug)]
pub struct Isolated;

impl From<Isolated> for StepOptions {
    fn from(_: Isolated) -> Self {
        StepOptions::new().isolated()
    }
}

impl StepOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// An explicit invocation id; it must be unique in the pipeline.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Runs the invocation after `upstream`, without passing data.
    pub fn after(mut self, upstream: impl After) -> Self {
        self.after.push(upstream.upstream());
        self
    }

    /// Starts the invocation only once `upstream` has started (dynamic pipelines).
    pub fn start_after(mut self, upstream: impl After) -> Self {
        self.start_after.push(upstream.upstream());
        self
    }

    /// Runs at most `limit` invocations of a `map(..)` or `product(..)` at once (dynamic
    /// pipelines); without it, the run's own limit applies (by default, the number of
    /// cores).
    pub fn max_concurrency(mut self, limit: usize) -> Self {
        self.max_concurrency = Some(limit);
        self
    }

    /// Runs the invocation in a process of its own (see `#[step(isolated)]`).
    pub fn isolated(mut self) -> Self {
        self.isolated = true;
        self
    }
}

/// The options of one step call, as the generated code collects them.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct CallOptions {
    pub(crate) options: StepOptions,
}

impl CallOptions {
    pub fn id(&mut self, id: String) {
        self.options.id = Some(id);
    }

    pub fn after(&mut self, upstream: impl After) {
        self.options.after.push(upstream.upstream());
    }

    pub fn start_after(&mut self, upstream: impl After) {
        self.options.start_after.push(upstream.upstream());
    }

    pub fn with(&mut self, options: impl Into<StepOptions>) {
        let options = options.into();
        if options.id.is_some() {
            self.options.id = options.id;
        }
        self.options.after.extend(options.after);
        self.options.start_after.extend(options.start_after);
        if options.max_concurrency.is_some() {
            self.options.max_concurrency = options.max_concurrency;
        }
        self.options.isolated |= options.isolated;
    }
}
