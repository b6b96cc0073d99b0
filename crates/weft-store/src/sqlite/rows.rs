//! Decoding rows into records. Every column read here is written by this crate; a value that
//! does not decode means the file was damaged or written by an incompatible build.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::Row;
use weft_core::Status;

use crate::model::{ArtifactVersion, Run, StepRun};
use crate::{Error, Result, time};

pub(crate) const RUN_COLUMNS: &str = "r.id, r.name, p.name AS pipeline, r.snapshot_id, \
    r.invocations, r.status, r.status_reason, r.config, r.owner, r.resumed_from, r.created_at, \
    r.started_at, r.ended_at, r.heartbeat_at";
pub(crate) const RUN_FROM: &str = "runs r JOIN pipelines p ON p.id = r.pipeline_id";

pub(crate) const STEP_RUN_COLUMNS: &str = "s.id, s.run_id, s.invocation_id, s.step_name, \
    s.attempt, s.status, s.status_reason, s.code_hash, s.parameters, s.config, s.cache_key, \
    s.cache_parts, s.cache_expires_at, s.original_step_run_id, s.error, s.created_at, \
    s.started_at, s.ended_at";

/// Version columns, each renamed `v_<column>` so they never clash with step run columns.
pub(crate) const VERSION_COLUMNS: &str = "v.id AS v_id, v.artifact_id AS v_artifact_id, \
    a.name AS v_artifact_name, v.version AS v_version, v.artifact_type AS v_artifact_type, \
    v.uri AS v_uri, v.materializer AS v_materializer, v.materializer_version AS v_materializer_version, \
    v.data_type AS v_data_type, v.content_hash AS v_content_hash, v.size AS v_size, \
    v.files AS v_files, v.save_type AS v_save_type, v.producer_step_run_id AS v_producer_step_run_id, \
    v.created_at AS v_created_at, \
    (SELECT group_concat(t.name, char(31)) FROM tag_links l JOIN tags t ON t.id = l.tag_id \
     WHERE l.resource_type = 'artifact_version' AND l.resource_id = v.id) AS v_tags";
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

fn json<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T> {
    serde_json::from_str(value).map_err(|e| Error::corrupt(what, e))
}

pub(crate) fn timestamp(what: &str, value: &str) -> Result<DateTime<Utc>> {
    time::parse(value).ok_or_else(|| Error::corrupt(what, format!("bad timestamp `{value}`")))
}

fn optional_timestamp(what: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>> {
    value.map(|value| timestamp(what, &value)).transpose()
}

fn status(what: &str, value: &str) -> Result<Status> {
    parse(what, value)
}

pub(crate) fn run(row: &Row<'_>) -> Result<Run> {
    Ok(Run {
        id: parse("run id", &row.get::<_, String>("id")?)?,
        name: row.get("name")?,
        pipeline: row.get("pipeline")?,
        snapshot_id: row
            .get::<_, Option<String>>("snapshot_id")?
            .map(weft_core::SnapshotId::from_hex),
        invocations: row.get::<_, i64>("invocations")? as u32,
        status: status("run status", &row.get::<_, String>("status")?)?,
        status_reason: row.get("status_reason")?,
        config: json("run config", &row.get::<_, String>("config")?)?,
        owner: row
            .get::<_, Option<String>>("owner")?
            .map(|owner| json("run owner", &owner))
            .transpose()?,
        resumed_from: row
            .get::<_, Option<String>>("resumed_from")?
            .map(|id| parse("run id", &id))
            .transpose()?,
        created_at: timestamp("run created_at", &row.get::<_, String>("created_at")?)?,
        started_at: optional_timestamp("run started_at", row.get("started_at")?)?,
        ended_at: optional_timestamp("run ended_at", row.get("ended_at")?)?,
        heartbeat_at: optional_timestamp("run heartbeat_at", row.get("heartbeat_at")?)?,
    })
}

pub(crate) fn step_run(row: &Row<'_>) -> Result<StepRun> {
    Ok(StepRun {
        id: parse("step run id", &row.get::<_, String>("id")?)?,
        run_id: parse("run id", &row.get::<_, String>("run_id")?)?,
        invocation: row.get("invocation_id")?,
        step: row.get("step_name")?,
        attempt: row.get::<_, i64>("attempt")? as u32,
        status: status("step run status", &row.get::<_, String>("status")?)?,
        status_reason: row.get("status_reason")?,
        code_hash: row.get("code_hash")?,
        parameters: json("step run parameters", &row.get::<_, String>("parameters")?)?,
        config: json("step run config", &row.get::<_, String>("config")?)?,
        cache_key: row.get("cache_key")?,
        cache_parts: row
            .get::<_, Option<String>>("cache_parts")?
            .map(|parts| json("cache parts", &parts))
            .transpose()?,
        cache_expires_at: optional_timestamp(
            "step run cache_expires_at",
            row.get("cache_expires_at")?,
        )?,
        original_step_run: row
            .get::<_, Option<String>>("original_step_run_id")?
            .map(|id| parse("step run id", &id))
            .transpose()?,
        error: row
            .get::<_, Option<String>>("error")?
            .map(|error| json("step run error", &error))
            .transpose()?,
        created_at: timestamp("step run created_at", &row.get::<_, String>("created_at")?)?,
        started_at: optional_timestamp("step run started_at", row.get("started_at")?)?,
        ended_at: optional_timestamp("step run ended_at", row.get("ended_at")?)?,
    })
}

/// Decodes the columns of [`VERSION_COLUMNS`].
pub(crate) fn artifact_version(row: &Row<'_>) -> Result<ArtifactVersion> {
    let mut tags: Vec<String> = row
        .get::<_, Option<String>>("v_tags")?
        .map(|tags| tags.split('\u{1f}').map(str::to_owned).collect())
        .unwrap_or_default();
    tags.sort();
    Ok(ArtifactVersion {
        id: parse("artifact version id", &row.get::<_, String>("v_id")?)?,
        artifact_id: parse("artifact id", &row.get::<_, String>("v_artifact_id")?)?,
        name: row.get("v_artifact_name")?,
        version: row.get("v_version")?,
        artifact_type: parse("artifact type", &row.get::<_, String>("v_artifact_type")?)?,
        uri: row.get("v_uri")?,
        materializer: row.get("v_materializer")?,
        materializer_version: row.get::<_, i64>("v_materializer_version")? as u32,
        data_type: row.get("v_data_type")?,
        content_hash: row.get("v_content_hash")?,
        size: row.get::<_, i64>("v_size")? as u64,
        files: json("artifact files", &row.get::<_, String>("v_files")?)?,
        save_type: parse("save type", &row.get::<_, String>("v_save_type")?)?,
        producer: row
            .get::<_, Option<String>>("v_producer_step_run_id")?
            .map(|id| parse("step run id", &id))
            .transpose()?,
        tags,
        created_at: timestamp(
            "artifact version created_at",
            &row.get::<_, String>("v_created_at")?,
        )?,
    })
}

/// Runs `sql` and decodes every row with `decode`.
pub(crate) fn all<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(decode(row)?);
    }
    Ok(found)
}

/// Runs `sql` and decodes the first row, if any.
pub(crate) fn first<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?.map(decode).transpose()
}
