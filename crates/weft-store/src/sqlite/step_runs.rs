//! [`StepRunStore`] for SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use weft_core::status::{check_step_run_initial, check_step_run_transition};
use weft_core::{RunId, Status, StepRunId};

use crate::records::{self, Columns as _};

use super::artifacts::insert_version;
use super::metadata::upsert_metadata;
use super::rows::{self, STEP_RUN_COLUMNS, STEP_RUN_LIST_COLUMNS};
use super::runs::{run_status, set_run_status};
use super::{SqliteStore, id_prefix, the_only};
use crate::model::{
    Applied, CacheEntry, CacheExpiry, Changes, Completion, LogRef, MetadataSource, NewStepRun,
    Resource, StepError, StepOutput, StepRun,
};
use crate::records::{Admission, CreatedStepRuns};
use crate::{Error, Result, StepRunStore, time};
use chrono::{DateTime, Utc};

#[async_trait]
impl StepRunStore for SqliteStore {
    async fn create_step_runs(&self, new: Vec<NewStepRun>) -> Result<Vec<StepRun>> {
        crate::records::check_new_step_runs(&new)?;
        if new.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let created = create_all(tx, new, Admission::UnlessStopping, time::now())?;
            created
                .step_runs
                .into_iter()
                .map(|step_run| {
                    step_run.ok_or_else(|| {
                        Error::Conflict("the run is stopping: no new step starts".into())
                    })
                })
                .collect()
        })
        .await
    }

    async fn complete_step_run(
        &self,
        id: StepRunId,
        completion: Completion,
    ) -> Result<Vec<StepOutput>> {
        crate::records::check_completion(&completion)?;
        self.write(move |tx| complete(tx, id, completion, time::now()))
            .await
    }

    async fn fail_step_run(
        &self,
        id: StepRunId,
        error: StepError,
        log_uri: Option<String>,
    ) -> Result<StepRun> {
        self.write(move |tx| {
            fail(
                tx,
                id,
                Status::Failed,
                &error,
                log_uri.as_deref(),
                time::now(),
            )?;
            step_run_by_id(tx, id)
        })
        .await
    }

    async fn stop_step_run(&self, id: StepRunId, reason: &str) -> Result<StepRun> {
        let reason = reason.to_owned();
        self.write(move |tx| {
            stop(tx, id, &reason, time::now())?;
            step_run_by_id(tx, id)
        })
        .await
    }

    async fn apply_in_order(&self, batches: Vec<Changes>) -> Result<Vec<Applied>> {
        for changes in &batches {
            crate::records::check_changes(changes)?;
        }
        if batches.iter().all(Changes::is_empty) {
            return Ok(batches.iter().map(|_| Applied::default()).collect());
        }
        self.write(move |tx| {
            batches
                .into_iter()
                .map(|changes| apply_changes(tx, changes))
                .collect()
        })
        .await
    }

    async fn step_run(&self, id: StepRunId) -> Result<StepRun> {
        self.read(move |connection| step_run_by_id(connection, id))
            .await
    }

    async fn original_runs(&self, run: RunId) -> Result<Vec<(StepRunId, RunId)>> {
        self.read(move |connection| {
            rows::all(
                connection,
                "SELECT s.id, o.run_id FROM step_runs s JOIN step_runs o ON o.id = s.original_step_run_id \
                 WHERE s.run_id = ?",
                [run.to_string()],
                |row| {
                    Ok((
                        rows::parse("step run id", &row.get::<_, String>(0)?)?,
                        rows::parse("run id", &row.get::<_, String>(1)?)?,
                    ))
                },
            )
        })
        .await
    }

    async fn step_runs(&self, run: RunId) -> Result<Vec<StepRun>> {
        self.read(move |connection| {
            let shared = std::cell::RefCell::new(records::SharedSettings::default());
            let mut step_runs = rows::all(
                connection,
                &format!("SELECT {STEP_RUN_LIST_COLUMNS} FROM step_runs s WHERE s.run_id = ?"),
                [run.to_string()],
                |row| records::step_run_sharing(row, &mut shared.borrow_mut()),
            )?;
            // In id order, sorted here: SQLite's sort copied every whole row into a
            // temporary B-tree first. (Ids sort as their text does.)
            step_runs.sort_unstable_by_key(|step_run| step_run.id);
            Ok(step_runs)
        })
        .await
    }

    async fn attempts(&self, run: RunId, invocation: &str) -> Result<Vec<StepRun>> {
        let invocation = invocation.to_owned();
        self.read(move |connection| {
            rows::all(
                connection,
                &format!(
                    "SELECT {STEP_RUN_COLUMNS} FROM step_runs s \
                     WHERE s.run_id = ? AND s.invocation_id = ? ORDER BY s.attempt"
                ),
                [run.to_string(), invocation],
                rows::step_run,
            )
        })
        .await
    }

    async fn find_step_run(&self, run: RunId, reference: &str) -> Result<StepRun> {
        let reference = reference.to_owned();
        self.read(move |connection| {
            let by_invocation = rows::first(
                connection,
                &format!(
                    "SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.run_id = ? AND s.invocation_id = ? \
                     ORDER BY s.attempt DESC LIMIT 1"
                ),
                [run.to_string(), reference.clone()],
                rows::step_run,
            )?;
            if let Some(step_run) = by_invocation {
                return Ok(step_run);
            }
            let not_found = || Error::NotFound {
                kind: "step run",
                reference: format!("{reference} (in run {run})"),
            };
            let pattern = id_prefix(&reference).ok_or_else(not_found)?;
            let found = rows::all(
                connection,
                &format!("SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.run_id = ? AND s.id LIKE ?"),
                [run.to_string(), pattern],
                rows::step_run,
            )?;
            the_only(found, "step run", &format!("{reference} (in run {run})"))
        })
        .await
    }

    async fn cache_candidate(&self, key: &str, now: DateTime<Utc>) -> Result<Option<CacheEntry>> {
        let key = key.to_owned();
        self.read(move |connection| {
            // The candidate and its outputs in one statement: one row per output, or one row
            // without an output when it has none.
            let rows = rows::all(
                connection,
                CACHE_CANDIDATE,
                params![key, time::format(now)],
                |row| {
                    let step_run =
                        rows::parse::<StepRunId>("step run id", &row.string("step_run_id")?)?;
                    let run_id = rows::parse::<RunId>("run id", &row.string("candidate_run_id")?)?;
                    let output = match row.text("output_name")? {
                        Some(_) => Some(rows::output(row)?.1),
                        None => None,
                    };
                    Ok((step_run, run_id, output))
                },
            )?;
            let Some(&(step_run, run_id, _)) = rows.first() else {
                return Ok(None);
            };
            // Sorted here: in SQL, the sort of a row or two costs a temporary B-tree.
            let mut outputs: Vec<_> = rows
                .into_iter()
                .filter_map(|(_, _, output)| output)
                .collect();
            outputs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            Ok(Some(CacheEntry {
                step_run,
                run_id,
                outputs,
            }))
        })
        .await
    }

    async fn expire_cache(&self, which: CacheExpiry) -> Result<u64> {
        self.write(move |tx| {
            let now = time::format(time::now());
            let changed = match which {
                CacheExpiry::All => tx
                    .prepare_cached(
                        "UPDATE step_runs SET cache_expires_at = ? WHERE cache_key IS NOT NULL AND status = 'completed' \
                         AND (cache_expires_at IS NULL OR cache_expires_at > ?)",
                    )?
                    .execute(params![now, now])?,
                CacheExpiry::Step(step) => tx
                    .prepare_cached(
                        "UPDATE step_runs SET cache_expires_at = ? WHERE cache_key IS NOT NULL AND status = 'completed' \
                         AND (step_name = ? OR step_name LIKE ? ESCAPE '!') \
                         AND (cache_expires_at IS NULL OR cache_expires_at > ?)",
                    )?
                    .execute(params![now, step, rows::path_suffix_pattern(&step), now])?,
                CacheExpiry::StepRuns(ids) => {
                    let mut changed = 0;
                    for id in ids {
                        changed += tx
                            .prepare_cached(
                                "UPDATE step_runs SET cache_expires_at = ? WHERE id = ? AND cache_key IS NOT NULL AND status = 'completed' \
                                 AND (cache_expires_at IS NULL OR cache_expires_at > ?)",
                            )?
                            .execute(params![now, id.to_string(), now])?;
                    }
                    changed
                }
            };
            Ok(changed as u64)
        })
        .await
    }

    async fn log(&self, id: StepRunId) -> Result<Option<LogRef>> {
        self.read(move |connection| {
            rows::first(
                connection,
                "SELECT run_id, uri FROM logs WHERE step_run_id = ?",
                [id.to_string()],
                |row| {
                    Ok(LogRef {
                        run_id: rows::parse("run id", &row.get::<_, String>(0)?)?,
                        step_run_id: Some(id),
                        uri: row.get(1)?,
                    })
                },
            )
        })
        .await
    }
}

/// Records new step runs with their inputs and parents. The first step run of an
/// `initializing` run moves it to `running`; a finished run takes none; a stopping run takes
/// no step run that would start (those come back as `None`).
/// One batch of [`Changes`], inside the caller's transaction: completions, failures and
/// stops first, then new step runs (which may read the versions the completions register).
fn apply_changes(tx: &Connection, changes: Changes) -> Result<Applied> {
    let at = changes.at.unwrap_or_else(time::now);
    let mut outputs = Vec::with_capacity(changes.completed.len());
    for (id, completion) in changes.completed {
        outputs.push(complete(tx, id, completion, at)?);
    }
    for (id, error, log_uri) in &changes.failed {
        fail(tx, *id, Status::Failed, error, log_uri.as_deref(), at)?;
    }
    for (id, error, log_uri) in &changes.retrying {
        fail(tx, *id, Status::Retrying, error, log_uri.as_deref(), at)?;
    }
    for (id, reason) in &changes.stopped {
        stop(tx, *id, reason, at)?;
    }
    for (id, entries) in changes.system_metadata {
        upsert_metadata(tx, Resource::StepRun(id), entries, MetadataSource::System)?;
    }
    let started = create_all(tx, changes.started, Admission::Started, at)?;
    let created = create_all(tx, changes.created, Admission::UnlessStopping, at)?;
    Ok(Applied {
        outputs,
        created: created.step_runs,
        stopping: started.stopping || created.stopping,
    })
}

/// The newest unexpired completed step run of a cache key (`?1`, at time `?2`), with its
/// outputs in name order.
const CACHE_CANDIDATE: &str = concat!(
    "SELECT s.id AS step_run_id, s.run_id AS candidate_run_id, o.name AS output_name, ",
    crate::records::version_columns!("group_concat(t.name, char(31))"),
    " FROM (SELECT id, run_id FROM step_runs WHERE cache_key = ?1 AND status = 'completed' \
     AND (cache_expires_at IS NULL OR cache_expires_at > ?2) ORDER BY id DESC LIMIT 1) s \
     LEFT JOIN step_run_outputs o ON o.step_run_id = s.id \
     LEFT JOIN artifact_versions v ON v.id = o.artifact_version_id \
     LEFT JOIN artifacts a ON a.id = v.artifact_id"
);

fn create_all(
    tx: &Connection,
    new: Vec<NewStepRun>,
    admission: Admission,
    created_at: DateTime<Utc>,
) -> Result<CreatedStepRuns> {
    let now = time::format(created_at);
    let mut created = Vec::with_capacity(new.len());
    let mut checked_runs: Vec<(RunId, Status)> = Vec::new();
    // Settings texts already stored by this transaction: a pipeline's steps mostly share one.
    let mut configs_stored = std::collections::HashSet::new();
    let mut last_config: Option<(crate::model::JsonText, String)> = None;
    // Each statement is taken from the cache once for the whole batch, not once per row.
    let mut insert_config =
        tx.prepare_cached("INSERT OR IGNORE INTO step_configs (config_key, config) VALUES (?, ?)")?;
    let mut insert_step_run = tx.prepare_cached(
        "INSERT INTO step_runs (id, run_id, invocation_id, step_name, attempt, status, \
         status_reason, code_hash, parameters, config, cache_key, cache_parts, cache_expires_at, \
         original_step_run_id, error, created_at, started_at, ended_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    let mut insert_input = tx.prepare_cached(
        "INSERT INTO step_run_inputs (step_run_id, name, position, artifact_version_id, kind) \
         VALUES (?, ?, ?, ?, ?)",
    )?;
    let mut insert_parent =
        tx.prepare_cached("INSERT INTO step_run_parents (parent_id, child_id) VALUES (?, ?)")?;
    for step_run in new {
        check_step_run_initial(step_run.status).map_err(|source| Error::Transition {
            kind: "step run",
            id: format!("{}/{}", step_run.run_id, step_run.invocation),
            source,
        })?;
        let run = match checked_runs.iter().find(|(run, _)| *run == step_run.run_id) {
            Some((_, status)) => *status,
            None => {
                let mut current = run_status(tx, step_run.run_id)?;
                if let Some(next) = rows::admitting_run(step_run.run_id, current)? {
                    set_run_status(tx, step_run.run_id, current, next, None)?;
                    current = next;
                }
                checked_runs.push((step_run.run_id, current));
                current
            }
        };
        if rows::turned_away(run, step_run.status, admission) {
            created.push(None);
            continue;
        }
        let id = step_run.id.to_string();
        let started = step_run.status == Status::Running;
        let ended = step_run.status.is_finished();
        // A batch's step runs mostly share their settings (a map's items): hashed once.
        let config_key = match &last_config {
            Some((text, key)) if text.as_str() == step_run.config.as_str() => key.clone(),
            _ => {
                let key = records::config_key(step_run.config.as_str());
                last_config = Some((step_run.config.clone(), key.clone()));
                key
            }
        };
        if !configs_stored.contains(&config_key) {
            insert_config.execute(params![config_key, step_run.config.as_str()])?;
            configs_stored.insert(config_key.clone());
        }
        let run_id = step_run.run_id.to_string();
        let cache_expires_at = step_run.cache_expires_at.map(time::format);
        let original = step_run.original_step_run.map(|id| id.to_string());
        let error = step_run
            .error
            .as_ref()
            .map(|e| serde_json::to_string(e).expect("plain data"));
        let mut insert = |attempt: u32| {
            insert_step_run.execute(params![
                id,
                run_id,
                step_run.invocation,
                step_run.step,
                attempt,
                step_run.status.as_str(),
                step_run.status_reason,
                step_run.code_hash,
                step_run.parameters.as_str(),
                config_key,
                step_run.cache_key,
                records::stored_parts(&step_run),
                cache_expires_at,
                original,
                error,
                now,
                started.then_some(&now),
                ended.then_some(&now),
            ])
        };
        // Most step runs are their invocation's first attempt: inserted as such, with no
        // lookup. A later attempt collides with the first on (run, invocation, attempt), and
        // then takes its number from the latest (which it marks `retried`).
        let mut attempt = 1;
        let mut inserted = insert(attempt);
        if let Err(rusqlite::Error::SqliteFailure(failure, _)) = &inserted
            && failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        {
            attempt = next_attempt(tx, step_run.run_id, &step_run.invocation, created_at)?;
            inserted = insert(attempt);
        }
        inserted?;
        for input in &step_run.inputs {
            insert_input
                .execute(params![
                    id,
                    input.name,
                    input.position,
                    input.artifact_version.to_string(),
                    input.kind.as_str()
                ])
                .map_err(|e| constraint_error(e, "an input artifact version does not exist"))?;
        }
        for parent in &step_run.parents {
            insert_parent
                .execute(params![parent.to_string(), id])
                .map_err(|e| constraint_error(e, "a parent step run does not exist"))?;
        }
        if let (Status::Cached, Some(original)) = (step_run.status, step_run.original_step_run) {
            tx.prepare_cached(
                "INSERT INTO step_run_outputs (step_run_id, name, artifact_version_id) \
                 SELECT ?, name, artifact_version_id FROM step_run_outputs WHERE step_run_id = ?",
            )?
            .execute(params![id, original.to_string()])?;
        }
        created.push(Some(rows::created_step_run(step_run, attempt, created_at)));
    }
    Ok(CreatedStepRuns {
        step_runs: created,
        stopping: checked_runs
            .iter()
            .any(|(_, status)| *status == Status::Stopping),
    })
}

fn complete(
    tx: &Connection,
    id: StepRunId,
    completion: Completion,
    at: DateTime<Utc>,
) -> Result<Vec<StepOutput>> {
    // Only a running step run completes: the update says whether it was, and only when it
    // was not is the status read, for the error (a step run's completion read it first).
    let completed = tx
        .prepare_cached(
            "UPDATE step_runs SET status = ?1, ended_at = ?2 WHERE id = ?3 AND status = ?4",
        )?
        .execute(params![
            Status::Completed.as_str(),
            time::format(at),
            id.to_string(),
            Status::Running.as_str()
        ])?;
    if completed == 0 {
        let (_, current) = step_run_status(tx, id)?;
        check_step_run_transition(current, Status::Completed).map_err(|source| {
            Error::Transition {
                kind: "step run",
                id: id.to_string(),
                source,
            }
        })?;
        return Err(Error::Conflict(format!(
            "step run {id} is {current} and could not be completed"
        )));
    }
    let mut outputs = Vec::with_capacity(completion.outputs.len());
    for (name, version) in completion.outputs {
        let artifact_version = insert_version(tx, &version, Some(id))?;
        tx.prepare_cached(
            "INSERT INTO step_run_outputs (step_run_id, name, artifact_version_id) VALUES (?, ?, ?)",
        )?
        .execute(params![id.to_string(), name, artifact_version.id.to_string()])?;
        outputs.push(StepOutput {
            name,
            artifact_version,
        });
    }
    if completion.log_uri.is_some() {
        let (run_id, _) = step_run_status(tx, id)?;
        insert_log(tx, run_id, id, completion.log_uri.as_deref())?;
    }
    if !completion.metadata.is_empty() {
        upsert_metadata(
            tx,
            Resource::StepRun(id),
            completion.metadata,
            MetadataSource::User,
        )?;
    }
    Ok(outputs)
}

/// Records a failure: `failed`, or `retrying` when another attempt follows.
fn fail(
    tx: &Connection,
    id: StepRunId,
    status: Status,
    error: &StepError,
    log_uri: Option<&str>,
    at: DateTime<Utc>,
) -> Result<()> {
    let (run_id, current) = step_run_status(tx, id)?;
    check_step_run_transition(current, status).map_err(|source| Error::Transition {
        kind: "step run",
        id: id.to_string(),
        source,
    })?;
    insert_log(tx, run_id, id, log_uri)?;
    set_step_run_status(tx, id, status, None, Some(error), at)
}

fn stop(tx: &Connection, id: StepRunId, reason: &str, at: DateTime<Utc>) -> Result<()> {
    let (_, current) = step_run_status(tx, id)?;
    check_step_run_transition(current, Status::Stopped).map_err(|source| Error::Transition {
        kind: "step run",
        id: id.to_string(),
        source,
    })?;
    set_step_run_status(tx, id, Status::Stopped, Some(reason), None, at)
}

fn step_run_by_id(connection: &Connection, id: StepRunId) -> Result<StepRun> {
    rows::first(
        connection,
        &format!("SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.id = ?"),
        [id.to_string()],
        rows::step_run,
    )?
    .ok_or_else(|| Error::NotFound {
        kind: "step run",
        reference: id.to_string(),
    })
}

/// The attempt number of a new step run for `invocation`: 1, or one more than the latest
/// attempt, which must have failed (a `retrying` one becomes `retried`).
fn next_attempt(
    connection: &Connection,
    run: RunId,
    invocation: &str,
    at: DateTime<Utc>,
) -> Result<u32> {
    let latest = connection
        .prepare_cached(
            "SELECT id, attempt, status FROM step_runs WHERE run_id = ? AND invocation_id = ? \
             ORDER BY attempt DESC LIMIT 1",
        )?
        .query_row(params![run.to_string(), invocation], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    let latest = latest
        .map(|(id, attempt, status)| -> Result<_> {
            Ok((
                rows::parse("step run id", &id)?,
                attempt,
                rows::parse("step run status", &status)?,
            ))
        })
        .transpose()?;
    let (attempt, retried) = rows::next_attempt(run, invocation, latest)?;
    if let Some(retried) = retried {
        set_step_run_status(connection, retried, Status::Retried, None, None, at)?;
    }
    Ok(attempt)
}

fn step_run_status(connection: &Connection, id: StepRunId) -> Result<(RunId, Status)> {
    let (run, status): (String, String) = connection
        .prepare_cached("SELECT run_id, status FROM step_runs WHERE id = ?")?
        .query_row([id.to_string()], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or_else(|| Error::NotFound {
            kind: "step run",
            reference: id.to_string(),
        })?;
    Ok((
        rows::parse("run id", &run)?,
        rows::parse("step run status", &status)?,
    ))
}

/// Writes a status the caller has already checked with the state machine.
fn set_step_run_status(
    connection: &Connection,
    id: StepRunId,
    status: Status,
    reason: Option<&str>,
    error: Option<&StepError>,
    at: DateTime<Utc>,
) -> Result<()> {
    connection
        .prepare_cached(
            "UPDATE step_runs SET status = ?1, status_reason = COALESCE(?2, status_reason), \
             error = COALESCE(?3, error), ended_at = CASE WHEN ?4 THEN ?5 ELSE ended_at END WHERE id = ?6",
        )?
        .execute(params![
            status.as_str(),
            reason,
            error.map(|e| serde_json::to_string(e).expect("plain data")),
            status.is_finished(),
            time::format(at),
            id.to_string()
        ])?;
    Ok(())
}

fn insert_log(
    connection: &Connection,
    run: RunId,
    step_run: StepRunId,
    uri: Option<&str>,
) -> Result<()> {
    if let Some(uri) = uri {
        connection
            .prepare_cached("INSERT INTO logs (id, run_id, step_run_id, uri, created_at) VALUES (?, ?, ?, ?, ?)")?
            .execute(params![
                uuid::Uuid::now_v7().to_string(),
                run.to_string(),
                step_run.to_string(),
                uri,
                time::format(time::now())
            ])?;
    }
    Ok(())
}

/// Maps a constraint violation to a conflict that says what was wrong.
pub(crate) fn constraint_error(error: rusqlite::Error, what: &str) -> Error {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Conflict(what.into())
        }
        _ => Error::Database(error),
    }
}
