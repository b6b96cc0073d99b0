//! [`LineageStore`] for SQLite. Graph walks go level by level with batched `IN` queries, so
//! their cost grows with the size of the lineage, not with the size of the store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use weft_core::{ArtifactVersionId, RunId, StepRunId};

use super::rows::{self, STEP_RUN_COLUMNS, VERSION_COLUMNS, input, join_version, output};
use super::{SqliteStore, placeholders};
use crate::model::{
    ArtifactVersion, Direction, Lineage, RunGraph, RunOverview, StepInput, StepOutput, StepRun,
    StepRunPage, StepRunSummary,
};
use crate::records::LineageSource;
use crate::{Error, LineageStore, Result, time};

#[async_trait]
impl LineageStore for SqliteStore {
    async fn step_run_inputs(&self, id: StepRunId) -> Result<Vec<StepInput>> {
        self.read(move |connection| {
            rows::all(
                connection,
                &format!(
                    "SELECT i.step_run_id, i.name AS input_name, i.position, i.kind, {VERSION_COLUMNS} \
                     FROM step_run_inputs i {} WHERE i.step_run_id = ? ORDER BY i.name, i.position",
                    join_version("i.artifact_version_id")
                ),
                [id.to_string()],
                |row| input(row).map(|(_, input)| input),
            )
        })
        .await
    }

    async fn step_run_outputs(&self, id: StepRunId) -> Result<Vec<StepOutput>> {
        self.read(move |connection| outputs_of_step_run(connection, id))
            .await
    }

    async fn step_run_parents(&self, id: StepRunId) -> Result<Vec<StepRunId>> {
        self.read(move |connection| {
            rows::all(
                connection,
                "SELECT parent_id FROM step_run_parents WHERE child_id = ? ORDER BY parent_id",
                [id.to_string()],
                |row| rows::parse("step run id", &row.get::<_, String>(0)?),
            )
        })
        .await
    }

    async fn run_graph(&self, run: RunId) -> Result<RunGraph> {
        self.read(move |connection| {
            let run = run.to_string();
            Ok(RunGraph {
                step_runs: rows::all(
                    connection,
                    &format!("SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE s.run_id = ? ORDER BY s.id"),
                    [&run],
                    rows::step_run,
                )?,
                parents: rows::all(
                    connection,
                    "SELECT p.parent_id, p.child_id FROM step_run_parents p \
                     JOIN step_runs s ON s.id = p.child_id WHERE s.run_id = ? ORDER BY p.child_id, p.parent_id",
                    [&run],
                    |row| {
                        Ok((
                            rows::parse("step run id", &row.get::<_, String>(0)?)?,
                            rows::parse("step run id", &row.get::<_, String>(1)?)?,
                        ))
                    },
                )?,
                inputs: rows::all(
                    connection,
                    &format!(
                        "SELECT i.step_run_id, i.name AS input_name, i.position, i.kind, {VERSION_COLUMNS} \
                         FROM step_run_inputs i JOIN step_runs s ON s.id = i.step_run_id {} \
                         WHERE s.run_id = ? ORDER BY i.step_run_id, i.name, i.position",
                        join_version("i.artifact_version_id")
                    ),
                    [&run],
                    input,
                )?,
                outputs: rows::all(
                    connection,
                    &format!(
                        "SELECT o.step_run_id, o.name AS output_name, {VERSION_COLUMNS} \
                         FROM step_run_outputs o JOIN step_runs s ON s.id = o.step_run_id {} \
                         WHERE s.run_id = ? ORDER BY o.step_run_id, o.name",
                        join_version("o.artifact_version_id")
                    ),
                    [&run],
                    output,
                )?,
            })
        })
        .await
    }

    async fn run_overview(&self, run: RunId, links: bool) -> Result<RunOverview> {
        self.read(move |connection| {
            let [step_runs, ..] = crate::records::overview_statements();
            let step_runs = rows::all(connection, &step_runs, [run.to_string()], |row| {
                crate::records::step_run_summary(row)
            })?;
            overview_of(connection, step_runs, links)
        })
        .await
    }

    async fn step_run_page(&self, run: RunId, page: &StepRunPage) -> Result<RunOverview> {
        let page = page.clone();
        self.read(move |connection| {
            let run = run.to_string();
            let mut arguments = vec![Value::from(run.clone())];
            if let Some(after) = page.after {
                let after = after.to_string();
                rows::first(
                    connection,
                    crate::records::PAGE_CURSOR_STATEMENT,
                    [after.clone(), run],
                    |row| Ok(row.get::<_, String>(0)?),
                )?
                .ok_or_else(|| Error::NotFound {
                    kind: "step run of this run",
                    reference: after.clone(),
                })?;
                arguments.push(Value::from(after));
            }
            if let Some(status) = page.status {
                arguments.push(Value::from(status.as_str().to_owned()));
            }
            let statement = crate::records::page_statement(
                page.after.is_some(),
                page.status.is_some(),
                page.limit,
            );
            let step_runs =
                rows::all(connection, &statement, params_from_iter(arguments), |row| {
                    crate::records::step_run_summary(row)
                })?;
            overview_of(connection, step_runs, page.links)
        })
        .await
    }

    async fn step_run_summaries(
        &self,
        run: RunId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<StepRunSummary>> {
        self.read(move |connection| {
            let run = run.to_string();
            match since {
                None => {
                    let [step_runs, ..] = crate::records::overview_statements();
                    rows::all(connection, &step_runs, [&run], |row| {
                        crate::records::step_run_summary(row)
                    })
                }
                Some(since) => {
                    let since = time::format(since);
                    rows::all(
                        connection,
                        &crate::records::changed_summaries_statement(),
                        [&run, &since, &since, &since],
                        |row| crate::records::step_run_summary(row),
                    )
                }
            }
        })
        .await
    }

    async fn producer(&self, id: ArtifactVersionId) -> Result<Option<StepRun>> {
        self.read(move |connection| {
            rows::first(
                connection,
                &format!(
                    "SELECT {STEP_RUN_COLUMNS} FROM artifact_versions v \
                     JOIN step_runs s ON s.id = v.producer_step_run_id WHERE v.id = ?"
                ),
                [id.to_string()],
                rows::step_run,
            )
        })
        .await
    }

    async fn consumers(&self, id: ArtifactVersionId) -> Result<Vec<StepRun>> {
        self.read(move |connection| {
            rows::all(
                connection,
                &format!(
                    "SELECT DISTINCT {STEP_RUN_COLUMNS} FROM step_run_inputs i \
                     JOIN step_runs s ON s.id = i.step_run_id WHERE i.artifact_version_id = ? ORDER BY s.id"
                ),
                [id.to_string()],
                rows::step_run,
            )
        })
        .await
    }

    async fn lineage(
        &self,
        id: ArtifactVersionId,
        direction: Direction,
        depth: u32,
        limit: Option<usize>,
    ) -> Result<Lineage> {
        self.read(move |connection| walk(connection, id, direction, depth, limit))
            .await
    }
}

/// The outputs of one step run, by name.
pub(crate) fn outputs_of_step_run(
    connection: &Connection,
    id: StepRunId,
) -> Result<Vec<StepOutput>> {
    rows::all(
        connection,
        &format!(
            "SELECT o.step_run_id, o.name AS output_name, {VERSION_COLUMNS} \
             FROM step_run_outputs o {} WHERE o.step_run_id = ? ORDER BY o.name",
            join_version("o.artifact_version_id")
        ),
        [id.to_string()],
        |row| output(row).map(|(_, output)| output),
    )
}

fn walk(
    connection: &Connection,
    id: ArtifactVersionId,
    direction: Direction,
    depth: u32,
    limit: Option<usize>,
) -> Result<Lineage> {
    let root = rows::first(
        connection,
        &format!(
            "SELECT {VERSION_COLUMNS} FROM {} WHERE v.id = ?",
            rows::VERSION_FROM
        ),
        [id.to_string()],
        rows::artifact_version,
    )?
    .ok_or_else(|| Error::NotFound {
        kind: "artifact version",
        reference: id.to_string(),
    })?;
    // The walk is shared with the server store, written async; here every read completes
    // at once, so the future never waits.
    futures::executor::block_on(crate::records::walk(
        &mut Source(connection),
        root,
        direction,
        depth,
        limit,
    ))
}

/// The reads of a lineage walk, on one connection.
struct Source<'a>(&'a Connection);

impl LineageSource for Source<'_> {
    async fn readers_of(
        &mut self,
        versions: &[ArtifactVersionId],
        limit: Option<usize>,
    ) -> Result<Vec<(StepRun, String, ArtifactVersionId)>> {
        readers_of(self.0, versions, limit)
    }

    async fn outputs_of(
        &mut self,
        step_runs: &[StepRunId],
    ) -> Result<Vec<(StepRun, String, ArtifactVersion)>> {
        outputs_of(self.0, step_runs)
    }

    async fn inputs_of(
        &mut self,
        step_runs: &[StepRunId],
        limit: Option<usize>,
    ) -> Result<Vec<(StepRunId, String, ArtifactVersion)>> {
        inputs_of(self.0, step_runs, limit)
    }
}

/// `(step run, output name, version)` for every output of `step_runs`.
fn outputs_of(
    connection: &Connection,
    step_runs: &[StepRunId],
) -> Result<Vec<(StepRun, String, ArtifactVersion)>> {
    in_chunks(step_runs, None, |chunk, _| {
        rows::all(
            connection,
            &format!(
                "SELECT o.name AS output_name, {STEP_RUN_COLUMNS}, {VERSION_COLUMNS} FROM step_run_outputs o \
                 JOIN step_runs s ON s.id = o.step_run_id {} WHERE o.step_run_id IN ({})",
                join_version("o.artifact_version_id"),
                placeholders(chunk.len())
            ),
            params_from_iter(chunk.iter().map(ToString::to_string)),
            |row| {
                Ok((
                    rows::step_run(row)?,
                    row.get("output_name")?,
                    rows::artifact_version(row)?,
                ))
            },
        )
    })
}

/// An overview of `step_runs`: their parents and, with `links`, their inputs and outputs.
fn overview_of(
    connection: &Connection,
    step_runs: Vec<StepRunSummary>,
    links: bool,
) -> Result<RunOverview> {
    use crate::records::{input_link, links_statements, output_link, parent_link};
    // Looked up by the step runs' ids, in order, so that neighbouring keys share pages.
    let ids: Vec<String> = step_runs.iter().map(|s| s.id.to_string()).collect();
    let linked = if links { &ids[..] } else { &[] };
    let mut overview = RunOverview {
        parents: in_chunks(&ids, None, |chunk, _| {
            let [statement, ..] = links_statements(chunk.len());
            rows::all(connection, &statement, params_from_iter(chunk), |row| {
                parent_link(row)
            })
        })?,
        inputs: in_chunks(linked, None, |chunk, _| {
            let [_, statement, _] = links_statements(chunk.len());
            rows::all(connection, &statement, params_from_iter(chunk), |row| {
                input_link(row)
            })
        })?,
        outputs: in_chunks(linked, None, |chunk, _| {
            let [.., statement] = links_statements(chunk.len());
            rows::all(connection, &statement, params_from_iter(chunk), |row| {
                output_link(row)
            })
        })?,
        step_runs,
    };
    crate::records::sort_links(&mut overview);
    Ok(overview)
}

/// Runs `query` on `ids` a chunk at a time and gathers the rows: SQLite takes at most 32,766
/// parameters in one statement, and a fan-in may read 100,000 versions. With a `limit`, each
/// chunk reads at most the rows still wanted, and the reads stop once there are enough.
fn in_chunks<I, T>(
    ids: &[I],
    limit: Option<usize>,
    mut query: impl FnMut(&[I], Option<usize>) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(crate::records::IN_LIST_CHUNK) {
        let wanted = limit.map(|limit| limit - found.len());
        found.extend(query(chunk, wanted)?);
        if limit.is_some_and(|limit| found.len() >= limit) {
            break;
        }
    }
    Ok(found)
}

/// `(step run id, input name, version)` for every input of `step_runs`.
fn inputs_of(
    connection: &Connection,
    step_runs: &[StepRunId],
    limit: Option<usize>,
) -> Result<Vec<(StepRunId, String, ArtifactVersion)>> {
    in_chunks(step_runs, limit, |chunk, limit| {
        rows::all(
            connection,
            &format!(
                "SELECT i.step_run_id, i.name AS input_name, i.position, i.kind, {VERSION_COLUMNS} \
                 FROM step_run_inputs i {} WHERE i.step_run_id IN ({}){}",
                join_version("i.artifact_version_id"),
                placeholders(chunk.len()),
                crate::records::limited("i.step_run_id, i.name, i.position", limit)
            ),
            params_from_iter(chunk.iter().map(ToString::to_string)),
            |row| {
                let (step_run, input) = input(row)?;
                Ok((step_run, input.name, input.artifact_version))
            },
        )
    })
}

/// `(step run, input name, version id)` for every read of `versions`.
fn readers_of(
    connection: &Connection,
    versions: &[ArtifactVersionId],
    limit: Option<usize>,
) -> Result<Vec<(StepRun, String, ArtifactVersionId)>> {
    in_chunks(versions, limit, |chunk, limit| {
        rows::all(
            connection,
            &format!(
                "SELECT i.name AS input_name, i.artifact_version_id, {STEP_RUN_COLUMNS} FROM step_run_inputs i \
                 JOIN step_runs s ON s.id = i.step_run_id WHERE i.artifact_version_id IN ({}){}",
                placeholders(chunk.len()),
                crate::records::limited("i.artifact_version_id, s.id, i.name", limit)
            ),
            params_from_iter(chunk.iter().map(ToString::to_string)),
            |row| {
                Ok((
                    rows::step_run(row)?,
                    row.get("input_name")?,
                    rows::parse(
                        "artifact version id",
                        &row.get::<_, String>("artifact_version_id")?,
                    )?,
                ))
            },
        )
    })
}
