use weft::prelude::*;

#[step(timeout = "a while")]
fn train(seed: u64) -> u64 {
    seed
}

fn main() {}
