//! Shared output helpers: tables, durations, times, JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::Output;

/// A table with a header, for terminals.
pub(crate) fn table(header: &[&str]) -> Table {
    Table {
        header: header.iter().map(|h| h.to_uppercase()).collect(),
        rows: Vec::new(),
    }
}

/// Columns aligned with spaces, cells of several lines kept together: each cell is padded to
/// its column's width with a space on either side. Written here rather than with a table
/// crate: a run of thousands of steps is a table of thousands of rows, which a general
/// layout engine took longer to draw than the store took to read.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Adds a row (a cell may hold several lines).
    pub(crate) fn add_row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate().take(columns) {
                let widest = cell
                    .lines()
                    .map(|line| line.chars().count())
                    .max()
                    .unwrap_or(0);
                widths[column] = widths[column].max(widest);
            }
        }
        let mut line = String::new();
        let mut write_row = |f: &mut std::fmt::Formatter<'_>, cells: &[String]| {
            let lines: Vec<Vec<&str>> = (0..columns)
                .map(|column| {
                    cells
                        .get(column)
                        .map_or(vec![], |cell| cell.lines().collect())
                })
                .collect();
            let height = lines.iter().map(Vec::len).max().unwrap_or(0).max(1);
            for index in 0..height {
                line.clear();
                for (column, width) in widths.iter().enumerate() {
                    let text = lines[column].get(index).copied().unwrap_or("");
                    line.push(' ');
                    line.push_str(text);
                    let padding = width - text.chars().count() + 1;
                    line.extend(std::iter::repeat_n(' ', padding));
                }
                writeln!(f, "{}", line.trim_end())?;
            }
            Ok(())
        };
        write_row(f, &self.header)?;
        for row in &self.rows {
            write_row(f, row)?;
        }
        Ok(())
    }
}

/// Writes `value` as pretty JSON, streamed: a run of 100,000 steps is never one string.
pub(crate) fn json(out: &mut Output<'_>, value: &impl Serialize) -> anyhow::Result<()> {
    match serde_json::to_writer_pretty(&mut *out, value) {
        // The reader went away: `Output::finish` says so.
        Err(error) if error.is_io() => return Ok(()),
        written => written?,
    }
    std::fmt::Write::write_char(out, '\n')?;
    Ok(())
}

/// `2026-11-24 08:22:03`.
pub(crate) fn time(time: Option<DateTime<Utc>>) -> String {
    time.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// How long between two times, for people.
pub(crate) fn took(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(start), Some(end)) => duration((end - start).to_std().unwrap_or_default()),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

/// `850µs`, `12ms`, `3.2s`, `4m05s`.
pub(crate) fn duration(duration: std::time::Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{}ms", micros / 1_000)
    } else if micros < 60_000_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        let seconds = duration.as_secs();
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

/// The last segment of a Rust type path, keeping generic arguments readable.
pub(crate) fn short_type(name: &str) -> String {
    let mut out = String::new();
    let mut segment = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(&segment));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(&segment));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_keep_multi_line_cells_together() {
        let mut shown = table(&["step", "outputs", "took"]);
        shown.add_row(vec!["load".into(), "output: a:1".into(), "4ms".into()]);
        shown.add_row(vec![
            "split".into(),
            "test: b:1\ntrain: c:1".into(),
            "12ms".into(),
        ]);
        assert_eq!(
            shown.to_string(),
            " STEP   OUTPUTS      TOOK\n \
             load   output: a:1  4ms\n \
             split  test: b:1    12ms\n        \
             train: c:1\n"
        );
    }

    #[test]
    fn types_and_durations_read_well() {
        assert_eq!(short_type("alloc::vec::Vec<quickstart::Rows>"), "Vec<Rows>");
        assert_eq!(short_type("(f64, alloc::string::String)"), "(f64, String)");
        assert_eq!(duration(std::time::Duration::from_micros(850)), "850µs");
        assert_eq!(duration(std::time::Duration::from_millis(3200)), "3.2s");
        assert_eq!(duration(std::time::Duration::from_secs(245)), "4m05s");
    }
}
