//! Compiling a static pipeline: from recorded step calls to a validated [`Snapshot`].
//!
//! The pipeline function runs once in a compile context; each step call becomes a
//! [`StepCall`] handed to [`Compiler::add`], which allocates its invocation id. [`Compiler::finish`]
//! then applies configuration overrides and validates the whole plan before anything is
//! stored: unknown upstreams, missing inputs, cycles and empty pipelines are errors that name
//! the invocation. Both steps are O(invocations + edges).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::snapshot::{
    ExecutionMode, FORMAT_VERSION, InputSpec, Invocation, OutputSpec, Snapshot, StepConfig,
};

/// A step as the compiler sees it: its name, code hash and outputs.
#[derive(Clone, Debug)]
pub struct StepSignature {
    /// The step's name (the function name); invocation ids derive from it.
    pub name: String,
    /// Where the step is defined (`module::path::name`); snapshots refer to the step by it.
    pub path: Arc<str>,
    /// Hash of the step's code.
    pub code_hash: Arc<str>,
    /// Every argument name, in declaration order.
    pub arguments: Arc<[String]>,
    /// The step's outputs.
    pub outputs: Arc<[OutputSpec]>,
}

/// One step call recorded while the pipeline function runs.
#[derive(Clone, Debug)]
pub struct StepCall {
    /// The step being called.
    pub step: StepSignature,
    /// An explicit invocation id (`.id("x")`); it must be unique in the pipeline.
    pub id: Option<String>,
    /// Arguments passed as plain values.
    pub parameters: crate::parameters::Parameters,
    /// Arguments passed as artifacts.
    pub inputs: crate::parameters::ByName<InputSpec>,
    /// Arguments left to configuration (`weft::configured()`).
    pub configured: Vec<String>,
    /// Invocations that must finish first (`.after(..)`), by id; they may be defined later.
    pub after: Vec<String>,
    /// Per-invocation settings (shared by the items of a map).
    pub config: Arc<StepConfig>,
}

/// Settings for one invocation that come from a run configuration file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepOverride {
    /// Parameter values, by argument name.
    pub parameters: BTreeMap<String, Value>,
}

/// Why a pipeline does not compile. Every variant names the invocation at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An explicit invocation id is used twice.
    #[error(
        "invocation id `{id}` is used twice (the second time by a call of step `{step}`); ids given with `.id(..)` must be unique in a pipeline"
    )]
    DuplicateId {
        /// The repeated id.
        id: String,
        /// The step of the second call.
        step: String,
    },
    /// An explicit invocation id cannot be used.
    #[error(
        "invocation id `{id}` is invalid: use 1 to 128 letters, digits, `_`, `-` or `.`, not starting with `.`"
    )]
    InvalidId {
        /// The refused id.
        id: String,
    },
    /// An output's artifact name is empty, or longer than any metadata store keeps.
    #[error(
        "output `{output}` of invocation `{invocation}` would be saved as artifact `{name}`, {reason}"
    )]
    InvalidArtifactName {
        /// The invocation.
        invocation: String,
        /// The output.
        output: String,
        /// The artifact name (shortened in messages when long).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An invocation waits for an invocation that does not exist.
    #[error(
        "invocation `{invocation}` runs after `{upstream}`, but the pipeline has no invocation `{upstream}`"
    )]
    UnknownUpstream {
        /// The waiting invocation.
        invocation: String,
        /// The missing one.
        upstream: String,
    },
    /// An input reads an output that its invocation does not have.
    #[error(
        "input `{input}` of invocation `{invocation}` reads output `{output}` of `{upstream}`, which has no such output"
    )]
    UnknownOutput {
        /// The reading invocation.
        invocation: String,
        /// The input.
        input: String,
        /// The producing invocation.
        upstream: String,
        /// The missing output.
        output: String,
    },
    /// An argument has no value.
    #[error(
        "input `{input}` of invocation `{invocation}` has no value: pass it in the pipeline or set `[steps.{invocation}.parameters] {input} = ...` in the run configuration"
    )]
    MissingInput {
        /// The invocation.
        invocation: String,
        /// The argument without a value.
        input: String,
    },
    /// A step output from another pipeline (or another compilation) was passed in.
    #[error(
        "input `{input}` of invocation `{invocation}` is an output of another pipeline; outputs can only be passed to steps of the pipeline that produced them"
    )]
    ForeignOutput {
        /// The invocation.
        invocation: String,
        /// The input.
        input: String,
    },
    /// An argument's value cannot be used in a pipeline.
    #[error("argument `{argument}` of a call of step `{step}` {reason}")]
    InvalidArgument {
        /// The step called.
        step: String,
        /// The argument.
        argument: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// Invocations wait for each other in a circle.
    #[error("invocations form a cycle: {}", .path.join(" -> "))]
    Cycle {
        /// The invocations on the cycle, the first repeated at the end.
        path: Vec<String>,
    },
    /// The pipeline function called no step.
    #[error("pipeline `{pipeline}` is empty: its function called no step")]
    Empty {
        /// The pipeline.
        pipeline: String,
    },
    /// The configuration names an invocation that does not exist.
    #[error(
        "the run configuration sets `steps.{invocation}`, but the pipeline has no invocation `{invocation}` (it has: {known})"
    )]
    UnknownConfiguredInvocation {
        /// The unknown invocation.
        invocation: String,
        /// The invocations that exist, comma-separated.
        known: String,
    },
    /// The configuration sets an argument that the step does not have or that is an artifact.
    #[error(
        "the run configuration sets parameter `{parameter}` of invocation `{invocation}`, but {reason}"
    )]
    BadConfiguredParameter {
        /// The invocation.
        invocation: String,
        /// The parameter.
        parameter: String,
        /// Why it cannot be set.
        reason: String,
    },
}

/// Records step calls and turns them into a validated snapshot.
#[derive(Debug)]
pub struct Compiler {
    pipeline: String,
    /// Shared with a dynamic run's orchestrator, which schedules the same invocations: a map
    /// of 100,000 items keeps one copy of each.
    invocations: Vec<Arc<Invocation>>,
    arguments: Vec<Arc<[String]>>,
    /// Arguments left to configuration, by invocation position: only the few invocations
    /// that have some.
    configured: Vec<(usize, Vec<String>)>,
    index: HashMap<Arc<str>, usize>,
    /// Ids taken without an invocation of their own (a dynamic pipeline's map groups).
    reserved: std::collections::HashSet<String>,
    next_suffix: HashMap<String, u32>,
    first_error: Option<Error>,
}

impl Compiler {
    /// A compiler for pipeline `pipeline`.
    pub fn new(pipeline: impl Into<String>) -> Self {
        Self {
            pipeline: pipeline.into(),
            invocations: Vec::new(),
            arguments: Vec::new(),
            configured: Vec::new(),
            index: HashMap::new(),
            reserved: std::collections::HashSet::new(),
            next_suffix: HashMap::new(),
            first_error: None,
        }
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Records one call and returns its invocation id.
    ///
    /// An error here is also remembered: [`Compiler::finish`] reports it even if the pipeline
    /// function ignored it.
    pub fn add(&mut self, call: StepCall) -> Result<Arc<str>, Error> {
        let result = self.try_add(call);
        if let Err(error) = &result {
            self.first_error.get_or_insert_with(|| error.clone());
        }
        result
    }

    /// Remembers an error found outside the compiler (for example a foreign output), so that
    /// [`Compiler::finish`] reports it.
    pub fn record_error(&mut self, error: Error) {
        self.first_error.get_or_insert(error);
    }

    /// The invocation with id `id`, once added.
    pub fn invocation(&self, id: &str) -> Option<&Invocation> {
        self.index
            .get(id)
            .map(|&position| &*self.invocations[position])
    }

    /// The invocation with id `id`, once added, shared.
    pub fn shared(&self, id: &str) -> Option<Arc<Invocation>> {
        self.index
            .get(id)
            .map(|&position| self.invocations[position].clone())
    }

    /// Takes an invocation id for a group of invocations (a map in a dynamic pipeline): an
    /// explicit one, checked like any, or one allocated from the step's name. Its items are
    /// added with [`Compiler::add_item`].
    pub fn reserve(&mut self, step: &str, explicit: Option<String>) -> Result<String, Error> {
        let id = match explicit {
            Some(id) => {
                validate_id(&id)?;
                if self.taken(&id) {
                    return Err(Error::DuplicateId {
                        id,
                        step: step.to_owned(),
                    });
                }
                id
            }
            None => self.allocate_id(step),
        };
        self.reserved.insert(id.clone());
        Ok(id)
    }

    /// Records item `index` of group `group` (see [`Compiler::reserve`]): its id is
    /// `<group>:<index>`.
    pub fn add_item(
        &mut self,
        mut call: StepCall,
        group: &str,
        index: usize,
    ) -> Result<Arc<str>, Error> {
        call.id = None;
        let id = format!("{group}:{index}");
        let result = self.insert(call, id);
        if let Err(error) = &result {
            self.first_error.get_or_insert_with(|| error.clone());
        }
        result
    }

    fn taken(&self, id: &str) -> bool {
        self.index.contains_key(id) || self.reserved.contains(id)
    }

    fn try_add(&mut self, call: StepCall) -> Result<Arc<str>, Error> {
        let id = match &call.id {
            Some(id) => {
                validate_id(id)?;
                id.clone()
            }
            None => self.allocate_id(&call.step.name),
        };
        self.insert(call, id)
    }

    fn insert(&mut self, call: StepCall, id: String) -> Result<Arc<str>, Error> {
        if self.taken(&id) {
            return Err(Error::DuplicateId {
                id,
                step: call.step.name,
            });
        }
        for output in call.step.outputs.iter() {
            // Measured without building the name: this runs for every call of a map of
            // 100,000 items, and a derived name (`<pipeline>::<invocation>::<output>`) is
            // never empty.
            let fits = match &output.artifact_name {
                Some(name) => {
                    !name.trim().is_empty() && name.chars().count() <= crate::limits::NAME
                }
                None => {
                    let length = self.pipeline.chars().count()
                        + id.chars().count()
                        + output.name.chars().count()
                        + 4;
                    length <= crate::limits::NAME
                }
            };
            if !fits {
                check_artifact_name(
                    &output.artifact_name(&self.pipeline, &id),
                    &id,
                    &output.name,
                )?;
            }
        }
        for (input, spec) in &call.inputs {
            for output in spec.refs() {
                let Some(&upstream) = self.index.get(&*output.invocation) else {
                    return Err(Error::UnknownUpstream {
                        invocation: id,
                        upstream: output.invocation.to_string(),
                    });
                };
                if !self.invocations[upstream]
                    .outputs
                    .iter()
                    .any(|o| o.name == output.output)
                {
                    return Err(Error::UnknownOutput {
                        invocation: id,
                        input: input.to_string(),
                        upstream: output.invocation.to_string(),
                        output: output.output.to_string(),
                    });
                }
            }
        }
        let mut after = call.after;
        after.sort();
        after.dedup();
        // The ids are the upstream invocations' own (`after` may name one made later).
        let upstream: BTreeSet<Arc<str>> = call
            .inputs
            .values()
            .flat_map(|spec| spec.refs().iter().map(|output| output.invocation.clone()))
            .chain(
                after
                    .iter()
                    .map(|id| match self.index.get_key_value(id.as_str()) {
                        Some((shared, _)) => shared.clone(),
                        None => id.as_str().into(),
                    }),
            )
            .collect();
        // One allocation of the id, shared by the index, the invocation and the handles.
        let id: Arc<str> = id.into();
        self.index.insert(id.clone(), self.invocations.len());
        self.arguments.push(call.step.arguments);
        if !call.configured.is_empty() {
            self.configured
                .push((self.invocations.len(), call.configured));
        }
        let mut parameters = call.parameters;
        parameters.shrink_to_fit();
        let mut inputs = call.inputs;
        inputs.shrink_to_fit();
        // Consecutive calls mostly share their settings: one copy, encoded once per run.
        let config = match self.invocations.last() {
            Some(last) if last.config == call.config => Arc::clone(&last.config),
            _ => call.config,
        };
        let upstream = match self.invocations.last() {
            Some(last) if last.upstream.iter().eq(&upstream) => Arc::clone(&last.upstream),
            _ => upstream.into_iter().collect(),
        };
        self.invocations.push(Arc::new(Invocation {
            id: id.clone(),
            step: call.step.path,
            code_hash: call.step.code_hash,
            parameters,
            inputs,
            after,
            upstream,
            outputs: call.step.outputs,
            config,
        }));
        Ok(id)
    }

    /// The step name itself if unused, else `name_2`, `name_3`, ...: amortised O(1) because
    /// the next suffix to try is remembered per step.
    fn allocate_id(&mut self, step: &str) -> String {
        if !self.taken(step) {
            return step.to_owned();
        }
        let suffix = self.next_suffix.entry(step.to_owned()).or_insert(2);
        loop {
            let candidate = format!("{step}_{suffix}");
            *suffix += 1;
            if !self.index.contains_key(candidate.as_str()) && !self.reserved.contains(&candidate) {
                return candidate;
            }
        }
    }

    /// Applies `overrides`, validates the plan and returns the snapshot.
    pub fn finish(
        mut self,
        parameters: BTreeMap<String, Value>,
        execution_mode: ExecutionMode,
        overrides: &BTreeMap<String, StepOverride>,
    ) -> Result<Snapshot, Error> {
        if let Some(error) = self.first_error.take() {
            return Err(error);
        }
        if self.invocations.is_empty() {
            return Err(Error::Empty {
                pipeline: self.pipeline,
            });
        }
        self.apply_overrides(overrides)?;
        for (position, configured) in &self.configured {
            let invocation = &self.invocations[*position];
            if let Some(input) = configured
                .iter()
                .find(|name| !invocation.parameters.contains_key(name))
            {
                return Err(Error::MissingInput {
                    invocation: invocation.id.to_string(),
                    input: input.clone(),
                });
            }
        }
        for invocation in &self.invocations {
            if let Some(upstream) = invocation
                .after
                .iter()
                .find(|upstream| !self.index.contains_key(upstream.as_str()))
            {
                return Err(Error::UnknownUpstream {
                    invocation: invocation.id.to_string(),
                    upstream: upstream.clone(),
                });
            }
        }
        if let Some(path) = find_cycle(&self.invocations, &self.index) {
            return Err(Error::Cycle { path });
        }
        Ok(Snapshot {
            format_version: FORMAT_VERSION,
            pipeline: self.pipeline,
            parameters,
            execution_mode,
            invocations: self
                .invocations
                .into_iter()
                .map(|shared| Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone()))
                .collect(),
            dynamic: false,
        })
    }

    fn apply_overrides(&mut self, overrides: &BTreeMap<String, StepOverride>) -> Result<(), Error> {
        for (id, step_override) in overrides {
            let Some(&position) = self.index.get(id.as_str()) else {
                let known: Vec<&str> = self.invocations.iter().map(|i| &*i.id).collect();
                return Err(Error::UnknownConfiguredInvocation {
                    invocation: id.clone(),
                    known: known.join(", "),
                });
            };
            let invocation = Arc::make_mut(&mut self.invocations[position]);
            for (name, value) in &step_override.parameters {
                let bad = |reason: String| Error::BadConfiguredParameter {
                    invocation: id.clone(),
                    parameter: name.clone(),
                    reason,
                };
                if !self.arguments[position].contains(name) {
                    return Err(bad(format!(
                        "step `{}` has no argument `{name}` (it has: {})",
                        invocation
                            .step
                            .rsplit("::")
                            .next()
                            .unwrap_or(&invocation.step),
                        self.arguments[position].join(", ")
                    )));
                }
                if invocation.inputs.contains_key(name) {
                    return Err(bad("it is an artifact input in the pipeline".into()));
                }
                match invocation.parameters.get(name) {
                    Some(existing) if existing != value => {
                        return Err(bad(format!(
                            "the pipeline already passes {existing}; leave it to configuration with `weft::configured()`"
                        )));
                    }
                    _ => {
                        invocation.parameters.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Refuses an artifact name no metadata store could record, before anything runs (a store
/// refusing it would fail the run after its steps ran).
fn check_artifact_name(name: &str, invocation: &str, output: &str) -> Result<(), Error> {
    let length = name.chars().count();
    let reason = if name.trim().is_empty() {
        "which is empty: name the artifact with some text".to_owned()
    } else if length > crate::limits::NAME {
        format!(
            "which is {length} characters long; artifact names take at most {}",
            crate::limits::NAME
        )
    } else {
        return Ok(());
    };
    let shown: String = if length > 60 {
        format!("{}…", name.chars().take(60).collect::<String>())
    } else {
        name.to_owned()
    };
    Err(Error::InvalidArtifactName {
        invocation: invocation.to_owned(),
        output: output.to_owned(),
        name: shown,
        reason,
    })
}

fn validate_id(id: &str) -> Result<(), Error> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidId { id: id.to_owned() })
    }
}

/// Finds a cycle with Kahn's algorithm; if one exists, walks it from a remaining node.
fn find_cycle(
    invocations: &[Arc<Invocation>],
    index: &HashMap<Arc<str>, usize>,
) -> Option<Vec<String>> {
    let upstream: Vec<Vec<usize>> = invocations
        .iter()
        .map(|invocation| invocation.upstream.iter().map(|id| index[&**id]).collect())
        .collect();
    let mut downstream = vec![Vec::new(); invocations.len()];
    for (node, ups) in upstream.iter().enumerate() {
        for &up in ups {
            downstream[up].push(node);
        }
    }
    let mut waiting: Vec<usize> = upstream.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..invocations.len())
        .filter(|&n| waiting[n] == 0)
        .collect();
    let mut done = 0;
    while let Some(node) = ready.pop() {
        done += 1;
        for &next in &downstream[node] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(next);
            }
        }
    }
    if done == invocations.len() {
        return None;
    }
    // Every remaining node waits on another remaining node, so following remaining upstreams
    // from any of them must revisit a node: that loop is the cycle.
    let start = (0..invocations.len()).find(|&n| waiting[n] > 0)?;
    let mut position_in_path = HashMap::new();
    let mut path = Vec::new();
    let mut node = start;
    loop {
        if let Some(&at) = position_in_path.get(&node) {
            // The walk went against the edges; reverse it to read in execution order and start
            // at the earliest invocation so the message is stable.
            let mut cycle: Vec<usize> = path[at..].to_vec();
            cycle.reverse();
            let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
            cycle.rotate_left(first);
            cycle.push(cycle[0]);
            return Some(
                cycle
                    .into_iter()
                    .map(|n| invocations[n].id.to_string())
                    .collect(),
            );
        }
        position_in_path.insert(node, path.len());
        path.push(node);
        node = *upstream[node].iter().find(|&&up| waiting[up] > 0)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::OutputRef;

    fn step(name: &str, arguments: &[&str]) -> StepSignature {
        StepSignature {
            name: name.into(),
            path: format!("tests::{name}").into(),
            code_hash: "hash".into(),
            arguments: arguments.iter().map(|a| a.to_string()).collect(),
            outputs: vec![OutputSpec {
                name: "output".into(),
                artifact_name: None,
                data_type: "u64".into(),
                materializer: "weft.json".into(),
                materializer_version: 1,
                artifact_type: crate::artifact::ArtifactType::Data,
            }]
            .into(),
        }
    }

    fn call(name: &str) -> StepCall {
        StepCall {
            step: step(name, &["x"]),
            id: None,
            parameters: Default::default(),
            inputs: Default::default(),
            configured: Vec::new(),
            after: Vec::new(),
            config: StepConfig::default().into(),
        }
    }

    fn reads(mut call: StepCall, upstream: &str) -> StepCall {
        call.inputs.insert(
            "x",
            InputSpec::Artifact(OutputRef {
                invocation: upstream.into(),
                output: "output".into(),
            }),
        );
        call
    }

    fn finish(compiler: Compiler) -> Result<Snapshot, Error> {
        compiler.finish(BTreeMap::new(), ExecutionMode::default(), &BTreeMap::new())
    }

    #[test]
    fn repeated_calls_get_numbered_ids() {
        let mut compiler = Compiler::new("p");
        let ids: Vec<String> = (0..3)
            .map(|_| compiler.add(call("train")).unwrap().to_string())
            .collect();
        assert_eq!(ids, ["train", "train_2", "train_3"]);
        let mut explicit = call("train");
        explicit.id = Some("train_4".into());
        compiler.add(explicit).unwrap();
        assert_eq!(&*compiler.add(call("train")).unwrap(), "train_5");
    }

    #[test]
    fn groups_take_an_id_and_number_their_items() {
        let mut compiler = Compiler::new("p");
        compiler.add(call("train")).unwrap();
        let group = compiler.reserve("train", None).unwrap();
        assert_eq!(group, "train_2");
        let items: Vec<String> = (0..2)
            .map(|index| {
                compiler
                    .add_item(call("train"), &group, index)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(items, ["train_2:0", "train_2:1"]);
        assert_eq!(&*compiler.add(call("train")).unwrap(), "train_3");
        assert!(compiler.invocation("train_2:1").is_some());
        assert!(
            compiler.invocation("train_2").is_none(),
            "a group is no invocation"
        );
        assert!(matches!(
            compiler.reserve("x", Some("train_2".into())),
            Err(Error::DuplicateId { .. })
        ));
        assert!(matches!(
            compiler.reserve("x", Some("bad:id".into())),
            Err(Error::InvalidId { .. })
        ));
    }

    #[test]
    fn duplicate_explicit_id_names_it() {
        let mut compiler = Compiler::new("p");
        compiler.add(call("load")).unwrap();
        let mut again = call("split");
        again.id = Some("load".into());
        let error = compiler.add(again).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invocation id `load` is used twice (the second time by a call of step `split`); ids given with `.id(..)` must be unique in a pipeline"
        );
        // Remembered even if the pipeline function ignored it.
        assert_eq!(finish(compiler).unwrap_err(), error);
    }

    #[test]
    fn invalid_explicit_ids_are_refused() {
        for id in ["", "a/b", "../x", ".hidden", &"x".repeat(129)] {
            let mut compiler = Compiler::new("p");
            let mut bad = call("load");
            bad.id = Some(id.into());
            assert!(
                matches!(compiler.add(bad), Err(Error::InvalidId { .. })),
                "{id}"
            );
        }
    }

    #[test]
    fn artifact_names_no_store_keeps_are_refused_before_anything_runs() {
        let named = |name: &str| {
            let mut call = call("save");
            Arc::make_mut(&mut call.step.outputs)[0].artifact_name = Some(name.into());
            call
        };
        let mut compiler = Compiler::new("p");
        let error = compiler.add(named("")).unwrap_err().to_string();
        assert_eq!(
            error,
            "output `output` of invocation `save` would be saved as artifact ``, which is empty: name the artifact with some text"
        );
        let long = "m".repeat(crate::limits::NAME + 1);
        let error = compiler.add(named(&long)).unwrap_err().to_string();
        assert!(
            error.contains("which is 513 characters long; artifact names take at most 512"),
            "{error}"
        );
        assert!(
            compiler
                .add(named(&"m".repeat(crate::limits::NAME)))
                .is_ok()
        );
        // A derived name counts too: `<pipeline>::<invocation>::<output>`.
        let mut compiler = Compiler::new("p".repeat(crate::limits::NAME));
        assert!(matches!(
            compiler.add(call("save")),
            Err(Error::InvalidArtifactName { .. })
        ));
    }

    #[test]
    fn empty_pipeline_is_an_error() {
        assert_eq!(
            finish(Compiler::new("nothing")).unwrap_err().to_string(),
            "pipeline `nothing` is empty: its function called no step"
        );
    }

    #[test]
    fn upstream_edges_combine_data_and_after() {
        let mut compiler = Compiler::new("p");
        compiler.add(call("a")).unwrap();
        compiler.add(call("b")).unwrap();
        let mut c = reads(call("c"), "b");
        c.after = vec!["a".into(), "b".into(), "a".into()];
        compiler.add(c).unwrap();
        let snapshot = finish(compiler).unwrap();
        let c = snapshot.invocation("c").unwrap();
        assert_eq!(*c.upstream, ["a".into(), "b".into()]);
        assert_eq!(c.after, ["a", "b"]);
    }

    #[test]
    fn cycle_through_after_is_reported_with_its_path() {
        let mut compiler = Compiler::new("p");
        let mut a = call("a");
        a.after = vec!["c".into()];
        compiler.add(a).unwrap();
        compiler.add(reads(call("b"), "a")).unwrap();
        compiler.add(reads(call("c"), "b")).unwrap();
        compiler.add(call("free")).unwrap();
        let error = finish(compiler).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invocations form a cycle: a -> b -> c -> a"
        );
    }

    #[test]
    fn self_cycle_is_reported() {
        let mut compiler = Compiler::new("p");
        let mut a = call("a");
        a.after = vec!["a".into()];
        compiler.add(a).unwrap();
        assert_eq!(
            finish(compiler).unwrap_err().to_string(),
            "invocations form a cycle: a -> a"
        );
    }

    #[test]
    fn unknown_after_is_reported() {
        let mut compiler = Compiler::new("p");
        let mut a = call("a");
        a.after = vec!["ghost".into()];
        compiler.add(a).unwrap();
        assert_eq!(
            finish(compiler).unwrap_err(),
            Error::UnknownUpstream {
                invocation: "a".into(),
                upstream: "ghost".into()
            }
        );
    }

    #[test]
    fn configured_inputs_must_be_set() {
        let mut compiler = Compiler::new("p");
        let mut a = call("train");
        a.configured = vec!["x".into()];
        compiler.add(a).unwrap();
        let error = finish(compiler).unwrap_err();
        assert_eq!(
            error,
            Error::MissingInput {
                invocation: "train".into(),
                input: "x".into()
            }
        );
        assert!(
            error
                .to_string()
                .contains("[steps.train.parameters] x = ...")
        );
    }

    #[test]
    fn overrides_fill_configured_inputs_and_refuse_conflicts() {
        let overrides = |value: i64| {
            BTreeMap::from([(
                "train".to_string(),
                StepOverride {
                    parameters: BTreeMap::from([("x".to_string(), value.into())]),
                },
            )])
        };
        let mut compiler = Compiler::new("p");
        let mut a = call("train");
        a.configured = vec!["x".into()];
        compiler.add(a).unwrap();
        let snapshot = compiler
            .finish(BTreeMap::new(), ExecutionMode::default(), &overrides(3))
            .unwrap();
        assert_eq!(snapshot.invocations[0].parameters["x"], 3);

        let mut compiler = Compiler::new("p");
        let mut a = call("train");
        a.parameters.insert("x", 1.into());
        compiler.add(a).unwrap();
        let error = compiler
            .finish(BTreeMap::new(), ExecutionMode::default(), &overrides(2))
            .unwrap_err();
        assert!(error.to_string().contains("already passes 1"), "{error}");

        let mut compiler = Compiler::new("p");
        compiler.add(call("load")).unwrap();
        let error = compiler
            .finish(BTreeMap::new(), ExecutionMode::default(), &overrides(2))
            .unwrap_err();
        assert!(
            matches!(error, Error::UnknownConfiguredInvocation { .. }),
            "{error}"
        );
    }

    #[test]
    fn snapshot_id_is_stable_and_content_addressed() {
        let build = |param: i64| {
            let mut compiler = Compiler::new("p");
            let mut a = call("a");
            a.parameters.insert("x", param.into());
            compiler.add(a).unwrap();
            finish(compiler).unwrap()
        };
        assert_eq!(build(1).id(), build(1).id());
        assert_ne!(build(1).id(), build(2).id());
        assert_eq!(build(1).id().as_str().len(), 64);
    }

    #[test]
    fn a_snapshot_is_encoded_as_its_json_value_is() {
        // Snapshot ids must not change with how the encoding is produced.
        let mut compiler = Compiler::new("p");
        let mut first = call("a");
        first.parameters.insert("lr", 0.1.into());
        first.parameters.insert("name", "x \"y\"".into());
        compiler.add(first).unwrap();
        let mut second = reads(call("b"), "a");
        second.after = vec!["a".into()];
        compiler.add(second).unwrap();
        let snapshot = compiler
            .finish(
                [("epochs".to_owned(), 3.into())].into(),
                ExecutionMode::FailFast,
                &BTreeMap::new(),
            )
            .unwrap();
        let through_value = crate::canonical::to_string(&serde_json::to_value(&snapshot).unwrap());
        assert_eq!(
            String::from_utf8(snapshot.encode().1).unwrap(),
            through_value
        );
    }

    #[test]
    fn topological_order_respects_after_edges_to_later_calls() {
        let mut compiler = Compiler::new("p");
        let mut a = call("a");
        a.after = vec!["c".into()];
        compiler.add(a).unwrap();
        compiler.add(call("b")).unwrap();
        compiler.add(call("c")).unwrap();
        let snapshot = finish(compiler).unwrap();
        let order: Vec<&str> = snapshot
            .topological_order()
            .iter()
            .map(|&i| &*snapshot.invocations[i].id)
            .collect();
        assert_eq!(order, ["b", "c", "a"]);
    }

    #[test]
    fn compiling_ten_thousand_invocations_is_linear() {
        let mut compiler = Compiler::new("p");
        let mut previous = compiler.add(call("step")).unwrap();
        for _ in 1..10_000 {
            previous = compiler.add(reads(call("step"), &previous)).unwrap();
        }
        let snapshot = finish(compiler).unwrap();
        assert_eq!(snapshot.invocations.len(), 10_000);
        assert_eq!(&*snapshot.invocations[9_999].id, "step_10000");
    }
}
