//! Arrow record batches as Parquet (feature `arrow`).
//!
//! A `RecordBatch` or a `Vec<RecordBatch>` is written with the parquet crate's `ArrowWriter`
//! (Snappy-compressed, the Arrow schema kept in the file), batch by batch, while a second
//! thread describes the columns and counts their histograms (drawn once the file is
//! written, without counting again). Loading reads
//! the file once into a buffer of its recorded size and decodes it; a `Vec<RecordBatch>`
//! comes back cut where it was cut when saved.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;

use crate::columns::{
    ColumnFacts, FILE, Parquet, SAMPLE_ROWS, count_histograms, describe_table, write_describe_csv,
    write_histograms,
};
use crate::histogram::Histogram;
use crate::io::{ArtifactReader, ArtifactWriter};
use crate::stats::Summary;
use crate::{Artifact, BoxError, Materializer, NpyElement, Result, VisualizationType};

/// Key of the Parquet metadata entry that records where a `Vec<RecordBatch>` was cut.
const BATCH_ROWS: &str = "weft.batch_rows";

/// Calls `$function(column as its primitive array, $args...)` for a numeric column; `None`
/// for any other. The one list of the column types weft describes as numbers.
macro_rules! numeric_column {
    ($column:expr, $function:ident($($arg:expr),*)) => {{
        let column: &dyn Array = $column;
        match column.data_type() {
            DataType::Float32 => Some($function(column.as_primitive::<Float32Type>() $(, $arg)*)),
            DataType::Float64 => Some($function(column.as_primitive::<Float64Type>() $(, $arg)*)),
            DataType::Int8 => Some($function(column.as_primitive::<Int8Type>() $(, $arg)*)),
            DataType::Int16 => Some($function(column.as_primitive::<Int16Type>() $(, $arg)*)),
            DataType::Int32 => Some($function(column.as_primitive::<Int32Type>() $(, $arg)*)),
            DataType::Int64 => Some($function(column.as_primitive::<Int64Type>() $(, $arg)*)),
            DataType::UInt8 => Some($function(column.as_primitive::<UInt8Type>() $(, $arg)*)),
            DataType::UInt16 => Some($function(column.as_primitive::<UInt16Type>() $(, $arg)*)),
            DataType::UInt32 => Some($function(column.as_primitive::<UInt32Type>() $(, $arg)*)),
            DataType::UInt64 => Some($function(column.as_primitive::<UInt64Type>() $(, $arg)*)),
            _ => None,
        }
    }};
}

/// Statistics of a numeric column's non-null values (straight from its buffer when it has
/// no nulls).
fn summarize<T: ArrowPrimitiveType>(values: &PrimitiveArray<T>) -> Summary
where
    T::Native: NpyElement,
{
    if values.null_count() == 0 {
        return crate::npy::summarize(values.values());
    }
    let present: Vec<T::Native> = values.iter().flatten().collect();
    crate::npy::summarize(&present)
}

/// Counts a numeric column's non-null values into `histogram`, on this thread.
fn count<T: ArrowPrimitiveType>(values: &PrimitiveArray<T>, histogram: &mut Histogram)
where
    T::Native: NpyElement,
{
    if values.null_count() == 0 {
        histogram.add_from_memory(values.values());
    } else {
        histogram.add_each(values.iter().flatten().filter_map(NpyElement::as_f64));
    }
}

/// The facts of every column of `batches`, then the histogram counts of the numeric columns
/// that get one (over the ranges those facts found), by column.
fn describe_and_count(
    columns: usize,
    batches: &[RecordBatch],
) -> (Vec<ColumnFacts>, Vec<Option<Histogram>>) {
    let mut facts: Vec<ColumnFacts> = vec![ColumnFacts::default(); columns];
    for batch in batches {
        for (total, part) in facts.iter_mut().zip(facts_of(batch)) {
            total.merge(part);
        }
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let counted = count_histograms(&facts, rows, |index, integers| {
        let mut histogram = Histogram::new(integers);
        for batch in batches {
            numeric_column!(batch.column(index).as_ref(), count(&mut histogram));
        }
        histogram
    });
    (facts, counted)
}

fn facts_of(batch: &RecordBatch) -> Vec<ColumnFacts> {
    batch
        .columns()
        .iter()
        .map(|column| ColumnFacts {
            nulls: column.null_count(),
            summary: numeric_column!(column.as_ref(), summarize()),
        })
        .collect()
}

/// Writes `batches` (all of `schema`) and describes them.
fn save_batches(
    schema: SchemaRef,
    batches: &[RecordBatch],
    cuts: Option<Vec<usize>>,
    writer: &mut ArtifactWriter<'_>,
) -> Result<()> {
    if let Some(batch) = batches.iter().find(|batch| batch.schema() != schema) {
        return Err(crate::Error::Encode {
            data_type: std::any::type_name::<Vec<RecordBatch>>(),
            materializer: "weft.parquet",
            source: format!(
                "every batch must have the first batch's schema; one has {}",
                batch.schema()
            )
            .into(),
        });
    }
    let mut described = None;
    writer.write_file(FILE, |file| {
        let mut properties = WriterProperties::builder().set_compression(Compression::SNAPPY);
        if let Some(cuts) = &cuts {
            properties = properties.set_key_value_metadata(Some(vec![KeyValue::new(
                BATCH_ROWS.to_owned(),
                serde_json::to_string(cuts)?,
            )]));
        }
        let mut parquet = ArrowWriter::try_new(file, schema.clone(), Some(properties.build()))?;
        // The whole table is in memory: a second core describes its columns and counts their
        // histograms while this one encodes it, which takes longer.
        let written = std::thread::scope(|scope| {
            let describing = scope.spawn(|| describe_and_count(schema.fields().len(), batches));
            let written = batches.iter().try_for_each(|batch| parquet.write(batch));
            described = Some(describing.join().expect("statistics do not panic"));
            written
        });
        written?;
        parquet.close()?;
        Ok::<(), BoxError>(())
    })?;
    let (facts, counted) = described.expect("the table was described while it was written");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let columns = schema.fields().iter().zip(&facts);
    describe_table(
        writer,
        rows,
        columns.map(|(field, facts)| (field.name().as_str(), field.data_type().to_string(), facts)),
    );
    // The histograms are drawn from the counts made during the write, not counted again.
    write_histograms(writer, &counted)
}

/// Reads the batches back, with the row counts they were saved in if recorded: a local file
/// is decoded where it lies while it is hashed, any other is read whole first.
fn load_batches(reader: &mut ArtifactReader<'_>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = reader.open(FILE)?;
    if let Some(decoded) = file.decode_local(decode_batches) {
        return decoded;
    }
    let bytes = Bytes::from(file.read_all()?);
    decode_batches(bytes).map_err(|error| file.decode_error(error))
}

type Batches = (SchemaRef, Vec<RecordBatch>);

fn decode_batches<R: ChunkReader + 'static>(source: R) -> std::result::Result<Batches, BoxError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(source)?;
    let metadata = builder.metadata().file_metadata();
    let rows = usize::try_from(metadata.num_rows()).map_err(|_| "a negative row count")?;
    let cuts: Option<Vec<usize>> = metadata
        .key_value_metadata()
        .and_then(|entries| entries.iter().find(|entry| entry.key == BATCH_ROWS))
        .and_then(|entry| entry.value.as_deref())
        .map(serde_json::from_str)
        .transpose()?;
    // The reader lists the file's key-value metadata in the schema's: weft's own entry
    // is not part of the user's schema.
    let mut schema = builder.schema().as_ref().clone();
    schema.metadata.remove(BATCH_ROWS);
    let schema = Arc::new(schema);
    let batches = builder
        .with_batch_size(rows.max(1))
        .build()?
        .map(|batch| batch?.with_schema(schema.clone()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // One batch (the batch size is the row count) needs no copy into one.
    let whole = match <[RecordBatch; 1]>::try_from(batches) {
        Ok([whole]) => whole,
        Err(batches) => arrow_select::concat::concat_batches(&schema, &batches)?,
    };
    let batches = match cuts {
        Some(cuts) => {
            if cuts.iter().sum::<usize>() != whole.num_rows() {
                return Err("the recorded batch sizes do not add up to the rows".into());
            }
            let mut offset = 0;
            cuts.into_iter()
                .map(|length| {
                    let batch = whole.slice(offset, length);
                    offset += length;
                    batch
                })
                .collect()
        }
        None if whole.num_rows() == 0 => Vec::new(),
        None => vec![whole],
    };
    Ok((schema, batches))
}

/// `describe.csv` (one row per column) and `sample.csv` (the first rows), and a histogram
/// per numeric column.
fn visualize_batches(
    batches: &[RecordBatch],
    schema: &Schema,
    writer: &mut ArtifactWriter<'_>,
) -> Result<()> {
    write_describe_csv(writer)?;
    let mut sample = Vec::new();
    let mut left = SAMPLE_ROWS;
    for batch in batches {
        if left == 0 {
            break;
        }
        let rows = batch.num_rows().min(left);
        sample.push(batch.slice(0, rows));
        left -= rows;
    }
    writer.write_visualization("sample.csv", VisualizationType::Csv, |file| {
        let mut csv = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .build(file);
        if sample.is_empty() {
            csv.write(&RecordBatch::new_empty(Arc::new(schema.clone())))?;
        }
        for batch in &sample {
            csv.write(batch)?;
        }
        Ok(())
    })?;
    Ok(())
}

impl Materializer<RecordBatch> for Parquet {
    const ID: &'static str = "weft.parquet";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &RecordBatch, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        save_batches(value.schema(), std::slice::from_ref(value), None, writer)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<RecordBatch> {
        let (schema, batches) = load_batches(reader)?;
        match batches.len() {
            0 => Ok(RecordBatch::new_empty(schema)),
            1 => Ok(batches.into_iter().next().expect("one batch")),
            _ => arrow_select::concat::concat_batches(&schema, &batches).map_err(|error| {
                crate::Error::Decode {
                    data_type: std::any::type_name::<RecordBatch>(),
                    path: FILE.into(),
                    materializer: "weft.parquet",
                    source: error.into(),
                }
            }),
        }
    }

    fn visualize(value: &RecordBatch, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        visualize_batches(std::slice::from_ref(value), &value.schema(), writer)
    }
}

impl Materializer<Vec<RecordBatch>> for Parquet {
    const ID: &'static str = "weft.parquet";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &Vec<RecordBatch>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        let schema = value
            .first()
            .map_or_else(|| Arc::new(Schema::empty()), RecordBatch::schema);
        let cuts = value.iter().map(RecordBatch::num_rows).collect();
        save_batches(schema, value, Some(cuts), writer)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<Vec<RecordBatch>> {
        load_batches(reader).map(|(_, batches)| batches)
    }

    fn visualize(value: &Vec<RecordBatch>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        let schema = value
            .first()
            .map_or_else(|| Arc::new(Schema::empty()), RecordBatch::schema);
        visualize_batches(value, &schema, writer)
    }
}

impl Artifact for RecordBatch {
    type Materializer = Parquet;
}

/// An item (a batch) is taken from the whole table: batches are cut by row counts kept in
/// the footer, not stored apart.
impl crate::ItemFormat<RecordBatch> for Parquet {}

impl Artifact for Vec<RecordBatch> {
    type Materializer = Parquet;
}
