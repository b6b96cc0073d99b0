//! [`StepRunStore`] on a database server.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx_core::any::AnyArguments;
use sqlx_core::arguments::Arguments as _;
use weft_core::status::{check_step_run_initial, check_step_run_transition};
use weft_core::{RunId, Status, StepRunId};

use super::artifacts::{insert_version, lock_artifacts};
use super::metadata::upsert_metadata;
use super::runs::{run_status, set_run_status};
use super::{ServerStore, Session, args, constraint_error, list_args, transaction};
use crate::model::{
    Applied, CacheEntry, CacheExpiry, Changes, Completion, LogRef, MetadataSource, NewStepRun,
    Resource, StepError, StepOutput, StepRun,
};
use crate::records::{
    self, Admission, Columns, CreatedStepRuns, STEP_RUN_COLUMNS, STEP_RUN_LIST_COLUMNS, id_prefix,
    placeholders, the_only,
};
use crate::{Error, Result, StepRunStore, time};

/// The condition of a cache entry that has not expired at the bound time.
const UNEXPIRED: &str = "cache_key IS NOT NULL AND status = 'completed' \
    AND (cache_expires_at IS NULL OR cache_expires_at > ?)";

#[async_trait]
impl StepRunStore for ServerStore {
    async fn create_step_runs(&self, new: Vec<NewStepRun>) -> Result<Vec<StepRun>> {
        crate::records::check_new_step_runs(&new)?;
        if new.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self, |s| create_all(
            &mut s,
            &new,
            Admission::UnlessStopping,
            time::now()
        )
        .await)?
        .step_runs
        .into_iter()
        .map(|step_run| {
            step_run
                .ok_or_else(|| Error::Conflict("the run is stopping: no new step starts".into()))
        })
        .collect()
    }

    async fn complete_step_run(
        &self,
        id: StepRunId,
        completion: Completion,
    ) -> Result<Vec<StepOutput>> {
        crate::records::check_completion(&completion)?;
        transaction!(self, |s| complete(&mut s, id, &completion, time::now())
            .await)
    }

    async fn fail_step_run(
        &self,
        id: StepRunId,
        error: StepError,
        log_uri: Option<String>,
    ) -> Result<StepRun> {
        transaction!(self, |s| {
            fail(
                &mut s,
                id,
                Status::Failed,
                &error,
                log_uri.as_deref(),
                time::now(),
            )
            .await?;
            step_run_by_id(&mut s, id).await
        })
    }

    async fn stop_step_run(&self, id: StepRunId, reason: &str) -> Result<StepRun> {
        transaction!(self, |s| {
            stop(&mut s, id, reason, time::now()).await?;
            step_run_by_id(&mut s, id).await
        })
    }

    async fn apply_in_order(&self, batches: Vec<Changes>) -> Result<Vec<Applied>> {
        for changes in &batches {
            crate::records::check_changes(changes)?;
        }
        if batches.iter().all(Changes::is_empty) {
            return Ok(batches.iter().map(|_| Applied::default()).collect());
        }
        transaction!(self, |s| {
            let mut applied = Vec::with_capacity(batches.len());
            for changes in &batches {
                applied.push(apply_changes(&mut s, changes).await?);
            }
            Ok(applied)
        })
    }

    async fn step_run(&self, id: StepRunId) -> Result<StepRun> {
        step_run_by_id(&mut self.read().await?, id).await
    }

    async fn original_runs(&self, run: RunId) -> Result<Vec<(StepRunId, RunId)>> {
        self.read()
            .await?
            .all(
                "SELECT s.id AS step_run_id, o.run_id AS original_run_id FROM step_runs s \
                 JOIN step_runs o ON o.id = s.original_step_run_id WHERE s.run_id = ?",
                args![run.to_string()],
                |row| {
                    Ok((
                        records::parse("step run id", &row.string("step_run_id")?)?,
                        records::parse("run id", &row.string("original_run_id")?)?,
                    ))
                },
            )
            .await
    }

    async fn step_runs(&self, run: RunId) -> Result<Vec<StepRun>> {
        let step_runs = self
            .read()
            .await?
            .all(
                &format!(
                    "SELECT {STEP_RUN_LIST_COLUMNS} FROM step_runs s WHERE s.run_id = ? ORDER BY s.id"
                ),
                args![run.to_string()],
                records::step_run,
            )
            .await?;
        let mut shared = records::SharedSettings::default();
        Ok(step_runs
            .into_iter()
            .map(|step_run| shared.share(step_run))
            .collect())
    }

    async fn attempts(&self, run: RunId, invocation: &str) -> Result<Vec<StepRun>> {
        self.read()
            .await?
            .all(
                &format!(
                    "SELECT {STEP_RUN_COLUMNS} FROM step_runs s \
                     WHERE s.run_id = ? AND s.invocation_id = ? ORDER BY s.attempt"
                ),
                args![run.to_string(), invocation.to_owned()],
                records::step_run,
            )
            .await
    }

    async fn find_step_run(&self, run: RunId, reference: &str) -> Result<StepRun> {
        let mut s = self.read().await?;
        let by_invocation = s
            .first(
                &format!(
                    "SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.run_id = ? AND s.invocation_id = ? \
                     ORDER BY s.attempt DESC LIMIT 1"
                ),
                args![run.to_string(), reference.to_owned()],
                records::step_run,
            )
            .await?;
        if let Some(step_run) = by_invocation {
            return Ok(step_run);
        }
        let not_found = || Error::NotFound {
            kind: "step run",
            reference: format!("{reference} (in run {run})"),
        };
        let pattern = id_prefix(reference).ok_or_else(not_found)?;
        let found = s
            .all(
                &format!(
                    "SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.run_id = ? AND s.id LIKE ?"
                ),
                args![run.to_string(), pattern.clone()],
                records::step_run,
            )
            .await?;
        the_only(found, "step run", &format!("{reference} (in run {run})"))
    }

    async fn cache_candidate(&self, key: &str, now: DateTime<Utc>) -> Result<Option<CacheEntry>> {
        // The candidate and its outputs in one round trip: a row per output, or one row
        // with no output for a step run that had none.
        let mut s = self.read().await?;
        let columns = s.dialect().version_columns();
        let rows = s
            .all(
                &format!(
                    "SELECT c.id AS candidate, c.run_id AS candidate_run, o.step_run_id, \
                     o.name AS output_name, {columns} \
                     FROM (SELECT id, run_id FROM step_runs WHERE cache_key = ? AND status = 'completed' \
                           AND (cache_expires_at IS NULL OR cache_expires_at > ?) ORDER BY id DESC LIMIT 1) c \
                     LEFT JOIN step_run_outputs o ON o.step_run_id = c.id \
                     LEFT JOIN artifact_versions v ON v.id = o.artifact_version_id \
                     LEFT JOIN artifacts a ON a.id = v.artifact_id ORDER BY o.name"
                ),
                args![key.to_owned(), time::format(now)],
                |row| {
                    let candidate = (
                        records::parse::<StepRunId>("step run id", &row.string("candidate")?)?,
                        records::parse::<RunId>("run id", &row.string("candidate_run")?)?,
                    );
                    let output = match row.text("output_name")? {
                        Some(_) => Some(records::output(row)?.1),
                        None => None,
                    };
                    Ok((candidate, output))
                },
            )
            .await?;
        let Some(((step_run, run_id), _)) = rows.first() else {
            return Ok(None);
        };
        let (step_run, run_id) = (*step_run, *run_id);
        Ok(Some(CacheEntry {
            step_run,
            run_id,
            outputs: rows.into_iter().filter_map(|(_, output)| output).collect(),
        }))
    }

    async fn expire_cache(&self, which: CacheExpiry) -> Result<u64> {
        let now = time::format(time::now());
        transaction!(self, |s| {
            match &which {
                CacheExpiry::All => {
                    s.execute(
                        &format!("UPDATE step_runs SET cache_expires_at = ? WHERE {UNEXPIRED}"),
                        args![now.clone(), now.clone()],
                    )
                    .await
                }
                CacheExpiry::Step(step) => {
                    s.execute(
                        &format!(
                            "UPDATE step_runs SET cache_expires_at = ? WHERE {UNEXPIRED} \
                             AND (step_name = ? OR step_name LIKE ? ESCAPE '!')"
                        ),
                        args![
                            now.clone(),
                            now.clone(),
                            step.clone(),
                            records::path_suffix_pattern(step)
                        ],
                    )
                    .await
                }
                CacheExpiry::StepRuns(ids) => {
                    let mut changed = 0;
                    for id in ids {
                        changed += s
                            .execute(
                                &format!(
                                    "UPDATE step_runs SET cache_expires_at = ? WHERE {UNEXPIRED} AND id = ?"
                                ),
                                args![now.clone(), now.clone(), id.to_string()],
                            )
                            .await?;
                    }
                    Ok(changed)
                }
            }
        })
    }

    async fn log(&self, id: StepRunId) -> Result<Option<LogRef>> {
        self.read()
            .await?
            .first(
                "SELECT run_id, uri FROM logs WHERE step_run_id = ?",
                args![id.to_string()],
                |row| {
                    Ok(LogRef {
                        run_id: records::parse("run id", &row.string("run_id")?)?,
                        step_run_id: Some(id),
                        uri: row.string("uri")?,
                    })
                },
            )
            .await
    }
}

/// Records new step runs with their inputs and parents. The first step run of an
/// `initializing` run moves it to `running`; a finished run takes none; a stopping run takes
/// no step run that would start (those come back as `None`).
///
/// In a few statements whatever the batch's size (a wide fan-out or a map creates hundreds
/// at once): one query for the latest attempts of the batch's invocations per run, then
/// multi-row inserts.
/// One batch of [`Changes`], inside the caller's transaction: completions, failures and
/// stops first, then new step runs (which may read the versions the completions register).
async fn apply_changes(s: &mut Session, changes: &Changes) -> Result<Applied> {
    let at = changes.at.unwrap_or_else(time::now);
    let mut outputs = Vec::with_capacity(changes.completed.len());
    for (id, completion) in &changes.completed {
        outputs.push(complete(s, *id, completion, at).await?);
    }
    for (id, error, log_uri) in &changes.failed {
        fail(s, *id, Status::Failed, error, log_uri.as_deref(), at).await?;
    }
    for (id, error, log_uri) in &changes.retrying {
        fail(s, *id, Status::Retrying, error, log_uri.as_deref(), at).await?;
    }
    for (id, reason) in &changes.stopped {
        stop(s, *id, reason, at).await?;
    }
    for (id, entries) in &changes.system_metadata {
        upsert_metadata(s, Resource::StepRun(*id), entries, MetadataSource::System).await?;
    }
    let started = create_all(s, &changes.started, Admission::Started, at).await?;
    let created = create_all(s, &changes.created, Admission::UnlessStopping, at).await?;
    Ok(Applied {
        outputs,
        created: created.step_runs,
        stopping: started.stopping || created.stopping,
    })
}

async fn create_all(
    s: &mut Session,
    new: &[NewStepRun],
    admission: Admission,
    created_at: DateTime<Utc>,
) -> Result<CreatedStepRuns> {
    let now = time::format(created_at);
    let mut checked_runs: Vec<(RunId, Status)> = Vec::new();
    let mut kept: Vec<&NewStepRun> = Vec::with_capacity(new.len());
    let mut skipped = vec![false; new.len()];
    for (index, step_run) in new.iter().enumerate() {
        check_step_run_initial(step_run.status).map_err(|source| Error::Transition {
            kind: "step run",
            id: format!("{}/{}", step_run.run_id, step_run.invocation),
            source,
        })?;
        let run = match checked_runs.iter().find(|(run, _)| *run == step_run.run_id) {
            Some((_, status)) => *status,
            None => {
                let mut current = run_status(s, step_run.run_id).await?;
                if let Some(next) = records::admitting_run(step_run.run_id, current)? {
                    set_run_status(s, step_run.run_id, current, next, None).await?;
                    current = next;
                }
                checked_runs.push((step_run.run_id, current));
                current
            }
        };
        if records::turned_away(run, step_run.status, admission) {
            skipped[index] = true;
        } else {
            kept.push(step_run);
        }
    }
    // The latest attempt of every invocation concerned, then each new step run in order:
    // a repeated invocation sees the attempt made just before it.
    let mut latest: HashMap<(RunId, &str), (StepRunId, u32, Status)> = HashMap::new();
    for (run, _) in &checked_runs {
        let mut invocations: Vec<&str> = kept
            .iter()
            .filter(|step_run| step_run.run_id == *run)
            .map(|step_run| step_run.invocation.as_str())
            .collect();
        invocations.sort_unstable();
        invocations.dedup();
        for chunk in invocations.chunks(crate::records::IN_LIST_CHUNK) {
            let found = s
                .all(
                    &format!(
                        "SELECT id, invocation_id, attempt, status FROM step_runs \
                         WHERE run_id = ? AND invocation_id IN ({})",
                        placeholders(chunk.len())
                    ),
                    || {
                        list_args(
                            std::iter::once(run.to_string())
                                .chain(chunk.iter().map(|invocation| (*invocation).to_owned())),
                        )
                    },
                    |row| {
                        Ok((
                            records::parse::<StepRunId>("step run id", &row.string("id")?)?,
                            row.string("invocation_id")?,
                            row.int("attempt")? as u32,
                            records::parse::<Status>("step run status", &row.string("status")?)?,
                        ))
                    },
                )
                .await?;
            for (id, invocation, attempt, status) in found {
                let Some(invocation) = chunk.iter().find(|known| **known == invocation) else {
                    continue;
                };
                let entry = latest
                    .entry((*run, invocation))
                    .or_insert((id, attempt, status));
                if attempt > entry.1 {
                    *entry = (id, attempt, status);
                }
            }
        }
    }
    let mut attempts = Vec::with_capacity(kept.len());
    for step_run in &kept {
        let key = (step_run.run_id, step_run.invocation.as_str());
        let (attempt, retried) = records::next_attempt(
            step_run.run_id,
            &step_run.invocation,
            latest.get(&key).copied(),
        )?;
        if let Some(retried) = retried {
            set_step_run_status(s, retried, Status::Retried, None, None, created_at).await?;
        }
        latest.insert(key, (step_run.id, attempt, step_run.status));
        attempts.push(attempt);
    }
    insert_step_runs(s, &kept, &attempts, &now).await?;
    let inputs: Vec<(StepRunId, &crate::model::NewInput)> = kept
        .iter()
        .flat_map(|step_run| step_run.inputs.iter().map(|input| (step_run.id, input)))
        .collect();
    for chunk in inputs.chunks(ROWS_PER_STATEMENT) {
        s.execute(
            &format!(
                "INSERT INTO step_run_inputs (step_run_id, name, position, artifact_version_id, kind) \
                 VALUES {}",
                rows(chunk.len(), 5)
            ),
            || {
                let mut arguments = AnyArguments::default();
                for (id, input) in chunk {
                    push(&mut arguments, id.to_string())?;
                    push(&mut arguments, input.name.to_string())?;
                    push(&mut arguments, i64::from(input.position))?;
                    push(&mut arguments, input.artifact_version.to_string())?;
                    push(&mut arguments, input.kind.as_str())?;
                }
                Ok(arguments)
            },
        )
        .await
        .map_err(|e| constraint_error(e, "an input artifact version does not exist"))?;
    }
    let parents: Vec<String> = kept
        .iter()
        .flat_map(|step_run| {
            step_run
                .parents
                .iter()
                .flat_map(|parent| [parent.to_string(), step_run.id.to_string()])
        })
        .collect();
    for chunk in parents.chunks(2 * ROWS_PER_STATEMENT) {
        s.execute(
            &format!(
                "INSERT INTO step_run_parents (parent_id, child_id) VALUES {}",
                rows(chunk.len() / 2, 2)
            ),
            || list_args(chunk.iter().cloned()),
        )
        .await
        .map_err(|e| constraint_error(e, "a parent step run does not exist"))?;
    }
    for step_run in &kept {
        if let (Status::Cached, Some(original)) = (step_run.status, step_run.original_step_run) {
            s.execute(
                "INSERT INTO step_run_outputs (step_run_id, name, artifact_version_id) \
                 SELECT ?, name, artifact_version_id FROM step_run_outputs WHERE step_run_id = ?",
                args![step_run.id.to_string(), original.to_string()],
            )
            .await?;
        }
    }
    let mut made = kept.iter().zip(&attempts).map(|(step_run, attempt)| {
        records::created_step_run((*step_run).clone(), *attempt, created_at)
    });
    Ok(CreatedStepRuns {
        step_runs: skipped
            .into_iter()
            .map(|skipped| if skipped { None } else { made.next() })
            .collect(),
        stopping: checked_runs
            .iter()
            .any(|(_, status)| *status == Status::Stopping),
    })
}

/// Rows per multi-row statement: well under the 65,535 placeholders both servers allow.
const ROWS_PER_STATEMENT: usize = 500;

/// `(?, ?), (?, ?)` for `count` rows of `columns` values.
fn rows(count: usize, columns: usize) -> String {
    let row = format!("({})", placeholders(columns));
    vec![row; count].join(", ")
}

/// Adds one argument.
fn push<'q, T>(arguments: &mut AnyArguments<'q>, value: T) -> Result<()>
where
    T: 'q
        + sqlx_core::encode::Encode<'q, sqlx_core::any::Any>
        + sqlx_core::types::Type<sqlx_core::any::Any>,
{
    arguments
        .add(value)
        .map_err(|e| Error::corrupt("a statement argument", e))
}

/// Inserts the step runs, many per statement.
async fn insert_step_runs(
    s: &mut Session,
    step_runs: &[&NewStepRun],
    attempts: &[u32],
    now: &str,
) -> Result<()> {
    let both: Vec<(&NewStepRun, u32)> = step_runs
        .iter()
        .copied()
        .zip(attempts.iter().copied())
        .collect();
    // Settings, once per distinct text.
    let mut configs = std::collections::BTreeMap::new();
    let config_keys: Vec<String> = step_runs
        .iter()
        .map(|step_run| {
            let key = records::config_key(step_run.config.as_str());
            configs
                .entry(key.clone())
                .or_insert(step_run.config.as_str());
            key
        })
        .collect();
    // Only the missing ones are inserted: an insert that meets an existing key locks it (on
    // MySQL) until the transaction ends, which made every writer queue on one row and
    // deadlock with the artifact locks. A plain read takes no lock.
    let mut known = std::collections::HashSet::new();
    let keys: Vec<&String> = configs.keys().collect();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let found = s
            .all(
                &format!(
                    "SELECT config_key FROM step_configs WHERE config_key IN ({})",
                    placeholders(chunk.len())
                ),
                || list_args(chunk.iter().map(|key| (*key).clone())),
                |row| row.string("config_key"),
            )
            .await?;
        known.extend(found);
    }
    let configs: Vec<(String, &str)> = configs
        .into_iter()
        .filter(|(key, _)| !known.contains(key))
        .collect();
    for chunk in configs.chunks(ROWS_PER_STATEMENT) {
        let insert = s.dialect().insert_or_ignore(
            &format!(
                "step_configs (config_key, config) VALUES {}",
                rows(chunk.len(), 2)
            ),
            "config_key",
        );
        s.execute(&insert, || {
            let mut arguments = AnyArguments::default();
            for (key, config) in chunk {
                push(&mut arguments, key.clone())?;
                push(&mut arguments, config.to_string())?;
            }
            Ok(arguments)
        })
        .await?;
    }
    let both: Vec<(&NewStepRun, u32, String)> = both
        .into_iter()
        .zip(config_keys)
        .map(|((step_run, attempt), key)| (step_run, attempt, key))
        .collect();
    for chunk in both.chunks(ROWS_PER_STATEMENT / 4) {
        s.execute(
            &format!(
                "INSERT INTO step_runs (id, run_id, invocation_id, step_name, attempt, status, \
                 status_reason, code_hash, parameters, config, cache_key, cache_parts, \
                 cache_expires_at, original_step_run_id, error, created_at, started_at, ended_at) \
                 VALUES {}",
                rows(chunk.len(), 18)
            ),
            || {
                let mut arguments = AnyArguments::default();
                for (step_run, attempt, config_key) in chunk {
                    let started = step_run.status == Status::Running;
                    let ended = step_run.status.is_finished();
                    push(&mut arguments, step_run.id.to_string())?;
                    push(&mut arguments, step_run.run_id.to_string())?;
                    push(&mut arguments, step_run.invocation.clone())?;
                    push(&mut arguments, step_run.step.clone())?;
                    push(&mut arguments, i64::from(*attempt))?;
                    push(&mut arguments, step_run.status.as_str())?;
                    push(&mut arguments, step_run.status_reason.clone())?;
                    push(&mut arguments, step_run.code_hash.clone())?;
                    push(&mut arguments, step_run.parameters.as_str())?;
                    push(&mut arguments, config_key.clone())?;
                    push(&mut arguments, step_run.cache_key.clone())?;
                    push(&mut arguments, records::stored_parts(step_run))?;
                    push(&mut arguments, step_run.cache_expires_at.map(time::format))?;
                    push(
                        &mut arguments,
                        step_run.original_step_run.map(|id| id.to_string()),
                    )?;
                    push(
                        &mut arguments,
                        step_run
                            .error
                            .as_ref()
                            .map(|e| serde_json::to_string(e).expect("plain data")),
                    )?;
                    push(&mut arguments, now.to_owned())?;
                    push(&mut arguments, started.then(|| now.to_owned()))?;
                    push(&mut arguments, ended.then(|| now.to_owned()))?;
                }
                Ok(arguments)
            },
        )
        .await
        .map_err(|e| constraint_error(e, "the step run's original step run does not exist"))?;
    }
    Ok(())
}

async fn complete(
    s: &mut Session,
    id: StepRunId,
    completion: &Completion,
    at: DateTime<Utc>,
) -> Result<Vec<StepOutput>> {
    let (run_id, current) = step_run_status(s, id).await?;
    check_step_run_transition(current, Status::Completed).map_err(|source| Error::Transition {
        kind: "step run",
        id: id.to_string(),
        source,
    })?;
    let mut locked = lock_artifacts(
        s,
        completion
            .outputs
            .iter()
            .filter(|(_, version)| version.version.is_none())
            .map(|(_, version)| (version.name.as_str(), version.has_custom_name)),
    )
    .await?;
    let mut outputs = Vec::with_capacity(completion.outputs.len());
    for (name, version) in &completion.outputs {
        let artifact_version = insert_version(s, version, Some(id), &mut locked).await?;
        s.execute(
            "INSERT INTO step_run_outputs (step_run_id, name, artifact_version_id) VALUES (?, ?, ?)",
            args![id.to_string(), name.clone(), artifact_version.id.to_string()],
        )
        .await?;
        outputs.push(StepOutput {
            name: name.clone(),
            artifact_version,
        });
    }
    insert_log(s, run_id, id, completion.log_uri.as_deref()).await?;
    if !completion.metadata.is_empty() {
        upsert_metadata(
            s,
            Resource::StepRun(id),
            &completion.metadata,
            MetadataSource::User,
        )
        .await?;
    }
    set_step_run_status(s, id, Status::Completed, None, None, at).await?;
    Ok(outputs)
}

/// Records a failure: `failed`, or `retrying` when another attempt follows.
async fn fail(
    s: &mut Session,
    id: StepRunId,
    status: Status,
    error: &StepError,
    log_uri: Option<&str>,
    at: DateTime<Utc>,
) -> Result<()> {
    let (run_id, current) = step_run_status(s, id).await?;
    check_step_run_transition(current, status).map_err(|source| Error::Transition {
        kind: "step run",
        id: id.to_string(),
        source,
    })?;
    insert_log(s, run_id, id, log_uri).await?;
    set_step_run_status(s, id, status, None, Some(error), at).await
}

async fn stop(s: &mut Session, id: StepRunId, reason: &str, at: DateTime<Utc>) -> Result<()> {
    let (_, current) = step_run_status(s, id).await?;
    check_step_run_transition(current, Status::Stopped).map_err(|source| Error::Transition {
        kind: "step run",
        id: id.to_string(),
        source,
    })?;
    set_step_run_status(s, id, Status::Stopped, Some(reason), None, at).await
}

async fn step_run_by_id(s: &mut Session, id: StepRunId) -> Result<StepRun> {
    s.first(
        &format!("SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.id = ?"),
        args![id.to_string()],
        records::step_run,
    )
    .await?
    .ok_or_else(|| Error::NotFound {
        kind: "step run",
        reference: id.to_string(),
    })
}

/// A step run's run and status, with the rows of both locked until the transaction ends.
/// Every write to a run's step runs locks the run first (see [`run_status`]), so writers of
/// one run queue in one order and never deadlock each other.
async fn step_run_status(s: &mut Session, id: StepRunId) -> Result<(RunId, Status)> {
    let not_found = || Error::NotFound {
        kind: "step run",
        reference: id.to_string(),
    };
    let run = s
        .first(
            "SELECT run_id FROM step_runs WHERE id = ?",
            args![id.to_string()],
            |row| row.string("run_id"),
        )
        .await?
        .ok_or_else(not_found)?;
    let run: RunId = records::parse("run id", &run)?;
    run_status(s, run).await?;
    let status = s
        .first(
            "SELECT status FROM step_runs WHERE id = ? FOR UPDATE",
            args![id.to_string()],
            |row| row.string("status"),
        )
        .await?
        .ok_or_else(not_found)?;
    Ok((run, records::parse("step run status", &status)?))
}

/// Writes a status the caller has already checked with the state machine.
async fn set_step_run_status(
    s: &mut Session,
    id: StepRunId,
    status: Status,
    reason: Option<&str>,
    error: Option<&StepError>,
    at: DateTime<Utc>,
) -> Result<()> {
    let ended = status.is_finished().then(|| time::format(at));
    s.execute(
        "UPDATE step_runs SET status = ?, status_reason = COALESCE(?, status_reason), \
         error = COALESCE(?, error), ended_at = COALESCE(?, ended_at) WHERE id = ?",
        args![
            status.as_str(),
            reason.map(str::to_owned),
            error.map(|e| serde_json::to_string(e).expect("plain data")),
            ended.clone(),
            id.to_string()
        ],
    )
    .await?;
    Ok(())
}

async fn insert_log(
    s: &mut Session,
    run: RunId,
    step_run: StepRunId,
    uri: Option<&str>,
) -> Result<()> {
    if let Some(uri) = uri {
        s.execute(
            "INSERT INTO logs (id, run_id, step_run_id, uri, created_at) VALUES (?, ?, ?, ?, ?)",
            args![
                uuid::Uuid::now_v7().to_string(),
                run.to_string(),
                step_run.to_string(),
                uri.to_owned(),
                time::format(time::now())
            ],
        )
        .await?;
    }
    Ok(())
}
