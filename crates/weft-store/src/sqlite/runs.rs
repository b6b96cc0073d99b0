//! [`RunStore`] for SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use weft_core::status::{check_run_transition, derive_static_run_status};
use weft_core::{PipelineId, RunId, Snapshot, SnapshotId, Status, canonical};

use super::rows::{self, RUN_COLUMNS, RUN_FROM};
use super::{SqliteStore, id_prefix, the_only};
use crate::model::{NewRun, Run, RunFilter};
use crate::{Error, Result, RunStore, time};

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, new: NewRun) -> Result<Run> {
        crate::records::check_new_run(&new)?;
        let format_version = new.snapshot.format_version;
        let (run, spec) = rows::new_run(new);
        let now = run.created_at;
        let record = run.clone();
        self.write(move |tx| {
            if let Some(original) = record.resumed_from {
                let status: Option<String> = tx
                    .prepare_cached("SELECT status FROM runs WHERE id = ?")?
                    .query_row([original.to_string()], |row| row.get(0))
                    .optional()?;
                let status = status.ok_or_else(|| Error::NotFound {
                    kind: "run",
                    reference: original.to_string(),
                })?;
                let resuming = tx
                    .prepare_cached("SELECT id, status FROM runs WHERE resumed_from = ?")?
                    .query_map([original.to_string()], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
                crate::records::check_resumable(original, &status, &resuming)?;
            }
            let created_at = time::format(now);
            tx.prepare_cached(
                "INSERT INTO pipelines (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![PipelineId::new().to_string(), record.pipeline, created_at])?;
            let pipeline_id: String = tx
                .prepare_cached("SELECT id FROM pipelines WHERE name = ?")?
                .query_row([&record.pipeline], |row| row.get(0))?;
            let snapshot_id = record.snapshot_id.as_ref().expect("a new run has a snapshot").as_str();
            tx.prepare_cached(
                "INSERT INTO snapshots (id, pipeline_id, format_version, spec, created_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![snapshot_id, pipeline_id, format_version, spec, created_at])?;
            tx.prepare_cached(
                "INSERT INTO runs (id, name, pipeline_id, snapshot_id, invocations, status, config, \
                 owner, resumed_from, created_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                record.id.to_string(),
                record.name,
                pipeline_id,
                snapshot_id,
                record.invocations,
                record.status.as_str(),
                canonical::to_string(&record.config),
                record.owner.as_ref().map(|owner| serde_json::to_string(owner).expect("plain data")),
                record.resumed_from.map(|id| id.to_string()),
                created_at,
                created_at
            ])
            .map_err(|e| super::step_runs::constraint_error(e, "the resumed run does not exist"))?;
            super::artifacts::insert_tags(tx, "run", &record.id.to_string(), &record.tags)
        })
        .await?;
        Ok(run)
    }

    async fn run(&self, id: RunId) -> Result<Run> {
        self.read(move |connection| run_by_id(connection, id)).await
    }

    async fn run_status(&self, id: RunId) -> Result<Status> {
        self.read(move |connection| run_status(connection, id))
            .await
    }

    async fn tag_run(&self, id: RunId, tags: &[String]) -> Result<Run> {
        crate::records::check_tags(tags)?;
        let tags = tags.to_vec();
        self.write(move |tx| {
            run_by_id(tx, id)?;
            super::artifacts::insert_tags(tx, "run", &id.to_string(), &tags)?;
            run_by_id(tx, id)
        })
        .await
    }

    async fn untag_run(&self, id: RunId, tags: &[String]) -> Result<Run> {
        let tags = tags.to_vec();
        self.write(move |tx| {
            run_by_id(tx, id)?;
            super::artifacts::remove_tags(tx, "run", &id.to_string(), &tags)?;
            run_by_id(tx, id)
        })
        .await
    }

    async fn find_run(&self, reference: &str) -> Result<Run> {
        let reference = reference.to_owned();
        self.read(move |connection| {
            let not_found = || Error::NotFound {
                kind: "run",
                reference: reference.clone(),
            };
            if reference == "latest" {
                return rows::first(
                    connection,
                    &format!("SELECT {RUN_COLUMNS} FROM {RUN_FROM} ORDER BY r.id DESC LIMIT 1"),
                    [],
                    rows::run,
                )?
                .ok_or_else(not_found);
            }
            if let Ok(id) = reference.parse::<RunId>() {
                return run_by_id(connection, id);
            }
            let by_name = rows::first(
                connection,
                &format!("SELECT {RUN_COLUMNS} FROM {RUN_FROM} WHERE r.name = ?"),
                [&reference],
                rows::run,
            )?;
            if let Some(run) = by_name {
                return Ok(run);
            }
            let pattern = id_prefix(&reference).ok_or_else(not_found)?;
            let found = rows::all(
                connection,
                &format!("SELECT {RUN_COLUMNS} FROM {RUN_FROM} WHERE r.id LIKE ? ORDER BY r.id"),
                [&pattern],
                rows::run,
            )?;
            the_only(found, "run", &reference)
        })
        .await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let (sql, values) = rows::runs_query(RUN_COLUMNS, filter);
        self.read(move |connection| {
            rows::all(
                connection,
                &sql,
                rusqlite::params_from_iter(values),
                rows::run,
            )
        })
        .await
    }

    async fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.snapshot_as(id).await
    }

    async fn snapshot_outline(&self, id: &SnapshotId) -> Result<weft_core::snapshot::Outline> {
        self.snapshot_as(id).await
    }

    async fn refresh_static_run(&self, id: RunId) -> Result<Run> {
        self.write(move |tx| {
            let (current, invocations): (String, i64) = tx
                .prepare_cached("SELECT status, invocations FROM runs WHERE id = ?")?
                .query_row([id.to_string()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
                .ok_or_else(|| Error::NotFound { kind: "run", reference: id.to_string() })?;
            let current: Status = rows::parse("run status", &current)?;
            let latest = rows::all(
                tx,
                "SELECT s.status FROM step_runs s WHERE s.run_id = ? AND s.attempt = \
                 (SELECT MAX(attempt) FROM step_runs t WHERE t.run_id = s.run_id AND t.invocation_id = s.invocation_id)",
                [id.to_string()],
                |row| rows::parse::<Status>("step run status", &row.get::<_, String>(0)?),
            )?;
            let derived = derive_static_run_status(current, invocations as usize, latest);
            if derived != current {
                set_run_status(tx, id, current, derived, None)?;
            }
            run_by_id(tx, id)
        })
        .await
    }

    async fn fail_run(&self, id: RunId, reason: &str) -> Result<Run> {
        let reason = reason.to_owned();
        self.write(move |tx| {
            let current = run_status(tx, id)?;
            set_run_status(tx, id, current, Status::Failed, Some(&reason))?;
            // Its unfinished step runs fail with it: nothing is left running.
            let error = rows::run_ended_error(&format!("the run failed: {reason}"));
            tx.prepare_cached(
                "UPDATE step_runs SET status = 'failed', error = ?1, ended_at = ?2 \
                 WHERE run_id = ?3 AND status IN ('queued', 'provisioning', 'running', 'retrying', 'stopping')",
            )?
            .execute(params![error, time::format(time::now()), id.to_string()])?;
            run_by_id(tx, id)
        })
        .await
    }

    async fn finish_dynamic_run(
        &self,
        id: RunId,
        status: Status,
        reason: Option<&str>,
    ) -> Result<Run> {
        if !matches!(status, Status::Completed | Status::Failed | Status::Stopped) {
            return Err(Error::Conflict(format!(
                "a dynamic run ends completed, failed or stopped, not {status}"
            )));
        }
        let reason = reason.map(str::to_owned);
        self.write(move |tx| {
            let mut current = run_status(tx, id)?;
            let status = match (current, status) {
                (Status::Stopping, Status::Completed) => Status::Stopped,
                _ => status,
            };
            if current == Status::Initializing && status == Status::Completed {
                set_run_status(tx, id, current, Status::Running, None)?;
                current = Status::Running;
            }
            set_run_status(tx, id, current, status, reason.as_deref())?;
            if status != Status::Completed {
                let message = format!("the run ended {status}: {}", reason.as_deref().unwrap_or("no reason given"));
                let error = rows::run_ended_error(&message);
                tx.prepare_cached(
                    "UPDATE step_runs SET status = ?1, error = CASE WHEN ?1 = 'failed' THEN ?2 ELSE error END, \
                     status_reason = COALESCE(status_reason, ?3), ended_at = ?4 \
                     WHERE run_id = ?5 AND status IN ('queued', 'provisioning', 'running', 'retrying', 'stopping')",
                )?
                .execute(params![
                    status.as_str(),
                    error,
                    message,
                    time::format(time::now()),
                    id.to_string()
                ])?;
            }
            tx.prepare_cached(
                "UPDATE runs SET invocations = \
                 (SELECT COUNT(DISTINCT invocation_id) FROM step_runs WHERE run_id = ?1) WHERE id = ?1",
            )?
            .execute([id.to_string()])?;
            run_by_id(tx, id)
        })
        .await
    }

    async fn heartbeat(&self, id: RunId) -> Result<Status> {
        self.write(move |tx| {
            let now = time::format(time::now());
            tx.prepare_cached("UPDATE runs SET heartbeat_at = ? WHERE id = ?")?
                .execute(params![now, id.to_string()])?;
            tx.prepare_cached(
                "UPDATE step_runs SET heartbeat_at = ? WHERE run_id = ? AND status IN ('provisioning', 'running', 'stopping')",
            )?
            .execute(params![now, id.to_string()])?;
            run_status(tx, id)
        })
        .await
    }

    async fn request_stop(&self, id: RunId) -> Result<Run> {
        self.write(move |tx| {
            let current = run_status(tx, id)?;
            if current != Status::Stopping {
                set_run_status(
                    tx,
                    id,
                    current,
                    Status::Stopping,
                    Some("a stop was requested"),
                )?;
            }
            run_by_id(tx, id)
        })
        .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<Run>> {
        self.read(move |connection| {
            rows::all(
                connection,
                &format!(
                    "SELECT {RUN_COLUMNS} FROM {RUN_FROM} \
                     WHERE r.status IN ('initializing', 'provisioning', 'running', 'stopping') ORDER BY r.id"
                ),
                [],
                rows::run,
            )
        })
        .await
    }
}

impl SqliteStore {
    /// The stored snapshot `id`, decoded as a whole or as its outline.
    async fn snapshot_as<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        id: &SnapshotId,
    ) -> Result<T> {
        let id = id.clone();
        self.read(move |connection| {
            let (version, spec): (i64, String) = connection
                .prepare_cached("SELECT format_version, spec FROM snapshots WHERE id = ?")?
                .query_row([id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
                .ok_or_else(|| Error::NotFound {
                    kind: "snapshot",
                    reference: id.to_string(),
                })?;
            crate::records::snapshot(&id, version, &spec)
        })
        .await
    }
}

fn run_by_id(connection: &Connection, id: RunId) -> Result<Run> {
    rows::first(
        connection,
        &format!("SELECT {RUN_COLUMNS} FROM {RUN_FROM} WHERE r.id = ?"),
        [id.to_string()],
        rows::run,
    )?
    .ok_or_else(|| Error::NotFound {
        kind: "run",
        reference: id.to_string(),
    })
}

pub(crate) fn run_status(connection: &Connection, id: RunId) -> Result<Status> {
    let status: String = connection
        .prepare_cached("SELECT status FROM runs WHERE id = ?")?
        .query_row([id.to_string()], |row| row.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound {
            kind: "run",
            reference: id.to_string(),
        })?;
    rows::parse("run status", &status)
}

/// Changes a run's status after the state machine allowed it, stamping start and end times.
pub(crate) fn set_run_status(
    connection: &Connection,
    id: RunId,
    from: Status,
    to: Status,
    reason: Option<&str>,
) -> Result<()> {
    check_run_transition(from, to).map_err(|source| Error::Transition {
        kind: "run",
        id: id.to_string(),
        source,
    })?;
    let now = time::format(time::now());
    connection
        .prepare_cached(
            "UPDATE runs SET status = ?1, status_reason = COALESCE(?2, status_reason), \
             started_at = CASE WHEN started_at IS NULL AND ?3 THEN ?4 ELSE started_at END, \
             ended_at = CASE WHEN ?5 THEN ?4 ELSE ended_at END WHERE id = ?6",
        )?
        .execute(params![
            to.as_str(),
            reason,
            to == Status::Running,
            now,
            to.is_finished(),
            id.to_string()
        ])?;
    Ok(())
}
