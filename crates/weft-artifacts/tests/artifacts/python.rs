//! Every built-in ML format, read back by Python's own libraries (NumPy with
//! `allow_pickle=False`, pyarrow, safetensors, Pillow) in the venv `scripts/python-up.sh`
//! makes, compared value by value with what Rust saved; with the `polars` and `candle`
//! features, a data frame and candle weights too.
#![cfg(all(
    feature = "ndarray",
    feature = "arrow",
    feature = "safetensors",
    feature = "image"
))]

use std::sync::Arc;

use arrow_array::{Float64Array, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use image::{ImageBuffer, Luma, Rgb, RgbImage};
use ndarray::{Array, ShapeBuilder};
use weft_artifacts::{Tensor, Tensors};

/// The venv's interpreter: `WEFT_TEST_PYTHON`, else where scripts/python-up.sh puts it.
fn python() -> std::path::PathBuf {
    let path = std::env::var_os("WEFT_TEST_PYTHON").map_or_else(
        || "/tmp/weft-python/bin/python".into(),
        std::path::PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python venv at {} (make one with scripts/python-up.sh)",
        path.display()
    );
    path
}

#[test]
fn python_reads_every_format_weft_writes() {
    let f = crate::common::fixture();
    let store = &f.store;
    let mut files = serde_json::Map::new();
    let mut save = |key: &str, saved: weft_artifacts::SavedArtifact, file: &str| {
        let relative = saved.uri.strip_prefix(store.root()).unwrap().to_owned();
        let path = store.local_path(&format!("{relative}{file}")).unwrap();
        files.insert(key.into(), path.display().to_string().into());
    };

    let vector: Vec<f64> = (0..100).map(|i| f64::from(i) * 0.25).collect();
    save(
        "vector",
        store.save(&["vector"], &vector).unwrap(),
        "data.npy",
    );
    let fortran = Array::from_shape_fn((6, 7).f(), |(i, j)| (i * 7 + j) as i32);
    save(
        "fortran",
        store.save(&["fortran"], &fortran).unwrap(),
        "data.npy",
    );
    save(
        "bools",
        store.save(&["bools"], &vec![true, false, true]).unwrap(),
        "data.npy",
    );
    let cube = Array::from_shape_vec((2, 3, 4), (0..24u16).collect()).unwrap();
    save("cube", store.save(&["cube"], &cube).unwrap(), "data.npy");

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("score", DataType::Float64, true),
    ]));
    let table = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(0..10)),
            Arc::new(Float64Array::from_iter(
                (0..10).map(|i| (i % 3 != 0).then_some(f64::from(i) / 2.0)),
            )),
        ],
    )
    .unwrap();
    save(
        "table",
        store.save(&["table"], &table).unwrap(),
        "data.parquet",
    );

    let mut tensors = Tensors::new();
    let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    tensors.insert("w", Tensor::from_values(vec![3, 4], &w).unwrap());
    tensors.insert("b", Tensor::from_values(vec![3], &[1i64, 2, 3]).unwrap());
    let provenance = vec![("weft.run".to_owned(), "run-1".to_owned())];
    let saved = store
        .save_with_provenance(&["tensors"], &tensors, provenance)
        .unwrap();
    save("tensors", saved, "model.safetensors");

    let rgb = RgbImage::from_fn(5, 4, |x, y| Rgb([x as u8, y as u8, (x * y) as u8]));
    save("rgb", store.save(&["rgb"], &rgb).unwrap(), "image.png");
    let gray16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(3, 2, |x, y| Luma([(y * 1000 + x) as u16]));
    save(
        "gray16",
        store.save(&["gray16"], &gray16).unwrap(),
        "image.png",
    );

    #[cfg(feature = "polars")]
    {
        use polars::prelude::{DataFrame, NamedFrom, Series};
        let frame = DataFrame::new_infer_height(vec![
            Series::new("id".into(), [10i64, 20, 30]).into(),
            Series::new("name".into(), [Some("a"), None, Some("c")]).into(),
        ])
        .unwrap();
        save(
            "frame",
            store.save(&["frame"], &frame).unwrap(),
            "data.parquet",
        );
    }
    #[cfg(feature = "candle")]
    {
        use candle_core::{Device, Tensor};
        let cpu = Device::Cpu;
        let weights = std::collections::HashMap::from([
            (
                "weight".to_owned(),
                Tensor::arange(0f32, 6.0, &cpu)
                    .unwrap()
                    .reshape((2, 3))
                    .unwrap(),
            ),
            (
                "bias".to_owned(),
                Tensor::new(&[0.5f32, -0.5], &cpu).unwrap(),
            ),
        ]);
        save(
            "candle",
            store.save(&["candle"], &weights).unwrap(),
            "model.safetensors",
        );
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/read_back.py");
    let output = std::process::Command::new(python())
        .arg(script)
        .arg(serde_json::Value::Object(files).to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {stderr}"
    );
}
