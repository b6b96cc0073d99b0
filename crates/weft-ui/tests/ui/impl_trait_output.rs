use weft::prelude::*;

#[step]
fn numbers(limit: u32) -> impl Iterator<Item = u32> {
    0..limit
}

fn main() {}
