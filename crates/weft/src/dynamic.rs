//! Dynamic pipelines: the pipeline function runs at run time, on a thread of its own, and
//! each step call becomes an invocation of the run as it is made.
//!
//! `step(args)` waits for the invocation and returns its outputs (a failure is the `Err`);
//! `step::submit(args)` returns a [`StepFuture`] at once; `step::map(..)` and
//! `step::product(..)` start one invocation per item and return a [`MapResult`]. Outputs and
//! futures are passed on as inputs without waiting: the orchestrator starts the consumer once
//! they completed. Invocation ids follow the static rules (map items are `<map id>:<index>`),
//! so a resumed run matches the calls of its function to the finished step runs of the
//! original.
//!
//! Which mode a step call is in is one documented thread-local, set only on the thread that
//! runs a dynamic pipeline's function.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use weft_artifacts::{ArtifactStore, StoredArtifact};
use weft_core::compile::Compiler;
use weft_engine::StepDef;
use weft_engine::dynamic::{FunctionEnd, Limit, Resolution, Runtime, Slot};

use crate::compile::{Defaults, build_call, next_session, signature};
use crate::input::{
    After, AfterRef, ArgumentBinding, CallOptions, Input, InputRepr, IntoInput, Invocation, Output,
    gather,
};
use crate::registry::{Parameters, PipelineDef};
use crate::{Error, Result};

thread_local! {
    static SESSION: RefCell<Option<Rc<DynamicSession>>> = const { RefCell::new(None) };
}

/// The dynamic pipeline whose function runs on this thread, if any.
pub(crate) fn current() -> Option<Rc<DynamicSession>> {
    SESSION.with(|session| session.borrow().clone())
}

/// Runs `pipeline`'s function with `parameters` as a dynamic run's function: the engine
/// calls this on the function's own thread.
pub(crate) fn run_function(
    pipeline: &'static PipelineDef,
    parameters: Parameters,
    defaults: Defaults,
    runtime: Runtime,
) -> FunctionEnd {
    let session = Rc::new(DynamicSession {
        id: next_session(),
        runtime,
        compiler: RefCell::new(Compiler::new(pipeline.name)),
        defaults,
        last_sync: RefCell::new(None),
    });
    SESSION.with(|current| *current.borrow_mut() = Some(session));
    let returned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (pipeline.compile)(&parameters)
    }));
    SESSION.with(|current| *current.borrow_mut() = None);
    match returned {
        Ok(Ok(())) => FunctionEnd::Returned,
        Ok(Err(error)) => FunctionEnd::Failed(format!("{error:#}")),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A dynamic pipeline's function, running.
#[doc(hidden)]
pub struct DynamicSession {
    id: u64,
    runtime: Runtime,
    /// Allocates invocation ids and checks each call, as for a static pipeline.
    compiler: RefCell<Compiler>,
    defaults: Defaults,
    /// The last synchronous call that completed: every later invocation follows it.
    last_sync: RefCell<Option<String>>,
}

impl DynamicSession {
    /// Adds one invocation of `step` to the run; returns at once.
    pub fn call(
        &self,
        step: &'static StepDef,
        options: CallOptions,
        arguments: Vec<(&'static str, ArgumentBinding)>,
    ) -> Result<Handle> {
        let options = options.options;
        let start_after = self.start_after(step, &options.start_after)?;
        let config = self.config(step, options.isolated);
        let call = self.build(
            step,
            signature(step),
            options.id,
            options.after,
            arguments,
            config,
        )?;
        let id = self.compiler.borrow_mut().add(call)?;
        Ok(self.submit(id, start_after, None))
    }

    /// A synchronous call completed: later invocations follow it.
    pub fn completed(&self, handle: &Handle) {
        *self.last_sync.borrow_mut() = Some(handle.id().to_string());
    }

    /// Adds one invocation of `step` per item: zipped (`product` false: every mapped argument
    /// has the same number of items) or over the cartesian product of the mapped arguments.
    pub fn map(
        &self,
        step: &'static StepDef,
        options: CallOptions,
        arguments: Vec<(&'static str, MapArgument)>,
        product: bool,
    ) -> Result<Vec<Handle>> {
        let options = options.options;
        let start_after = self.start_after(step, &options.start_after)?;
        let items = map_items(step.name, arguments, product)?;
        if options.max_concurrency == Some(0) {
            return Err(Error::msg(format!(
                "`{}::map` with max_concurrency 0 could never run; give at least 1",
                step.name
            )));
        }
        let group = self.compiler.borrow_mut().reserve(step.name, options.id)?;
        let limit = options.max_concurrency.map(|max| Limit {
            group: group.clone(),
            max,
        });
        let mut handles = Vec::with_capacity(items.count);
        // One copy of the settings and of the step's signature for every item.
        let config = self.config(step, options.isolated);
        let signature = signature(step);
        for index in 0..items.count {
            let call = self.build(
                step,
                signature.clone(),
                None,
                options.after.clone(),
                items.bindings(index),
                config.clone(),
            )?;
            let id = self.compiler.borrow_mut().add_item(call, &group, index)?;
            handles.push(self.submit(id, start_after.clone(), limit.clone()));
        }
        Ok(handles)
    }

    fn build(
        &self,
        step: &'static StepDef,
        signature: weft_core::compile::StepSignature,
        id: Option<String>,
        mut after: Vec<AfterRef>,
        arguments: Vec<(&'static str, ArgumentBinding)>,
        config: std::sync::Arc<weft_core::snapshot::StepConfig>,
    ) -> Result<weft_core::compile::StepCall> {
        if let Some((argument, _)) = arguments
            .iter()
            .find(|(_, binding)| matches!(binding, ArgumentBinding::Configured))
        {
            return Err(Error::msg(format!(
                "argument `{argument}` of step `{}` is left to the run configuration, which dynamic pipelines do not support; pass a value",
                step.name
            )));
        }
        // `after` may name any earlier invocation; one that does not exist (yet) would make
        // this one wait for nothing, or forever.
        if let Some(unknown) = after.iter().find(|upstream| {
            upstream.session.is_none_or(|session| session == self.id)
                && self.compiler.borrow().invocation(&upstream.id).is_none()
        }) {
            return Err(Error::msg(format!(
                "step `{}` cannot run after `{}`: no invocation of that id was made before this call",
                step.name, unknown.id
            )));
        }
        if let Some(last) = self.last_sync.borrow().clone() {
            after.push(AfterRef {
                session: Some(self.id),
                id: last,
            });
        }
        Ok(build_call(
            self.id, step, signature, id, after, arguments, config,
        )?)
    }

    /// The settings of a call of `step`.
    fn config(
        &self,
        step: &StepDef,
        isolated: bool,
    ) -> std::sync::Arc<weft_core::snapshot::StepConfig> {
        let mut config = self.defaults.for_step(step);
        config.isolated |= isolated;
        config.into()
    }

    fn start_after(&self, step: &StepDef, upstream: &[AfterRef]) -> Result<Vec<String>> {
        upstream
            .iter()
            .map(|upstream| {
                if upstream.session.is_some_and(|session| session != self.id) {
                    return Err(Error::msg(format!(
                        "step `{}` cannot start after `{}`: it belongs to another pipeline run",
                        step.name, upstream.id
                    )));
                }
                if self.compiler.borrow().invocation(&upstream.id).is_none() {
                    return Err(Error::msg(format!(
                        "step `{}` cannot start after `{}`: no invocation of that id was made before this call",
                        step.name, upstream.id
                    )));
                }
                Ok(upstream.id.clone())
            })
            .collect()
    }

    fn submit(&self, id: Arc<str>, start_after: Vec<String>, limit: Option<Limit>) -> Handle {
        let invocation = self.compiler.borrow().shared(&id).expect("just added");
        let slot = self.runtime.submit(invocation, start_after, limit);
        Handle {
            session: self.id,
            slot,
            runtime: self.runtime.clone(),
        }
    }
}

/// Checks map arguments, which make one set of bindings per invocation.
fn map_items(
    step: &str,
    arguments: Vec<(&'static str, MapArgument)>,
    product: bool,
) -> Result<MapItems> {
    if let Some((name, MapArgument::Invalid(reason))) = arguments
        .iter()
        .find(|(_, argument)| matches!(argument, MapArgument::Invalid(_)))
    {
        return Err(Error::msg(format!(
            "argument `{name}` of `{step}::map` cannot be mapped over: {reason}"
        )));
    }
    let mapped: Vec<(&str, usize)> = arguments
        .iter()
        .filter_map(|(name, argument)| match argument {
            MapArgument::Each(items) => Some((*name, items.len())),
            _ => None,
        })
        .collect();
    if mapped.is_empty() {
        return Err(Error::msg(format!(
            "`{step}::map` needs at least one argument to map over (a `Vec` of values, outputs or futures); every argument is `unmapped`"
        )));
    }
    let count = if product {
        mapped.iter().map(|(_, len)| len).product()
    } else {
        let (first, len) = mapped[0];
        if let Some((other, other_len)) = mapped.iter().find(|(_, l)| *l != len) {
            return Err(Error::msg(format!(
                "`{step}::map` zips its mapped arguments, which must have as many items each: `{first}` has {len}, `{other}` has {other_len} (use `{step}::product` for every combination)"
            )));
        }
        len
    };
    Ok(MapItems {
        arguments,
        product,
        count,
    })
}

/// The calls of a map, each made when its turn comes: a map of 100,000 items holds one set
/// of bindings at a time.
struct MapItems {
    arguments: Vec<(&'static str, MapArgument)>,
    product: bool,
    count: usize,
}

impl MapItems {
    /// The bindings of call `index`.
    fn bindings(&self, index: usize) -> Vec<(&'static str, ArgumentBinding)> {
        // In a product, the last mapped argument varies fastest.
        let mut rest = index;
        let mut positions = vec![0; self.arguments.len()];
        for (position, (_, argument)) in self.arguments.iter().enumerate().rev() {
            if let MapArgument::Each(values) = argument {
                positions[position] = if self.product {
                    let at = rest % values.len();
                    rest /= values.len();
                    at
                } else {
                    index
                };
            }
        }
        self.arguments
            .iter()
            .zip(&positions)
            .map(|((name, argument), &at)| {
                let binding = match argument {
                    MapArgument::Each(values) => values[at].clone(),
                    MapArgument::Whole(value) => value.clone(),
                    MapArgument::Invalid(_) => unreachable!("refused by map_items"),
                };
                (*name, binding)
            })
            .collect()
    }
}

/// An invocation of a dynamic pipeline, as the outputs of its call know it: three words,
/// since a map's caller holds one per item (its id lives in the slot).
#[doc(hidden)]
#[derive(Clone)]
pub struct Handle {
    pub(crate) session: u64,
    slot: Arc<Slot>,
    runtime: Runtime,
}

impl Handle {
    /// The invocation's id.
    pub(crate) fn id(&self) -> &Arc<str> {
        self.slot.invocation_id()
    }

    /// Waits until the invocation ended; its failure is the error (and counts as seen by the
    /// pipeline function, which may handle it).
    pub fn wait(&self) -> Result<()> {
        match self.slot.wait() {
            Resolution::Completed(_) => Ok(()),
            Resolution::Failed(failure) => {
                self.runtime.saw(&failure);
                Err(Error::new(*failure))
            }
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.slot.is_finished()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.slot.is_running()
    }

    /// The invocation handle (for steps without outputs, and for ordering).
    pub fn invocation(&self) -> Invocation {
        Invocation {
            session: self.session,
            id: self.id().clone(),
        }
    }

    pub(crate) fn artifacts(&self) -> &ArtifactStore {
        self.runtime.artifacts()
    }

    /// Where output `output` is stored, once the invocation completed.
    pub(crate) fn stored(&self, output: &str) -> Result<std::sync::Arc<StoredArtifact>> {
        match self.slot.wait() {
            Resolution::Completed(outputs) => outputs
                .iter()
                .find(|candidate| candidate.name == output)
                .map(|found| found.stored.clone())
                .ok_or_else(|| {
                    Error::msg(format!(
                        "invocation `{}` has no output `{output}`",
                        self.id()
                    ))
                }),
            Resolution::Failed(failure) => {
                self.runtime.saw(&failure);
                Err(Error::new(*failure))
            }
        }
    }
}

/// A step started with `step::submit(..)` in a dynamic pipeline.
///
/// `T` is the step's value (its output type, a tuple for several outputs, `()` for none);
/// `R` is what the call returns ([`Output<T>`], a tuple of outputs, or an [`Invocation`]).
/// Pass the future (or `&future`) to another step: it waits for it without blocking the
/// pipeline function. Or wait for it here: [`StepFuture::wait`], [`StepFuture::result`],
/// [`StepFuture::load`].
pub struct StepFuture<T, R = Output<T>> {
    submitted: std::result::Result<(Handle, R), String>,
    _value: PhantomData<fn() -> T>,
}

impl<T, R: Clone> Clone for StepFuture<T, R> {
    fn clone(&self) -> Self {
        Self {
            submitted: self.submitted.clone(),
            _value: PhantomData,
        }
    }
}

impl<T, R> std::fmt::Debug for StepFuture<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.submitted {
            Ok((handle, _)) => write!(f, "StepFuture({})", handle.id()),
            Err(error) => write!(f, "StepFuture(refused: {error})"),
        }
    }
}

impl<T, R: Clone> StepFuture<T, R> {
    #[doc(hidden)]
    pub fn submitted(outputs: R, handle: Handle) -> Self {
        Self {
            submitted: Ok((handle, outputs)),
            _value: PhantomData,
        }
    }

    #[doc(hidden)]
    pub fn refused(error: Error) -> Self {
        Self {
            submitted: Err(format!("{error:#}")),
            _value: PhantomData,
        }
    }

    /// Waits until the step ended; its failure is the error.
    pub fn wait(&self) -> Result<()> {
        match &self.submitted {
            Ok((handle, _)) => handle.wait(),
            Err(error) => Err(Error::msg(error.clone())),
        }
    }

    /// Waits until the step ended and returns its outputs.
    pub fn result(&self) -> Result<R> {
        self.wait()?;
        self.outputs()
    }

    /// The step's outputs at once, as they will be: pass them on as inputs, or load them
    /// (which waits). Reaches each output of a step with several.
    pub fn outputs(&self) -> Result<R> {
        match &self.submitted {
            Ok((_, outputs)) => Ok(outputs.clone()),
            Err(error) => Err(Error::msg(error.clone())),
        }
    }

    /// Whether the step's body is running now.
    pub fn is_running(&self) -> bool {
        matches!(&self.submitted, Ok((handle, _)) if handle.is_running())
    }

    /// Whether the step ended (or was never started).
    pub fn is_finished(&self) -> bool {
        match &self.submitted {
            Ok((handle, _)) => handle.is_finished(),
            Err(_) => true,
        }
    }

    /// The invocation id, if the step was started.
    pub fn invocation_id(&self) -> Option<&str> {
        self.submitted
            .as_ref()
            .ok()
            .map(|(handle, _)| &**handle.id())
    }
}

impl<T> StepFuture<T, Output<T>> {
    /// Waits until the step completed and loads its output.
    pub fn load(&self) -> Result<T> {
        self.result()?.load()
    }

    fn to_input(&self) -> InputRepr<T> {
        match &self.submitted {
            Ok((_, output)) => output.to_input(false),
            Err(error) => {
                InputRepr::Error(format!("comes from a step that was not started: {error}"))
            }
        }
    }
}

impl<T, R> After for StepFuture<T, R> {
    fn upstream(&self) -> AfterRef {
        match &self.submitted {
            Ok((handle, _)) => AfterRef {
                session: Some(handle.session),
                id: handle.id().to_string(),
            },
            Err(_) => AfterRef {
                session: Some(0),
                id: "<a step that was not started>".into(),
            },
        }
    }
}

impl<T> IntoInput<T> for &StepFuture<T, Output<T>> {
    fn into_input(self) -> Input<T> {
        Input {
            repr: self.to_input(),
        }
    }
}

impl<T> IntoInput<T> for StepFuture<T, Output<T>> {
    fn into_input(self) -> Input<T> {
        Input {
            repr: self.to_input(),
        }
    }
}

fn gather_futures<'a, T: 'a>(
    futures: impl ExactSizeIterator<Item = &'a StepFuture<T, Output<T>>>,
) -> InputRepr<Vec<T>> {
    let mut outputs = Vec::with_capacity(futures.len());
    for future in futures {
        match &future.submitted {
            Ok((_, output)) => outputs.push(output.clone()),
            Err(error) => {
                return InputRepr::Error(format!(
                    "comes from a step that was not started: {error}"
                ));
            }
        }
    }
    gather(outputs.iter().map(|output| (output, false)))
}

impl<T> IntoInput<Vec<T>> for Vec<StepFuture<T, Output<T>>> {
    fn into_input(self) -> Input<Vec<T>> {
        Input {
            repr: gather_futures(self.iter()),
        }
    }
}

impl<T> IntoInput<Vec<T>> for &Vec<StepFuture<T, Output<T>>> {
    fn into_input(self) -> Input<Vec<T>> {
        Input {
            repr: gather_futures(self.iter()),
        }
    }
}

impl<T> IntoInput<Vec<T>> for &[StepFuture<T, Output<T>>] {
    fn into_input(self) -> Input<Vec<T>> {
        Input {
            repr: gather_futures(self.iter()),
        }
    }
}

/// The invocations of one `step::map(..)` or `step::product(..)`, in item order.
pub struct MapResult<T, R = Output<T>> {
    futures: Vec<StepFuture<T, R>>,
}

impl<T, R: Clone> Clone for MapResult<T, R> {
    fn clone(&self) -> Self {
        Self {
            futures: self.futures.clone(),
        }
    }
}

impl<T, R> std::fmt::Debug for MapResult<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.futures).finish()
    }
}

impl<T, R: Clone> MapResult<T, R> {
    #[doc(hidden)]
    pub fn new(futures: Vec<StepFuture<T, R>>) -> Self {
        Self { futures }
    }

    /// How many invocations.
    pub fn len(&self) -> usize {
        self.futures.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.futures.is_empty()
    }

    /// The invocations, in item order.
    pub fn iter(&self) -> std::slice::Iter<'_, StepFuture<T, R>> {
        self.futures.iter()
    }

    /// The invocation of item `index`.
    pub fn get(&self, index: usize) -> Option<&StepFuture<T, R>> {
        self.futures.get(index)
    }

    /// Waits for every invocation; the first failure (in item order) is the error.
    pub fn wait(&self) -> Result<()> {
        let mut first = None;
        for future in &self.futures {
            if let Err(error) = future.wait() {
                first.get_or_insert(error);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The invocations, to use on their own.
    pub fn into_futures(self) -> Vec<StepFuture<T, R>> {
        self.futures
    }
}

impl<T> MapResult<T, Output<T>> {
    /// Waits for every invocation and loads every output, in item order.
    pub fn load(&self) -> Result<Vec<T>> {
        self.futures.iter().map(StepFuture::load).collect()
    }
}

impl<T, R> std::ops::Index<usize> for MapResult<T, R> {
    type Output = StepFuture<T, R>;

    fn index(&self, index: usize) -> &Self::Output {
        &self.futures[index]
    }
}

impl<'a, T, R> IntoIterator for &'a MapResult<T, R> {
    type Item = &'a StepFuture<T, R>;
    type IntoIter = std::slice::Iter<'a, StepFuture<T, R>>;

    fn into_iter(self) -> Self::IntoIter {
        self.futures.iter()
    }
}

impl<T> IntoInput<Vec<T>> for &MapResult<T, Output<T>> {
    fn into_input(self) -> Input<Vec<T>> {
        Input {
            repr: gather_futures(self.futures.iter()),
        }
    }
}

impl<T> IntoInput<Vec<T>> for MapResult<T, Output<T>> {
    fn into_input(self) -> Input<Vec<T>> {
        Input {
            repr: gather_futures(self.futures.iter()),
        }
    }
}

/// A value passed whole to every invocation of a `step::map(..)`: see [`unmapped`].
#[derive(Clone, Debug)]
pub struct Unmapped<I>(pub I);

/// Passes `value` whole to every invocation of a `step::map(..)` or `step::product(..)`,
/// instead of one item to each.
pub fn unmapped<I>(value: I) -> Unmapped<I> {
    Unmapped(value)
}

/// One argument of a map, split or whole.
#[doc(hidden)]
pub enum MapArgument {
    /// One item per invocation.
    Each(Vec<ArgumentBinding>),
    /// The same value for every invocation.
    Whole(ArgumentBinding),
    /// It cannot be mapped over: why.
    Invalid(String),
}

/// What a `step::map(..)` argument of type `T` accepts: a `Vec` of anything a step argument
/// of type `T` accepts (one item per invocation), the results of another map (item by item),
/// an output (or future) of a step that returns a `Vec<T>` (item by item: each invocation
/// loads its own item), or [`unmapped`]`(x)` (`x` whole, for every invocation).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be mapped over as a step argument of type `{T}`",
    label = "this argument expects items of type `{T}`",
    note = "map over a `Vec` of values, outputs or futures, or over the result of another map; pass one value to every invocation with `unmapped(x)`"
)]
pub trait MapArg<T> {
    #[doc(hidden)]
    fn into_map_argument(self) -> MapArgument;
}

impl<T, I: IntoInput<T>> MapArg<T> for Vec<I> {
    fn into_map_argument(self) -> MapArgument {
        MapArgument::Each(
            self.into_iter()
                .map(|item| item.into_input().into_binding())
                .collect(),
        )
    }
}

impl<'a, T, I> MapArg<T> for &'a Vec<I>
where
    &'a I: IntoInput<T>,
{
    fn into_map_argument(self) -> MapArgument {
        MapArgument::Each(
            self.iter()
                .map(|item| item.into_input().into_binding())
                .collect(),
        )
    }
}

impl<T> MapArg<T> for &MapResult<T, Output<T>> {
    fn into_map_argument(self) -> MapArgument {
        MapArgument::Each(
            self.futures
                .iter()
                .map(|future| future.into_input().into_binding())
                .collect(),
        )
    }
}

/// Maps over the items of a collection output: waits for it, reads how many items it has, and
/// gives each invocation one item (which it loads itself).
fn items_of<T>(output: &Output<Vec<T>>) -> MapArgument
where
    Vec<T>: weft_artifacts::Artifact,
    <Vec<T> as weft_artifacts::Artifact>::Materializer: weft_artifacts::ItemFormat<T>,
{
    let Some(placeholder) = output.dynamic_placeholder() else {
        return MapArgument::Invalid(
            "only an output of a step of this dynamic pipeline can be mapped over item by item"
                .into(),
        );
    };
    match output.item_count() {
        Ok(count) if count > u64::from(u32::MAX) => MapArgument::Invalid(format!(
            "the collection holds {count} items, more than a map runs ({})",
            u32::MAX
        )),
        Ok(count) => MapArgument::Each(
            (0..count as u32)
                .map(|index| ArgumentBinding::Item(placeholder.clone(), index))
                .collect(),
        ),
        Err(error) => MapArgument::Invalid(format!("{error:#}")),
    }
}

impl<T> MapArg<T> for &Output<Vec<T>>
where
    Vec<T>: weft_artifacts::Artifact,
    <Vec<T> as weft_artifacts::Artifact>::Materializer: weft_artifacts::ItemFormat<T>,
{
    fn into_map_argument(self) -> MapArgument {
        items_of(self)
    }
}

impl<T> MapArg<T> for &StepFuture<Vec<T>, Output<Vec<T>>>
where
    Vec<T>: weft_artifacts::Artifact,
    <Vec<T> as weft_artifacts::Artifact>::Materializer: weft_artifacts::ItemFormat<T>,
{
    fn into_map_argument(self) -> MapArgument {
        match self.outputs() {
            Ok(output) => items_of(&output),
            Err(error) => MapArgument::Invalid(format!("{error:#}")),
        }
    }
}

impl<T, I: IntoInput<T>> MapArg<T> for Unmapped<I> {
    fn into_map_argument(self) -> MapArgument {
        MapArgument::Whole(self.0.into_input().into_binding())
    }
}

/// The error of `step::submit(..)` or `step::map(..)` outside a dynamic pipeline.
#[doc(hidden)]
pub fn outside(step: &str, what: &str) -> Error {
    Error::msg(format!(
        "`{step}::{what}` runs steps concurrently, which only a dynamic pipeline does (`#[pipeline(dynamic)]`); call `{step}(..)` instead"
    ))
}

/// Loads a stored `T` (the loader of dynamic outputs).
#[doc(hidden)]
pub fn loader<T: weft_artifacts::Artifact>(
    store: &ArtifactStore,
    stored: &StoredArtifact,
) -> weft_artifacts::Result<T> {
    store.load(stored)
}
