//! What the table formats (Arrow record batches, Polars data frames) share: the Parquet
//! materializer, how a table's columns are described in its metadata, and the visualizations
//! drawn from that description (`describe.csv`, a histogram per numeric column).

use crate::histogram::Histogram;
use crate::io::ArtifactWriter;
use crate::stats::Summary;
use crate::{Result, VisualizationType};

/// The file a table keeps its data in.
pub(crate) const FILE: &str = "data.parquet";
/// Rows in `sample.csv`.
pub(crate) const SAMPLE_ROWS: usize = 20;
/// Columns given a histogram each.
pub(crate) const MAX_HISTOGRAMS: usize = 16;

/// Stores tables as one Parquet file, `data.parquet` (Snappy-compressed): Arrow record batches
/// (feature `arrow`) and Polars data frames (feature `polars`). Each reads what the other
/// wrote.
pub struct Parquet;

/// What is learnt about one column while a table is written.
#[derive(Clone, Default)]
pub(crate) struct ColumnFacts {
    pub(crate) nulls: usize,
    pub(crate) summary: Option<Summary>,
}

impl ColumnFacts {
    /// Adds what was learnt about another part of the same column.
    #[cfg(feature = "arrow")]
    pub(crate) fn merge(&mut self, part: ColumnFacts) {
        self.nulls += part.nulls;
        if let Some(part) = part.summary {
            self.summary
                .get_or_insert_with(Summary::default)
                .merge(&part);
        }
    }
}

/// Records `rows`, `columns` and `schema` (per column: name, type, null count and, for
/// numbers, the statistics) as the version's metadata.
pub(crate) fn describe_table<'c>(
    writer: &mut ArtifactWriter<'_>,
    rows: usize,
    columns: impl ExactSizeIterator<Item = (&'c str, String, &'c ColumnFacts)>,
) {
    writer.describe("rows", rows);
    writer.describe("columns", columns.len());
    let schema: Vec<serde_json::Value> = columns
        .map(|(name, data_type, facts)| {
            let mut column = serde_json::Map::new();
            column.insert("name".into(), name.into());
            column.insert("type".into(), data_type.into());
            column.insert("null_count".into(), facts.nulls.into());
            if let Some(summary) = &facts.summary {
                for (key, value) in summary.facts() {
                    column.insert(key.into(), value);
                }
            }
            serde_json::Value::Object(column)
        })
        .collect();
    writer.describe("schema", schema);
}

/// The column descriptions `describe_table` recorded.
fn described_columns(writer: &ArtifactWriter<'_>) -> Vec<serde_json::Value> {
    writer
        .metadata
        .get("schema")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `describe.csv`: one row per column, from the recorded description.
pub(crate) fn write_describe_csv(writer: &mut ArtifactWriter<'_>) -> Result<()> {
    let mut describe = String::from("column,type,null_count,min,max,mean,std\n");
    for column in &described_columns(writer) {
        let field = |key: &str| match column.get(key) {
            Some(serde_json::Value::String(text)) => csv_field(text),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        describe.push_str(
            &["name", "type", "null_count", "min", "max", "mean", "std"]
                .map(field)
                .join(","),
        );
        describe.push('\n');
    }
    writer.write_visualization("describe.csv", VisualizationType::Csv, |file| {
        Ok(file.write_all(describe.as_bytes())?)
    })
}

/// The histograms of the columns that get one (the first [`MAX_HISTOGRAMS`] with a numeric
/// range, when there are enough rows), by column, counted by `count(column index, whether its
/// values are integers)`: what a table's save counts on a second core while the first encodes
/// the table, so that the histograms need no pass of their own.
pub(crate) fn count_histograms(
    facts: &[ColumnFacts],
    rows: usize,
    count: impl Fn(usize, bool) -> Histogram,
) -> Vec<Option<Histogram>> {
    if rows < crate::visualize::MIN_HISTOGRAM_VALUES {
        return Vec::new();
    }
    let mut counted = Vec::with_capacity(facts.len());
    let mut numeric = 0;
    for (index, facts) in facts.iter().enumerate() {
        let summary = facts
            .summary
            .as_ref()
            .filter(|summary| summary.range().is_some());
        counted.push(match summary {
            Some(summary) if numeric < MAX_HISTOGRAMS => {
                numeric += 1;
                Some(count(index, summary.integers()))
            }
            _ => None,
        });
    }
    counted
}

/// A histogram (SVG) of each column [`count_histograms`] counted, named by its index and
/// name.
pub(crate) fn write_histograms(
    writer: &mut ArtifactWriter<'_>,
    counted: &[Option<Histogram>],
) -> Result<()> {
    let columns = described_columns(writer);
    // Padded so that listings sorted by name keep the columns' order.
    let width = columns.len().to_string().len();
    for (index, column) in columns.iter().enumerate() {
        let bound = |key: &str| column.get(key).and_then(serde_json::Value::as_f64);
        let range = bound("min").zip(bound("max"));
        let counted = counted.get(index).and_then(Option::as_ref);
        let Some(bars) = counted
            .zip(range)
            .and_then(|(counted, range)| counted.bars(range))
        else {
            continue;
        };
        let name = column
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let svg = crate::visualize::histogram_svg(&bars, name);
        let file_name = format!("histogram-{index:0width$}-{}.svg", file_name_part(name));
        writer.write_visualization(&file_name, VisualizationType::Svg, |file| {
            Ok(file.write_all(svg.as_bytes())?)
        })?;
    }
    Ok(())
}

/// A column name made safe for a file name: letters, digits, `_` and `-`, at most 48.
fn file_name_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect()
}

/// A CSV field, quoted when it needs to be.
pub(crate) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
