//! ML data through real pipelines: arrays, tables, tensors, images and reports as step
//! outputs and inputs, their metadata queryable, their visualizations shown and written out.
#![cfg(all(
    feature = "ndarray",
    feature = "arrow",
    feature = "safetensors",
    feature = "image"
))]

use std::sync::Arc;

use weft::arrow_array::{Float64Array, RecordBatch};
use weft::arrow_schema::{DataType, Field, Schema};
use weft::image::RgbImage;
use weft::model::Resource;
use weft::ndarray::{Array1, Array2};
use weft::prelude::*;
use weft::{Markdown, StoreConfig, Tensor, Tensors};

#[step]
fn measurements() -> Vec<f64> {
    (0..500).map(|i| f64::from(i).sqrt()).collect()
}

#[step]
fn normalize(values: Vec<f64>) -> Array2<f64> {
    let values = Array1::from(values);
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    (values / max)
        .into_shape_with_order((25, 20))
        .expect("500 values")
}

#[step]
fn table(matrix: Array2<f64>) -> RecordBatch {
    let column: Vec<f64> = matrix.iter().copied().collect();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "first",
        DataType::Float64,
        false,
    )]));
    RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(column))]).expect("a table")
}

#[step]
fn weights(matrix: Array2<f64>) -> Tensors {
    let values: Vec<f64> = matrix.iter().copied().collect();
    let mut tensors = Tensors::new();
    tensors.insert(
        "w",
        Tensor::from_values(vec![25, 20], &values).expect("fits"),
    );
    tensors
}

#[step]
fn picture() -> RgbImage {
    RgbImage::from_fn(16, 16, |x, y| {
        weft::image::Rgb([x as u8 * 16, y as u8 * 16, 0])
    })
}

#[step]
fn report(rows: RecordBatch) -> Markdown {
    Markdown(format!("# Report\n\n{} rows\n", rows.num_rows()))
}

#[pipeline]
fn ml_data() -> weft::Result<()> {
    let values = measurements()?;
    let matrix = normalize(&values)?;
    let rows = table(&matrix)?;
    weights(&matrix)?;
    picture()?;
    report(&rows)?;
    Ok(())
}

#[test]
fn ml_data_flows_between_steps_and_is_described_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let stores = StoreConfig::in_folder(dir.path());
    let client = Client::open(&stores).unwrap();
    let report = client.run(ml_data::args()).unwrap();
    assert_eq!(report.run.status, weft::Status::Completed, "{report:?}");

    let values = client
        .artifact_version("ml_data::measurements::output:latest")
        .unwrap();
    assert_eq!(values.materializer, "weft.npy");
    let metadata = client
        .block_on(
            client
                .metadata_store()
                .metadata(Resource::ArtifactVersion(values.id)),
        )
        .unwrap();
    let entry = |key: &str| {
        metadata
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    assert_eq!(entry("dtype"), Some(serde_json::json!("float64")));
    assert_eq!(entry("shape"), Some(serde_json::json!([500])));
    assert_eq!(entry("min"), Some(serde_json::json!(0.0)));
    // A vector saved as .npy loads as an ndarray array.
    assert_eq!(values.load::<Array1<f64>>().unwrap().len(), 500);

    let matrix = client
        .artifact_version("ml_data::normalize::output:latest")
        .unwrap();
    assert_eq!(matrix.load::<Array2<f64>>().unwrap().shape(), [25, 20]);
    let tensors = client
        .artifact_version("ml_data::weights::output:latest")
        .unwrap();
    let loaded: Tensors = tensors.load().unwrap();
    assert_eq!(loaded.metadata()["weft.output"], "output");
    assert_eq!(loaded.metadata()["weft.run"], report.run.id.to_string());

    // Versions are picked by their extracted metadata.
    let name = "ml_data::measurements::output";
    let picked = client
        .artifact_versions_where(
            name,
            &["min>=0".parse().unwrap(), "dtype=float64".parse().unwrap()],
        )
        .unwrap();
    assert_eq!(picked.len(), 1);
    assert!(
        client
            .artifact_versions_where(name, &["max<0".parse().unwrap()])
            .unwrap()
            .is_empty()
    );
    let listed = weft::inspect::output(
        &stores,
        &[
            "artifacts",
            "versions",
            name,
            "--where",
            "max>20",
            "--where",
            "mean>0",
        ],
    )
    .unwrap();
    assert!(
        listed.contains("MAX") && listed.contains("22.3"),
        "{listed}"
    );
    let none = weft::inspect::output(
        &stores,
        &["artifacts", "versions", name, "--where", "max<0"],
    )
    .unwrap();
    assert!(none.contains("No version of"), "{none}");
    let bad = weft::inspect::output(&stores, &["artifacts", "versions", name, "--where", "max"])
        .unwrap_err()
        .to_string();
    assert!(bad.contains("write KEY=VALUE"), "{bad}");

    let shown = weft::inspect::output(
        &stores,
        &["artifacts", "show", "ml_data::measurements::output:latest"],
    )
    .unwrap();
    assert!(
        shown.contains("Visualized by histogram.svg (svg)"),
        "{shown}"
    );
    let npy = values.local_path("data.npy").unwrap();
    assert!(shown.contains(&npy.display().to_string()), "{shown}");
    let json = weft::inspect::output(
        &stores,
        &[
            "artifacts",
            "show",
            "ml_data::table::output:latest",
            "--json",
        ],
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = json["visualizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["csv", "svg", "csv"]);
    assert!(
        json["paths"]["data.parquet"]
            .as_str()
            .unwrap()
            .ends_with("data.parquet")
    );

    let out = dir.path().join("shown");
    let written = weft::inspect::output(
        &stores,
        &[
            "artifacts",
            "visualize",
            "ml_data::picture::output:latest",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(written.contains("image.png  (png"), "{written}");
    let png = std::fs::read(out.join("image.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let written = weft::inspect::output(
        &stores,
        &[
            "artifacts",
            "visualize",
            "ml_data::report::output:latest",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(written.contains("report.md"), "{written}");
    assert_eq!(
        std::fs::read_to_string(out.join("report.md")).unwrap(),
        "# Report\n\n500 rows\n"
    );
}

/// Polars frames and candle tensors, the two heavy formats, between steps.
#[cfg(all(feature = "polars", feature = "candle"))]
mod heavy {
    use std::collections::HashMap;

    use weft::candle_core::{Device, Tensor};
    use weft::polars::prelude::{DataFrame, NamedFrom, Series};
    use weft::prelude::*;
    use weft::{StoreConfig, Tensors};

    #[step]
    fn frame() -> weft::Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            Series::new("x".into(), (0..64).map(f64::from).collect::<Vec<_>>()).into(),
            Series::new("y".into(), (0..64).map(|i| i % 4).collect::<Vec<i32>>()).into(),
        ])?)
    }

    #[step]
    fn layer(frame: DataFrame) -> weft::Result<HashMap<String, Tensor>> {
        let x: Vec<f32> = frame
            .column("x")?
            .f64()?
            .into_no_null_iter()
            .map(|v| v as f32)
            .collect();
        let weight = Tensor::from_vec(x, (8, 8), &Device::Cpu)?;
        let bias = Tensor::zeros(8, weft::candle_core::DType::F32, &Device::Cpu)?;
        Ok(HashMap::from([
            ("weight".to_owned(), weight),
            ("bias".to_owned(), bias),
        ]))
    }

    #[step]
    fn total(weights: HashMap<String, Tensor>) -> weft::Result<f64> {
        Ok(f64::from(weights["weight"].sum_all()?.to_scalar::<f32>()?))
    }

    #[pipeline]
    fn frames_and_tensors() -> weft::Result<()> {
        let frame = frame()?;
        let weights = layer(&frame)?;
        total(&weights)?;
        Ok(())
    }

    #[test]
    fn polars_frames_and_candle_tensors_flow_between_steps() {
        let dir = tempfile::tempdir().unwrap();
        let stores = StoreConfig::in_folder(dir.path());
        let client = Client::open(&stores).unwrap();
        let report = client.run(frames_and_tensors::args()).unwrap();
        assert_eq!(report.run.status, weft::Status::Completed, "{report:?}");

        let sum: f64 = client
            .artifact_version("frames_and_tensors::total::output:latest")
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(sum, (0..64).map(f64::from).sum::<f64>());
        let frame = client
            .artifact_version("frames_and_tensors::frame::output:latest")
            .unwrap();
        assert_eq!(frame.materializer, "weft.parquet");
        assert_eq!(frame.load::<DataFrame>().unwrap().shape(), (64, 2));
        // The weights read as weft's own tensors too, with where they came from.
        let weights: Tensors = client
            .artifact_version("frames_and_tensors::layer::output:latest")
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(weights.get("weight").unwrap().shape(), [8, 8]);
        assert_eq!(weights.metadata()["weft.run"], report.run.id.to_string());

        let shown = weft::inspect::output(
            &stores,
            &[
                "artifacts",
                "show",
                "frames_and_tensors::frame::output:latest",
            ],
        )
        .unwrap();
        assert!(shown.contains("rows = 64"), "{shown}");
        assert!(shown.contains("histogram-0-x.svg (svg)"), "{shown}");
    }
}
