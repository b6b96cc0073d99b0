//! Orchestration overhead: chains of N trivial steps and a wide fan-out, with full
//! bookkeeping on the embedded stores (SQLite and local files). Prints figures; asserts
//! nothing. Run with `cargo bench -p weft --bench overhead`.

use std::time::{Duration, Instant};

use weft::prelude::*;

#[step]
fn start(seed: u64) -> u64 {
    seed
}

#[step]
fn inc(x: u64) -> u64 {
    x + 1
}

#[pipeline]
fn chain(length: usize) -> weft::Result<()> {
    let mut value = start(0)?;
    for _ in 1..length {
        value = inc(&value)?;
    }
    Ok(())
}

#[step]
fn noop() {}

#[pipeline]
fn noops(length: usize) -> weft::Result<()> {
    let mut previous = noop()?;
    for _ in 1..length {
        previous = noop::after(&previous).call()?;
    }
    Ok(())
}

#[pipeline]
fn fan_out(width: usize) -> weft::Result<()> {
    let seed = start(0)?;
    for _ in 0..width {
        inc(&seed)?;
    }
    Ok(())
}

fn time(client: &Client, call: weft::PipelineCall) -> Duration {
    let started = Instant::now();
    let report = client.run(call).expect("the run starts");
    let elapsed = started.elapsed();
    assert_eq!(
        report.run.status,
        weft::Status::Completed,
        "the benchmark run must complete"
    );
    elapsed
}

/// The median of `repeats` runs, each in a fresh store. The stores are kept until the end:
/// deleting many files between measurements would make the file system's allocator, not
/// weft, the thing measured.
fn median(
    repeats: usize,
    kept: &mut Vec<tempfile::TempDir>,
    call: impl Fn() -> weft::PipelineCall,
) -> Duration {
    let mut times: Vec<Duration> = (0..repeats)
        .map(|_| {
            let dir = scratch();
            let client = Client::in_folder(dir.path()).expect("the stores open");
            let elapsed = time(&client, call());
            kept.push(dir);
            elapsed
        })
        .collect();
    times.sort();
    times[repeats / 2]
}

/// A fresh folder for stores, under the build's target folder: the system's temporary folder
/// may sit on a file system tired of many deletions, where creating a directory costs a
/// millisecond, which would be measured instead of weft.
fn scratch() -> tempfile::TempDir {
    let base = match std::env::var("BENCH_DIR") {
        Ok(d) => std::path::PathBuf::from(d),
        Err(_) => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-stores")
        }
    };
    std::fs::create_dir_all(&base).expect("a folder for the benchmark's stores");
    tempfile::tempdir_in(base).expect("a temporary folder")
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let repeats = if quick { 1 } else { 5 };
    let dir = scratch();
    let opened = Instant::now();
    let client = Client::in_folder(dir.path()).expect("the stores open");
    let open = opened.elapsed();
    // Warm up: code paths, page cache, thread pools.
    time(&client, chain::args(50));

    let mut kept = Vec::new();
    if std::env::var("NOOP").is_ok() {
        for _ in 0..3 {
            eprintln!("{:?}", median(1, &mut kept, || noops::args(1000)));
        }
        return;
    }
    if std::env::var("ONLY").is_ok() {
        for _ in 0..3 {
            eprintln!("{:?}", median(1, &mut kept, || chain::args(1000)));
        }
        return;
    }
    let t10 = median(repeats, &mut kept, || chain::args(10));
    let t100 = median(repeats, &mut kept, || chain::args(100));
    let t1000 = median(repeats, &mut kept, || chain::args(1000));
    let fan = median(repeats.min(3), &mut kept, || fan_out::args(1000));
    let per_step = (t1000 - t10) / 990;
    let per_run = t10.saturating_sub(per_step * 10);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!(
        "weft orchestration overhead (embedded SQLite + local files, {cores} cores, median of {repeats})"
    );
    println!("  store open (first use)     {:>9.2} ms", ms(open));
    println!("  chain of   10 steps        {:>9.2} ms", ms(t10));
    println!("  chain of  100 steps        {:>9.2} ms", ms(t100));
    println!("  chain of 1000 steps        {:>9.2} ms", ms(t1000));
    println!(
        "  fan-out of 1000 steps      {:>9.2} ms  ({:.3} ms per step)",
        ms(fan),
        ms(fan) / 1001.0
    );
    println!(
        "  per-step overhead          {:>9.3} ms  = (t(1000) - t(10)) / 990   target <= 0.5 ms",
        ms(per_step)
    );
    println!(
        "  fixed per-run overhead     {:>9.2} ms  = t(10) - 10 x per-step     target <= 50 ms",
        ms(per_run)
    );
}
