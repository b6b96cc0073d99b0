//! The trivial steps and pipelines the benchmarks share: a chain and a fan-out.

use weft::prelude::*;

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
