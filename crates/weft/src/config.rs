//! Where the stores are, and run configuration files.
//!
//! Store discovery, the same for the `weft` CLI and every pipeline binary:
//! 1. `WEFT_STORE` (metadata store URL) and `WEFT_ARTIFACTS` (artifact store URL), each on
//!    its own; relative paths in them are taken from the current directory;
//! 2. otherwise the nearest folder, from the current one upwards, that holds a `weft.toml`
//!    or a `.weft/` folder is the project root: the stack chosen (`--stack`, else
//!    `WEFT_STACK`, else `weft.toml`'s `stack`) may name the stores, else `weft.toml`'s
//!    `[store]` table may (relative paths taken from the root);
//! 3. otherwise `sqlite://.weft/weft.db` and `file://.weft/artifacts` under the root (the
//!    current directory if none was found), created on first use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_core::ExecutionMode;
use weft_core::compile::StepOverride;
use weft_core::policy::CacheSettings;

pub use weft_store::redact_url;

use crate::{Error, Result};

/// The project file, `weft.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    #[serde(default)]
    store: StoreSection,
    /// The active stack.
    stack: Option<String>,
    #[serde(default)]
    stacks: BTreeMap<String, Stack>,
    #[serde(default)]
    server: ServerSettings,
}

/// How `weft server` listens, from the `[server]` table of `weft.toml` (flags override it):
///
/// ```toml
/// [server]
/// address = "0.0.0.0:8765"            # default 127.0.0.1:8765
/// tls_certificate = "certs/server.pem" # both, to speak HTTPS; relative to the project
/// tls_key = "certs/server.key"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The address to listen on.
    pub address: Option<String>,
    /// A PEM certificate chain.
    pub tls_certificate: Option<PathBuf>,
    /// Its PEM private key.
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    metadata: Option<String>,
    artifacts: Option<String>,
}

/// A named set of components to run pipelines on, from `weft.toml`:
///
/// ```toml
/// stack = "laptop"                     # the active stack (`weft stack set`)
///
/// [stacks.laptop]
/// orchestrator = "local"               # local (default) | local_process | slurm
/// metadata = "sqlite://.weft/weft.db"  # default: the [store] table, then .weft/
/// artifacts = "file://.weft/artifacts"
/// step_operator = "process"            # optional: process | slurm
///
/// [stacks.laptop.steps.train]          # per step, by step name
/// step_operator = "slurm"
/// env = { OMP_NUM_THREADS = "4" }
/// resources = { cpus = 4, memory = "8 GiB", gpus = 1, time_limit = "2h", partition = "gpu" }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    /// What runs the pipeline.
    #[serde(default)]
    pub orchestrator: OrchestratorKind,
    /// Metadata store URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Artifact store URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
    /// What runs isolated steps, unless a step says otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_operator: Option<StepOperatorKind>,
    /// Per-step settings, by step name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, StepStackSettings>,
}

/// What runs a pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrchestratorKind {
    /// Threads of the pipeline's own process.
    #[default]
    Local,
    /// A child process per step.
    LocalProcess,
    /// Slurm jobs.
    Slurm,
}

impl std::fmt::Display for OrchestratorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrchestratorKind::Local => "local",
            OrchestratorKind::LocalProcess => "local_process",
            OrchestratorKind::Slurm => "slurm",
        })
    }
}

/// What runs one step in an environment of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOperatorKind {
    /// A child process.
    Process,
    /// A Slurm job.
    Slurm,
}

impl std::fmt::Display for StepOperatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepOperatorKind::Process => "process",
            StepOperatorKind::Slurm => "slurm",
        })
    }
}

/// A stack's settings for one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepStackSettings {
    /// What runs the step in an environment of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_operator: Option<StepOperatorKind>,
    /// What it needs.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// What a step needs where it runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory, in bytes (written `"8 GiB"`, `"512 MB"`, `"1024"`).
    #[serde(default, with = "memory_size", skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// The longest it may run (written `"2h"`, `"30m"`).
    #[serde(default, with = "time_limit", skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<std::time::Duration>,
    /// A scheduler partition or queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// A scheduler account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Resources {
    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Stack {
    /// Checks that the stack's settings fit together: what cannot apply is named, with the
    /// key that asks for it.
    pub fn check(&self, name: &str) -> Result<()> {
        for (step, settings) in &self.steps {
            if !settings.resources.is_empty() && self.slurm_job(step).is_none() {
                return Err(Error::msg(format!(
                    "stack `{name}` sets `stacks.{name}.steps.{step}.resources`, but only Slurm jobs take resources: give the step `step_operator = \"slurm\"`"
                )));
            }
            if !settings.env.is_empty() && !self.isolates(step) {
                return Err(Error::msg(format!(
                    "stack `{name}` sets `stacks.{name}.steps.{step}.env`, but the step runs inline, in the pipeline's own process, where an environment of its own cannot be given: isolate it (`step_operator = \"process\"`)"
                )));
            }
        }
        Ok(())
    }

    /// Whether the stack runs step `step` in a process of its own.
    pub fn isolates(&self, step: &str) -> bool {
        self.orchestrator != OrchestratorKind::Local
            || self.step_operator.is_some()
            || self
                .steps
                .get(step)
                .is_some_and(|settings| settings.step_operator.is_some())
    }

    /// The Slurm job step `step` runs as, if the stack sends it to Slurm: every step on
    /// the `slurm` orchestrator unless a step operator says otherwise, else the steps of a
    /// `slurm` step operator.
    pub fn slurm_job(&self, step: &str) -> Option<weft_core::snapshot::SlurmJob> {
        let settings = self.steps.get(step);
        let operator = settings
            .and_then(|settings| settings.step_operator)
            .or(self.step_operator);
        let to_slurm = match operator {
            Some(operator) => operator == StepOperatorKind::Slurm,
            None => self.orchestrator == OrchestratorKind::Slurm,
        };
        if !to_slurm {
            return None;
        }
        let resources = settings.map(|s| s.resources.clone()).unwrap_or_default();
        Some(weft_core::snapshot::SlurmJob {
            cpus: resources.cpus,
            memory: resources.memory,
            gpus: resources.gpus,
            time_limit: resources.time_limit.map(|limit| limit.as_secs().max(1)),
            partition: resources.partition,
            account: resources.account,
        })
    }

    /// The extra environment of step `step`.
    pub fn env(&self, step: &str) -> BTreeMap<String, String> {
        self.steps
            .get(step)
            .map(|settings| settings.env.clone())
            .unwrap_or_default()
    }
}

/// `"2h"`, `"30m"` (or seconds) as a duration.
mod time_limit {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => {
                serializer.serialize_str(&humantime::format_duration(*value).to_string())
            }
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Seconds(u64),
            Text(String),
        }
        match Option::<Written>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Written::Seconds(seconds)) => Ok(Some(Duration::from_secs(seconds))),
            Some(Written::Text(text)) => weft_core::policy::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `"8 GiB"`, `"512MB"`, `"1024"` (bytes) as a number of bytes.
mod memory_size {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn parse(text: &str) -> Result<u64, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| {
            format!("`{text}` is not a memory size such as \"8 GiB\" or \"512 MB\"")
        })?;
        let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "m" | "mb" => 1e6,
            "g" | "gb" => 1e9,
            "t" | "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "unknown memory unit `{other}` in `{text}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
                ));
            }
        };
        Ok((number * factor).round() as u64)
    }

    pub(super) fn serialize<S: Serializer>(
        value: &Option<u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_str(&format!("{bytes} B")),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Option::<Written>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Written::Bytes(bytes)) => Ok(Some(bytes)),
            Some(Written::Text(text)) => parse(&text).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// The most steps a run may run at once. Each running step holds a thread (and an isolated
/// one a process); past a few thousand a machine runs out of them long before any pipeline
/// gains from more.
pub const MAX_PARALLELISM: usize = 4096;

/// The project: its root folder, its `weft.toml` (if any) and the stacks it defines.
#[derive(Debug)]
pub struct Project {
    /// The project root.
    pub root: PathBuf,
    /// Whether a project was found: a folder with a `weft.toml` or a `.weft/` folder. When
    /// none was, `root` is the folder the search started from.
    pub found: bool,
    /// Its `weft.toml`, if it has one.
    pub file: Option<PathBuf>,
    /// The active stack (`stack = ".."`), if set.
    pub active: Option<String>,
    /// The stacks, by name.
    pub stacks: BTreeMap<String, Stack>,
    /// The `[server]` table.
    pub server: ServerSettings,
    store: StoreSection,
}

impl Project {
    /// The project around `start`: the nearest folder, from `start` upwards, that holds a
    /// `weft.toml` or a `.weft/` folder (`start` itself if none does).
    pub fn discover_from(start: &Path) -> Result<Self> {
        let found = start
            .ancestors()
            .find(|folder| folder.join("weft.toml").is_file() || folder.join(".weft").is_dir());
        let root = found.unwrap_or(start);
        let path = root.join("weft.toml");
        let (file, project) = if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::msg(format!("cannot read {}: {e}", path.display())))?;
            let project = toml::from_str::<ProjectFile>(&text)
                .map_err(|e| Error::msg(format!("invalid {}: {e}", path.display())))?;
            (Some(path), project)
        } else {
            (None, ProjectFile::default())
        };
        if let Some(active) = &project.stack
            && !project.stacks.contains_key(active)
        {
            return Err(Error::msg(format!(
                "invalid {}: `stack` names `{active}`, which no [stacks.{active}] table defines",
                file.as_deref().unwrap_or(Path::new("weft.toml")).display()
            )));
        }
        Ok(Self {
            root: root.to_owned(),
            found: found.is_some(),
            file,
            active: project.stack,
            stacks: project.stacks,
            server: project.server,
            store: project.store,
        })
    }

    /// The stack called `name`, or the active one (`None`: no stack is defined or active).
    pub fn stack(&self, name: Option<&str>) -> Result<Option<(&str, &Stack)>> {
        let Some(name) = name.or(self.active.as_deref()) else {
            return Ok(None);
        };
        match self.stacks.get_key_value(name) {
            Some((name, stack)) => Ok(Some((name.as_str(), stack))),
            None => {
                let known: Vec<&str> = self.stacks.keys().map(String::as_str).collect();
                Err(Error::msg(format!(
                    "no stack is named `{name}` in {} (defined: {})",
                    self.file
                        .as_deref()
                        .map_or("this project (it has no weft.toml)".into(), |f| f
                            .display()
                            .to_string()),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )))
            }
        }
    }
}

/// No weft project around a folder: none of it or its parents holds a `weft.toml` or a
/// `.weft/` folder.
#[derive(Debug)]
pub struct NoProject {
    /// Where the search started.
    pub start: PathBuf,
}

impl std::fmt::Display for NoProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no weft project found (looked from {} up for a weft.toml or a .weft folder); run a pipeline in the project first, or set WEFT_STORE",
            self.start.display()
        )
    }
}

impl std::error::Error for NoProject {}

/// Where the metadata store and the artifact store are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Metadata store URL (`sqlite://...`).
    pub metadata: String,
    /// Artifact store URL (`file://...` or a path).
    pub artifacts: String,
    /// The folder relative paths in the URLs are taken from.
    pub base: PathBuf,
}

impl StoreConfig {
    /// The default stores inside `folder`: `folder/weft.db` and `folder/artifacts`.
    pub fn in_folder(folder: impl AsRef<Path>) -> Self {
        // Absolute: the URLs are resolved against `base`, so a relative folder would be
        // taken twice (`rel/rel/weft.db`).
        let folder =
            std::path::absolute(folder.as_ref()).unwrap_or_else(|_| folder.as_ref().into());
        let folder = folder.as_path();
        Self {
            metadata: format!("sqlite://{}", folder.join("weft.db").display()),
            artifacts: format!("file://{}", folder.join("artifacts").display()),
            base: folder.to_owned(),
        }
    }

    /// Finds the stores from the current directory (see the module documentation).
    pub fn discover() -> Result<Self> {
        Self::discover_on(None)
    }

    /// Finds the stores from the current directory, on stack `stack` (else `WEFT_STACK`, else
    /// the project's active stack).
    pub fn discover_on(stack: Option<&str>) -> Result<Self> {
        let current = std::env::current_dir()
            .map_err(|e| Error::msg(format!("cannot read the current directory: {e}")))?;
        let env = |name: &str| std::env::var(name).ok();
        let stack = stack
            .map(str::to_owned)
            .or_else(|| env("WEFT_STACK").filter(|v| !v.is_empty()));
        Self::discover_from_on(&current, stack.as_deref(), env)
    }

    /// Finds the stores of an existing project from the current directory, to read them: an
    /// error that says where it looked ([`NoProject`]) when there is none and neither
    /// `WEFT_STORE` nor `WEFT_ARTIFACTS` names the stores. Reading never creates a project.
    pub fn discover_existing_on(stack: Option<&str>) -> Result<Self> {
        let config = Self::discover_on(stack)?;
        let named = ["WEFT_STORE", "WEFT_ARTIFACTS"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        let current = std::env::current_dir()
            .map_err(|e| Error::msg(format!("cannot read the current directory: {e}")))?;
        if !named && !Project::discover_from(&current)?.found {
            return Err(Error::new(NoProject { start: current }));
        }
        Ok(config)
    }

    /// Finds the stores from `start`, reading environment variables with `env`.
    pub fn discover_from(start: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let stack = env("WEFT_STACK").filter(|v| !v.is_empty());
        Self::discover_from_on(start, stack.as_deref(), env)
    }

    fn discover_from_on(
        start: &Path,
        stack: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let project = Project::discover_from(start)?;
        let root = project.root.as_path();
        let stack = project.stack(stack)?;
        // Relative paths of file-backed stores are taken from `base`; other URLs (a database
        // server, an object store) are left as they are.
        let absolute = |url: String, base: &Path| -> String {
            match url.split_once("://") {
                Some((scheme @ ("sqlite" | "file"), path)) if !Path::new(path).is_absolute() => {
                    format!("{scheme}://{}", base.join(path).display())
                }
                Some(_) => url,
                None if Path::new(&url).is_absolute() => url,
                None => base.join(url).display().to_string(),
            }
        };
        // A URL from weft.toml: the stack's, else the [store] table's, else the default;
        // `${VARIABLE}`s in it are taken from the environment (passwords stay out of files).
        let configured = |which: &str,
                          of_stack: Option<&String>,
                          of_store: Option<&String>,
                          default: &str|
         -> Result<String> {
            let (url, key) = match (of_stack, stack) {
                (Some(url), Some((name, _))) => (url, format!("stacks.{name}.{which}")),
                _ => match of_store {
                    Some(url) => (url, format!("store.{which}")),
                    None => return Ok(absolute(default.to_owned(), root)),
                },
            };
            let file = project
                .file
                .as_deref()
                .map_or("weft.toml".into(), |f| f.display().to_string());
            let url = expand(url, &env).map_err(|variable| {
                Error::msg(format!(
                    "{file}: `{key}` uses `${{{variable}}}`, which is not set in the environment"
                ))
            })?;
            if which == "metadata" {
                weft_store::check_url(&url)
                    .map_err(|e| Error::msg(format!("{file}: `{key}`: {e}")))?;
            }
            Ok(absolute(url, root))
        };
        let metadata = match env("WEFT_STORE").filter(|v| !v.is_empty()) {
            Some(url) if url.contains("://") => {
                weft_store::check_url(&url).map_err(|e| Error::msg(format!("WEFT_STORE: {e}")))?;
                absolute(url, start)
            }
            Some(url) => absolute(url, start),
            None => configured(
                "metadata",
                stack.and_then(|(_, stack)| stack.metadata.as_ref()),
                project.store.metadata.as_ref(),
                "sqlite://.weft/weft.db",
            )?,
        };
        let artifacts = match env("WEFT_ARTIFACTS").filter(|v| !v.is_empty()) {
            Some(url) => absolute(url, start),
            None => configured(
                "artifacts",
                stack.and_then(|(_, stack)| stack.artifacts.as_ref()),
                project.store.artifacts.as_ref(),
                "file://.weft/artifacts",
            )?,
        };
        Ok(Self {
            metadata,
            artifacts,
            base: root.to_owned(),
        })
    }
}

/// `url` with each `${VARIABLE}` replaced by the variable's value; the name of the first
/// variable that is not set, if one is not.
fn expand(url: &str, env: impl Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut expanded = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find("${") {
        let Some(length) = rest[start + 2..].find('}') else {
            break;
        };
        let variable = &rest[start + 2..start + 2 + length];
        expanded.push_str(&rest[..start]);
        expanded.push_str(&env(variable).ok_or_else(|| variable.to_owned())?);
        rest = &rest[start + 3 + length..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// Options of one run, from code or from a TOML file (`--config`):
///
/// ```toml
/// execution_mode = "stop_on_failure"   # continue_on_failure (default), stop_on_failure, fail_fast
/// max_parallelism = 4                  # default: the number of cores
/// no_cache = false                     # true: run every step, reuse nothing
///
/// [cache]                              # defaults where steps and pipelines say nothing
/// expires_after = "7d"
/// env = ["DATASET_VERSION"]
///
/// [parameters]                         # pipeline parameters
/// limit = 150
///
/// [steps.train.parameters]             # per-invocation parameters
/// learning_rate = 0.1
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// What happens to the rest of the run when a step fails.
    #[serde(default)]
    pub execution_mode: Option<ExecutionMode>,
    /// At most this many steps run at once.
    #[serde(default)]
    pub max_parallelism: Option<usize>,
    /// Pipeline parameters.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Per-invocation settings, by invocation id.
    #[serde(default)]
    pub steps: BTreeMap<String, StepSection>,
    /// Caching settings for the run: they apply where neither the step nor the pipeline
    /// decides.
    #[serde(default)]
    pub cache: CacheSettings,
    /// Turns caching off for every step of the run, whatever steps and pipelines say
    /// (`--no-cache`).
    #[serde(default)]
    pub no_cache: bool,
    /// Tags to attach to the run (`--tag`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The stack the run uses (from `weft.toml`; set by the pipeline binary's command line):
    /// which steps run isolated, and their environment.
    #[serde(skip)]
    pub stack: Option<Stack>,
}

/// Settings for one invocation in a [`RunConfig`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSection {
    /// Parameter values, by argument name.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

impl RunConfig {
    /// Reads a run configuration file. Unknown keys and values of the wrong type are errors
    /// that name the file and the key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::msg(format!(
                "cannot read the run configuration {}: {e}",
                path.display()
            ))
        })?;
        Self::from_toml(&text)
            .map_err(|e| Error::msg(format!("invalid run configuration {}: {e}", path.display())))
    }

    /// Parses a run configuration.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        let config: RunConfig = toml::from_str(text)?;
        if let Some(count) = config.max_parallelism
            && !(1..=MAX_PARALLELISM).contains(&count)
        {
            return Err(serde::de::Error::custom(format!(
                "max_parallelism must be at least 1 and at most {MAX_PARALLELISM} (not {count})"
            )));
        }
        Ok(config)
    }

    pub(crate) fn step_overrides(&self) -> BTreeMap<String, StepOverride> {
        self.steps
            .iter()
            .map(|(id, section)| {
                let parameters = section
                    .parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (id.clone(), StepOverride { parameters })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stores_in_a_relative_folder_are_in_that_folder() {
        let config = super::StoreConfig::in_folder("relative/stores");
        let folder = std::env::current_dir().unwrap().join("relative/stores");
        assert_eq!(
            config.metadata,
            format!("sqlite://{}", folder.join("weft.db").display())
        );
        assert_eq!(
            config.artifacts,
            format!("file://{}", folder.join("artifacts").display())
        );
        assert_eq!(config.base, folder);
    }

    use super::*;

    #[test]
    fn discovery_prefers_environment_then_project_file_then_dot_weft() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let none = |_: &str| None;

        let found = StoreConfig::discover_from(&nested, none).unwrap();
        assert_eq!(
            found.metadata,
            format!("sqlite://{}", nested.join(".weft/weft.db").display())
        );

        std::fs::create_dir(dir.path().join(".weft")).unwrap();
        let found = StoreConfig::discover_from(&nested, none).unwrap();
        assert_eq!(
            found.metadata,
            format!("sqlite://{}", dir.path().join(".weft/weft.db").display())
        );
        assert_eq!(
            found.artifacts,
            format!("file://{}", dir.path().join(".weft/artifacts").display())
        );

        std::fs::write(
            dir.path().join("a/weft.toml"),
            "[store]\nmetadata = \"sqlite://meta/w.db\"\n",
        )
        .unwrap();
        let found = StoreConfig::discover_from(&nested, none).unwrap();
        assert_eq!(
            found.metadata,
            format!("sqlite://{}", dir.path().join("a/meta/w.db").display())
        );
        assert_eq!(
            found.artifacts,
            format!("file://{}", dir.path().join("a/.weft/artifacts").display())
        );

        let env = |name: &str| (name == "WEFT_ARTIFACTS").then(|| "/abs/artifacts".to_string());
        let found = StoreConfig::discover_from(&nested, env).unwrap();
        assert_eq!(found.artifacts, "/abs/artifacts");
    }

    #[test]
    fn a_bad_project_file_names_itself_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("weft.toml"), "[store]\nmetdata = \"x\"\n").unwrap();
        let error = StoreConfig::discover_from(dir.path(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("weft.toml") && error.contains("metdata"),
            "{error}"
        );
    }

    #[test]
    fn run_configuration_files_are_strict() {
        let config = RunConfig::from_toml(
            "execution_mode = \"fail_fast\"\nmax_parallelism = 3\n[parameters]\nlimit = 10\n[steps.train.parameters]\nlr = 0.5\n",
        )
        .unwrap();
        assert_eq!(config.execution_mode, Some(ExecutionMode::FailFast));
        assert_eq!(config.step_overrides()["train"].parameters["lr"], 0.5);
        for (text, expected) in [
            ("execution_mode = \"sometimes\"", "execution_mode"),
            ("max_parallelism = 0", "at least 1"),
            ("max_parallelism = 4294967295", "at most 4096"),
            ("max_parallelism = \"many\"", "max_parallelism"),
            ("paramters = {}", "paramters"),
            ("[steps.train]\nparams = {}", "params"),
            ("[cache]\nexpires_after = \"soon\"", "not a duration"),
            ("[cache]\nenabeld = false", "enabeld"),
        ] {
            let error = RunConfig::from_toml(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn memory_sizes_are_read_in_decimal_and_binary_units() {
        let parse = super::memory_size::parse;
        assert_eq!(parse("1024"), Ok(1024));
        assert_eq!(parse("512MB"), Ok(512_000_000));
        assert_eq!(parse("8 GiB"), Ok(8 << 30));
        assert_eq!(parse("1.5 KiB"), Ok(1536));
        assert!(parse("lots").unwrap_err().contains("not a memory size"));
        assert!(
            parse("3 furlongs")
                .unwrap_err()
                .contains("unknown memory unit")
        );
    }

    #[test]
    fn urls_of_servers_are_not_taken_for_paths() {
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| match name {
            "WEFT_STORE" => Some("postgres://db.example/weft".to_owned()),
            "WEFT_ARTIFACTS" => Some("s3://bucket/prefix".to_owned()),
            _ => None,
        };
        let found = StoreConfig::discover_from(dir.path(), env).unwrap();
        assert_eq!(found.metadata, "postgres://db.example/weft");
        assert_eq!(found.artifacts, "s3://bucket/prefix");
    }

    #[test]
    fn store_urls_in_weft_toml_take_variables_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("weft.toml"),
            "[store]\nmetadata = \"postgres://weft:${DB_PASSWORD}@db/weft\"\n\n\
             [stacks.team]\nmetadata = \"mysql://${DB_USER}:${DB_PASSWORD}@db/weft\"\n",
        )
        .unwrap();
        let env = |stack: Option<&'static str>| {
            move |name: &str| match name {
                "DB_PASSWORD" => Some("s3cret".to_owned()),
                "WEFT_STACK" => stack.map(str::to_owned),
                _ => None,
            }
        };
        let found = StoreConfig::discover_from(dir.path(), env(None)).unwrap();
        assert_eq!(found.metadata, "postgres://weft:s3cret@db/weft");
        let error = StoreConfig::discover_from(dir.path(), env(Some("team")))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("weft.toml: `stacks.team.metadata` uses `${DB_USER}`, which is not set"),
            "{error}"
        );
        assert_eq!(
            super::expand("a${X}b${X}", |_| Some("-".into())),
            Ok("a-b-".into())
        );
        assert_eq!(
            super::expand("no ${closing", |_| None),
            Ok("no ${closing".into())
        );
    }
}
