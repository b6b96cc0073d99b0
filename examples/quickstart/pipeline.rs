//! The quickstart pipelines on the iris data set.
//!
//! `training` (static): load, split, train two classifiers in parallel (softmax regression
//! and nearest centroids), evaluate both, and report the best.
//!
//! ```text
//!              ┌─ train_softmax ──── evaluate ───┐
//! load ─ split ┤                                 ├─ compare
//!              └─ train_centroids ── evaluate_2 ─┘
//! ```
//!
//! `sweep` (dynamic): train one softmax model per learning rate in parallel, evaluate each as
//! soon as it is trained, and look at the results to decide what comes next.

use weft::prelude::*;
use weft::tracing;

/// The iris data set (Fisher, 1936; UCI Machine Learning Repository), bundled.
const IRIS: &str = include_str!("iris.csv");

/// Labelled samples: four measurements per flower and its species.
#[derive(Clone, Debug, Serialize, Deserialize, Artifact)]
struct Samples {
    features: Vec<[f64; 4]>,
    labels: Vec<usize>,
    classes: Vec<String>,
}

/// A trained classifier.
#[derive(Clone, Debug, Serialize, Deserialize, Artifact)]
#[artifact(kind = "model")]
enum Model {
    /// Multinomial logistic regression on standardized features.
    Softmax {
        weights: Vec<[f64; 5]>,
        mean: [f64; 4],
        scale: [f64; 4],
    },
    /// The mean of each class; a flower belongs to the nearest one.
    Centroids { centroids: Vec<[f64; 4]> },
}

/// How well a model classifies the test samples.
#[derive(Clone, Debug, Serialize, Deserialize, Artifact)]
#[artifact(kind = "data_analysis")]
struct Metrics {
    model: String,
    accuracy: f64,
    /// `confusion[actual][predicted]`.
    confusion: Vec<Vec<usize>>,
}

/// Reads up to `limit` samples, shuffled with `seed`.
#[step]
fn load(limit: usize, seed: u64) -> weft::Result<Samples> {
    let mut classes: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (number, line) in IRIS.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [a, b, c, d, species] = fields[..] else {
            weft::bail!(
                "iris.csv line {}: expected 5 fields, got `{line}`",
                number + 1
            );
        };
        let measure = |text: &str| text.parse::<f64>();
        let features = [measure(a)?, measure(b)?, measure(c)?, measure(d)?];
        let label = match classes.iter().position(|class| class == species) {
            Some(label) => label,
            None => {
                classes.push(species.to_owned());
                classes.len() - 1
            }
        };
        rows.push((features, label));
    }
    shuffle(&mut rows, seed);
    rows.truncate(limit);
    tracing::info!(
        samples = rows.len(),
        classes = classes.len(),
        "loaded the iris data set"
    );
    let (features, labels) = rows.into_iter().unzip();
    Ok(Samples {
        features,
        labels,
        classes,
    })
}

/// Splits the samples into a training and a test set.
#[step(outputs(train, test))]
fn split(samples: Samples, test_fraction: f64) -> weft::Result<(Samples, Samples)> {
    if !(0.0..1.0).contains(&test_fraction) {
        weft::bail!("test_fraction must be in [0, 1), got {test_fraction}");
    }
    let test_size = (samples.features.len() as f64 * test_fraction).round() as usize;
    let at = samples.features.len() - test_size;
    let part = |range: std::ops::Range<usize>| Samples {
        features: samples.features[range.clone()].to_vec(),
        labels: samples.labels[range].to_vec(),
        classes: samples.classes.clone(),
    };
    let (train, test) = (part(0..at), part(at..samples.features.len()));
    tracing::info!(
        train = train.labels.len(),
        test = test.labels.len(),
        "split"
    );
    Ok((train, test))
}

/// Trains multinomial logistic regression with full-batch gradient descent.
#[step]
fn train_softmax(train: Samples, learning_rate: f64, epochs: usize) -> weft::Result<Model> {
    if train.features.is_empty() {
        weft::bail!("no training samples");
    }
    let (mean, scale) = standardization(&train.features);
    let inputs: Vec<[f64; 5]> = train
        .features
        .iter()
        .map(|x| with_bias(x, &mean, &scale))
        .collect();
    let classes = train.classes.len();
    let mut weights = vec![[0.0; 5]; classes];
    for epoch in 0..epochs {
        let mut gradient = vec![[0.0; 5]; classes];
        let mut loss = 0.0;
        for (input, &label) in inputs.iter().zip(&train.labels) {
            let probabilities = softmax(&weights, input);
            loss -= probabilities[label].max(1e-12).ln();
            for (class, probability) in probabilities.iter().enumerate() {
                let error = probability - if class == label { 1.0 } else { 0.0 };
                for (g, x) in gradient[class].iter_mut().zip(input) {
                    *g += error * x;
                }
            }
        }
        let count = inputs.len() as f64;
        for (w, g) in weights.iter_mut().zip(&gradient) {
            for (wi, gi) in w.iter_mut().zip(g) {
                *wi -= learning_rate * gi / count;
            }
        }
        if epoch % 100 == 0 || epoch + 1 == epochs {
            tracing::info!(epoch, loss = loss / count, "training");
        }
    }
    Ok(Model::Softmax {
        weights,
        mean,
        scale,
    })
}

/// Computes the mean of each class.
#[step]
fn train_centroids(train: Samples) -> weft::Result<Model> {
    let classes = train.classes.len();
    let mut sums = vec![[0.0; 4]; classes];
    let mut counts = vec![0usize; classes];
    for (x, &label) in train.features.iter().zip(&train.labels) {
        counts[label] += 1;
        for (s, v) in sums[label].iter_mut().zip(x) {
            *s += v;
        }
    }
    if let Some(empty) = counts.iter().position(|&count| count == 0) {
        weft::bail!("class `{}` has no training sample", train.classes[empty]);
    }
    let centroids = sums
        .iter()
        .zip(&counts)
        .map(|(sum, &count)| sum.map(|s| s / count as f64))
        .collect();
    tracing::info!(classes, "computed the class centroids");
    Ok(Model::Centroids { centroids })
}

/// Measures accuracy and the confusion matrix on the test set.
#[step]
fn evaluate(model: Model, test: Samples) -> Metrics {
    let classes = test.classes.len();
    let mut confusion = vec![vec![0; classes]; classes];
    for (x, &label) in test.features.iter().zip(&test.labels) {
        confusion[label][predict(&model, x)] += 1;
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let accuracy = correct as f64 / test.labels.len().max(1) as f64;
    let name = match model {
        Model::Softmax { .. } => "softmax regression",
        Model::Centroids { .. } => "nearest centroids",
    };
    tracing::info!(model = name, accuracy, "evaluated");
    Metrics {
        model: name.into(),
        accuracy,
        confusion,
    }
}

/// Picks the most accurate model.
#[step(outputs(report = "iris-report"))]
fn compare(metrics: Vec<Metrics>) -> weft::Result<String> {
    let best = metrics
        .iter()
        .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
        .ok_or_else(|| weft::Error::msg("no metrics to compare"))?;
    let lines: Vec<String> = metrics
        .iter()
        .map(|m| format!("{}: {:.1}% accurate", m.model, m.accuracy * 100.0))
        .collect();
    let report = format!("{}\nbest: {}", lines.join("\n"), best.model);
    tracing::info!("{report}");
    Ok(report)
}

/// The quickstart pipeline.
#[pipeline]
fn training(
    #[default(150)] limit: usize,
    #[default(0.3)] test_fraction: f64,
    #[default(0.5)] learning_rate: f64,
    #[default(300)] epochs: usize,
    #[default(7)] seed: u64,
) -> weft::Result<()> {
    let samples = load(limit, seed)?;
    let (train, test) = split(&samples, test_fraction)?;
    let softmax = train_softmax(&train, learning_rate, epochs)?;
    let centroids = train_centroids(&train)?;
    let softmax_metrics = evaluate(&softmax, &test)?;
    let centroid_metrics = evaluate(&centroids, &test)?;
    compare(vec![softmax_metrics, centroid_metrics])?;
    Ok(())
}

/// A hyper-parameter sweep. Its function runs while the run goes on, so it can look at
/// results: it trains one softmax model per learning rate (in parallel), evaluates each as
/// soon as it is trained, and reports them; when even the best is below `threshold`, it also
/// tries nearest centroids and reports that too.
#[pipeline(dynamic)]
fn sweep(
    #[default(150)] limit: usize,
    #[default(vec![0.01, 0.1, 0.5, 1.0])] learning_rates: Vec<f64>,
    #[default(300)] epochs: usize,
    #[default(0.95)] threshold: f64,
    #[default(7)] seed: u64,
) -> weft::Result<()> {
    let samples = load(limit, seed)?;
    let (train, test) = split(&samples, 0.3)?;
    let models = train_softmax::map(unmapped(&train), learning_rates.clone(), unmapped(epochs))?;
    let scores: Vec<StepFuture<Metrics>> = models
        .iter()
        .map(|model| evaluate::submit(model, &test))
        .collect();
    let accuracies = scores
        .iter()
        .map(|score| score.load().map(|metrics| metrics.accuracy))
        .collect::<weft::Result<Vec<f64>>>()?;
    let (best, accuracy) = accuracies
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| weft::Error::msg("no learning rate to try"))?;
    tracing::info!(
        "best learning rate: {} ({:.1}% accurate)",
        learning_rates[best],
        accuracy * 100.0
    );
    let mut reports = scores
        .iter()
        .map(StepFuture::outputs)
        .collect::<weft::Result<Vec<Output<Metrics>>>>()?;
    if accuracy < threshold {
        tracing::info!("below {:.1}%: trying nearest centroids", threshold * 100.0);
        let centroids = train_centroids(&train)?;
        reports.push(evaluate(&centroids, &test)?);
    }
    compare(reports)?;
    Ok(())
}

fn predict(model: &Model, x: &[f64; 4]) -> usize {
    let best = |scores: Vec<f64>| {
        (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap_or(0)
    };
    match model {
        Model::Softmax {
            weights,
            mean,
            scale,
        } => best(softmax(weights, &with_bias(x, mean, scale))),
        Model::Centroids { centroids } => best(
            centroids
                .iter()
                .map(|c| -c.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .collect(),
        ),
    }
}

fn standardization(features: &[[f64; 4]]) -> ([f64; 4], [f64; 4]) {
    let count = features.len() as f64;
    let mut mean = [0.0; 4];
    for x in features {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += v / count;
        }
    }
    let mut scale = [0.0; 4];
    for x in features {
        for ((s, v), m) in scale.iter_mut().zip(x).zip(&mean) {
            *s += (v - m) * (v - m) / count;
        }
    }
    (mean, scale.map(|variance| variance.sqrt().max(1e-9)))
}

fn with_bias(x: &[f64; 4], mean: &[f64; 4], scale: &[f64; 4]) -> [f64; 5] {
    [
        (x[0] - mean[0]) / scale[0],
        (x[1] - mean[1]) / scale[1],
        (x[2] - mean[2]) / scale[2],
        (x[3] - mean[3]) / scale[3],
        1.0,
    ]
}

fn softmax(weights: &[[f64; 5]], input: &[f64; 5]) -> Vec<f64> {
    let scores: Vec<f64> = weights
        .iter()
        .map(|w| w.iter().zip(input).map(|(a, b)| a * b).sum())
        .collect();
    let top = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
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
