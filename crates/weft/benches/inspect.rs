//! The inspection commands on large runs: `runs show` of a 4,000-step chain (computed, then
//! rerun from the cache), `runs list` among many runs, and `lineage` of the chain's last
//! output, with the SQLite store on disk; then `runs show` (table and JSON), `runs list` and
//! `lineage` of a dynamic run of 100,000 steps (a map and its fan-in; `-- --items N` for
//! another count), each with the peak memory of the process while it ran.
//!
//! Prints figures; asserts nothing. `cargo bench -p weft --bench inspect` (add `-- --quick`
//! for one repetition instead of five).

use std::time::{Duration, Instant};

mod common;
#[path = "common/memory.rs"]
mod memory;

use common::{chain, mapped, median, timed_run};
use weft::prelude::*;
use weft::{RunConfig, StoreConfig};

const STEPS: usize = 4000;

/// The id of the first output version of `step_run`.
fn first_output(client: &Client, step_run: weft::StepRunId) -> String {
    client
        .block_on(client.metadata_store().step_run_outputs(step_run))
        .expect("outputs")[0]
        .artifact_version
        .id
        .to_string()
}

/// Runs one command once; its time, output lines and the process's peak memory meanwhile.
fn once_with_memory(stores: &StoreConfig, arguments: &[&str]) -> (Duration, usize, String) {
    let reset = memory::reset_peak();
    let before = memory::resident_mib();
    let (elapsed, lines) = time(stores, arguments, 1);
    let peak = match (reset, before, memory::peak_mib()) {
        (true, Some(before), Some(peak)) => {
            format!(
                "peak {peak:.0} MiB, {:.0} MiB more than before",
                peak - before
            )
        }
        _ => "peak memory unknown".into(),
    };
    (elapsed, lines, peak)
}

/// Where a command's output goes: counted by lines, as a terminal would show them, and not
/// kept (the command streams it, as to its standard output).
struct Lines(usize);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.iter().filter(|&&byte| byte == b'\n').count();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn time(stores: &StoreConfig, arguments: &[&str], repeats: usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut lines = 0;
    for _ in 0..repeats {
        let started = Instant::now();
        let mut counted = Lines(0);
        weft::inspect::write_output(stores, arguments, &mut counted).expect("the command succeeds");
        times.push(started.elapsed());
        lines = counted.0;
    }
    (median(times), lines)
}

fn main() {
    let repeats = if std::env::args().any(|a| a == "--quick") {
        1
    } else {
        5
    };
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let dir = tempfile::tempdir_in(&target).expect("a folder for the stores");
    let stores = StoreConfig::in_folder(dir.path());
    let client = Client::open(&stores).expect("the stores open");
    let config = RunConfig::default();
    let (computed, first) = timed_run(&client, chain::args(STEPS), &config);
    let (cached, second) = timed_run(&client, chain::args(STEPS), &config);
    println!(
        "{STEPS}-step chain: computed in {:.2} s, rerun from the cache in {:.2} s",
        computed.as_secs_f64(),
        cached.as_secs_f64()
    );
    for (what, run) in [("computed", &first), ("cached", &second)] {
        let id = run.run.id.to_string();
        let (table, lines) = time(&stores, &["runs", "show", &id], repeats);
        let (json, _) = time(&stores, &["runs", "show", &id, "--json"], repeats);
        println!(
            "runs show, {what} run of {STEPS} steps: {:.1} ms ({lines} lines), --json {:.1} ms",
            table.as_secs_f64() * 1e3,
            json.as_secs_f64() * 1e3
        );
    }
    let last = first
        .step_runs
        .iter()
        .max_by_key(|step_run| step_run.id)
        .expect("steps ran");
    let version = first_output(&client, last.id);
    let (lineage, lines) = time(&stores, &["lineage", &version], repeats);
    println!(
        "lineage of the chain's last output: {:.1} ms ({lines} lines)",
        lineage.as_secs_f64() * 1e3
    );
    for _ in 0..200 {
        timed_run(&client, chain::args(2), &config);
    }
    let (list, lines) = time(&stores, &["runs", "list"], repeats);
    println!(
        "runs list among 202 runs: {:.1} ms ({lines} lines)",
        list.as_secs_f64() * 1e3
    );

    let items: u64 = std::env::args()
        .skip_while(|argument| argument != "--items")
        .nth(1)
        .map(|count| count.parse().expect("--items takes a whole number"))
        .unwrap_or(100_000);
    let (elapsed, map) = timed_run(&client, mapped::args(items), &config);
    let steps = map.step_runs.len();
    let id = map.run.id.to_string();
    let fan_in = map
        .step_runs
        .iter()
        .find(|step_run| step_run.invocation == "sum")
        .expect("the fan-in ran");
    let fan_in_output = first_output(&client, fan_in.id);
    drop(map);
    println!(
        "dynamic run of {steps} steps (a map and its fan-in) recorded in {:.1} s",
        elapsed.as_secs_f64()
    );
    for (what, arguments) in [
        ("runs show", vec!["runs", "show", id.as_str()]),
        (
            "runs show --json",
            vec!["runs", "show", id.as_str(), "--json"],
        ),
        ("runs list", vec!["runs", "list"]),
        (
            "lineage of the fan-in's output",
            vec!["lineage", fan_in_output.as_str()],
        ),
    ] {
        let (took, lines, peak) = once_with_memory(&stores, &arguments);
        println!(
            "  {what:<32}{:>10.1} ms  ({lines} lines, {peak})",
            took.as_secs_f64() * 1e3
        );
    }
}
