//! ML pipelines in Rust: typed steps wired into pipelines, run in parallel, with every
//! artifact versioned and every run recorded.
//!
//! ```no_run
//! use weft::prelude::*;
//!
//! #[derive(Clone, Serialize, Deserialize, Artifact)]
//! struct Rows { x: Vec<f64>, y: Vec<u8> }
//!
//! #[step]
//! fn load(limit: usize) -> weft::Result<Rows> {
//!     Ok(Rows { x: vec![0.5; limit], y: vec![1; limit] })
//! }
//!
//! #[step(outputs(train, test))]
//! fn split(rows: Rows, ratio: f64) -> (Rows, Rows) {
//!     let at = (rows.x.len() as f64 * ratio) as usize;
//!     let train = Rows { x: rows.x[..at].to_vec(), y: rows.y[..at].to_vec() };
//!     let test = Rows { x: rows.x[at..].to_vec(), y: rows.y[at..].to_vec() };
//!     (train, test)
//! }
//!
//! #[step]
//! fn count(rows: Rows) -> usize {
//!     rows.x.len()
//! }
//!
//! /// A static pipeline: its function runs once, before anything executes, to build the DAG.
//! #[pipeline]
//! fn training(#[default(150)] limit: usize) -> weft::Result<()> {
//!     let rows = load(limit)?;                 // an Output<Rows> placeholder
//!     let (train, test) = split(&rows, 0.8)?;
//!     count(&train)?;                          // these two run in parallel
//!     count(&test)?;
//!     Ok(())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     weft::main() // `run training --param limit=100`, `list`
//! }
//! ```
//!
//! - [`step`](macro@step) turns a function into a step; calling it inside a pipeline records an
//!   invocation and returns [`Output`] placeholders; calling it anywhere else runs the function
//!   (its original form stays available as `<step>::plain`).
//! - [`pipeline`](macro@pipeline) registers a static pipeline. Parameters are typed, with
//!   `#[default(..)]` values.
//! - [`Artifact`](derive@Artifact) stores a serde type as JSON (`#[artifact(binary)]`:
//!   MessagePack). Strings are stored as text, `Vec<u8>` as raw bytes, numbers and collections
//!   as JSON; see [`materializers`].
//! - [`Client`] runs pipelines and reads runs, step runs, artifact versions, lineage and logs.
//! - [`main`] is the command line of a pipeline binary.
//!
//! Stores are found as described in [`config`]: `WEFT_STORE` / `WEFT_ARTIFACTS`, else
//! `weft.toml`, else `.weft/` (SQLite and local files, created on first use).

/// `eprintln!` / `println!` that never panic: a reader that went away (a closed pipe) is not
/// worth a crash, and nothing more can be said to it anyway.
macro_rules! to_stderr {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($argument)*);
    }};
}
macro_rules! to_stdout {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($argument)*);
    }};
}

mod cli;
mod client;
mod compile;
pub mod config;
mod dynamic;
mod input;
pub mod inspect;
mod metadata_query;
#[doc(hidden)]
pub mod probe;
mod registry;
mod worker;

pub use cli::main;
pub use client::{ArtifactVersion, Client};
pub use config::{RunConfig, StoreConfig};
pub use dynamic::{MapArg, MapResult, StepFuture, Unmapped, unmapped};
pub use input::{
    After, Configured, External, IntoInput, Invocation, Isolated, Output, StepOptions, configured,
};
pub use metadata_query::MetadataCondition;
pub use registry::{ParamDef, PipelineCall, PipelineDef, pipeline as find_pipeline, pipelines};
pub use weft_artifacts::{Artifact, ArtifactType, Binary, Json, Materializer};
pub use weft_core::{ArtifactVersionId, ExecutionMode, RunId, Snapshot, Status, StepRunId};
pub use weft_engine::RunReport;
pub use weft_engine::clock::{Clock, ManualClock, SystemClock};
pub use weft_macros::{Artifact, pipeline, step};

pub use anyhow::{bail, ensure};
/// `tracing`, whose records (`tracing::info!(..)`) a step's log captures; re-exported so a
/// crate depending on `weft` alone can log.
pub use tracing;

/// The error type of steps and of weft's API: any error converts into it with `?`.
pub type Error = anyhow::Error;

/// `Result<T, weft::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cache keys and caching, retry and timeout policies.
pub mod cache {
    pub use weft_core::cache::{
        InputIdentity, InputVersions, KEY_FORMAT, KeyParts, LISTED_VERSIONS, VersionIdentity,
    };
    pub use weft_core::policy::{CachePolicy, CacheSettings, RetryPolicy, RetrySettings};
}

/// Step logs: stored records, and where a running step's live copy is.
pub mod logs {
    pub use weft_engine::logs::{Record, live_path, parse};
}

/// The records weft keeps: runs, step runs, artifact versions, lineage.
pub mod model {
    pub use weft_store::model::*;
}

/// Built-in materializers, and everything to write your own in one place: the traits, the
/// reader and writer a materializer is given, and its errors.
pub mod materializers {
    #[cfg(any(feature = "arrow", feature = "polars"))]
    pub use weft_artifacts::Parquet;
    #[cfg(feature = "image")]
    pub use weft_artifacts::Png;
    #[cfg(feature = "safetensors")]
    pub use weft_artifacts::SafeTensorsFormat;
    pub use weft_artifacts::{
        Artifact, ArtifactReader, ArtifactWriter, BoxError, Digest, Error, FileReader, FileRecord,
        FormerFormat, INLINE_LIMIT, JsonFormat, Loader, Materializer, Metadata, MsgPackFormat, Npy,
        NpyElement, RawBytes, Result, SerdeValue, Summary, Text, VisualizationType,
    };
    pub use weft_artifacts::{CsvFormat, HtmlFormat, MarkdownFormat};
}

/// The `candle-core` crate weft stores tensors of (feature `candle`).
#[cfg(feature = "candle")]
pub use weft_artifacts::candle_core;
/// The `image` crate weft stores images with (feature `image`).
#[cfg(feature = "image")]
pub use weft_artifacts::image;
/// The `ndarray` crate weft stores arrays of (feature `ndarray`), so that both agree on its
/// version.
#[cfg(feature = "ndarray")]
pub use weft_artifacts::ndarray;
/// The `polars` crate weft stores data frames of (feature `polars`), so that both agree on
/// its version.
#[cfg(feature = "polars")]
pub use weft_artifacts::polars;
/// The `safetensors` crate (feature `safetensors`), for its `Dtype`.
#[cfg(feature = "safetensors")]
pub use weft_artifacts::safetensors;
pub use weft_artifacts::{Csv, Html, Markdown};
#[cfg(feature = "safetensors")]
pub use weft_artifacts::{Tensor, TensorError, Tensors};
/// The Arrow and Parquet crates weft stores tables with (feature `arrow`).
#[cfg(feature = "arrow")]
pub use weft_artifacts::{arrow_array, arrow_schema, parquet};

pub use weft_engine::NonRetryable;
pub use weft_engine::context::StepContext;

/// The context of the step running on the current thread (run id, step run id, invocation,
/// attempt), or `None` outside a step.
pub fn context() -> Option<StepContext> {
    weft_engine::context::current()
}

/// Marks `error` as one that another attempt cannot fix: a step returning it is not
/// retried, whatever its retry policy.
pub fn non_retryable(error: impl Into<Error>) -> Error {
    Error::new(NonRetryable(error.into()))
}

/// Records `key = value` on the running step's step run (shown by `weft runs show`). A key
/// logged again replaces its value. Outside a step it is an error.
pub fn log_metadata(key: &str, value: impl serde::Serialize) -> Result<()> {
    let context = context()
        .ok_or_else(|| Error::msg("log_metadata is only available inside a running step"))?;
    context.log_metadata(key, serde_json::to_value(value)?);
    Ok(())
}

/// Attaches tags to the version the running step saves for output `output`. Outside a step
/// it is an error.
pub fn add_output_tags(output: &str, tags: &[&str]) -> Result<()> {
    let context = context()
        .ok_or_else(|| Error::msg("add_output_tags is only available inside a running step"))?;
    context.add_output_tags(output, tags);
    Ok(())
}

/// Everything a pipeline file needs: `use weft::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Artifact, Client, External, Invocation, Isolated, MapResult, Output, StepFuture,
        StepOptions, configured, pipeline, step, unmapped,
    };
    /// serde's traits, and derives of them that work in a crate depending on `weft` alone.
    pub use serde::de::Deserialize;
    pub use serde::ser::Serialize;
    pub use weft_macros::{Deserialize, Serialize};
}

/// What the macros' generated code uses. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::compile::{CompileSession, Mode, mode};
    pub use crate::dynamic::{DynamicSession, Handle, MapArgument, loader, outside};
    pub use crate::input::{CallOptions, Input};
    pub use crate::probe;
    pub use crate::registry::{
        ParamDef, Parameters, PipelineDef, PipelineRegistration, StepRegistration,
        check_pipeline_parameter,
    };
    pub use crate::{
        __weft_check_parameter as check_parameter, __weft_clone_fn as clone_fn,
        __weft_input as input,
    };
    pub use inventory;
    pub use serde;
    pub use weft_engine::{
        Binding, InputDef, KeyFn, OutputDef, StepDef, StepFailure, StepIo, StepSettings,
    };

    /// The materializer id and version of `T`.
    pub fn materializer_of<T: weft_artifacts::Artifact>() -> (&'static str, u32) {
        (
            <T::Materializer as weft_artifacts::Materializer<T>>::ID,
            <T::Materializer as weft_artifacts::Materializer<T>>::VERSION,
        )
    }

    /// The artifact type of `T`.
    pub fn artifact_type_of<T: weft_artifacts::Artifact>() -> weft_artifacts::ArtifactType {
        T::ARTIFACT_TYPE
    }

    /// `value` as JSON (pipeline parameter defaults).
    pub fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
        serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
    }
}
