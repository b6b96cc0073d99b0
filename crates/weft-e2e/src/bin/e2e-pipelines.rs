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

fn main() -> std::process::ExitCode {
    weft::main()
}
