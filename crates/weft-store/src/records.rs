//! Decoding rows into records, shared by every SQL backend: each backend reads columns by
//! name through [`Columns`], and the column lists here are the same SQL for all of them. Every
//! column read here is written by this crate; a value that does not decode means the store
//! was damaged or written by an incompatible build.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use weft_core::Status;

use crate::model::{ArtifactVersion, Run, StepInput, StepOutput, StepRun};
use crate::{Error, Result, time};

/// A row whose columns are read by name.
pub(crate) trait Columns {
    /// A text column; `None` for NULL.
    fn text(&self, column: &str) -> Result<Option<String>>;
    /// An integer column; `None` for NULL.
    fn integer(&self, column: &str) -> Result<Option<i64>>;

    /// A text column that is never NULL.
    fn string(&self, column: &str) -> Result<String> {
        self.text(column)?
            .ok_or_else(|| Error::corrupt(column, "unexpected NULL"))
    }

    /// An integer column that is never NULL.
    fn int(&self, column: &str) -> Result<i64> {
        self.integer(column)?
            .ok_or_else(|| Error::corrupt(column, "unexpected NULL"))
    }
}

pub(crate) const RUN_COLUMNS: &str = "r.id, r.name, p.name AS pipeline, r.snapshot_id, \
    r.invocations, r.status, r.status_reason, r.config, r.owner, r.resumed_from, r.created_at, \
    r.started_at, r.ended_at, r.heartbeat_at";
pub(crate) const RUN_FROM: &str = "runs r JOIN pipelines p ON p.id = r.pipeline_id";

pub(crate) const STEP_RUN_COLUMNS: &str = "s.id, s.run_id, s.invocation_id, s.step_name, \
    s.attempt, s.status, s.status_reason, s.code_hash, s.parameters, s.config, s.cache_key, \
    s.cache_parts, s.cache_expires_at, s.original_step_run_id, s.error, s.created_at, \
    s.started_at, s.ended_at";

/// The columns of an artifact version, each renamed `v_<column>` so they never clash with
/// step run columns. `$tags` is the backend's aggregate of the tag names `t.name`, joined by
/// the unit separator (U+001F).
macro_rules! version_columns {
    ($tags:literal) => {
        concat!(
            "v.id AS v_id, v.artifact_id AS v_artifact_id, \
            a.name AS v_artifact_name, v.version AS v_version, v.artifact_type AS v_artifact_type, \
            v.uri AS v_uri, v.materializer AS v_materializer, v.materializer_version AS v_materializer_version, \
            v.data_type AS v_data_type, v.content_hash AS v_content_hash, v.size AS v_size, \
            v.files AS v_files, v.save_type AS v_save_type, v.producer_step_run_id AS v_producer_step_run_id, \
            v.created_at AS v_created_at, \
            (SELECT ",
            $tags,
            " FROM tag_links l JOIN tags t ON t.id = l.tag_id \
             WHERE l.resource_type = 'artifact_version' AND l.resource_id = v.id) AS v_tags"
        )
    };
}
pub(crate) use version_columns;

pub(crate) const VERSION_FROM: &str =
    "artifact_versions v JOIN artifacts a ON a.id = v.artifact_id";

/// Joins a version (and its artifact) read by `column`.
pub(crate) fn join_version(column: &str) -> String {
    format!("JOIN artifact_versions v ON v.id = {column} JOIN artifacts a ON a.id = v.artifact_id")
}

pub(crate) fn parse<T: FromStr>(what: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| Error::corrupt(what, e))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T> {
    serde_json::from_str(value).map_err(|e| Error::corrupt(what, e))
}

pub(crate) fn timestamp(what: &str, value: &str) -> Result<DateTime<Utc>> {
    time::parse(value).ok_or_else(|| Error::corrupt(what, format!("bad timestamp `{value}`")))
}

fn optional_timestamp(what: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>> {
    value.map(|value| timestamp(what, &value)).transpose()
}

fn optional<T>(value: Option<String>, decode: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
    value.map(|value| decode(&value)).transpose()
}

/// Decodes the columns of [`RUN_COLUMNS`].
pub(crate) fn run(row: &impl Columns) -> Result<Run> {
    Ok(Run {
        id: parse("run id", &row.string("id")?)?,
        name: row.string("name")?,
        pipeline: row.string("pipeline")?,
        snapshot_id: row
            .text("snapshot_id")?
            .map(weft_core::SnapshotId::from_hex),
        invocations: row.int("invocations")? as u32,
        status: parse::<Status>("run status", &row.string("status")?)?,
        status_reason: row.text("status_reason")?,
        config: json("run config", &row.string("config")?)?,
        owner: optional(row.text("owner")?, |owner| json("run owner", owner))?,
        resumed_from: optional(row.text("resumed_from")?, |id| parse("run id", id))?,
        created_at: timestamp("run created_at", &row.string("created_at")?)?,
        started_at: optional_timestamp("run started_at", row.text("started_at")?)?,
        ended_at: optional_timestamp("run ended_at", row.text("ended_at")?)?,
        heartbeat_at: optional_timestamp("run heartbeat_at", row.text("heartbeat_at")?)?,
    })
}

/// Decodes the columns of [`STEP_RUN_COLUMNS`].
pub(crate) fn step_run(row: &impl Columns) -> Result<StepRun> {
    Ok(StepRun {
        id: parse("step run id", &row.string("id")?)?,
        run_id: parse("run id", &row.string("run_id")?)?,
        invocation: row.string("invocation_id")?,
        step: row.string("step_name")?,
        attempt: row.int("attempt")? as u32,
        status: parse::<Status>("step run status", &row.string("status")?)?,
        status_reason: row.text("status_reason")?,
        code_hash: row.string("code_hash")?,
        parameters: json("step run parameters", &row.string("parameters")?)?,
        config: json("step run config", &row.string("config")?)?,
        cache_key: row.text("cache_key")?,
        cache_parts: optional(row.text("cache_parts")?, |parts| json("cache parts", parts))?,
        cache_expires_at: optional_timestamp(
            "step run cache_expires_at",
            row.text("cache_expires_at")?,
        )?,
        original_step_run: optional(row.text("original_step_run_id")?, |id| {
            parse("step run id", id)
        })?,
        error: optional(row.text("error")?, |error| json("step run error", error))?,
        created_at: timestamp("step run created_at", &row.string("created_at")?)?,
        started_at: optional_timestamp("step run started_at", row.text("started_at")?)?,
        ended_at: optional_timestamp("step run ended_at", row.text("ended_at")?)?,
    })
}

/// Decodes the columns of [`version_columns!`].
pub(crate) fn artifact_version(row: &impl Columns) -> Result<ArtifactVersion> {
    let mut tags: Vec<String> = row
        .text("v_tags")?
        .map(|tags| tags.split('\u{1f}').map(str::to_owned).collect())
        .unwrap_or_default();
    tags.sort();
    Ok(ArtifactVersion {
        id: parse("artifact version id", &row.string("v_id")?)?,
        artifact_id: parse("artifact id", &row.string("v_artifact_id")?)?,
        name: row.string("v_artifact_name")?,
        version: row.string("v_version")?,
        artifact_type: parse("artifact type", &row.string("v_artifact_type")?)?,
        uri: row.string("v_uri")?,
        materializer: row.string("v_materializer")?,
        materializer_version: row.int("v_materializer_version")? as u32,
        data_type: row.string("v_data_type")?,
        content_hash: row.string("v_content_hash")?,
        size: row.int("v_size")? as u64,
        files: json("artifact files", &row.string("v_files")?)?,
        save_type: parse("save type", &row.string("v_save_type")?)?,
        producer: optional(row.text("v_producer_step_run_id")?, |id| {
            parse("step run id", id)
        })?,
        tags,
        created_at: timestamp("artifact version created_at", &row.string("v_created_at")?)?,
    })
}

/// Decodes a step run id, an input's `input_name`, `position` and `kind`, and its version.
pub(crate) fn input(row: &impl Columns) -> Result<(weft_core::StepRunId, StepInput)> {
    Ok((
        parse("step run id", &row.string("step_run_id")?)?,
        StepInput {
            name: row.string("input_name")?,
            position: row.int("position")? as u32,
            kind: parse("input kind", &row.string("kind")?)?,
            artifact_version: artifact_version(row)?,
        },
    ))
}

/// Decodes a step run id, an output's `output_name`, and its version.
pub(crate) fn output(row: &impl Columns) -> Result<(weft_core::StepRunId, StepOutput)> {
    Ok((
        parse("step run id", &row.string("step_run_id")?)?,
        StepOutput {
            name: row.string("output_name")?,
            artifact_version: artifact_version(row)?,
        },
    ))
}

/// Checks that a prefix can only match ids (no LIKE wildcards) and makes it a LIKE pattern.
pub(crate) fn id_prefix(reference: &str) -> Option<String> {
    let reference = reference.trim().to_ascii_lowercase();
    let valid = reference.len() >= 4
        && reference.len() <= 36
        && reference.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    valid.then(|| format!("{reference}%"))
}

/// The one record a prefix matched: none is "not found", several are ambiguous.
pub(crate) fn the_only<T>(found: Vec<T>, kind: &'static str, reference: &str) -> Result<T> {
    let count = found.len();
    let mut found = found.into_iter();
    match (found.next(), count) {
        (Some(only), 1) => Ok(only),
        (None, _) => Err(Error::NotFound {
            kind,
            reference: reference.to_owned(),
        }),
        _ => Err(Error::Ambiguous {
            kind,
            reference: reference.to_owned(),
            count,
        }),
    }
}

/// `?, ?, ?` with `count` placeholders, for `IN (...)` lists.
pub(crate) fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}
