use weft::prelude::*;

#[step(cache(ignored_inputs = ["sede"]))]
fn train(seed: u64) -> u64 {
    seed
}

fn main() {}
