//! The wine pipeline.
//!
//! ```text
//! load ─ split ─┬─ train ─┬─ evaluate
//!               └─────────┘
//! ```

use std::io::Cursor;
use std::sync::Arc;

use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use weft::arrow_array::cast::AsArray;
use weft::arrow_array::types::Float64Type;
use weft::arrow_array::{Array, Float64Array, RecordBatch, StringArray, UInt64Array};
use weft::arrow_schema::{DataType, Field, Schema};
use weft::image::{Rgb, RgbImage};
use weft::ndarray::{Array1, Array2, ArrayView2, Axis};
use weft::prelude::*;
use weft::{Tensor, Tensors, tracing};

/// The wine recognition data set (Forina et al.; UCI Machine Learning Repository, CC BY 4.0),
/// bundled: 178 wines, 13 measurements each, and the cultivar (0, 1 or 2).
const WINE: &[u8] = include_bytes!("wine.csv");

/// One row of measurements per wine.
type Features = Array2<f64>;

/// The cultivar of each wine.
type Labels = Array1<usize>;

/// The column that holds the class of each row.
const LABEL: &str = "cultivar";

/// Reads the data set into an Arrow table, its schema inferred from the CSV.
#[step(outputs(table = "wine"))]
fn load() -> weft::Result<Vec<RecordBatch>> {
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (schema, _) = format.infer_schema(Cursor::new(WINE), None)?;
    let batches = arrow_csv::ReaderBuilder::new(Arc::new(schema))
        .with_format(format)
        .build(Cursor::new(WINE))?
        .collect::<Result<Vec<_>, _>>()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    tracing::info!(rows, "read the wine data set");
    Ok(batches)
}

/// Shuffles the rows with `seed` and splits them into training and test matrices: the
/// measurements as `f64` features, the cultivar as the class.
#[step(outputs(x_train, y_train, x_test, y_test))]
fn split(
    table: Vec<RecordBatch>,
    test_fraction: f64,
    seed: u64,
) -> weft::Result<(Features, Labels, Features, Labels)> {
    if !(0.0..1.0).contains(&test_fraction) {
        weft::bail!("test_fraction must be in [0, 1), got {test_fraction}");
    }
    let (features, labels) = matrix(&table)?;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    shuffle(&mut order, seed);
    let test_size = (order.len() as f64 * test_fraction).round() as usize;
    let (test, train) = order.split_at(test_size);
    tracing::info!(train = train.len(), test = test.len(), "split");
    Ok((
        features.select(Axis(0), train),
        labels.select(Axis(0), train),
        features.select(Axis(0), test),
        labels.select(Axis(0), test),
    ))
}

/// Trains a multinomial logistic regression on standardized features. The model is its
/// weights, as safetensors a Python user can open too.
#[step(outputs(model = "wine-model"))]
fn train(x: Features, y: Labels, alpha: f64, max_iterations: u64) -> weft::Result<Tensors> {
    if x.nrows() == 0 {
        weft::bail!("no training samples");
    }
    let mean = x.mean_axis(Axis(0)).expect("at least one row");
    let scale = x.std_axis(Axis(0), 0.0).mapv(|s| s.max(1e-12));
    let dataset = Dataset::new((&x - &mean) / &scale, y);
    let fitted = MultiLogisticRegression::default()
        .alpha(alpha)
        .max_iterations(max_iterations)
        .fit(&dataset)?;
    let classes: Vec<u64> = fitted.classes().iter().map(|&c| c as u64).collect();
    tracing::info!(classes = classes.len(), "trained");
    let mut model = Tensors::new();
    let weights = fitted.params();
    model.insert("weights", tensor(weights.shape(), weights.iter())?);
    model.insert("intercept", tensor(&[classes.len()], fitted.intercept())?);
    model.insert("mean", tensor(&[mean.len()], &mean)?);
    model.insert("scale", tensor(&[scale.len()], &scale)?);
    model.insert(
        "classes",
        Tensor::from_values(vec![classes.len()], &classes)?,
    );
    model.set_metadata("model", "multinomial logistic regression (linfa-logistic)");
    model.set_metadata("alpha", alpha.to_string());
    Ok(model)
}

/// Measures the model on the test set: a table of precision, recall and F1 per cultivar, and
/// the confusion matrix drawn as an image (rows: actual, columns: predicted; darker is more).
#[step(outputs(metrics = "wine-metrics", confusion = "wine-confusion"))]
fn evaluate(model: Tensors, x: Features, y: Labels) -> weft::Result<(RecordBatch, RgbImage)> {
    let weights = weights(&model, "weights")?;
    let [intercept, mean, scale] = ["intercept", "mean", "scale"]
        .map(|name| weights_1d(&model, name))
        .into_iter()
        .collect::<weft::Result<Vec<_>>>()?
        .try_into()
        .expect("three vectors");
    let classes = model
        .get("classes")
        .ok_or_else(|| weft::Error::msg("the model has no `classes` tensor"))?
        .to_values::<u64>()?;
    if weights.nrows() != x.ncols() || weights.ncols() != classes.len() {
        weft::bail!(
            "the model takes {} features into {} classes; the test set has {} features",
            weights.nrows(),
            weights.ncols(),
            x.ncols()
        );
    }
    let scores = ((&x - &mean) / &scale).dot(&weights) + &intercept;
    let predicted: Vec<usize> = scores
        .rows()
        .into_iter()
        .map(|row| {
            let best = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            classes[best] as usize
        })
        .collect();

    let count = classes.len();
    let mut confusion = Array2::<u64>::zeros((count, count));
    for (&actual, &guess) in y.iter().zip(&predicted) {
        let position = |label: usize| classes.iter().position(|&c| c as usize == label);
        let (Some(row), Some(column)) = (position(actual), position(guess)) else {
            weft::bail!("cultivar {actual} was not in the training set");
        };
        confusion[[row, column]] += 1;
    }
    let correct: u64 = confusion.diag().sum();
    let accuracy = correct as f64 / y.len().max(1) as f64;
    weft::log_metadata("accuracy", accuracy)?;
    tracing::info!(accuracy, "evaluated on {} wines", y.len());
    Ok((metrics(&classes, confusion.view())?, draw(confusion.view())))
}

/// The wine pipeline.
#[pipeline]
fn training(
    #[default(0.3)] test_fraction: f64,
    #[default(0.05)] alpha: f64,
    #[default(200)] max_iterations: u64,
    #[default(7)] seed: u64,
) -> weft::Result<()> {
    let table = load()?;
    let (x_train, y_train, x_test, y_test) = split(&table, test_fraction, seed)?;
    let model = train(&x_train, &y_train, alpha, max_iterations)?;
    evaluate(&model, &x_test, &y_test)?;
    Ok(())
}

/// The table as a feature matrix (every column but the label, as `f64`) and its labels.
fn matrix(table: &[RecordBatch]) -> weft::Result<(Features, Labels)> {
    let Some(first) = table.first() else {
        weft::bail!("the table has no rows");
    };
    let schema = first.schema();
    let label = schema.index_of(LABEL)?;
    let width = schema.fields().len() - 1;
    let rows: usize = table.iter().map(RecordBatch::num_rows).sum();
    let mut features = Array2::<f64>::zeros((rows, width));
    let mut labels = Vec::with_capacity(rows);
    let mut start = 0;
    for batch in table {
        for (index, column) in batch.columns().iter().enumerate() {
            let values = arrow_cast::cast(column, &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            if values.null_count() > 0 {
                weft::bail!("column `{}` has missing values", schema.field(index).name());
            }
            if index == label {
                labels.extend(values.values().iter().map(|&v| v as usize));
            } else {
                let column = index - usize::from(index > label);
                for (row, &value) in values.values().iter().enumerate() {
                    features[[start + row, column]] = value;
                }
            }
        }
        start += batch.num_rows();
    }
    Ok((features, Array1::from(labels)))
}

/// Precision, recall, F1 and support per class, and their unweighted mean.
fn metrics(classes: &[u64], confusion: ArrayView2<'_, u64>) -> weft::Result<RecordBatch> {
    let ratio = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let mut names: Vec<String> = Vec::new();
    let (mut precision, mut recall, mut f1, mut support) = (vec![], vec![], vec![], vec![]);
    for (index, class) in classes.iter().enumerate() {
        let hits = confusion[[index, index]];
        let p = ratio(hits, confusion.column(index).sum());
        let r = ratio(hits, confusion.row(index).sum());
        names.push(format!("cultivar {class}"));
        precision.push(p);
        recall.push(r);
        f1.push(if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        });
        support.push(confusion.row(index).sum());
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    names.push("macro average".into());
    let averages = [mean(&precision), mean(&recall), mean(&f1)];
    precision.push(averages[0]);
    recall.push(averages[1]);
    f1.push(averages[2]);
    support.push(confusion.sum());
    let schema = Schema::new(vec![
        Field::new("class", DataType::Utf8, false),
        Field::new("precision", DataType::Float64, false),
        Field::new("recall", DataType::Float64, false),
        Field::new("f1", DataType::Float64, false),
        Field::new("support", DataType::UInt64, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(precision)),
            Arc::new(Float64Array::from(recall)),
            Arc::new(Float64Array::from(f1)),
            Arc::new(UInt64Array::from(support)),
        ],
    )?)
}

/// The confusion matrix as a heat map: one square per cell, shaded by the share of the
/// actual class it holds, with a grid between cells.
fn draw(confusion: ArrayView2<'_, u64>) -> RgbImage {
    const CELL: u32 = 64;
    let count = confusion.nrows() as u32;
    let side = count * CELL + 1;
    RgbImage::from_fn(side, side, |x, y| {
        if x % CELL == 0 || y % CELL == 0 {
            return Rgb([96, 96, 96]);
        }
        let (row, column) = ((y / CELL) as usize, (x / CELL) as usize);
        let total = confusion.row(row).sum().max(1) as f64;
        let share = confusion[[row, column]] as f64 / total;
        let shade = |light: f64, dark: f64| (light + (dark - light) * share).round() as u8;
        Rgb([shade(255.0, 8.0), shade(255.0, 48.0), shade(255.0, 107.0)])
    })
}

/// The model tensor `name` as a matrix.
fn weights(model: &Tensors, name: &str) -> weft::Result<Array2<f64>> {
    let tensor = model
        .get(name)
        .ok_or_else(|| weft::Error::msg(format!("the model has no `{name}` tensor")))?;
    let [rows, columns] = tensor.shape() else {
        weft::bail!("`{name}` has shape {:?}, not a matrix", tensor.shape());
    };
    Ok(Array2::from_shape_vec(
        (*rows, *columns),
        tensor.to_values::<f64>()?,
    )?)
}

/// The model tensor `name` as a vector.
fn weights_1d(model: &Tensors, name: &str) -> weft::Result<Array1<f64>> {
    let tensor = model
        .get(name)
        .ok_or_else(|| weft::Error::msg(format!("the model has no `{name}` tensor")))?;
    Ok(Array1::from(tensor.to_values::<f64>()?))
}

/// A tensor of `shape` holding `values` in C order.
fn tensor<'a>(shape: &[usize], values: impl IntoIterator<Item = &'a f64>) -> weft::Result<Tensor> {
    let values: Vec<f64> = values.into_iter().copied().collect();
    Ok(Tensor::from_values(shape.to_vec(), &values)?)
}

/// A deterministic Fisher-Yates shuffle (xorshift64*), so every run with the same seed sees
/// the same split.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..items.len()).rev() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let j = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
