//! What the benchmarks share: trivial steps in a chain and a fan-out (inline or each in a
//! process of its own), a timed run, medians.

use std::time::{Duration, Instant};

use weft::prelude::*;
use weft::{RunConfig, RunReport, Status};

/// Runs `call` to its end and times it; a run that did not complete stops the benchmark,
/// naming the first step error.
pub(crate) fn timed_run(
    client: &Client,
    call: weft::PipelineCall,
    config: &RunConfig,
) -> (Duration, RunReport) {
    let started = Instant::now();
    let report = client.run_with(call, config).expect("the run starts");
    let elapsed = started.elapsed();
    assert_eq!(
        report.run.status,
        Status::Completed,
        "a benchmark run must complete: {:?} {:?}",
        report.run.status_reason,
        report.step_runs.iter().find_map(|s| s.error.clone())
    );
    (elapsed, report)
}

/// The median of `times`.
pub(crate) fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[step]
pub(crate) fn start(seed: u64) -> u64 {
    seed
}

#[step]
pub(crate) fn inc(x: u64) -> u64 {
    x + 1
}

#[step]
pub(crate) fn add(x: u64, offset: u64) -> u64 {
    x + offset
}

/// `start`, then `length - 1` calls of `inc`, each on the previous one's output.
#[pipeline]
pub(crate) fn chain(length: usize) -> weft::Result<()> {
    let mut value = start(0)?;
    for _ in 1..length {
        value = inc(&value)?;
    }
    Ok(())
}

/// `start`, then `width` calls of `add` on its output; distinct offsets, so that no call is a
/// cache hit of another.
#[pipeline]
pub(crate) fn fan_out(width: u64) -> weft::Result<()> {
    let seed = start(0)?;
    for offset in 0..width {
        add(&seed, offset)?;
    }
    Ok(())
}

#[step(isolated)]
pub(crate) fn start_apart(seed: u64) -> u64 {
    seed
}

#[step(isolated)]
pub(crate) fn inc_apart(x: u64) -> u64 {
    x + 1
}

/// `chain` with every step in a process of its own.
#[pipeline]
pub(crate) fn isolated_chain(length: usize) -> weft::Result<()> {
    let mut value = start_apart(0)?;
    for _ in 1..length {
        value = inc_apart(&value)?;
    }
    Ok(())
}

#[step]
pub(crate) fn square(x: u64) -> u64 {
    x * x
}

#[step]
pub(crate) fn sum(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

/// `square` mapped over `0..count`, then their sum (a fan-in of every item), checked.
#[pipeline(dynamic)]
pub(crate) fn mapped(count: u64) -> weft::Result<()> {
    let squares = square::map((0..count).collect::<Vec<u64>>())?;
    let total = sum(&squares)?;
    let expected: u64 = (0..count).map(|x| x * x).sum();
    weft::ensure!(total.load()? == expected, "the sum of squares");
    Ok(())
}
