//! Orchestration overhead: chains of N trivial steps and a wide fan-out, with full
//! bookkeeping (SQLite metadata store, local-file artifact store: every step records its step
//! run, saves its output as a hashed, atomically published file, and registers a version).
//!
//! Prints figures; asserts nothing. `cargo bench -p weft --bench overhead` (add `-- --quick`
//! for one repetition instead of five).
//!
//! It measures each configuration twice: with the stores on disk (under `target/`) and on
//! tmpfs (`/dev/shm`), in folders kept until the end (nothing is deleted while it measures).
//! A trivial step's output is kept in its record; a chain whose steps pass 4 KiB on (a file
//! each: a folder, a staged file, its publication) shows what a file costs on each.
//!
//! Each chain is run a second time on the same stores, where every step is a cache hit
//! (resolved by the pre-pass, never scheduled), to measure the cost of a cached step.
//! Last, a step consuming a 256 MiB artifact is rerun from the cache: its key uses the content
//! hash recorded when the artifact was written, so the rerun must read (almost) nothing; the
//! bytes the process reads meanwhile (`rchar` of `/proc/self/io`) are printed to show it.
//!
//! What a step costs the operating system is printed too: the system calls per step of a
//! chain, by kind (the bench runs chains of 10 and 210 steps in child processes under
//! `strace -f -c`, where `strace` is installed, and divides the difference by 200), and the
//! bytes a chain leaves on disk per step (artifact files and folders, and the database).

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

#[step]
fn grow(bytes: usize) -> Vec<u8> {
    vec![1; bytes]
}

#[step]
fn pass_on(data: Vec<u8>) -> Vec<u8> {
    // A counter in the first bytes: no step's output repeats another's (no cache hit).
    let mut next = data;
    let count = u64::from_le_bytes(next[..8].try_into().expect("8 bytes")) + 1;
    next[..8].copy_from_slice(&count.to_le_bytes());
    next
}

/// A chain whose every step writes its output to a file of its own.
#[pipeline]
fn file_chain(length: usize, bytes: usize) -> weft::Result<()> {
    let mut data = grow(bytes)?;
    for _ in 1..length {
        data = pass_on(&data)?;
    }
    Ok(())
}

/// The bytes each step of `file_chain` passes on: more than is kept in a record.
const FILE_BYTES: usize = 4096;

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
    files10: Duration,
    files1000: Duration,
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

    fn per_file_step(&self) -> Duration {
        self.files1000.saturating_sub(self.files10) / 990
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
    let mut files_of = |length: usize| {
        let times = (0..repeats)
            .map(|_| {
                let call = file_chain::args(length, FILE_BYTES);
                timed_run(&fresh(), call, Status::Completed)
            })
            .collect();
        median(times)
    };
    let files10 = files_of(10);
    let files1000 = files_of(1000);
    let figures = Figures {
        t10,
        t100,
        t1000,
        fan: median(fan),
        files10,
        files1000,
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
    io_counter("rchar:")
}

/// A counter of `/proc/self/io` (`rchar:`, `wchar:`, ...), Linux only.
fn io_counter(name: &str) -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().parse().ok())
}

fn ms(duration: Duration) -> String {
    format!("{:9.3} ms", duration.as_secs_f64() * 1e3)
}

/// In a child process (under `strace`): runs one chain of `length` steps on fresh stores in
/// `folder`.
fn chain_child(length: usize, folder: &Path) {
    let client = Client::in_folder(folder).expect("the stores open");
    timed_run(&client, chain::args(length), Status::Completed);
}

/// System calls by kind of one chain of `length` steps, run in a child process under
/// `strace -f -c`; `None` without `strace`.
fn syscalls_of_chain(
    length: usize,
    base: &Path,
) -> Option<std::collections::BTreeMap<String, u64>> {
    let dir = tempfile::tempdir_in(base).expect("a folder for the stores");
    let summary = dir.path().join("strace.txt");
    let status = std::process::Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&summary)
        .arg(std::env::current_exe().expect("this benchmark"))
        .args(["--chain-child", &length.to_string()])
        .arg(dir.path().join("stores"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    // `% time  seconds  usecs/call  calls  [errors]  syscall`, between dashed lines.
    let text = std::fs::read_to_string(&summary).ok()?;
    let counts = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = *fields.last()?;
            let calls = fields.get(3)?.parse().ok()?;
            (fields.len() >= 5 && name != "total").then(|| (name.to_owned(), calls))
        })
        .collect();
    Some(counts)
}

/// Bytes under `folder`, as the file system allocates them (blocks, not lengths).
fn disk_usage(folder: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![folder.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

/// The system calls a chain step costs, by kind, and the bytes it leaves on disk.
fn print_operating_system_costs(base: &Path) {
    println!();
    let (short, long) = (10, 210);
    match (
        syscalls_of_chain(short, base),
        syscalls_of_chain(long, base),
    ) {
        (Some(few), Some(many)) => {
            let steps = (long - short) as f64;
            let mut per_step: Vec<(String, f64)> = many
                .iter()
                .map(|(name, &calls)| {
                    let base = few.get(name).copied().unwrap_or(0);
                    (name.clone(), calls.saturating_sub(base) as f64 / steps)
                })
                .filter(|(_, calls)| *calls >= 0.05)
                .collect();
            per_step.sort_by(|a, b| b.1.total_cmp(&a.1));
            let total: f64 = per_step.iter().map(|(_, calls)| calls).sum();
            let kinds: Vec<String> = per_step
                .iter()
                .map(|(name, calls)| format!("{name} {calls:.1}"))
                .collect();
            println!(
                "system calls per chain step (strace -f -c, chains of {long} and {short}): {total:.1}: {}",
                kinds.join(", ")
            );
        }
        _ => println!("system calls per step: not counted (no working `strace`)"),
    }
    let dir = tempfile::tempdir_in(base).expect("a folder for the stores");
    let length = 1000;
    let client = Client::in_folder(dir.path()).expect("the stores open");
    let written_before = io_counter("wchar:");
    timed_run(&client, chain::args(length), Status::Completed);
    let written = io_counter("wchar:")
        .zip(written_before)
        .map(|(after, before)| (after - before) as f64 / length as f64);
    drop(client);
    if let Some(written) = written {
        println!(
            "bytes written per chain step (write calls: database, its log, files): {written:.0}"
        );
    }
    let artifacts = disk_usage(&dir.path().join("artifacts"));
    let database = disk_usage(dir.path()) - artifacts;
    println!(
        "bytes on disk per chain step (chain of {length}): artifact store {:.0}, metadata store {:.0}",
        artifacts as f64 / length as f64,
        database as f64 / length as f64
    );
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let [_, flag, length, folder] = &arguments[..]
        && flag == "--chain-child"
    {
        chain_child(length.parse().expect("a length"), Path::new(folder));
        return;
    }
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
        ("chain of 1000, 4 KiB outputs (files)", |f| f.files1000),
        ("per step with a file output", Figures::per_file_step),
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
    println!("per step with a file output = (t_files(1000) - t_files(10)) / 990");
    println!(
        "targets: <= 0.2 ms per step (on disk too), <= 50 ms per run, <= 0.05 ms per cached step"
    );

    print_operating_system_costs(&places_disk);

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
