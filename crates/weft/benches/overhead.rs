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

use std::path::{Path, PathBuf};
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

#[pipeline]
fn fan_out(width: usize) -> weft::Result<()> {
    let seed = start(0)?;
    for _ in 0..width {
        inc(&seed)?;
    }
    Ok(())
}

struct Figures {
    t10: Duration,
    t100: Duration,
    t1000: Duration,
    fan: Duration,
    floor: Duration,
}

impl Figures {
    fn per_step(&self) -> Duration {
        (self.t1000 - self.t10) / 990
    }

    fn per_run(&self) -> Duration {
        self.t10.saturating_sub(self.per_step() * 10)
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
    let mut median = |repeats: usize, call: &dyn Fn() -> weft::PipelineCall| {
        let mut times: Vec<Duration> = (0..repeats)
            .map(|_| {
                let client = fresh();
                let started = Instant::now();
                let report = client.run(call()).expect("the run starts");
                let elapsed = started.elapsed();
                assert_eq!(
                    report.run.status,
                    weft::Status::Completed,
                    "a benchmark run must complete"
                );
                elapsed
            })
            .collect();
        times.sort();
        times[repeats / 2]
    };
    median(1, &|| chain::args(50)); // warm-up
    let figures = Figures {
        t10: median(repeats, &|| chain::args(10)),
        t100: median(repeats, &|| chain::args(100)),
        t1000: median(repeats, &|| chain::args(1000)),
        fan: median(repeats.min(3), &|| fan_out::args(1000)),
        floor: file_system_floor(base),
    };
    drop(kept);
    figures
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
    let rows: [Row; 8] = [
        ("chain of   10 steps", |f| f.t10),
        ("chain of  100 steps", |f| f.t100),
        ("chain of 1000 steps", |f| f.t1000),
        ("fan-out of 1000 steps", |f| f.fan),
        ("per-step overhead", Figures::per_step),
        ("fixed per-run overhead", Figures::per_run),
        ("  of which file system, per step", |f| f.floor),
        ("  weft itself, per step", |f| {
            f.per_step().saturating_sub(f.floor)
        }),
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
    println!("targets: <= 0.5 ms per step, <= 50 ms per run");
}
