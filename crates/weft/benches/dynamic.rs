//! Dynamic pipelines: concurrent submits and a wide map, end to end with full bookkeeping
//! (SQLite metadata store, local-file artifact store, every step recorded and its output
//! saved and registered).
//!
//! Prints figures; asserts nothing. `cargo bench -p weft --bench dynamic` (add `-- --quick`
//! for one repetition instead of five). Stores live on the real disk, in a fresh folder under
//! `target/bench-stores` (kept between runs, so not itself just created); the map is run once
//! more on tmpfs (`/dev/shm`) for comparison.
//! `-- --tmpfs` puts every store on tmpfs.
//!
//! - 20 concurrent `submit`s of a trivial step, then `load` of each: the whole run, from the
//!   call to the report.
//! - `map` over 100,000 items (`-- --items N` for another count) of a trivial step, then a
//!   fan-in of all of them: per item, and the peak resident memory of the process during that
//!   run (Linux: `VmHWM`, reset first); then the same run again, every item a cache hit.
//! - `map` over the items of a step's stored `Vec<u64>` of as many items (each invocation
//!   reads its own item), then the same fan-in: per item and peak resident memory.
//! - A static pipeline of one step feeding 10,000: per step and peak resident memory.
//!
//! `-- --map-only --items N` runs one map and nothing else; `scripts/instructions.sh` runs
//! it under callgrind to count the instructions an item costs, a figure that, unlike time,
//! does not move with the machine's state.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
#[path = "common/memory.rs"]
mod memory;

use common::{mapped, median, square, sum};
use weft::prelude::*;

#[pipeline(dynamic)]
fn submits(count: u64) -> weft::Result<()> {
    let futures: Vec<StepFuture<u64>> = (0..count).map(square::submit).collect();
    for (x, future) in futures.iter().enumerate() {
        let x = x as u64;
        weft::ensure!(future.load()? == x * x, "square of {x}");
    }
    Ok(())
}

#[step]
fn numbers(count: u64) -> Vec<u64> {
    (0..count).collect()
}

/// `square` mapped over the items of a stored collection, then their sum, checked.
#[pipeline(dynamic)]
fn mapped_collection(count: u64) -> weft::Result<()> {
    let values = numbers(count)?;
    let squares = square::map(&values)?;
    let total = sum(&squares)?;
    let expected: u64 = (0..count).map(|x| x * x).sum();
    weft::ensure!(total.load()? == expected, "the sum of squares");
    Ok(())
}

/// Times a run of `call`, which must record `steps` step runs.
fn timed_run(client: &Client, call: weft::PipelineCall, steps: usize) -> Duration {
    let (elapsed, report) = common::timed_run(client, call, &weft::RunConfig::default());
    assert_eq!(report.step_runs.len(), steps, "every step ran");
    elapsed
}

/// A static pipeline of one step feeding 10,000: its time per step and peak memory.
fn static_fan_out(fresh: impl Fn() -> (tempfile::TempDir, Client)) {
    let width = 10_000;
    let (_dir, client) = fresh();
    let reset = memory::reset_peak();
    let elapsed = timed_run(&client, common::fan_out::args(width), width as usize + 1);
    println!(
        "{:<48}{:>16}",
        format!("static fan-out of {width} (whole run)"),
        ms(elapsed)
    );
    println!("{:<48}{:>16}", "  per step", ms(elapsed / width as u32));
    if let (true, Some(peak)) = (reset, memory::peak_mib()) {
        println!(
            "{:<48}{:>13.1} MiB",
            "  peak resident memory during the fan-out", peak
        );
    }
}

/// `square` over the items of a stored `Vec` of `items`: its time per item and peak memory.
fn map_over_collection(fresh: impl Fn() -> (tempfile::TempDir, Client), items: u64) {
    let (_dir, client) = fresh();
    let reset = memory::reset_peak();
    let elapsed = timed_run(&client, mapped_collection::args(items), items as usize + 2);
    println!(
        "{:<48}{:>16}",
        format!("map over a stored Vec of {items} + fan-in"),
        ms(elapsed)
    );
    println!("{:<48}{:>16}", "  per item", ms(elapsed / items as u32));
    if let (true, Some(peak)) = (reset, memory::peak_mib()) {
        println!(
            "{:<48}{:>13.1} MiB",
            "  peak resident memory during that run", peak
        );
    }
}

/// What this benchmark prints when run again, in a process of its own, with `arguments`.
fn run_apart(arguments: &[&str], more: Option<&str>) -> String {
    let run = std::process::Command::new(std::env::current_exe().expect("this benchmark"))
        .args(arguments)
        .args(more)
        .output()
        .expect("the benchmark runs itself");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

fn ms(duration: Duration) -> String {
    format!("{:9.3} ms", duration.as_secs_f64() * 1e3)
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let tmpfs = Path::new("/dev/shm").is_dir();
    let on_disk = !(tmpfs && std::env::args().any(|argument| argument == "--tmpfs"));
    let repeats = if quick { 1 } else { 5 };
    let base = if !on_disk {
        PathBuf::from("/dev/shm")
    } else {
        let disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-stores");
        std::fs::create_dir_all(&disk).expect("a folder for the stores");
        disk
    };
    let fresh = || {
        let dir = tempfile::tempdir_in(&base).expect("a folder for the stores");
        let client = Client::in_folder(dir.path()).expect("the stores open");
        (dir, client)
    };

    if std::env::args().any(|argument| argument == "--fan-out-only") {
        static_fan_out(fresh);
        return;
    }
    let items: u64 = std::env::args()
        .skip_while(|argument| argument != "--items")
        .nth(1)
        .map(|count| count.parse().expect("--items takes a whole number"))
        .unwrap_or(100_000);
    if std::env::args().any(|argument| argument == "--collection-only") {
        map_over_collection(fresh, items);
        return;
    }
    if std::env::args().any(|argument| argument == "--map-only") {
        // One map on a fresh store, nothing else: what `scripts/instructions.sh` counts.
        let (_dir, client) = fresh();
        let map_time = timed_run(&client, mapped::args(items), items as usize + 1);
        println!("map over {items} items + fan-in: {}", ms(map_time));
        println!("  per item: {}", ms(map_time / items as u32));
        return;
    }

    // Warm-up: the first run of a process pays for opening the stores and starting threads.
    {
        let (_dir, client) = fresh();
        timed_run(&client, submits::args(5), 5);
    }
    let submits_times: Vec<Duration> = (0..repeats)
        .map(|_| {
            let (_dir, client) = fresh();
            timed_run(&client, submits::args(20), 20)
        })
        .collect();
    let submits_time = median(submits_times);

    let (_dir, client) = fresh();
    let reset = memory::reset_peak();
    let before = memory::peak_mib();
    let map_time = timed_run(&client, mapped::args(items), items as usize + 1);
    let peak = memory::peak_mib();
    let rerun_time = timed_run(&client, mapped::args(items), items as usize + 1);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "weft dynamic pipelines: SQLite + local files under {}, {cores} cores",
        base.display()
    );
    println!(
        "{:<48}{:>16}",
        "20 submits + 20 loads (whole run, median)",
        ms(submits_time)
    );
    println!(
        "{:<48}{:>16}",
        format!("map over {items} items + fan-in (whole run)"),
        ms(map_time)
    );
    println!("{:<48}{:>16}", "  per item", ms(map_time / items as u32));
    match (reset, before, peak) {
        (true, Some(before), Some(peak)) => println!(
            "{:<48}{:>13.1} MiB  (resident before the run: {before:.1} MiB)",
            "  peak resident memory during the map run", peak
        ),
        _ => println!("  peak resident memory: unknown (no /proc)"),
    }
    println!(
        "{:<48}{:>16}",
        "the same map again, every item cached",
        ms(rerun_time)
    );
    println!("{:<48}{:>16}", "  per item", ms(rerun_time / items as u32));
    // The other runs go in processes of their own: the map's freed memory, which the
    // allocator may keep, would count as theirs.
    let items = items.to_string();
    let where_stored = (!on_disk).then_some("--tmpfs");
    print!(
        "{}",
        run_apart(&["--collection-only", "--items", &items], where_stored)
    );
    print!(
        "{}",
        run_apart(&["--fan-out-only", "--items", &items], where_stored)
    );
    if on_disk && tmpfs {
        println!("the map again, with the stores on tmpfs:");
        for line in run_apart(&["--map-only", "--items", &items], Some("--tmpfs")).lines() {
            println!("  {}", line.trim_start());
        }
    }
    println!();
    println!(
        "targets (on disk): 20 submits + loads <= 50 ms; a 100,000-item map <= 0.1 ms per item, peak <= 200 MiB"
    );
}
