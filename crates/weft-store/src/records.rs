//! Decoding rows into records, shared by every SQL backend: each backend reads columns by
//! name through [`Columns`], and the column lists here are the same SQL for all of them. Every
//! column read here is written by this crate; a value that does not decode means the store
//! was damaged or written by an incompatible build.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use weft_core::status::{check_run_initial, check_step_run_transition};
use weft_core::{ArtifactVersionId, RunId, Status, StepRunId};

use crate::model::{
    ApiKey, ArtifactVersion, Direction, InputLink, JsonText, Lineage, NewArtifactVersion, NewRun,
    NewStepRun, OutputLink, Run, RunFilter, RunOverview, StepInput, StepOutput, StepRun,
    StepRunSummary,
};
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

/// The columns of a run. `$tags` is the backend's aggregate of the tag names `t.name`, joined
/// by the unit separator (U+001F).
macro_rules! run_columns {
    ($tags:literal) => {
        concat!(
            "r.id, r.name, p.name AS pipeline, r.snapshot_id, r.invocations, r.status, \
            r.status_reason, r.config, r.owner, r.resumed_from, r.created_at, r.started_at, \
            r.ended_at, r.heartbeat_at, (SELECT ",
            $tags,
            " FROM tag_links l JOIN tags t ON t.id = l.tag_id \
             WHERE l.resource_type = 'run' AND l.resource_id = r.id) AS r_tags"
        )
    };
}
pub(crate) use run_columns;
pub(crate) const RUN_FROM: &str = "runs r JOIN pipelines p ON p.id = r.pipeline_id";

/// Step run columns of `step_runs s`, with `$parts` as the cache key parts column.
macro_rules! step_run_columns {
    ($parts:literal) => {
        concat!(
            "s.id, s.run_id, s.invocation_id, s.step_name, \
            s.attempt, s.status, s.status_reason, s.code_hash, s.parameters, \
            (SELECT c.config FROM step_configs c WHERE c.config_key = s.config) AS config, \
            s.cache_key, ",
            $parts,
            " AS cache_parts, s.cache_expires_at, s.original_step_run_id, s.error, s.created_at, \
            s.started_at, s.ended_at"
        )
    };
}

/// Step run columns of `step_runs s`. Settings are kept once per distinct text, in
/// `step_configs`; `s.config` holds their key (see [`config_key`]). A cached step run's cache key parts are its
/// original's (same key, and the key is their hash), read from there (see [`stored_parts`]).
pub(crate) const STEP_RUN_COLUMNS: &str = step_run_columns!(
    "COALESCE(s.cache_parts, (SELECT o.cache_parts FROM step_runs o \
    WHERE o.id = s.original_step_run_id AND o.cache_key = s.cache_key))"
);

/// [`STEP_RUN_COLUMNS`] without the cache key parts, for a whole run's step runs: those of a
/// map's 100,000 items are nearly the same text each, and they would be most of the list.
pub(crate) const STEP_RUN_LIST_COLUMNS: &str = step_run_columns!("NULL");

/// The cache key parts stored on a new step run's row: none on a cached copy, which reads its
/// original's.
pub(crate) fn stored_parts(step_run: &crate::model::NewStepRun) -> Option<&str> {
    match (&step_run.original_step_run, &step_run.cache_key) {
        (Some(_), Some(_)) => None,
        _ => step_run
            .cache_parts
            .as_ref()
            .map(crate::model::JsonText::as_str),
    }
}

/// The key a step run's settings text is stored under in `step_configs`, and that its row's
/// `config` column holds: the text's BLAKE3, in 32 hex digits (128 bits: no two texts of one
/// store will share it).
pub(crate) fn config_key(config: &str) -> String {
    let hex = blake3::hash(config.as_bytes()).to_hex();
    hex[..32].to_owned()
}

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

/// Decodes a stored snapshot's spec as `T` (the whole snapshot, or its outline), refusing a
/// format newer than this build's.
pub(crate) fn snapshot<T: serde::de::DeserializeOwned>(
    id: &weft_core::SnapshotId,
    format_version: i64,
    spec: &str,
) -> Result<T> {
    if format_version as u32 > weft_core::snapshot::FORMAT_VERSION {
        return Err(Error::corrupt(
            format!("snapshot {id}"),
            format!(
                "it uses format version {format_version}, newer than this build's {}; upgrade weft",
                weft_core::snapshot::FORMAT_VERSION
            ),
        ));
    }
    serde_json::from_str(spec).map_err(|e| Error::corrupt(format!("snapshot {id}"), e))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T> {
    serde_json::from_str(value).map_err(|e| Error::corrupt(what, e))
}

pub(crate) fn json_text(what: &str, value: String) -> Result<JsonText> {
    JsonText::parse(value).map_err(|e| Error::corrupt(what, e))
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

/// The query of `RunStore::runs`: SQL with `?` placeholders, and their values in order. Only
/// the conditions asked for are written, so that the database can use the primary key's order
/// for a page (a `LIMIT` of the newest runs reads only those).
pub(crate) fn runs_query(run_columns: &str, filter: &RunFilter) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(pipeline) = &filter.pipeline {
        conditions.push("p.name = ?");
        values.push(pipeline.clone());
    }
    if let Some(status) = filter.status {
        conditions.push("r.status = ?");
        values.push(status.as_str().to_owned());
    }
    if let Some(from) = filter.created_from {
        conditions.push("r.created_at >= ?");
        values.push(time::format(from));
    }
    if let Some(before) = filter.created_before {
        conditions.push("r.created_at < ?");
        values.push(time::format(before));
    }
    if let Some(tag) = &filter.tag {
        conditions.push(
            "r.id IN (SELECT l.resource_id FROM tag_links l JOIN tags t ON t.id = l.tag_id \
             WHERE l.resource_type = 'run' AND t.name = ?)",
        );
        values.push(tag.clone());
    }
    if let Some(after) = filter.after {
        conditions.push(if filter.oldest_first {
            "r.id > ?"
        } else {
            "r.id < ?"
        });
        values.push(after.to_string());
    }
    let mut sql = format!("SELECT {run_columns} FROM {RUN_FROM}");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(if filter.oldest_first {
        " ORDER BY r.id ASC"
    } else {
        " ORDER BY r.id DESC"
    });
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    (sql, values)
}

pub(crate) const API_KEY_COLUMNS: &str =
    "id, name, role, secret_hash, created_at, expires_at, revoked_at, last_used_at";

/// Decodes the columns of [`API_KEY_COLUMNS`].
pub(crate) fn api_key(row: &impl Columns) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.string("id")?,
        name: row.text("name")?,
        role: parse("api key role", &row.string("role")?)?,
        secret_hash: row.string("secret_hash")?,
        created_at: timestamp("api key created_at", &row.string("created_at")?)?,
        expires_at: optional_timestamp("api key expires_at", row.text("expires_at")?)?,
        revoked_at: optional_timestamp("api key revoked_at", row.text("revoked_at")?)?,
        last_used_at: optional_timestamp("api key last_used_at", row.text("last_used_at")?)?,
    })
}

/// Checks a new key's fields before it is recorded.
pub(crate) fn check_new_api_key(new: &crate::model::NewApiKey) -> Result<()> {
    let well_formed = |text: &str| {
        !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !well_formed(&new.id) || !well_formed(&new.secret_hash) {
        return Err(Error::Conflict(
            "an API key's id and hash are 1 to 64 letters, digits, `_` or `-`".into(),
        ));
    }
    match &new.name {
        Some(name) => within("an API key's name", name, limits::NAME),
        None => Ok(()),
    }
}

/// Decodes the columns of [`run_columns!`].
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
        tags: tag_names(row.text("r_tags")?),
    })
}

/// Decodes the columns of [`STEP_RUN_COLUMNS`].
pub(crate) fn step_run(row: &impl Columns) -> Result<StepRun> {
    decode_step_run(row, |text| json_text("step run config", text))
}

/// A step run whose settings text, if `shared` has seen it, is the one `shared` holds: it
/// is neither checked again nor kept twice.
pub(crate) fn step_run_sharing(row: &impl Columns, shared: &mut SharedSettings) -> Result<StepRun> {
    decode_step_run(row, |text| shared.settings(text))
}

/// Decodes a step run, its settings text by `settings`.
fn decode_step_run(
    row: &impl Columns,
    settings: impl FnOnce(String) -> Result<JsonText>,
) -> Result<StepRun> {
    Ok(StepRun {
        id: parse("step run id", &row.string("id")?)?,
        run_id: parse("run id", &row.string("run_id")?)?,
        invocation: row.string("invocation_id")?,
        step: row.string("step_name")?,
        attempt: row.int("attempt")? as u32,
        status: parse::<Status>("step run status", &row.string("status")?)?,
        status_reason: row.text("status_reason")?,
        code_hash: row.string("code_hash")?,
        parameters: json_text("step run parameters", row.string("parameters")?)?,
        config: settings(row.string("config")?)?,
        cache_key: row.text("cache_key")?,
        cache_parts: row
            .text("cache_parts")?
            .map(|parts| json_text("cache parts", parts))
            .transpose()?,
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

/// Gives the step runs of one read one copy of each settings text: the steps of a run mostly
/// share one (every item of a map), and the report of a 100,000-step run held as many copies.
#[derive(Default)]
pub(crate) struct SharedSettings(std::collections::HashMap<String, JsonText>);

impl SharedSettings {
    /// The settings of this text: the one already seen, or this one, checked and kept.
    pub(crate) fn settings(&mut self, text: String) -> Result<JsonText> {
        if let Some(shared) = self.0.get(&text) {
            return Ok(shared.clone());
        }
        let settings = json_text("step run config", text)?;
        self.0
            .insert(settings.as_str().to_owned(), settings.clone());
        Ok(settings)
    }

    /// `step_run` with the settings already seen, if they are equal (the server stores
    /// decode their rows elsewhere).
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) fn share(&mut self, mut step_run: StepRun) -> StepRun {
        match self.0.get(step_run.config.as_str()) {
            Some(shared) => step_run.config = shared.clone(),
            None => {
                self.0
                    .insert(step_run.config.as_str().to_owned(), step_run.config.clone());
            }
        }
        step_run
    }
}

/// The columns of a step run's summary, decoded by [`step_run_summary`].
pub(crate) const STEP_RUN_SUMMARY_COLUMNS: &str = "s.id, s.invocation_id, s.step_name, \
    s.attempt, s.status, s.status_reason, s.parameters, s.cache_key, s.original_step_run_id, \
    s.error, s.started_at, s.ended_at";

/// Decodes the columns of [`STEP_RUN_SUMMARY_COLUMNS`].
pub(crate) fn step_run_summary(row: &impl Columns) -> Result<StepRunSummary> {
    Ok(StepRunSummary {
        id: parse("step run id", &row.string("id")?)?,
        invocation: row.string("invocation_id")?,
        step: row.string("step_name")?,
        attempt: row.int("attempt")? as u32,
        status: parse::<Status>("step run status", &row.string("status")?)?,
        status_reason: row.text("status_reason")?,
        parameters: json_text("step run parameters", row.string("parameters")?)?,
        cache_key: row.text("cache_key")?,
        original_step_run: optional(row.text("original_step_run_id")?, |id| {
            parse("step run id", id)
        })?,
        error: optional(row.text("error")?, |error| json("step run error", error))?,
        started_at: optional_timestamp("step run started_at", row.text("started_at")?)?,
        ended_at: optional_timestamp("step run ended_at", row.text("ended_at")?)?,
    })
}

/// The statement of `LineageStore::step_run_summaries` with a time: the run's id, then the
/// time three times.
pub(crate) fn changed_summaries_statement() -> String {
    format!(
        "SELECT {STEP_RUN_SUMMARY_COLUMNS} FROM step_runs s WHERE s.run_id = ? \
         AND (s.created_at >= ? OR s.started_at >= ? OR s.ended_at >= ?) ORDER BY s.id"
    )
}

/// The statement of one page of a run's step runs (`LineageStore::step_run_page`), in
/// creation order (ids grow with time), as the whole run is read. Its arguments: the run's
/// id; with `after`, the id of the last step run of the previous page; with `status`, the
/// status. It walks the run's index in id order from the cursor on, so a page costs its own
/// size.
pub(crate) fn page_statement(after: bool, status: bool, limit: u32) -> String {
    let mut text = format!("SELECT {STEP_RUN_SUMMARY_COLUMNS} FROM step_runs s WHERE s.run_id = ?");
    if after {
        text.push_str(" AND s.id > ?");
    }
    if status {
        text.push_str(" AND s.status = ?");
    }
    text.push_str(&format!(" ORDER BY s.id LIMIT {limit}"));
    text
}

/// The statement that finds whether a page's cursor is a step run of the run (one row if
/// it is). Arguments: the step run's id, the run's id.
pub(crate) const PAGE_CURSOR_STATEMENT: &str =
    "SELECT id FROM step_runs WHERE id = ? AND run_id = ?";

/// The statements of the parents, inputs and outputs of `count` step runs, in the order of
/// [`RunOverview`]'s fields; each takes their ids. The links are looked up by id rather than
/// joined to the run's step runs again: each join would walk the run's index and read every
/// step run's row once more, which took most of the time of `runs show` on a run of
/// thousands of steps.
pub(crate) fn links_statements(count: usize) -> [String; 3] {
    let ids = placeholders(count);
    [
        format!("SELECT parent_id, child_id FROM step_run_parents WHERE child_id IN ({ids})"),
        format!(
            "SELECT step_run_id, name AS input_name, position, artifact_version_id \
             FROM step_run_inputs WHERE step_run_id IN ({ids})"
        ),
        format!(
            "SELECT o.step_run_id, o.name AS output_name, o.artifact_version_id, \
             a.name AS artifact_name, v.version FROM step_run_outputs o \
             JOIN artifact_versions v ON v.id = o.artifact_version_id \
             JOIN artifacts a ON a.id = v.artifact_id WHERE o.step_run_id IN ({ids})"
        ),
    ]
}

/// Decodes a `(parent, child)` row of the first statement of [`links_statements`].
pub(crate) fn parent_link(row: &impl Columns) -> Result<(StepRunId, StepRunId)> {
    Ok((
        parse("step run id", &row.string("parent_id")?)?,
        parse("step run id", &row.string("child_id")?)?,
    ))
}

/// Puts the links of an overview in the order [`overview_statements`] gives them, whatever
/// order a backend read them in.
pub(crate) fn sort_links(overview: &mut RunOverview) {
    overview
        .parents
        .sort_unstable_by_key(|&(parent, child)| (child, parent));
    overview.inputs.sort_unstable_by(|a, b| {
        (a.step_run, &a.name, a.position).cmp(&(b.step_run, &b.name, b.position))
    });
    overview
        .outputs
        .sort_unstable_by(|a, b| (a.step_run, &a.name).cmp(&(b.step_run, &b.name)));
}

/// The statements of a run's overview, in the order of [`RunOverview`]'s fields; each takes
/// the run's id as its one parameter.
pub(crate) fn overview_statements() -> [String; 4] {
    [
        format!(
            "SELECT {STEP_RUN_SUMMARY_COLUMNS} FROM step_runs s WHERE s.run_id = ? ORDER BY s.id"
        ),
        "SELECT p.parent_id, p.child_id FROM step_run_parents p \
         JOIN step_runs s ON s.id = p.child_id WHERE s.run_id = ? ORDER BY p.child_id, p.parent_id"
            .to_owned(),
        "SELECT i.step_run_id, i.name AS input_name, i.position, i.artifact_version_id \
         FROM step_run_inputs i JOIN step_runs s ON s.id = i.step_run_id \
         WHERE s.run_id = ? ORDER BY i.step_run_id, i.name, i.position"
            .to_owned(),
        "SELECT o.step_run_id, o.name AS output_name, o.artifact_version_id, a.name AS artifact_name, \
         v.version FROM step_run_outputs o JOIN step_runs s ON s.id = o.step_run_id \
         JOIN artifact_versions v ON v.id = o.artifact_version_id JOIN artifacts a ON a.id = v.artifact_id \
         WHERE s.run_id = ? ORDER BY o.step_run_id, o.name"
            .to_owned(),
    ]
}

/// Decodes a row of the overview's inputs.
pub(crate) fn input_link(row: &impl Columns) -> Result<InputLink> {
    Ok(InputLink {
        step_run: parse("step run id", &row.string("step_run_id")?)?,
        name: row.string("input_name")?,
        position: row.int("position")? as u32,
        artifact_version: parse("artifact version id", &row.string("artifact_version_id")?)?,
    })
}

/// Decodes a row of the overview's outputs.
pub(crate) fn output_link(row: &impl Columns) -> Result<OutputLink> {
    Ok(OutputLink {
        step_run: parse("step run id", &row.string("step_run_id")?)?,
        name: row.string("output_name")?,
        artifact_version: parse("artifact version id", &row.string("artifact_version_id")?)?,
        artifact: row.string("artifact_name")?,
        version: row.string("version")?,
    })
}

/// Decodes the columns of [`version_columns!`].
pub(crate) fn artifact_version(row: &impl Columns) -> Result<ArtifactVersion> {
    let tags = tag_names(row.text("v_tags")?);
    let mut files: Vec<weft_core::artifact::FileRecord> =
        json("artifact files", &row.string("v_files")?)?;
    // A list read from JSON grows to room for four: most versions have one file, and a
    // lineage or a run holds 100,000 of them.
    files.shrink_to_fit();
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
        files,
        save_type: parse("save type", &row.string("v_save_type")?)?,
        producer: optional(row.text("v_producer_step_run_id")?, |id| {
            parse("step run id", id)
        })?,
        tags,
        created_at: timestamp("artifact version created_at", &row.string("v_created_at")?)?,
    })
}

/// Decodes a step run id, an input's `input_name`, `position` and `kind`, and its version.
pub(crate) fn input(row: &impl Columns) -> Result<(StepRunId, StepInput)> {
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
pub(crate) fn output(row: &impl Columns) -> Result<(StepRunId, StepOutput)> {
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
    // Any length: a short prefix that matches several records is reported as ambiguous.
    let valid = !reference.is_empty()
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

/// A LIKE pattern (escape character `!`) for the step names whose last path segment is
/// `name`: `%::name`, with the wildcards in `name` itself taken literally (`_` is common in
/// step names).
pub(crate) fn path_suffix_pattern(name: &str) -> String {
    let mut pattern = String::from("%::");
    for c in name.chars() {
        if matches!(c, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern
}

/// How many ids one `IN (...)` list holds at most; longer lists are queried in chunks (SQLite
/// takes at most 32,766 parameters in a statement, PostgreSQL and MySQL 65,535).
pub(crate) const IN_LIST_CHUNK: usize = 1000;

/// `?, ?, ?` with `count` placeholders, for `IN (...)` lists.
pub(crate) fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// A new run's record, and its snapshot encoded (`create_run` stores both).
pub(crate) fn new_run(new: NewRun) -> (Run, String) {
    check_run_initial(Status::Initializing).expect("runs start initializing");
    let (snapshot_id, spec) = new.snapshot.encode();
    let spec = String::from_utf8(spec).expect("JSON is UTF-8");
    let now = time::now();
    let id = RunId::new();
    let run = Run {
        id,
        name: format!(
            "{}-{}-{}",
            new.snapshot.pipeline,
            now.format("%Y_%m_%d-%H_%M_%S"),
            &id.to_string()[32..]
        ),
        pipeline: new.snapshot.pipeline.clone(),
        snapshot_id: Some(snapshot_id),
        invocations: new.snapshot.invocations.len() as u32,
        status: Status::Initializing,
        status_reason: None,
        config: new.config,
        owner: new.owner,
        resumed_from: new.resumed_from,
        created_at: now,
        started_at: None,
        ended_at: None,
        heartbeat_at: Some(now),
        tags: {
            let mut tags = new.tags;
            tags.sort();
            tags.dedup();
            tags
        },
    };
    (run, spec)
}

/// The error recorded on the unfinished step runs of a run that ended without them.
pub(crate) fn run_ended_error(message: &str) -> String {
    serde_json::json!({
        "kind": "system",
        "message": message,
        "chain": [message],
        "backtrace": null,
    })
    .to_string()
}

/// Whether a run whose status is `status` takes new step runs: a finished run takes none;
/// an initializing (or provisioning) run takes them and moves to the status returned.
pub(crate) fn admitting_run(run: RunId, status: Status) -> Result<Option<Status>> {
    if status.is_finished() {
        return Err(Error::Conflict(format!(
            "run {run} is {status}: no step run can be added to a finished run"
        )));
    }
    Ok(matches!(status, Status::Initializing | Status::Provisioning).then_some(Status::Running))
}

/// Whether a new step run in `status` is turned away because its run is `run_status`: a
/// stopping run records no step run that would start.
pub(crate) fn turned_away(run_status: Status, status: Status, admission: Admission) -> bool {
    admission == Admission::UnlessStopping
        && run_status == Status::Stopping
        && matches!(
            status,
            Status::Running | Status::Queued | Status::Provisioning
        )
}

/// The record of a step run just created from `new`.
pub(crate) fn created_step_run(new: NewStepRun, attempt: u32, at: DateTime<Utc>) -> StepRun {
    let started = new.status == Status::Running;
    let ended = new.status.is_finished();
    StepRun {
        id: new.id,
        run_id: new.run_id,
        invocation: new.invocation,
        step: new.step,
        attempt,
        status: new.status,
        status_reason: new.status_reason,
        code_hash: new.code_hash,
        parameters: new.parameters,
        config: new.config,
        cache_key: new.cache_key,
        cache_parts: new.cache_parts,
        cache_expires_at: new.cache_expires_at,
        original_step_run: new.original_step_run,
        error: new.error.map(Box::new),
        created_at: at,
        started_at: started.then_some(at),
        ended_at: ended.then_some(at),
    }
}

/// What a new attempt of `invocation` follows: nothing (attempt 1), or its latest attempt
/// (id, number, status), which must have failed. Returns the new attempt's number, and the
/// `retrying` step run to mark `retried`, if any.
pub(crate) fn next_attempt(
    run: RunId,
    invocation: &str,
    latest: Option<(StepRunId, u32, Status)>,
) -> Result<(u32, Option<StepRunId>)> {
    let Some((id, attempt, status)) = latest else {
        return Ok((1, None));
    };
    match status {
        Status::Retrying => {
            check_step_run_transition(status, Status::Retried).map_err(|source| {
                Error::Transition {
                    kind: "step run",
                    id: id.to_string(),
                    source,
                }
            })?;
            Ok((attempt + 1, Some(id)))
        }
        Status::Failed | Status::Stopped => Ok((attempt + 1, None)),
        status => Err(Error::Conflict(format!(
            "invocation `{invocation}` of run {run} already has a step run that is {status}; a new attempt needs the last one to have failed"
        ))),
    }
}

/// The record of a version just registered from `new`.
pub(crate) fn registered_version(
    new: &NewArtifactVersion,
    artifact_id: &str,
    version: String,
    producer: Option<StepRunId>,
    at: DateTime<Utc>,
) -> Result<ArtifactVersion> {
    let mut tags = new.tags.clone();
    tags.sort();
    tags.dedup();
    Ok(ArtifactVersion {
        id: new.id,
        artifact_id: parse("artifact id", artifact_id)?,
        name: new.name.clone(),
        version,
        artifact_type: new.artifact_type,
        uri: new.uri.clone(),
        materializer: new.materializer.clone(),
        materializer_version: new.materializer_version,
        data_type: new.data_type.clone(),
        content_hash: new.content_hash.clone(),
        size: new.size,
        files: new.files.clone(),
        save_type: new.save_type,
        producer,
        tags,
        created_at: at,
    })
}

/// Reads the lineage walk needs, level by level, from one backend.
pub(crate) trait LineageSource {
    /// `(step run, input name, version id)` for every read of `versions`, or the first
    /// `limit` of them (by version, then step run).
    async fn readers_of(
        &mut self,
        versions: &[ArtifactVersionId],
        limit: Option<usize>,
    ) -> Result<Vec<(StepRun, String, ArtifactVersionId)>>;
    /// `(step run, output name, version)` for every output of `step_runs`.
    async fn outputs_of(
        &mut self,
        step_runs: &[StepRunId],
    ) -> Result<Vec<(StepRun, String, ArtifactVersion)>>;
    /// `(step run id, input name, version)` for every input of `step_runs`, or the first
    /// `limit` of them (by step run, name and position).
    async fn inputs_of(
        &mut self,
        step_runs: &[StepRunId],
        limit: Option<usize>,
    ) -> Result<Vec<(StepRunId, String, ArtifactVersion)>>;
}

/// The end of a query that reads at most `limit` rows in `order`, or nothing.
pub(crate) fn limited(order: &str, limit: Option<usize>) -> String {
    match limit {
        Some(limit) => format!(" ORDER BY {order} LIMIT {limit}"),
        None => String::new(),
    }
}

/// How many ids a lineage walk reads the records of at once: a fan-in's level holds 100,000
/// step runs, and the rows of one read (each a step run and a version) are held until they
/// are sorted into the lineage.
const WALK_READ: usize = 4096;

/// How many more step runs and versions a limited walk may take.
struct Room {
    left: Option<usize>,
    /// Something was left out.
    full: bool,
}

impl Room {
    /// Takes room for one more record; false (and the walk is marked cut) if there is none.
    fn take(&mut self) -> bool {
        match &mut self.left {
            Some(0) => {
                self.full = true;
                false
            }
            Some(left) => {
                *left -= 1;
                true
            }
            None => true,
        }
    }

    /// The most rows worth reading: one past the room left shows whether more exist.
    fn rows(&self) -> Option<usize> {
        self.left.map(|left| left + 1)
    }

    /// A read limited to `rows` that returned `read` rows may have left some out.
    fn note_read(&mut self, rows: Option<usize>, read: usize) {
        if rows.is_some_and(|rows| read >= rows) {
            self.full = true;
        }
    }
}

/// The lineage of `root` in one direction, at most `depth` steps deep and, with a `limit`,
/// at most that many step runs and versions besides the root, level by level with batched
/// reads, so its cost grows with the size of the lineage, not of the store. A limited walk
/// reads no more rows than it has room for: the 100,000 inputs of a fan-in are not read to
/// show a thousand.
pub(crate) async fn walk(
    source: &mut impl LineageSource,
    root: ArtifactVersion,
    direction: Direction,
    depth: u32,
    limit: Option<usize>,
) -> Result<Lineage> {
    let id = root.id;
    let mut versions: BTreeMap<ArtifactVersionId, ArtifactVersion> = BTreeMap::new();
    let mut step_runs: BTreeMap<StepRunId, StepRun> = BTreeMap::new();
    let mut reads = BTreeSet::new();
    let mut writes = BTreeSet::new();
    let mut room = Room {
        left: limit,
        full: false,
    };
    versions.insert(id, root.clone());
    let mut frontier = vec![id];
    for _ in 0..depth {
        if frontier.is_empty() || room.full {
            break;
        }
        let mut next = Vec::new();
        // Upstream: who made the frontier, and what did they read? Downstream: who read the
        // frontier, and what did they make?
        let mut new_steps: Vec<StepRunId> = match direction {
            Direction::Upstream => {
                let mut producers: Vec<StepRunId> = frontier
                    .iter()
                    .filter_map(|version| versions[version].producer)
                    .collect();
                producers.sort();
                producers.dedup();
                // One met at an earlier level is read again (it may have written a version
                // of this level too) but takes no more room.
                producers.retain(|producer| step_runs.contains_key(producer) || room.take());
                producers
            }
            Direction::Downstream => {
                let mut readers = Vec::new();
                for part in frontier.chunks(WALK_READ) {
                    let rows = room.rows();
                    let found = source.readers_of(part, rows).await?;
                    room.note_read(rows, found.len());
                    for (step_run, name, version) in found {
                        let id = step_run.id;
                        if let std::collections::btree_map::Entry::Vacant(entry) =
                            step_runs.entry(id)
                        {
                            if !room.take() {
                                continue;
                            }
                            readers.push(id);
                            entry.insert(step_run);
                        }
                        reads.insert((version, id, name));
                    }
                }
                readers
            }
        };
        new_steps.sort();
        new_steps.dedup();
        if new_steps.is_empty() {
            break;
        }
        // Looked up once per output: a fan-in's level holds 100,000 versions.
        let in_frontier: std::collections::HashSet<ArtifactVersionId> =
            frontier.iter().copied().collect();
        for part in new_steps.chunks(WALK_READ) {
            for (step_run, output, version) in source.outputs_of(part).await? {
                let version_id = version.id;
                let listed = match direction {
                    Direction::Upstream => in_frontier.contains(&version_id),
                    Direction::Downstream if versions.contains_key(&version_id) => true,
                    Direction::Downstream => {
                        let taken = room.take();
                        if taken {
                            next.push(version_id);
                            versions.insert(version_id, version);
                        }
                        taken
                    }
                };
                if listed {
                    writes.insert((step_run.id, version_id, output));
                }
                step_runs.entry(step_run.id).or_insert(step_run);
            }
        }
        if direction == Direction::Upstream {
            for part in new_steps.chunks(WALK_READ) {
                let rows = room.rows();
                let found = source.inputs_of(part, rows).await?;
                room.note_read(rows, found.len());
                for (step_run, name, version) in found {
                    let id = version.id;
                    if let std::collections::btree_map::Entry::Vacant(entry) = versions.entry(id) {
                        if !room.take() {
                            continue;
                        }
                        next.push(id);
                        entry.insert(version);
                    }
                    reads.insert((id, step_run, name));
                }
            }
        }
        frontier = next;
    }
    versions.remove(&id);
    Ok(Lineage {
        root: Some(root),
        step_runs: step_runs.into_values().collect(),
        artifact_versions: versions.into_values().collect(),
        reads: reads.into_iter().collect(),
        writes: writes.into_iter().collect(),
        truncated: room.full,
    })
}

/// The longest names every backend stores (in characters): a longer one is refused up front,
/// the same way everywhere, rather than by one database and not another.
pub(crate) mod limits {
    pub(crate) const NAME: usize = weft_core::limits::NAME;
    pub(crate) const STEP: usize = 1024;
    pub(crate) const ARGUMENT: usize = 255;
    pub(crate) const VERSION: usize = 255;
    pub(crate) const HASH: usize = 128;
}

/// Refuses `value` if it is longer than `limit` characters.
fn within(what: &str, value: &str, limit: usize) -> Result<()> {
    let length = value.chars().count();
    if length > limit {
        return Err(Error::Conflict(format!(
            "{what} is {length} characters long; at most {limit} are allowed: `{}…`",
            value.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// Checks the names of a new run.
/// Whether run `original` may be resumed, from its status and the runs already resuming it
/// that have not finished: only a run that ended without completing, and only by one run at
/// a time (checked in the transaction that records the new run, with the original locked).
pub(crate) fn check_resumable(
    original: RunId,
    status: &str,
    resuming: &[(String, String)],
) -> Result<()> {
    let status: Status = parse("run status", status)?;
    if status == Status::Completed {
        return Err(Error::Conflict(format!(
            "run {original} completed: there is nothing to resume (run the pipeline again, with --no-cache to compute everything anew)"
        )));
    }
    if !status.is_finished() {
        return Err(Error::Conflict(format!(
            "run {original} is still {status}: stop it (weft runs stop {original}) or let it end before resuming it"
        )));
    }
    for (run, status) in resuming {
        let status: Status = parse("run status", status)?;
        if !status.is_finished() {
            return Err(Error::Conflict(format!(
                "run {original} is already being resumed by run {run}, which is {status}"
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_new_run(new: &NewRun) -> Result<()> {
    within("the pipeline name", &new.snapshot.pipeline, limits::NAME)?;
    check_tags(&new.tags)
}

/// Checks the names of new step runs.
pub(crate) fn check_new_step_runs(new: &[NewStepRun]) -> Result<()> {
    for step_run in new {
        within("an invocation id", &step_run.invocation, limits::NAME)?;
        within("a step name", &step_run.step, limits::STEP)?;
        within("a code hash", &step_run.code_hash, limits::HASH)?;
        if let Some(key) = &step_run.cache_key {
            within("a cache key", key, limits::HASH)?;
        }
        for input in &step_run.inputs {
            within("an input name", &input.name, limits::ARGUMENT)?;
        }
    }
    Ok(())
}

/// Checks the names of a new version: its artifact, version, tags and metadata keys.
pub(crate) fn check_new_version(new: &NewArtifactVersion) -> Result<()> {
    within("an artifact name", &new.name, limits::NAME)?;
    if let Some(version) = &new.version {
        within("a version", version, limits::VERSION)?;
    }
    within("a materializer name", &new.materializer, limits::NAME)?;
    within("a content hash", &new.content_hash, limits::HASH)?;
    check_tags(&new.tags)?;
    check_metadata_keys(new.metadata.keys().map(String::as_str))
}

/// Checks the outputs of a completion.
pub(crate) fn check_completion(completion: &crate::model::Completion) -> Result<()> {
    for (output, version) in &completion.outputs {
        within("an output name", output, limits::ARGUMENT)?;
        check_new_version(version)?;
    }
    check_metadata_keys(completion.metadata.iter().map(|(key, _)| key.as_str()))
}

/// Checks tag names.
/// Checks tag names: not empty, not too long, no control characters (a tag list is read
/// back joined by one).
pub(crate) fn check_tags(tags: &[String]) -> Result<()> {
    tags.iter().try_for_each(|tag| {
        if tag.trim().is_empty() || tag.chars().any(char::is_control) {
            return Err(Error::Conflict(format!(
                "a tag must have a visible character and no control characters: {tag:?}"
            )));
        }
        within("a tag", tag, limits::NAME)
    })
}

/// Checks metadata keys.
pub(crate) fn check_metadata_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<()> {
    keys.into_iter()
        .try_for_each(|key| within("a metadata key", key, limits::NAME))
}

/// Checks everything a batch of changes writes.
pub(crate) fn check_changes(changes: &crate::model::Changes) -> Result<()> {
    for (_, completion) in &changes.completed {
        check_completion(completion)?;
    }
    for (_, entries) in &changes.system_metadata {
        check_metadata_keys(entries.iter().map(|(key, _)| key.as_str()))?;
    }
    check_new_step_runs(&changes.created)?;
    check_new_step_runs(&changes.started)
}

/// Whether new step runs are turned away from a stopping run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A step run that would start is refused by a stopping run.
    UnlessStopping,
    /// Its body already runs: it is recorded whatever the run's status.
    Started,
}

/// What creating a list of step runs recorded.
pub(crate) struct CreatedStepRuns {
    /// In the order given; `None` where one was turned away.
    pub step_runs: Vec<Option<StepRun>>,
    /// Whether one of their runs is stopping.
    pub stopping: bool,
}

/// Tag names from a backend's aggregate (joined by U+001F), sorted.
pub(crate) fn tag_names(aggregate: Option<String>) -> Vec<String> {
    let mut tags: Vec<String> = aggregate
        .map(|tags| tags.split('\u{1f}').map(str::to_owned).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JsonText;

    fn step_run_with(config: &serde_json::Value) -> StepRun {
        let mut new = crate::conformance::running(RunId::new(), "step");
        new.config = JsonText::new(config);
        created_step_run(new, 1, time::now())
    }

    #[test]
    fn step_runs_of_one_read_share_equal_settings_texts() {
        let mut shared = SharedSettings::default();
        let settings = serde_json::json!({"retries": 2});
        let first = shared.share(step_run_with(&settings));
        let second = shared.share(step_run_with(&settings));
        let other = shared.share(step_run_with(&serde_json::json!({"retries": 3})));
        assert!(std::sync::Arc::ptr_eq(&first.config.0, &second.config.0));
        assert!(!std::sync::Arc::ptr_eq(&first.config.0, &other.config.0));
        assert_eq!(second.config.as_str(), r#"{"retries":2}"#);
        assert_eq!(other.config.as_str(), r#"{"retries":3}"#);
    }
}
