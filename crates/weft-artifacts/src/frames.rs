//! Polars data frames as Parquet (feature `polars`), through Polars' own Parquet writer and
//! reader: the same `data.parquet` a `RecordBatch` is stored in, described and shown the same
//! way (column statistics and histogram counts gathered on a second thread while the writer
//! encodes the frame).

use std::io::Cursor;

use polars::prelude::{
    AnyValue, Column, DataFrame, DataType, ParquetCompression, ParquetReader, ParquetWriter,
    PolarsNumericType, SerReader,
};

use crate::columns::{
    ColumnFacts, FILE, Parquet, SAMPLE_ROWS, count_histograms, csv_field, describe_table,
    write_describe_csv, write_histograms,
};
use crate::histogram::Histogram;
use crate::io::{ArtifactReader, ArtifactWriter};
use crate::stats::Summary;
use crate::{Artifact, BoxError, Materializer, NpyElement, Result, VisualizationType};

/// Calls `$function(column's chunked array, $args...)` for a numeric column; `None` for any
/// other. The one list of the column types weft describes as numbers.
macro_rules! numeric_column {
    ($column:expr, $function:ident($($arg:expr),*)) => {{
        let series = $column.as_materialized_series();
        match series.dtype() {
            DataType::Float32 => series.f32().ok().map(|values| $function(values $(, $arg)*)),
            DataType::Float64 => series.f64().ok().map(|values| $function(values $(, $arg)*)),
            DataType::Int8 => series.i8().ok().map(|values| $function(values $(, $arg)*)),
            DataType::Int16 => series.i16().ok().map(|values| $function(values $(, $arg)*)),
            DataType::Int32 => series.i32().ok().map(|values| $function(values $(, $arg)*)),
            DataType::Int64 => series.i64().ok().map(|values| $function(values $(, $arg)*)),
            DataType::UInt8 => series.u8().ok().map(|values| $function(values $(, $arg)*)),
            DataType::UInt16 => series.u16().ok().map(|values| $function(values $(, $arg)*)),
            DataType::UInt32 => series.u32().ok().map(|values| $function(values $(, $arg)*)),
            DataType::UInt64 => series.u64().ok().map(|values| $function(values $(, $arg)*)),
            _ => None,
        }
    }};
}

/// Statistics of a numeric column's non-null values, chunk by chunk (straight from each
/// chunk's buffer when it has no nulls).
fn summarize<T: PolarsNumericType>(values: &polars::prelude::ChunkedArray<T>) -> Summary
where
    T::Native: NpyElement,
{
    let mut summary = Summary::default();
    for chunk in values.downcast_iter() {
        let part = if chunk.validity().is_none_or(|valid| valid.unset_bits() == 0) {
            crate::npy::summarize(chunk.values())
        } else {
            let present: Vec<T::Native> = chunk.iter().flatten().copied().collect();
            crate::npy::summarize(&present)
        };
        summary.merge(&part);
    }
    summary
}

/// Counts a numeric column's non-null values into `histogram`, on this thread (the save counts
/// them on a second core while the first encodes the frame).
fn count<T: PolarsNumericType>(values: &polars::prelude::ChunkedArray<T>, histogram: &mut Histogram)
where
    T::Native: NpyElement,
{
    for chunk in values.downcast_iter() {
        if chunk.validity().is_none_or(|valid| valid.unset_bits() == 0) {
            histogram.add_from_memory(chunk.values());
        } else {
            histogram.add_each(chunk.iter().flatten().filter_map(|value| value.as_f64()));
        }
    }
}

/// Column `index` of `frame` counted into a histogram.
fn count_column(frame: &DataFrame, index: usize, integers: bool) -> Histogram {
    let mut histogram = Histogram::new(integers);
    numeric_column!(&frame.columns()[index], count(&mut histogram));
    histogram
}

fn facts_of(column: &Column) -> ColumnFacts {
    ColumnFacts {
        nulls: column.null_count(),
        summary: numeric_column!(column, summarize()),
    }
}

/// A value as a CSV field: empty for null, quoted when it needs to be.
fn field(value: AnyValue<'_>) -> String {
    match value {
        AnyValue::Null => String::new(),
        AnyValue::String(text) => csv_field(text),
        AnyValue::StringOwned(text) => csv_field(&text),
        other => csv_field(&other.to_string()),
    }
}

fn encode_error(error: impl Into<BoxError>) -> crate::Error {
    crate::Error::Encode {
        data_type: std::any::type_name::<DataFrame>(),
        materializer: "weft.parquet",
        source: error.into(),
    }
}

impl Materializer<DataFrame> for Parquet {
    const ID: &'static str = "weft.parquet";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &DataFrame, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        // The writer may rechunk the frame it is given: a clone shares the columns' buffers.
        let mut frame = value.clone();
        let (mut facts, mut counted) = (Vec::new(), Vec::new());
        // A second core describes the columns and counts their histograms while this one
        // encodes the frame, which takes longer.
        writer.write_file(FILE, |file| {
            let written = std::thread::scope(|scope| {
                let describing = scope.spawn(|| {
                    let facts: Vec<ColumnFacts> = value.columns().iter().map(facts_of).collect();
                    let counted = count_histograms(&facts, value.height(), |index, integers| {
                        count_column(value, index, integers)
                    });
                    (facts, counted)
                });
                let written = ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Snappy)
                    .finish(&mut frame);
                (facts, counted) = describing.join().expect("statistics do not panic");
                written
            });
            written.map(drop).map_err(BoxError::from)
        })?;
        let columns = value.columns().iter().zip(&facts);
        describe_table(
            writer,
            value.height(),
            columns
                .map(|(column, facts)| (column.name().as_str(), column.dtype().to_string(), facts)),
        );
        write_histograms(writer, &counted)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<DataFrame> {
        let file = reader.open(FILE)?;
        // A local file is decoded where it lies while it is hashed.
        let decode = |file| Ok(ParquetReader::new(file).finish()?);
        if let Some(decoded) = file.decode_local(decode) {
            return decoded;
        }
        let bytes = file.read_all()?;
        ParquetReader::new(Cursor::new(bytes))
            .finish()
            .map_err(|error| file.decode_error(error))
    }

    fn visualize(value: &DataFrame, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        write_describe_csv(writer)?;
        let sample = value.head(Some(SAMPLE_ROWS));
        let mut csv = value
            .columns()
            .iter()
            .map(|column| csv_field(column.name()))
            .collect::<Vec<_>>()
            .join(",");
        csv.push('\n');
        for row in 0..sample.height() {
            let fields = sample
                .columns()
                .iter()
                .map(|column| column.get(row).map(field))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(encode_error)?;
            csv.push_str(&fields.join(","));
            csv.push('\n');
        }
        writer.write_visualization("sample.csv", VisualizationType::Csv, |file| {
            Ok(file.write_all(csv.as_bytes())?)
        })
    }
}

impl Artifact for DataFrame {
    type Materializer = Parquet;
}
