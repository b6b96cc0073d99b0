//! The snapshot: the compiled, immutable plan of a static pipeline.
//!
//! A snapshot is stored before its run starts and never changes. Its id is the BLAKE3 hash of
//! its canonical JSON encoding, so the same plan is stored once however often it runs. The
//! encoding carries [`FORMAT_VERSION`]; readers refuse versions they do not know.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical;
use crate::id::{ArtifactVersionId, SnapshotId};
use crate::policy::{CachePolicy, RetryPolicy};

/// The version of the snapshot encoding written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// The compiled plan of one static pipeline execution.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// Version of this encoding ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// Name of the pipeline.
    pub pipeline: String,
    /// The pipeline's parameters, after defaults and configuration were applied.
    pub parameters: BTreeMap<String, Value>,
    /// What happens to the rest of the run when a step fails.
    pub execution_mode: ExecutionMode,
    /// Every invocation, in the order the pipeline function made them. Empty for a dynamic
    /// pipeline, whose invocations are made while it runs.
    pub invocations: Vec<Invocation>,
    /// Whether the pipeline is dynamic: its function runs at run time, and this snapshot only
    /// records what it was called with (so the run can be resumed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic: bool,
}

impl Snapshot {
    /// The content address of this snapshot.
    pub fn id(&self) -> SnapshotId {
        self.encode().0
    }

    /// The content address of this snapshot and the canonical encoding it is the hash of,
    /// for storing both without encoding twice.
    pub fn encode(&self) -> (SnapshotId, Vec<u8>) {
        let bytes = canonical::to_vec(self).expect("a snapshot is plain JSON data");
        (SnapshotId::from_hex(canonical::blake3_hex(&bytes)), bytes)
    }

    /// The invocation with id `id`.
    pub fn invocation(&self, id: &str) -> Option<&Invocation> {
        self.invocations
            .iter()
            .find(|invocation| &*invocation.id == id)
    }

    /// Positions of the invocations in an order where each comes after everything it waits
    /// for; among independent invocations, call order is kept. Invocations on a cycle (which
    /// a compiled snapshot never has) come last.
    pub fn topological_order(&self) -> Vec<usize> {
        topological_order(
            self.invocations
                .iter()
                .map(|invocation| (&*invocation.id, &invocation.upstream[..])),
        )
    }
}

/// What a snapshot says about the shape of its run, read without each invocation's inputs,
/// outputs and settings: what a view of a run needs, from a plan of thousands of invocations
/// whose settings make up most of its bytes.
#[derive(Clone, PartialEq, Debug, Deserialize)]
pub struct Outline {
    /// Name of the pipeline.
    pub pipeline: String,
    /// The pipeline's parameters.
    pub parameters: BTreeMap<String, Value>,
    /// What happens to the rest of the run when a step fails.
    pub execution_mode: ExecutionMode,
    /// Every invocation, in the order the pipeline function made them.
    pub invocations: Vec<InvocationOutline>,
    /// Whether the pipeline is dynamic.
    #[serde(default)]
    pub dynamic: bool,
}

/// An invocation of an [`Outline`].
#[derive(Clone, PartialEq, Debug, Deserialize)]
pub struct InvocationOutline {
    /// Its id.
    pub id: String,
    /// The step it calls.
    pub step: String,
    /// Plain values passed to the step.
    pub parameters: crate::parameters::Parameters,
    /// Every invocation it waits for.
    pub upstream: Vec<String>,
}

impl Outline {
    /// Positions of the invocations in the order of [`Snapshot::topological_order`].
    pub fn topological_order(&self) -> Vec<usize> {
        topological_order(
            self.invocations
                .iter()
                .map(|invocation| (&*invocation.id, invocation.upstream.as_slice())),
        )
    }
}

/// Positions of `(id, upstream)` nodes where each comes after everything it waits for; among
/// independent nodes, the given order is kept; nodes on a cycle come last.
fn topological_order<'a, Id: AsRef<str> + 'a>(
    nodes: impl Iterator<Item = (&'a str, &'a [Id])>,
) -> Vec<usize> {
    let nodes: Vec<_> = nodes.collect();
    let position: std::collections::HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut waiting: Vec<usize> = nodes.iter().map(|(_, upstream)| upstream.len()).collect();
    let mut downstream = vec![Vec::new(); nodes.len()];
    for (node, (_, upstream)) in nodes.iter().enumerate() {
        for upstream in *upstream {
            if let Some(&up) = position.get(upstream.as_ref()) {
                downstream[up].push(node);
            } else {
                waiting[node] -= 1;
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..nodes.len()).filter(|&n| waiting[n] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(node) = ready.pop_first() {
        order.push(node);
        for &next in &downstream[node] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.insert(next);
            }
        }
    }
    let placed: std::collections::HashSet<usize> = order.iter().copied().collect();
    order.extend((0..nodes.len()).filter(|n| !placed.contains(n)));
    order
}

/// One call of a step inside a pipeline.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Invocation {
    /// Unique in its pipeline: the step name, `name_2`, `name_3`, ... or an explicit id.
    pub id: std::sync::Arc<str>,
    /// The step this invocation calls, as `module::path::name` (shared by every call of the
    /// step a signature was made for: every item of a map).
    pub step: std::sync::Arc<str>,
    /// Hash of the step function's code, computed by `#[step]` from the tokens of its body.
    pub code_hash: std::sync::Arc<str>,
    /// Plain values passed to the step, by argument name.
    pub parameters: crate::parameters::Parameters,
    /// Artifacts passed to the step, by argument name.
    pub inputs: crate::parameters::ByName<InputSpec>,
    /// Invocations that must finish before this one starts, without passing data.
    pub after: Vec<String>,
    /// Every invocation this one waits for (data inputs and `after`), sorted, without repeats
    /// (each id shared with its invocation, the list shared by consecutive invocations that
    /// wait for the same: every item of a map over one collection).
    pub upstream: std::sync::Arc<[std::sync::Arc<str>]>,
    /// What the step returns (shared like `step`).
    pub outputs: std::sync::Arc<[OutputSpec]>,
    /// Per-invocation settings, shared: every item of a map has the same.
    pub config: std::sync::Arc<StepConfig>,
}

/// Where an artifact input comes from.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputSpec {
    /// One output of an upstream invocation of the same run.
    Artifact(OutputRef),
    /// Several outputs gathered into one input (fan-in), in this order.
    Artifacts {
        /// The outputs, in the order the step receives them.
        items: Vec<OutputRef>,
    },
    /// An artifact version that exists already, outside this run.
    External {
        /// The version passed in.
        artifact_version: ArtifactVersionId,
    },
    /// One item of an upstream output that is a collection (a map over it).
    Item {
        /// The collection.
        output: OutputRef,
        /// The item's position in it.
        index: u32,
    },
}

impl InputSpec {
    /// The upstream outputs this input reads, if any.
    pub fn refs(&self) -> &[OutputRef] {
        match self {
            InputSpec::Artifact(output) => std::slice::from_ref(output),
            InputSpec::Artifacts { items } => items,
            InputSpec::External { .. } => &[],
            InputSpec::Item { output, .. } => std::slice::from_ref(output),
        }
    }
}

/// One named output of one invocation. Neither name is a copy when the reference is made by
/// a pipeline: the id is the invocation's own, the output's name the step's (a fan-in over
/// 100,000 outputs holds 100,000 references).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct OutputRef {
    /// The invocation that produces it.
    pub invocation: std::sync::Arc<str>,
    /// The output's name.
    pub output: std::borrow::Cow<'static, str>,
}

/// What one output of a step is and how it is stored.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The output's name (`output` for a single unnamed output).
    pub name: String,
    /// A custom artifact name, instead of `<pipeline>::<invocation>::<output>`.
    pub artifact_name: Option<String>,
    /// The Rust type of the value.
    pub data_type: String,
    /// Id of the materializer that stores it.
    pub materializer: String,
    /// Version of that materializer's format.
    pub materializer_version: u32,
    /// The kind of artifact (data, model, ...).
    pub artifact_type: crate::artifact::ArtifactType,
}

impl OutputSpec {
    /// The artifact name this output is saved under in `pipeline` by `invocation`.
    pub fn artifact_name(&self, pipeline: &str, invocation: &str) -> String {
        match &self.artifact_name {
            Some(name) => name.clone(),
            None => format!("{pipeline}::{invocation}::{}", self.name),
        }
    }
}

/// Per-invocation settings that are part of the plan, resolved from the step, the pipeline
/// and the run.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct StepConfig {
    /// How the invocation is cached.
    #[serde(default)]
    pub cache: CachePolicy,
    /// How the invocation is retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How long one attempt may run, in milliseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::policy::millis"
    )]
    pub timeout: Option<std::time::Duration>,
    /// Whether the invocation runs in a process of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
    /// Extra environment variables of an isolated invocation's process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Run the isolated invocation as a Slurm job with these resources, instead of a local
    /// process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
    /// Free-form settings, kept for inspection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

/// What a Slurm job hosting one invocation asks for (`sbatch` options).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct SlurmJob {
    /// `--cpus-per-task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem`, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// `--gres=gpu:N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// `--time`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<u64>,
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// What happens to the rest of a run when a step fails.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// Only steps downstream of the failure are skipped; everything else still runs.
    #[default]
    ContinueOnFailure,
    /// No new step starts after a failure; running steps finish.
    StopOnFailure,
    /// No new step starts after a failure, and running steps are stopped.
    FailFast,
}

impl ExecutionMode {
    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::ContinueOnFailure => "continue_on_failure",
            ExecutionMode::StopOnFailure => "stop_on_failure",
            ExecutionMode::FailFast => "fail_fast",
        }
    }
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no execution mode.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown execution mode `{0}` (expected continue_on_failure, stop_on_failure or fail_fast)"
)]
pub struct ParseExecutionModeError(pub String);

impl FromStr for ExecutionMode {
    type Err = ParseExecutionModeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.replace('-', "_").as_str() {
            "continue_on_failure" => Ok(ExecutionMode::ContinueOnFailure),
            "stop_on_failure" => Ok(ExecutionMode::StopOnFailure),
            "fail_fast" => Ok(ExecutionMode::FailFast),
            _ => Err(ParseExecutionModeError(text.to_owned())),
        }
    }
}
