//! A pipeline binary for the end-to-end tests: the quickstart pipeline, and pipelines that
//! fail, race each other, or take typed parameters.

#[path = "../../../../examples/quickstart/pipeline.rs"]
mod quickstart;

use weft::prelude::*;

#[step(outputs(value = "shared"))]
fn contribute(index: usize) -> usize {
    index
}

/// Many steps writing versions of one artifact at once.
#[pipeline]
fn shared(width: usize) -> weft::Result<()> {
    for index in 0..width {
        contribute(index)?;
    }
    Ok(())
}

#[step]
fn prepare(size: usize) -> Vec<u64> {
    (0..size as u64).collect()
}

#[step]
fn divide(values: Vec<u64>, by: u64) -> weft::Result<Vec<u64>> {
    weft::ensure!(by != 0, "cannot divide {} values by zero", values.len());
    Ok(values.iter().map(|v| v / by).collect())
}

#[step]
fn crash(values: Vec<u64>) -> u64 {
    let index = values.len() + 1;
    values[index]
}

/// Fails in `divide` when `by` is 0, and panics in `crash` when `panic` is set.
#[pipeline]
fn fragile(
    #[default(10)] size: usize,
    #[default(1)] by: u64,
    #[default(false)] panic: bool,
) -> weft::Result<()> {
    let values = prepare(size)?;
    divide(&values, by)?;
    if panic {
        crash(&values)?;
    }
    Ok(())
}

/// Appends the running invocation's id to `journal`, so that a test can count how often
/// each invocation computed, and pauses like a step doing real work.
fn record(journal: &str, pause_ms: u64) -> weft::Result<()> {
    use std::io::Write as _;
    let context = weft::context().expect("called inside a step");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)?;
    // One write per line: with O_APPEND, parallel steps' lines never interleave.
    file.write_all(format!("{}\n", context.invocation).as_bytes())?;
    std::thread::sleep(std::time::Duration::from_millis(pause_ms));
    Ok(())
}

#[step]
fn origin(journal: String, pause_ms: u64, bytes: usize) -> weft::Result<Vec<u8>> {
    record(&journal, pause_ms)?;
    Ok((0..bytes).map(|i| (i % 251) as u8).collect())
}

#[step]
fn transform(journal: String, pause_ms: u64, input: Vec<u8>) -> weft::Result<Vec<u8>> {
    record(&journal, pause_ms)?;
    Ok(input
        .iter()
        .map(|b| b.wrapping_mul(3).wrapping_add(1))
        .collect())
}

#[step]
fn combine(journal: String, pause_ms: u64, inputs: Vec<Vec<u8>>) -> weft::Result<Vec<u8>> {
    record(&journal, pause_ms)?;
    Ok(inputs.concat())
}

/// Twelve steps that each take `pause_ms` and write `bytes`-sized artifacts: three parallel
/// branches of three between an origin and two joins. The crash test kills it anywhere.
#[pipeline]
fn endurance(
    journal: String,
    #[default(30)] pause_ms: u64,
    #[default(262_144)] bytes: usize,
) -> weft::Result<()> {
    let seed = origin(journal.clone(), pause_ms, bytes)?;
    let mut tails = Vec::new();
    for _ in 0..3 {
        let first = transform(journal.clone(), pause_ms, &seed)?;
        let second = transform(journal.clone(), pause_ms, &first)?;
        tails.push(transform(journal.clone(), pause_ms, &second)?);
    }
    let joined = combine(journal.clone(), pause_ms, tails)?;
    transform(journal, pause_ms, &joined)?;
    Ok(())
}

/// `endurance` as a dynamic pipeline: the same invocations (and ids), the branches submitted
/// so that they run while the function goes on.
#[pipeline(dynamic)]
fn endurance_dynamic(
    journal: String,
    #[default(30)] pause_ms: u64,
    #[default(262_144)] bytes: usize,
) -> weft::Result<()> {
    let seed = origin(journal.clone(), pause_ms, bytes)?;
    let mut tails = Vec::new();
    for _ in 0..3 {
        let first = transform::submit(journal.clone(), pause_ms, &seed);
        let second = transform::submit(journal.clone(), pause_ms, &first);
        tails.push(transform::submit(journal.clone(), pause_ms, &second));
    }
    let joined = combine(journal.clone(), pause_ms, tails)?;
    transform(journal, pause_ms, &joined)?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    weft::main()
}
