//! [`LineageStore`] on a database server. Graph walks go level by level with batched `IN`
//! queries, as in the SQLite store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use weft_core::{ArtifactVersionId, RunId, StepRunId};

use super::{ServerStore, Session, args, list_args};
use crate::model::{
    ArtifactVersion, Direction, Lineage, RunGraph, RunOverview, StepInput, StepOutput, StepRun,
    StepRunPage, StepRunSummary,
};
use crate::records::{
    self, Columns, LineageSource, STEP_RUN_COLUMNS, VERSION_FROM, join_version, placeholders,
};
use crate::{Error, LineageStore, Result, time};

#[async_trait]
impl LineageStore for ServerStore {
    async fn step_run_inputs(&self, id: StepRunId) -> Result<Vec<StepInput>> {
        let mut s = self.read().await?;
        let columns = s.dialect().version_columns();
        s.all(
            &format!(
                "SELECT i.step_run_id, i.name AS input_name, i.position, i.kind, {columns} \
                 FROM step_run_inputs i {} WHERE i.step_run_id = ? ORDER BY i.name, i.position",
                join_version("i.artifact_version_id")
            ),
            args![id.to_string()],
            |row| records::input(row).map(|(_, input)| input),
        )
        .await
    }

    async fn step_run_outputs(&self, id: StepRunId) -> Result<Vec<StepOutput>> {
        outputs_of_step_run(&mut self.read().await?, id).await
    }

    async fn step_run_parents(&self, id: StepRunId) -> Result<Vec<StepRunId>> {
        self.read()
            .await?
            .all(
                "SELECT parent_id FROM step_run_parents WHERE child_id = ? ORDER BY parent_id",
                args![id.to_string()],
                |row| records::parse("step run id", &row.string("parent_id")?),
            )
            .await
    }

    async fn run_graph(&self, run: RunId) -> Result<RunGraph> {
        let mut s = self.read().await?;
        let columns = s.dialect().version_columns();
        let run = run.to_string();
        Ok(RunGraph {
            step_runs: s
                .all(
                    &format!(
                        "SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.run_id = ? ORDER BY s.id"
                    ),
                    args![run.clone()],
                    records::step_run,
                )
                .await?,
            parents: s
                .all(
                    "SELECT p.parent_id, p.child_id FROM step_run_parents p \
                     JOIN step_runs s ON s.id = p.child_id WHERE s.run_id = ? ORDER BY p.child_id, p.parent_id",
                    args![run.clone()],
                    |row| {
                        Ok((
                            records::parse("step run id", &row.string("parent_id")?)?,
                            records::parse("step run id", &row.string("child_id")?)?,
                        ))
                    },
                )
                .await?,
            inputs: s
                .all(
                    &format!(
                        "SELECT i.step_run_id, i.name AS input_name, i.position, i.kind, {columns} \
                         FROM step_run_inputs i JOIN step_runs s ON s.id = i.step_run_id {} \
                         WHERE s.run_id = ? ORDER BY i.step_run_id, i.name, i.position",
                        join_version("i.artifact_version_id")
                    ),
                    args![run.clone()],
                    records::input,
                )
                .await?,
            outputs: s
                .all(
                    &format!(
                        "SELECT o.step_run_id, o.name AS output_name, {columns} \
                         FROM step_run_outputs o JOIN step_runs s ON s.id = o.step_run_id {} \
                         WHERE s.run_id = ? ORDER BY o.step_run_id, o.name",
                        join_version("o.artifact_version_id")
                    ),
                    args![run.clone()],
                    records::output,
                )
                .await?,
        })
    }

    async fn run_overview(&self, run: RunId, links: bool) -> Result<RunOverview> {
        let mut s = self.read().await?;
        let [step_runs, parents, inputs, outputs] = records::overview_statements();
        let id = run.to_string();
        let mut overview = RunOverview {
            step_runs: s
                .all(&step_runs, args![id.clone()], |row| {
                    records::step_run_summary(row)
                })
                .await?,
            parents: s
                .all(&parents, args![id.clone()], |row| {
                    Ok((
                        records::parse("step run id", &row.string("parent_id")?)?,
                        records::parse("step run id", &row.string("child_id")?)?,
                    ))
                })
                .await?,
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        if links {
            overview.inputs = s
                .all(&inputs, args![id.clone()], records::input_link)
                .await?;
            overview.outputs = s
                .all(&outputs, args![id.clone()], records::output_link)
                .await?;
        }
        Ok(overview)
    }

    async fn step_run_page(&self, run: RunId, page: &StepRunPage) -> Result<RunOverview> {
        let mut s = self.read().await?;
        let id = run.to_string();
        let cursor = match page.after {
            None => None,
            Some(after) => {
                let after = after.to_string();
                s.first(
                    records::PAGE_CURSOR_STATEMENT,
                    args![after.clone(), id.clone()],
                    |row| row.string("id"),
                )
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "step run of this run",
                    reference: after.clone(),
                })?;
                Some(after)
            }
        };
        let status = page.status.map(|status| status.as_str().to_owned());
        let statement = records::page_statement(cursor.is_some(), status.is_some(), page.limit);
        // In the order of `page_statement`'s placeholders.
        let arguments = || match (&cursor, &status) {
            (None, None) => args![id.clone()](),
            (Some(after), None) => args![id.clone(), after.clone()](),
            (None, Some(status)) => args![id.clone(), status.clone()](),
            (Some(after), Some(status)) => args![id.clone(), after.clone(), status.clone()](),
        };
        let step_runs = s
            .all(&statement, arguments, records::step_run_summary)
            .await?;
        let ids: Vec<String> = step_runs.iter().map(|step| step.id.to_string()).collect();
        let mut overview = RunOverview {
            step_runs,
            ..RunOverview::default()
        };
        for chunk in ids.chunks(records::IN_LIST_CHUNK) {
            let [parents, inputs, outputs] = records::links_statements(chunk.len());
            let arguments = || list_args(chunk.iter().cloned());
            overview
                .parents
                .extend(s.all(&parents, arguments, records::parent_link).await?);
            if page.links {
                overview
                    .inputs
                    .extend(s.all(&inputs, arguments, records::input_link).await?);
                overview
                    .outputs
                    .extend(s.all(&outputs, arguments, records::output_link).await?);
            }
        }
        records::sort_links(&mut overview);
        Ok(overview)
    }

    async fn step_run_summaries(
        &self,
        run: RunId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<StepRunSummary>> {
        let mut s = self.read().await?;
        let id = run.to_string();
        match since {
            None => {
                let [step_runs, ..] = records::overview_statements();
                s.all(&step_runs, args![id.clone()], records::step_run_summary)
                    .await
            }
            Some(since) => {
                let since = time::format(since);
                s.all(
                    &records::changed_summaries_statement(),
                    args![id.clone(), since.clone(), since.clone(), since.clone()],
                    records::step_run_summary,
                )
                .await
            }
        }
    }

    async fn producer(&self, id: ArtifactVersionId) -> Result<Option<StepRun>> {
        self.read()
            .await?
            .first(
                &format!(
                    "SELECT {STEP_RUN_COLUMNS} FROM artifact_versions v \
                     JOIN step_runs s ON s.id = v.producer_step_run_id WHERE v.id = ?"
                ),
                args![id.to_string()],
                records::step_run,
            )
            .await
    }

    async fn consumers(&self, id: ArtifactVersionId) -> Result<Vec<StepRun>> {
        self.read()
            .await?
            .all(
                &format!(
                    "SELECT DISTINCT {STEP_RUN_COLUMNS} FROM step_run_inputs i \
                     JOIN step_runs s ON s.id = i.step_run_id WHERE i.artifact_version_id = ? ORDER BY s.id"
                ),
                args![id.to_string()],
                records::step_run,
            )
            .await
    }

    async fn lineage(
        &self,
        id: ArtifactVersionId,
        direction: Direction,
        depth: u32,
        limit: Option<usize>,
    ) -> Result<Lineage> {
        walk(&mut self.read().await?, id, direction, depth, limit).await
    }
}

/// The outputs of one step run, by name.
pub(crate) async fn outputs_of_step_run(s: &mut Session, id: StepRunId) -> Result<Vec<StepOutput>> {
    let columns = s.dialect().version_columns();
    s.all(
        &format!(
            "SELECT o.step_run_id, o.name AS output_name, {columns} \
             FROM step_run_outputs o {} WHERE o.step_run_id = ? ORDER BY o.name",
            join_version("o.artifact_version_id")
        ),
        args![id.to_string()],
        |row| records::output(row).map(|(_, output)| output),
    )
    .await
}

async fn walk(
    s: &mut Session,
    id: ArtifactVersionId,
    direction: Direction,
    depth: u32,
    limit: Option<usize>,
) -> Result<Lineage> {
    let columns = s.dialect().version_columns();
    let root = s
        .first(
            &format!("SELECT {columns} FROM {VERSION_FROM} WHERE v.id = ?"),
            args![id.to_string()],
            records::artifact_version,
        )
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "artifact version",
            reference: id.to_string(),
        })?;
    records::walk(s, root, direction, depth, limit).await
}

impl LineageSource for Session {
    async fn readers_of(
        &mut self,
        versions: &[ArtifactVersionId],
        limit: Option<usize>,
    ) -> Result<Vec<(StepRun, String, ArtifactVersionId)>> {
        readers_of(self, versions, limit).await
    }

    async fn outputs_of(
        &mut self,
        step_runs: &[StepRunId],
    ) -> Result<Vec<(StepRun, String, ArtifactVersion)>> {
        outputs_of(self, step_runs).await
    }

    async fn inputs_of(
        &mut self,
        step_runs: &[StepRunId],
        limit: Option<usize>,
    ) -> Result<Vec<(StepRunId, String, ArtifactVersion)>> {
        inputs_of(self, step_runs, limit).await
    }
}

/// `(step run, output name, version)` for every output of `step_runs`.
async fn outputs_of(
    s: &mut Session,
    step_runs: &[StepRunId],
) -> Result<Vec<(StepRun, String, ArtifactVersion)>> {
    if step_runs.is_empty() {
        return Ok(Vec::new());
    }
    let columns = s.dialect().version_columns();
    let mut found = Vec::new();
    for chunk in step_runs.chunks(crate::records::IN_LIST_CHUNK) {
        let rows = s
            .all(
                &format!(
                    "SELECT o.name AS output_name, {STEP_RUN_COLUMNS}, {columns} FROM step_run_outputs o \
                     JOIN step_runs s ON s.id = o.step_run_id {} WHERE o.step_run_id IN ({})",
                    join_version("o.artifact_version_id"),
                    placeholders(chunk.len())
                ),
                || list_args(chunk.iter().map(ToString::to_string)),
                |row| {
                    Ok((
                        records::step_run(row)?,
                        row.string("output_name")?,
                        records::artifact_version(row)?,
                    ))
                },
            )
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// `(step run id, input name, version)` for every input of `step_runs`.
async fn inputs_of(
    s: &mut Session,
    step_runs: &[StepRunId],
    limit: Option<usize>,
) -> Result<Vec<(StepRunId, String, ArtifactVersion)>> {
    if step_runs.is_empty() {
        return Ok(Vec::new());
    }
    let columns = s.dialect().version_columns();
    let mut found = Vec::new();
    for chunk in step_runs.chunks(crate::records::IN_LIST_CHUNK) {
        let wanted = limit.map(|limit| limit - found.len());
        let rows = s
            .all(
                &format!(
                    "SELECT i.step_run_id, i.name AS input_name, i.position, i.kind, {columns} \
                     FROM step_run_inputs i {} WHERE i.step_run_id IN ({}){}",
                    join_version("i.artifact_version_id"),
                    placeholders(chunk.len()),
                    records::limited("i.step_run_id, i.name, i.position", wanted)
                ),
                || list_args(chunk.iter().map(ToString::to_string)),
                |row| {
                    let (step_run, input) = records::input(row)?;
                    Ok((step_run, input.name, input.artifact_version))
                },
            )
            .await?;
        found.extend(rows);
        if limit.is_some_and(|limit| found.len() >= limit) {
            break;
        }
    }
    Ok(found)
}

/// `(step run, input name, version id)` for every read of `versions`.
async fn readers_of(
    s: &mut Session,
    versions: &[ArtifactVersionId],
    limit: Option<usize>,
) -> Result<Vec<(StepRun, String, ArtifactVersionId)>> {
    let mut found = Vec::new();
    for chunk in versions.chunks(crate::records::IN_LIST_CHUNK) {
        let wanted = limit.map(|limit| limit - found.len());
        let rows = s
            .all(
                &format!(
                    "SELECT i.name AS input_name, i.artifact_version_id, {STEP_RUN_COLUMNS} FROM step_run_inputs i \
                     JOIN step_runs s ON s.id = i.step_run_id WHERE i.artifact_version_id IN ({}){}",
                    placeholders(chunk.len()),
                    records::limited("i.artifact_version_id, s.id, i.name", wanted)
                ),
                || list_args(chunk.iter().map(ToString::to_string)),
                |row| {
                    Ok((
                        records::step_run(row)?,
                        row.string("input_name")?,
                        records::parse("artifact version id", &row.string("artifact_version_id")?)?,
                    ))
                },
            )
            .await?;
        found.extend(rows);
        if limit.is_some_and(|limit| found.len() >= limit) {
            break;
        }
    }
    Ok(found)
}
