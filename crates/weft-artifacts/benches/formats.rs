//! ML data through the artifact store against the same bytes with no framework at all.
//!
//! - a 256 MiB `f64` matrix (`ndarray`) and a 256 MiB `Vec<f64>` (with its histogram): save +
//!   load through weft (hashing, statistics, visualizations included) against writing and
//!   reading the same bytes with `std::fs`; peak resident memory during each;
//! - raw `Vec<u8>` of 256 MiB the same way;
//! - (feature `arrow`) a table of 10 million rows × 8 columns as Parquet, against writing and
//!   reading it with the parquet crate directly (same writer settings).
//!
//! The stores live on the real disk, under `target/`. Prints figures; asserts nothing.
//! `cargo bench -p weft-artifacts --bench formats --features ndarray,arrow` (add `-- --quick`
//! for one repetition instead of five, and words to run only the parts whose names hold one:
//! `-- matrix table`).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use weft_artifacts::{Artifact, ArtifactStore};

const MIB: usize = 1024 * 1024;
const BYTES: usize = 256 * MIB;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Resets the peak resident set size of this process (Linux: `clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM`: the peak since the
/// last reset; `VmRSS`: now), in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn peak_mib() -> f64 {
    status_mib("VmHWM")
}

fn resident_mib() -> f64 {
    status_mib("VmRSS")
}

#[derive(Default)]
struct Figures {
    saves: Vec<Duration>,
    loads: Vec<Duration>,
    save_peak: f64,
    load_peak: f64,
}

impl Figures {
    fn save(&self) -> Duration {
        median(self.saves.clone())
    }

    fn load(&self) -> Duration {
        median(self.loads.clone())
    }
}

/// Saves and loads `value` through weft once; peaks are above what was resident before (the
/// value itself).
fn through_weft<T: Artifact>(
    store: &ArtifactStore,
    value: &T,
    round: usize,
    figures: &mut Figures,
) {
    let folder = format!("bench-{}-{round}", std::process::id());
    let before = resident_mib();
    reset_peak();
    let started = Instant::now();
    let saved = store.save(&[&folder], value).expect("saved");
    figures.saves.push(started.elapsed());
    figures.save_peak = figures.save_peak.max(peak_mib() - before);
    let before = resident_mib();
    reset_peak();
    let started = Instant::now();
    let loaded: T = store.load(&saved.to_stored()).expect("loaded");
    figures.loads.push(started.elapsed());
    figures.load_peak = figures.load_peak.max(peak_mib() - before);
    drop(loaded);
    store.delete(&saved.to_stored()).expect("deleted");
}

/// Writes and reads the same bytes with `std::fs` once, into a buffer of the value's size.
fn through_std(folder: &std::path::Path, bytes: &[u8], figures: &mut Figures) {
    let path = folder.join("plain.bin");
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).expect("created");
    file.write_all(bytes).expect("written");
    drop(file);
    figures.saves.push(started.elapsed());
    let started = Instant::now();
    let mut back = vec![0f64; bytes.len() / 8];
    std::fs::File::open(&path)
        .expect("opened")
        .read_exact(bytemuck::cast_slice_mut(&mut back))
        .expect("read");
    figures.loads.push(started.elapsed());
    drop(back);
    std::fs::remove_file(&path).expect("removed");
}

/// Runs weft and the plain baseline alternately, so that both meet the disk in the same
/// state, and reports medians.
fn compare<T: Artifact>(
    what: &str,
    store: &ArtifactStore,
    folder: &std::path::Path,
    value: &T,
    bytes: &[u8],
    repeats: usize,
) {
    let (mut weft, mut plain) = (Figures::default(), Figures::default());
    for round in 0..repeats {
        through_std(folder, bytes, &mut plain);
        through_weft(store, value, round, &mut weft);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let total = ms(weft.save()) + ms(weft.load());
    let baseline = ms(plain.save()) + ms(plain.load());
    let data = bytes.len() as f64 / MIB as f64;
    println!(
        "{what}: weft save {:.0} ms + load {:.0} ms = {total:.0} ms; std::fs write {:.0} ms + read {:.0} ms = {baseline:.0} ms; ratio {:.2}; peak memory: save {:.2}x, load {:.2}x the data",
        ms(weft.save()),
        ms(weft.load()),
        ms(plain.save()),
        ms(plain.load()),
        total / baseline,
        (weft.save_peak + data) / data,
        weft.load_peak / data,
    );
}

fn main() {
    let repeats = if std::env::args().any(|a| a == "--quick") {
        1
    } else {
        5
    };
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = |name: &str| words.is_empty() || words.iter().any(|w| name.contains(w.as_str()));
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let dir = tempfile::tempdir_in(&target).expect("a folder on the real disk");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a runtime");
    let store = ArtifactStore::local(&dir.path().join("artifacts"), runtime.handle().clone())
        .expect("store");

    let values: Vec<f64> = (0..BYTES / 8).map(|i| (i as f64 * 0.001).sin()).collect();
    let folder = dir.path();
    #[cfg(feature = "ndarray")]
    {
        let matrix = ndarray::Array2::from_shape_vec((8192, BYTES / 8 / 8192), values.clone())
            .expect("shaped");
        let bytes = bytemuck::cast_slice(matrix.as_slice().expect("contiguous"));
        let name = "256 MiB f64 matrix (ndarray, .npy)";
        if runs(name) {
            compare(name, &store, folder, &matrix, bytes, repeats);
        }
    }
    let bytes = bytemuck::cast_slice(&values);
    let name = "256 MiB Vec<f64> (.npy + histogram)";
    if runs(name) {
        compare(name, &store, folder, &values, bytes, repeats);
    }
    let raw: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
    let name = "256 MiB Vec<u8> (raw bytes)";
    if runs(name) {
        compare(name, &store, folder, &raw, &raw, repeats);
    }
    drop((raw, values));
    #[cfg(feature = "arrow")]
    if runs("table of 10 million rows (Parquet)") {
        tables::compare(&store, folder, repeats.min(3));
    }
}

#[cfg(feature = "arrow")]
mod tables {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    use weft_artifacts::ArtifactStore;

    use super::{Figures, MIB, through_weft};

    const ROWS: usize = 10_000_000;

    fn table() -> RecordBatch {
        let floats = |seed: f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(
                (0..ROWS).map(|i| ((i as f64) * seed).sin() * 100.0),
            ))
        };
        let rows = ROWS as i64;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("a", floats(0.001)),
            ("b", floats(0.37)),
            ("c", floats(1.3)),
            ("d", floats(7.1)),
            (
                "e",
                Arc::new(Int64Array::from_iter_values(
                    (0..rows).map(|i| i * 31 % 100_003),
                )),
            ),
            (
                "f",
                Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i / 7))),
            ),
            (
                "g",
                Arc::new(Int32Array::from_iter_values(
                    (0..ROWS as i32).map(|i| i % 1000),
                )),
            ),
            (
                "h",
                Arc::new(Int32Array::from_iter_values(
                    (0..ROWS as i32).map(|i| i ^ 0x5555),
                )),
            ),
        ];
        RecordBatch::try_from_iter(columns).expect("a table")
    }

    /// Writes and reads the table with the parquet crate directly, with weft's settings.
    fn through_parquet(table: &RecordBatch, folder: &std::path::Path, figures: &mut Figures) {
        let path = folder.join("direct.parquet");
        let started = Instant::now();
        let file = std::fs::File::create(&path).expect("created");
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer =
            ArrowWriter::try_new(file, table.schema(), Some(properties)).expect("a writer");
        writer.write(table).expect("written");
        writer.close().expect("closed");
        figures.saves.push(started.elapsed());
        let started = Instant::now();
        let file = std::fs::File::open(&path).expect("opened");
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("read")
            .with_batch_size(ROWS)
            .build()
            .expect("a reader")
            .collect::<Result<_, _>>()
            .expect("decoded");
        figures.loads.push(started.elapsed());
        drop(batches);
        std::fs::remove_file(&path).expect("removed");
    }

    pub(super) fn compare(store: &ArtifactStore, folder: &std::path::Path, repeats: usize) {
        let table = table();
        let data = table.get_array_memory_size() as f64 / MIB as f64;
        let (mut weft, mut direct) = (Figures::default(), Figures::default());
        for round in 0..repeats {
            through_parquet(&table, folder, &mut direct);
            through_weft(store, &table, round, &mut weft);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let total = ms(weft.save()) + ms(weft.load());
        let baseline = ms(direct.save()) + ms(direct.load());
        println!(
            "table of {ROWS} rows x 8 columns ({data:.0} MiB in memory, Parquet): weft save {:.0} ms + load {:.0} ms = {total:.0} ms; parquet crate directly {:.0} ms + {:.0} ms = {baseline:.0} ms; ratio {:.2}; weft's peak memory above the table: save {:.2}x, load {:.2}x the table",
            ms(weft.save()),
            ms(weft.load()),
            ms(direct.save()),
            ms(direct.load()),
            total / baseline,
            weft.save_peak / data,
            weft.load_peak / data,
        );
    }
}
