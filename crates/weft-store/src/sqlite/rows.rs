//! Reading SQLite rows: the shared decoders of `crate::records` over rusqlite rows.

use rusqlite::Row;

use crate::Result;
use crate::model::{ArtifactVersion, Run, StepInput, StepOutput, StepRun};
use crate::records::{self, version_columns};
pub(crate) use crate::records::{
    Columns, RUN_COLUMNS, RUN_FROM, STEP_RUN_COLUMNS, VERSION_FROM, admitting_run,
    created_step_run, join_version, new_run, next_attempt, parse, path_suffix_pattern,
    registered_version, run_ended_error, timestamp, turned_away,
};

/// Version columns; tags are joined by the unit separator.
pub(crate) const VERSION_COLUMNS: &str = version_columns!("group_concat(t.name, char(31))");

impl Columns for Row<'_> {
    fn text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.get(column)?)
    }

    fn integer(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.get(column)?)
    }
}

pub(crate) fn run(row: &Row<'_>) -> Result<Run> {
    records::run(row)
}

pub(crate) fn step_run(row: &Row<'_>) -> Result<StepRun> {
    records::step_run(row)
}

pub(crate) fn artifact_version(row: &Row<'_>) -> Result<ArtifactVersion> {
    records::artifact_version(row)
}

pub(crate) fn input(row: &Row<'_>) -> Result<(weft_core::StepRunId, StepInput)> {
    records::input(row)
}

pub(crate) fn output(row: &Row<'_>) -> Result<(weft_core::StepRunId, StepOutput)> {
    records::output(row)
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
