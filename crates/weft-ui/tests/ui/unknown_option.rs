use weft::prelude::*;

#[step(retries = 3)]
fn flaky(x: u8) -> u8 {
    x
}

fn main() {}
