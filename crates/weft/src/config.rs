//! Where the stores are, and run configuration files.
//!
//! Store discovery, the same for the `weft` CLI and every pipeline binary:
//! 1. `WEFT_STORE` (metadata store URL) and `WEFT_ARTIFACTS` (artifact store URL), each on
//!    its own; relative paths in them are taken from the current directory;
//! 2. otherwise the nearest folder, from the current one upwards, that holds a `weft.toml`
//!    or a `.weft/` folder is the project root: `weft.toml`'s `[store]` table may name the
//!    stores (relative paths taken from the root);
//! 3. otherwise `sqlite://.weft/weft.db` and `file://.weft/artifacts` under the root (the
//!    current directory if none was found), created on first use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use weft_core::ExecutionMode;
use weft_core::compile::StepOverride;
use weft_core::policy::CacheSettings;

use crate::{Error, Result};

/// The project file, `weft.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    #[serde(default)]
    store: StoreSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    metadata: Option<String>,
    artifacts: Option<String>,
}

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
        let folder = folder.as_ref();
        Self {
            metadata: format!("sqlite://{}", folder.join("weft.db").display()),
            artifacts: format!("file://{}", folder.join("artifacts").display()),
            base: folder.to_owned(),
        }
    }

    /// Finds the stores from the current directory (see the module documentation).
    pub fn discover() -> Result<Self> {
        let current = std::env::current_dir()
            .map_err(|e| Error::msg(format!("cannot read the current directory: {e}")))?;
        Self::discover_from(&current, |name| std::env::var(name).ok())
    }

    /// Finds the stores from `start`, reading environment variables with `env`.
    pub fn discover_from(start: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let root = start
            .ancestors()
            .find(|folder| folder.join("weft.toml").is_file() || folder.join(".weft").is_dir())
            .unwrap_or(start);
        let project_path = root.join("weft.toml");
        let project = if project_path.is_file() {
            let text = std::fs::read_to_string(&project_path)
                .map_err(|e| Error::msg(format!("cannot read {}: {e}", project_path.display())))?;
            toml::from_str::<ProjectFile>(&text)
                .map_err(|e| Error::msg(format!("invalid {}: {e}", project_path.display())))?
        } else {
            ProjectFile::default()
        };
        let absolute = |url: String, base: &Path| -> String {
            match url.split_once("://") {
                Some((scheme, path)) if !Path::new(path).is_absolute() => {
                    format!("{scheme}://{}", base.join(path).display())
                }
                Some(_) => url,
                None if Path::new(&url).is_absolute() => url,
                None => base.join(url).display().to_string(),
            }
        };
        let metadata = match env("WEFT_STORE").filter(|v| !v.is_empty()) {
            Some(url) => absolute(url, start),
            None => absolute(
                project
                    .store
                    .metadata
                    .unwrap_or_else(|| "sqlite://.weft/weft.db".into()),
                root,
            ),
        };
        let artifacts = match env("WEFT_ARTIFACTS").filter(|v| !v.is_empty()) {
            Some(url) => absolute(url, start),
            None => absolute(
                project
                    .store
                    .artifacts
                    .unwrap_or_else(|| "file://.weft/artifacts".into()),
                root,
            ),
        };
        Ok(Self {
            metadata,
            artifacts,
            base: root.to_owned(),
        })
    }
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
        if config.max_parallelism == Some(0) {
            return Err(serde::de::Error::custom(
                "max_parallelism must be at least 1",
            ));
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
}
