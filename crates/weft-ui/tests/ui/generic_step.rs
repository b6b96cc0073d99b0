use weft::prelude::*;

#[step]
fn identity<T: Clone>(value: T) -> T {
    value
}

fn main() {}
