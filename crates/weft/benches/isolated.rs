//! Isolated steps: what running a trivial step in a process of its own costs (starting the
//! pipeline binary's step host, rebuilding the step from the store, bookkeeping), against the
//! same step inline. Stores on tmpfs when it exists.
//!
//! Prints figures; asserts nothing. `cargo bench -p weft --bench isolated` (`-- --quick`:
//! one repetition instead of five).

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{chain, isolated_chain, median};
use weft::prelude::*;

const LENGTH: usize = 20;

fn timed(base: &Path, call: weft::PipelineCall) -> Duration {
    let dir = tempfile::tempdir_in(base).expect("a folder for the stores");
    let client = Client::in_folder(dir.path()).expect("the stores open");
    let config = weft::RunConfig {
        no_cache: true,
        ..Default::default()
    };
    common::timed_run(&client, call, &config).0
}

fn main() -> std::process::ExitCode {
    // This binary also hosts the isolated steps it starts.
    if std::env::args().nth(1).as_deref() == Some("__weft-step") {
        return weft::main();
    }
    let quick = std::env::args().any(|argument| argument == "--quick");
    let repeats = if quick { 1 } else { 5 };
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    timed(&base, isolated_chain::args(2)); // warm-up
    let inline = median(
        (0..repeats)
            .map(|_| timed(&base, chain::args(LENGTH)))
            .collect(),
    );
    let isolated = median(
        (0..repeats)
            .map(|_| timed(&base, isolated_chain::args(LENGTH)))
            .collect(),
    );
    let per = |total: Duration| total / LENGTH as u32;
    println!(
        "weft isolated steps: a chain of {LENGTH} trivial steps, stores under {}, median of {repeats}",
        base.display()
    );
    println!(
        "{:<40}{:>14.3} ms",
        "inline, per step",
        per(inline).as_secs_f64() * 1e3
    );
    println!(
        "{:<40}{:>14.3} ms",
        "isolated (own process), per step",
        per(isolated).as_secs_f64() * 1e3
    );
    println!(
        "{:<40}{:>14.3} ms",
        "  cost of the process, per step",
        per(isolated.saturating_sub(inline)).as_secs_f64() * 1e3
    );
    println!();
    println!("target: <= 20 ms per isolated step");
    std::process::ExitCode::SUCCESS
}
