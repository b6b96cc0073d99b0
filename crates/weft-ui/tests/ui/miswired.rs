use weft::prelude::*;

#[derive(Clone, Serialize, Deserialize, Artifact)]
struct Rows {
    values: Vec<f64>,
}

#[derive(Clone, Serialize, Deserialize, Artifact)]
struct Model {
    mean: f64,
}

#[step]
fn load(limit: usize) -> Rows {
    Rows { values: vec![1.0; limit] }
}

#[step]
fn train(rows: Rows) -> Model {
    Model { mean: rows.values.iter().sum() }
}

#[pipeline]
fn training() -> weft::Result<()> {
    let rows = load(10)?;
    let model = train(&rows)?;
    // A model where rows are expected.
    train(&model)?;
    Ok(())
}

fn main() {}
