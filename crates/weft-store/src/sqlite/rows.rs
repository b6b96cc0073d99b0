//! Reading SQLite rows: the shared decoders of `crate::records` over rusqlite rows.

use rusqlite::Row;

use crate::Result;
use crate::model::{ArtifactVersion, Run, StepInput, StepOutput, StepRun};
use crate::records::{self, run_columns, version_columns};
pub(crate) use crate::records::{
    Columns, RUN_FROM, STEP_RUN_COLUMNS, STEP_RUN_LIST_COLUMNS, VERSION_FROM, admitting_run,
    created_step_run, join_version, new_run, next_attempt, parse, path_suffix_pattern,
    registered_version, run_ended_error, runs_query, timestamp, turned_away,
};

/// Run columns; tags are joined by the unit separator.
pub(crate) const RUN_COLUMNS: &str = run_columns!("group_concat(t.name, char(31))");

/// Version columns; tags are joined by the unit separator.
pub(crate) const VERSION_COLUMNS: &str = version_columns!("group_concat(t.name, char(31))");

/// A row whose columns are found by name without asking SQLite: rusqlite looks a name up
/// by fetching and comparing every column's name through the C API on each access, which
/// cost about 10 µs a decoded step run (a `runs show` of 4,000 steps spent most of its time
/// there). The names are read once per statement instead.
pub(crate) struct Indexed<'a, 'r> {
    row: &'a Row<'r>,
    names: &'a [String],
    /// Where the search for the next column starts: decoders mostly read the columns in
    /// the order they are selected.
    next: std::cell::Cell<usize>,
}

impl<'a, 'r> Indexed<'a, 'r> {
    fn new(row: &'a Row<'r>, names: &'a [String]) -> Self {
        Self {
            row,
            names,
            next: std::cell::Cell::new(0),
        }
    }
}

impl Indexed<'_, '_> {
    /// The value of a column by position (or by name, through SQLite).
    pub(crate) fn get<I: rusqlite::RowIndex, T: rusqlite::types::FromSql>(
        &self,
        index: I,
    ) -> rusqlite::Result<T> {
        self.row.get(index)
    }

    fn position(&self, column: &str) -> Result<usize> {
        let start = self.next.get().min(self.names.len());
        let (before, after) = self.names.split_at(start);
        let position = match after.iter().position(|name| name == column) {
            Some(offset) => start + offset,
            None => before
                .iter()
                .position(|name| name == column)
                .ok_or_else(|| rusqlite::Error::InvalidColumnName(column.to_owned()))?,
        };
        self.next.set(position + 1);
        Ok(position)
    }
}

impl Columns for Indexed<'_, '_> {
    fn text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.row.get(self.position(column)?)?)
    }

    fn integer(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.row.get(self.position(column)?)?)
    }
}

pub(crate) fn run(row: &Indexed<'_, '_>) -> Result<Run> {
    records::run(row)
}

pub(crate) fn step_run(row: &Indexed<'_, '_>) -> Result<StepRun> {
    records::step_run(row)
}

pub(crate) fn artifact_version(row: &Indexed<'_, '_>) -> Result<ArtifactVersion> {
    records::artifact_version(row)
}

pub(crate) fn input(row: &Indexed<'_, '_>) -> Result<(weft_core::StepRunId, StepInput)> {
    records::input(row)
}

pub(crate) fn output(row: &Indexed<'_, '_>) -> Result<(weft_core::StepRunId, StepOutput)> {
    records::output(row)
}

/// Runs `sql` and decodes every row with `decode`.
pub(crate) fn all<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Indexed<'_, '_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut found = Vec::new();
    // Read at the first row: a query that finds nothing (a cache miss) needs none.
    let mut names: Option<Vec<String>> = None;
    while let Some(row) = rows.next()? {
        let names = names.get_or_insert_with(|| column_names(row));
        found.push(decode(&Indexed::new(row, names))?);
    }
    Ok(found)
}

fn column_names(row: &Row<'_>) -> Vec<String> {
    row.as_ref().column_names().map(str::to_owned).collect()
}

/// Runs `sql` and decodes the first row, if any.
pub(crate) fn first<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Indexed<'_, '_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?
        .map(|row| {
            let names = column_names(row);
            decode(&Indexed::new(row, &names))
        })
        .transpose()
}
