//! Steps and pipelines called outside any pipeline run as plain functions.

use weft::prelude::*;

#[derive(Debug, PartialEq, Serialize, Deserialize, Artifact)]
struct Counter {
    count: u32,
}

#[step]
fn start(count: u32) -> Counter {
    Counter { count }
}

#[step]
fn bump(counter: Counter) -> Counter {
    Counter {
        count: counter.count + 1,
    }
}

#[step(outputs(low, high))]
fn bounds(x: f64) -> weft::Result<(f64, f64)> {
    weft::ensure!(x.is_finite(), "not a number");
    Ok((x.floor(), x.ceil()))
}

#[step]
fn mean(values: Vec<f64>) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[pipeline]
fn composed(x: f64) -> weft::Result<()> {
    let (low, high) = bounds(x)?;
    mean(vec![low, high])?;
    Ok(())
}

#[test]
fn a_step_called_outside_a_pipeline_runs_its_function() {
    // The wrapper runs the body and hands back outputs that hold values.
    let counter = start(1).unwrap();
    let bumped = bump(counter).unwrap();
    assert_eq!(bumped.into_value().unwrap(), Counter { count: 2 });
    let (low, high) = bounds(2.5).unwrap();
    assert_eq!((low.load().unwrap(), high.load().unwrap()), (2.0, 3.0));
    assert_eq!(mean(vec![low, high]).unwrap().load().unwrap(), 2.5);
    // Errors come back as errors.
    assert!(
        bounds(f64::NAN)
            .unwrap_err()
            .to_string()
            .contains("not a number")
    );
    // The function as written, for unit tests.
    assert_eq!(bump::plain(Counter { count: 5 }), Counter { count: 6 });
    // A whole pipeline function runs as plain code too, recording nothing.
    composed(7.5).unwrap();
}

#[test]
fn a_non_clone_output_used_twice_outside_a_pipeline_says_so() {
    let counter = start(1).unwrap();
    let first = bump(&counter);
    let error = first.unwrap_err().to_string();
    assert!(
        error.contains("is not `Clone`; pass it by value"),
        "{error}"
    );
}
