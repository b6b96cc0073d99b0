use weft::prelude::*;

#[step]
fn sum((left, right): (u8, u8)) -> u8 {
    left + right
}

fn main() {}
