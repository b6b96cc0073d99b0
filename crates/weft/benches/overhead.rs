//! Orchestration overhead: chains of N trivial steps and a wide fan-out, with full
//! bookkeeping (SQLite metadata store, local-file artifact store: every step records its step
//! run, saves its output as a hashed, atomically published file, and registers a version).
//!
//! Prints figures; asserts nothing. `cargo bench -p weft --bench overhead` (add `-- --quick`
//! for one repetition instead of five).
//!
//! It measures each configuration twice: with the stores on disk (under `target/`) and on
//! tmpfs (`/dev/shm`), and prints the cost of the file-system work alone (the directories and
//! the staged file one step output needs, done with `std::fs`): on some disks creating a file
//! costs far more than everything weft does around it.
//!
//! Each chain is run a second time on the same stores, where every step is a cache hit
//! (resolved by the pre-pass, never scheduled), to measure the cost of a cached step.
//! Last, a step consuming a 256 MiB artifact is rerun from the cache: its key uses the content
//! hash recorded when the artifact was written, so the rerun must read (almost) nothing; the
//! bytes the process reads meanwhile (`rchar` of `/proc/self/io`) are printed to show it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{chain, fan_out, median};
use weft::Status;
use weft::prelude::*;

#[step]
fn blob(mebibytes: usize) -> Vec<u8> {
    vec![7; mebibytes << 20]
}

#[step]
fn checksum(data: Vec<u8>) -> u64 {
    data.iter().map(|&byte| u64::from(byte)).sum()
}

#[pipeline]
fn large_input(mebibytes: usize) -> weft::Result<()> {
    let data = blob(mebibytes)?;
    checksum(&data)?;
    Ok(())
}

/// A chain's time computed, and rerun when every step is a cache hit.
#[derive(Clone, Copy)]
struct Chain {
    computed: Duration,
    cached: Duration,
}

struct Figures {
    t10: Chain,
    t100: Chain,
    t1000: Chain,
    fan: Duration,
    floor: Duration,
}

impl Figures {
    fn per_step(&self) -> Duration {
        (self.t1000.computed - self.t10.computed) / 990
    }

    fn per_run(&self) -> Duration {
        self.t10.computed.saturating_sub(self.per_step() * 10)
    }

    fn per_cached_step(&self) -> Duration {
        self.t1000.cached.saturating_sub(self.t10.cached) / 990
    }
}

/// Runs every configuration with stores under `base`. Stores are kept until the end, so no
/// deletion happens between measurements.
fn measure(base: &Path, repeats: usize) -> Figures {
    let mut kept = Vec::new();
    let mut fresh = || {
        let dir = tempfile::tempdir_in(base).expect("a folder for the stores");
        let client = Client::in_folder(dir.path()).expect("the stores open");
        kept.push(dir);
        client
    };
    let mut chain_of = |repeats: usize, length: usize| {
        let (computed, cached): (Vec<_>, Vec<_>) = (0..repeats)
            .map(|_| {
                let client = fresh();
                let first = timed_run(&client, chain::args(length), Status::Completed);
                let again = timed_run(&client, chain::args(length), Status::Cached);
                (first, again)
            })
            .unzip();
        Chain {
            computed: median(computed),
            cached: median(cached),
        }
    };
    chain_of(1, 50); // warm-up
    let t10 = chain_of(repeats, 10);
    let t100 = chain_of(repeats, 100);
    let t1000 = chain_of(repeats, 1000);
    let fan: Vec<Duration> = (0..repeats.min(3))
        .map(|_| timed_run(&fresh(), fan_out::args(1000), Status::Completed))
        .collect();
    let figures = Figures {
        t10,
        t100,
        t1000,
        fan: median(fan),
        floor: file_system_floor(base),
    };
    drop(kept);
    figures
}

/// Runs `call` to completion and times it; every step run must end with `step_status`.
fn timed_run(client: &Client, call: weft::PipelineCall, step_status: Status) -> Duration {
    let (elapsed, report) = common::timed_run(client, call, &weft::RunConfig::default());
    if let Some(other) = report
        .step_runs
        .iter()
        .find(|step_run| step_run.status != step_status)
    {
        panic!(
            "step {} ended {:?} where every step should be {step_status:?}",
            other.invocation, other.status
        );
    }
    elapsed
}

/// The large-input figures: the first run, the cached rerun, and what the rerun read.
struct LargeInput {
    mebibytes: usize,
    computed: Duration,
    cached: Duration,
    read_while_cached: Option<u64>,
    hash_once: Duration,
}

fn large_input_figures(base: &Path) -> LargeInput {
    let mebibytes = 256;
    let dir = tempfile::tempdir_in(base).expect("a folder for the stores");
    let client = Client::in_folder(dir.path()).expect("the stores open");
    let computed = timed_run(&client, large_input::args(mebibytes), Status::Completed);
    let read_before = bytes_read_so_far();
    let cached = timed_run(&client, large_input::args(mebibytes), Status::Cached);
    let read_while_cached = read_before
        .zip(bytes_read_so_far())
        .map(|(before, after)| after - before);
    // What a key that re-read its input would pay at least: hashing the bytes once more.
    let bytes = vec![7u8; mebibytes << 20];
    let started = Instant::now();
    std::hint::black_box(blake3::hash(&bytes));
    LargeInput {
        mebibytes,
        computed,
        cached,
        read_while_cached,
        hash_once: started.elapsed(),
    }
}

/// Bytes this process has read through system calls so far (Linux only).
fn bytes_read_so_far() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("rchar:"))
        .and_then(|value| value.trim().parse().ok())
}

/// What one chain step's output costs the file system alone, per step: three new
/// directories (`<invocation>/<output>/<step run>`), a staged file written, published with a
/// hard link and unstaged, then read back.
fn file_system_floor(base: &Path) -> Duration {
    let dir = tempfile::tempdir_in(base).expect("a folder");
    let steps = 500;
    let started = Instant::now();
    for step in 0..steps {
        let folder = dir
            .path()
            .join(format!("chain/inc_{step}/output/{step:032}"));
        std::fs::create_dir_all(&folder).expect("directories");
        let staged = folder.join("data.json#1");
        std::fs::write(&staged, b"42").expect("a file");
        std::fs::hard_link(&staged, folder.join("data.json")).expect("a link");
        std::fs::remove_file(&staged).expect("unstaged");
        std::fs::read(folder.join("data.json")).expect("read back");
    }
    started.elapsed() / steps
}

fn ms(duration: Duration) -> String {
    format!("{:9.3} ms", duration.as_secs_f64() * 1e3)
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let repeats = if quick { 1 } else { 5 };
    let disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-stores");
    std::fs::create_dir_all(&disk).expect("a folder for the stores");
    let places_disk = disk.clone();
    let tmpfs = PathBuf::from("/dev/shm");
    let mut places = vec![("disk (target/)", disk)];
    if tmpfs.is_dir() {
        places.push(("tmpfs (/dev/shm)", tmpfs));
    }
    let measured: Vec<(&str, Figures)> = places
        .into_iter()
        .map(|(name, base)| (name, measure(&base, repeats)))
        .collect();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "weft orchestration overhead: SQLite + local files, {cores} cores, median of {repeats}"
    );
    print!("{:<34}", "");
    for (name, _) in &measured {
        print!("{name:>20}");
    }
    println!();
    type Row = (&'static str, fn(&Figures) -> Duration);
    let rows: [Row; 12] = [
        ("chain of   10 steps", |f| f.t10.computed),
        ("chain of  100 steps", |f| f.t100.computed),
        ("chain of 1000 steps", |f| f.t1000.computed),
        ("fan-out of 1000 steps", |f| f.fan),
        ("per-step overhead", Figures::per_step),
        ("fixed per-run overhead", Figures::per_run),
        ("  of which file system, per step", |f| f.floor),
        ("  weft itself, per step", |f| {
            f.per_step().saturating_sub(f.floor)
        }),
        ("cached rerun, chain of   10", |f| f.t10.cached),
        ("cached rerun, chain of  100", |f| f.t100.cached),
        ("cached rerun, chain of 1000", |f| f.t1000.cached),
        ("per cached step", Figures::per_cached_step),
    ];
    for (label, value) in rows {
        print!("{label:<34}");
        for (_, figures) in &measured {
            print!("{:>20}", ms(value(figures)));
        }
        println!();
    }
    println!();
    println!(
        "per-step overhead = (t(1000) - t(10)) / 990; fixed per-run overhead = t(10) - 10 x per-step"
    );
    println!("per cached step = (t_cached(1000) - t_cached(10)) / 990");
    println!("targets: <= 0.5 ms per step, <= 50 ms per run, <= 0.1 ms per cached step");

    let large = large_input_figures(&places_disk);
    println!();
    println!(
        "a step with a {} MiB input, stores on disk (target/):",
        large.mebibytes
    );
    println!(
        "{:<34}{:>20}",
        "first run (write + read + hash)",
        ms(large.computed)
    );
    println!("{:<34}{:>20}", "cached rerun", ms(large.cached));
    println!(
        "{:<34}{:>20}",
        "hashing the input once (BLAKE3)",
        ms(large.hash_once)
    );
    match large.read_while_cached {
        Some(bytes) => println!(
            "{:<34}{:>17.3} MiB",
            "bytes read during the cached rerun",
            bytes as f64 / f64::from(1 << 20)
        ),
        None => println!("bytes read during the cached rerun: unknown (no /proc/self/io)"),
    }
    println!("target: the cached rerun reads far less than the input (its hash was recorded)");
}
