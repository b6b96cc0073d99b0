// An ndarray array is an artifact only with weft's `ndarray` feature, which this build
// leaves off: the message names the feature.
use weft::prelude::*;

#[step]
fn matrix() -> ndarray::Array2<f64> {
    ndarray::Array2::zeros((2, 2))
}

fn main() {}
