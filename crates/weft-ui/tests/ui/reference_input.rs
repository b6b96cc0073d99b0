use weft::prelude::*;

#[step]
fn count(rows: &Vec<f64>) -> usize {
    rows.len()
}

fn main() {}
