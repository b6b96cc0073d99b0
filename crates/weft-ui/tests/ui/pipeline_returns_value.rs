use weft::prelude::*;

#[step]
fn one() -> u8 {
    1
}

#[pipeline]
fn answer() -> u8 {
    42
}

fn main() {}
