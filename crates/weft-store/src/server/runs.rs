//! [`RunStore`] on a database server.

use async_trait::async_trait;
use weft_core::status::{check_run_transition, derive_static_run_status};
use weft_core::{PipelineId, RunId, Snapshot, SnapshotId, Status, canonical};

use super::artifacts::{insert_tags, remove_tags};
use super::{ServerStore, Session, args, constraint_error, transaction};
use crate::model::{NewRun, Run, RunFilter};
use crate::records::{self, Columns, RUN_FROM, id_prefix, the_only};
use crate::{Error, Result, RunStore, time};

/// Step run statuses that have not finished, as an SQL list.
const UNFINISHED_STEP_RUNS: &str = "('queued', 'provisioning', 'running', 'retrying', 'stopping')";

#[async_trait]
impl RunStore for ServerStore {
    async fn create_run(&self, new: NewRun) -> Result<Run> {
        crate::records::check_new_run(&new)?;
        let format_version = i64::from(new.snapshot.format_version);
        let (run, spec) = records::new_run(new);
        let created_at = time::format(run.created_at);
        let snapshot_id = run
            .snapshot_id
            .as_ref()
            .expect("a new run has a snapshot")
            .as_str();
        transaction!(self, |s| {
            if let Some(original) = run.resumed_from {
                // The original is locked: two resumes of it queue here, and the second sees
                // the first.
                let status = stored_status(&mut s, original, true).await?;
                let resuming = s
                    .all(
                        "SELECT id, status FROM runs WHERE resumed_from = ?",
                        args![original.to_string()],
                        |row| Ok((row.string("id")?, row.string("status")?)),
                    )
                    .await?;
                records::check_resumable(original, &status, &resuming)?;
            }
            let insert_pipeline = s
                .dialect()
                .insert_or_ignore("pipelines (id, name, created_at) VALUES (?, ?, ?)", "name");
            s.execute(
                &insert_pipeline,
                args![
                    PipelineId::new().to_string(),
                    run.pipeline.clone(),
                    created_at.clone()
                ],
            )
            .await?;
            let pipeline_id = s
                .first(
                    "SELECT id FROM pipelines WHERE name = ?",
                    args![run.pipeline.clone()],
                    |row| row.string("id"),
                )
                .await?
                .ok_or_else(|| Error::corrupt("pipelines", "a pipeline vanished"))?;
            let insert_snapshot = s.dialect().insert_or_ignore(
                "snapshots (id, pipeline_id, format_version, spec, created_at) VALUES (?, ?, ?, ?, ?)",
                "id",
            );
            s.execute(
                &insert_snapshot,
                args![
                    snapshot_id.to_owned(),
                    pipeline_id.clone(),
                    format_version,
                    spec.clone(),
                    created_at.clone()
                ],
            )
            .await?;
            s.execute(
                "INSERT INTO runs (id, name, pipeline_id, snapshot_id, invocations, status, config, \
                 owner, resumed_from, created_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                args![
                    run.id.to_string(),
                    run.name.clone(),
                    pipeline_id.clone(),
                    snapshot_id.to_owned(),
                    i64::from(run.invocations),
                    run.status.as_str(),
                    canonical::to_string(&run.config),
                    run.owner
                        .as_ref()
                        .map(|owner| serde_json::to_string(owner).expect("plain data")),
                    run.resumed_from.map(|id| id.to_string()),
                    created_at.clone(),
                    created_at.clone()
                ],
            )
            .await
            .map_err(|e| constraint_error(e, "the resumed run does not exist"))?;
            insert_tags(&mut s, "run", &run.id.to_string(), &run.tags).await
        })?;
        Ok(run)
    }

    async fn run(&self, id: RunId) -> Result<Run> {
        run_by_id(&mut self.read().await?, id).await
    }

    async fn run_status(&self, id: RunId) -> Result<Status> {
        let status = stored_status(&mut self.read().await?, id, false).await?;
        records::parse("run status", &status)
    }

    async fn tag_run(&self, id: RunId, tags: &[String]) -> Result<Run> {
        records::check_tags(tags)?;
        transaction!(self, |s| {
            run_by_id(&mut s, id).await?;
            insert_tags(&mut s, "run", &id.to_string(), tags).await?;
            run_by_id(&mut s, id).await
        })
    }

    async fn untag_run(&self, id: RunId, tags: &[String]) -> Result<Run> {
        transaction!(self, |s| {
            run_by_id(&mut s, id).await?;
            remove_tags(&mut s, "run", &id.to_string(), tags).await?;
            run_by_id(&mut s, id).await
        })
    }

    async fn find_run(&self, reference: &str) -> Result<Run> {
        let mut s = self.read().await?;
        let not_found = || Error::NotFound {
            kind: "run",
            reference: reference.to_owned(),
        };
        if reference == "latest" {
            return s
                .first(
                    &format!(
                        "SELECT {columns} FROM {RUN_FROM} ORDER BY r.id DESC LIMIT 1",
                        columns = s.dialect().run_columns()
                    ),
                    args![],
                    records::run,
                )
                .await?
                .ok_or_else(not_found);
        }
        if let Ok(id) = reference.parse::<RunId>() {
            return run_by_id(&mut s, id).await;
        }
        let by_name = s
            .first(
                &format!(
                    "SELECT {columns} FROM {RUN_FROM} WHERE r.name = ?",
                    columns = s.dialect().run_columns()
                ),
                args![reference.to_owned()],
                records::run,
            )
            .await?;
        if let Some(run) = by_name {
            return Ok(run);
        }
        let pattern = id_prefix(reference).ok_or_else(not_found)?;
        let found = s
            .all(
                &format!(
                    "SELECT {columns} FROM {RUN_FROM} WHERE r.id LIKE ? ORDER BY r.id",
                    columns = s.dialect().run_columns()
                ),
                args![pattern.clone()],
                records::run,
            )
            .await?;
        the_only(found, "run", reference)
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let mut s = self.read().await?;
        let (sql, values) = records::runs_query(s.dialect().run_columns(), filter);
        s.all(
            &sql,
            || super::list_args(values.iter().cloned()),
            records::run,
        )
        .await
    }

    async fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.snapshot_as(id).await
    }

    async fn snapshot_outline(&self, id: &SnapshotId) -> Result<weft_core::snapshot::Outline> {
        self.snapshot_as(id).await
    }

    async fn refresh_static_run(&self, id: RunId) -> Result<Run> {
        transaction!(self, |s| {
            let (current, invocations) = s
                .first(
                    "SELECT status, invocations FROM runs WHERE id = ? FOR UPDATE",
                    args![id.to_string()],
                    |row| Ok((row.string("status")?, row.int("invocations")?)),
                )
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "run",
                    reference: id.to_string(),
                })?;
            let current: Status = records::parse("run status", &current)?;
            let latest = s
                .all(
                    "SELECT s.status FROM step_runs s WHERE s.run_id = ? AND s.attempt = \
                     (SELECT MAX(attempt) FROM step_runs t WHERE t.run_id = s.run_id AND t.invocation_id = s.invocation_id)",
                    args![id.to_string()],
                    |row| records::parse::<Status>("step run status", &row.string("status")?),
                )
                .await?;
            let derived = derive_static_run_status(current, invocations as usize, latest);
            if derived != current {
                set_run_status(&mut s, id, current, derived, None).await?;
            }
            run_by_id(&mut s, id).await
        })
    }

    async fn fail_run(&self, id: RunId, reason: &str) -> Result<Run> {
        transaction!(self, |s| {
            let current = run_status(&mut s, id).await?;
            set_run_status(&mut s, id, current, Status::Failed, Some(reason)).await?;
            // Its unfinished step runs fail with it: nothing is left running.
            let error = records::run_ended_error(&format!("the run failed: {reason}"));
            s.execute(
                &format!(
                    "UPDATE step_runs SET status = 'failed', error = ?, ended_at = ? \
                     WHERE run_id = ? AND status IN {UNFINISHED_STEP_RUNS}"
                ),
                args![error.to_string(), time::format(time::now()), id.to_string()],
            )
            .await?;
            run_by_id(&mut s, id).await
        })
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
        transaction!(self, |s| {
            let mut current = run_status(&mut s, id).await?;
            let status = match (current, status) {
                (Status::Stopping, Status::Completed) => Status::Stopped,
                _ => status,
            };
            if current == Status::Initializing && status == Status::Completed {
                set_run_status(&mut s, id, current, Status::Running, None).await?;
                current = Status::Running;
            }
            set_run_status(&mut s, id, current, status, reason).await?;
            if status != Status::Completed {
                let message = format!(
                    "the run ended {status}: {}",
                    reason.unwrap_or("no reason given")
                );
                let error = (status == Status::Failed).then(|| records::run_ended_error(&message));
                s.execute(
                    &format!(
                        "UPDATE step_runs SET status = ?, error = COALESCE(?, error), \
                         status_reason = COALESCE(status_reason, ?), ended_at = ? \
                         WHERE run_id = ? AND status IN {UNFINISHED_STEP_RUNS}"
                    ),
                    args![
                        status.as_str(),
                        error.clone(),
                        message.clone(),
                        time::format(time::now()),
                        id.to_string()
                    ],
                )
                .await?;
            }
            let invocations = s
                .first(
                    "SELECT COUNT(DISTINCT invocation_id) AS invocations FROM step_runs WHERE run_id = ?",
                    args![id.to_string()],
                    |row| row.int("invocations"),
                )
                .await?
                .unwrap_or(0);
            s.execute(
                "UPDATE runs SET invocations = ? WHERE id = ?",
                args![invocations, id.to_string()],
            )
            .await?;
            run_by_id(&mut s, id).await
        })
    }

    async fn heartbeat(&self, id: RunId) -> Result<Status> {
        transaction!(self, |s| {
            let now = time::format(time::now());
            let status = run_status(&mut s, id).await?;
            s.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE id = ?",
                args![now.clone(), id.to_string()],
            )
            .await?;
            s.execute(
                "UPDATE step_runs SET heartbeat_at = ? WHERE run_id = ? AND status IN ('provisioning', 'running', 'stopping')",
                args![now.clone(), id.to_string()],
            )
            .await?;
            Ok(status)
        })
    }

    async fn request_stop(&self, id: RunId) -> Result<Run> {
        transaction!(self, |s| {
            let current = run_status(&mut s, id).await?;
            if current != Status::Stopping {
                set_run_status(
                    &mut s,
                    id,
                    current,
                    Status::Stopping,
                    Some("a stop was requested"),
                )
                .await?;
            }
            run_by_id(&mut s, id).await
        })
    }

    async fn unfinished_runs(&self) -> Result<Vec<Run>> {
        let mut s = self.read().await?;
        s.all(
                &format!(
                    "SELECT {columns} FROM {RUN_FROM} \
                     WHERE r.status IN ('initializing', 'provisioning', 'running', 'stopping') ORDER BY r.id", columns = s.dialect().run_columns()
                ),
                args![],
                records::run,
            )
            .await
    }
}

impl ServerStore {
    /// The stored snapshot `id`, decoded as a whole or as its outline.
    async fn snapshot_as<T: serde::de::DeserializeOwned>(&self, id: &SnapshotId) -> Result<T> {
        let (version, spec) = self
            .read()
            .await?
            .first(
                "SELECT format_version, spec FROM snapshots WHERE id = ?",
                args![id.as_str().to_owned()],
                |row| Ok((row.int("format_version")?, row.string("spec")?)),
            )
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "snapshot",
                reference: id.to_string(),
            })?;
        records::snapshot(id, version, &spec)
    }
}

async fn run_by_id(s: &mut Session, id: RunId) -> Result<Run> {
    s.first(
        &format!(
            "SELECT {columns} FROM {RUN_FROM} WHERE r.id = ?",
            columns = s.dialect().run_columns()
        ),
        args![id.to_string()],
        records::run,
    )
    .await?
    .ok_or_else(|| Error::NotFound {
        kind: "run",
        reference: id.to_string(),
    })
}

/// The run's status, with its row locked until the transaction ends: whoever changes a
/// run's status decides from a status nobody else can change meanwhile.
pub(crate) async fn run_status(s: &mut Session, id: RunId) -> Result<Status> {
    if let Some((_, status)) = s.locked_runs.iter().find(|(run, _)| *run == id) {
        return Ok(*status);
    }
    let status = stored_status(s, id, true).await?;
    let status = records::parse("run status", &status)?;
    s.locked_runs.push((id, status));
    Ok(status)
}

/// The status of run `id` as stored; `lock` takes the row's lock (in a transaction).
async fn stored_status(s: &mut Session, id: RunId, lock: bool) -> Result<String> {
    let query = if lock {
        "SELECT status FROM runs WHERE id = ? FOR UPDATE"
    } else {
        "SELECT status FROM runs WHERE id = ?"
    };
    s.first(query, args![id.to_string()], |row| row.string("status"))
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "run",
            reference: id.to_string(),
        })
}

/// Changes a run's status after the state machine allowed it, stamping start and end times.
pub(crate) async fn set_run_status(
    s: &mut Session,
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
    let started = (to == Status::Running).then(|| now.clone());
    let ended = to.is_finished().then(|| now.clone());
    if let Some(locked) = s.locked_runs.iter_mut().find(|(run, _)| *run == id) {
        locked.1 = to;
    }
    s.execute(
        "UPDATE runs SET status = ?, status_reason = COALESCE(?, status_reason), \
         started_at = COALESCE(started_at, ?), ended_at = COALESCE(?, ended_at) WHERE id = ?",
        args![
            to.as_str(),
            reason.map(str::to_owned),
            started.clone(),
            ended.clone(),
            id.to_string()
        ],
    )
    .await?;
    Ok(())
}
