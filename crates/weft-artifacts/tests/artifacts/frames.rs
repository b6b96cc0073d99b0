//! Polars data frames as Parquet: round trips with nulls, described columns, the table
//! visualizations, frames and record batches reading each other's files, damaged files.
#![cfg(feature = "polars")]

use crate::common::{fixture, handmade};
use polars::prelude::{DataFrame, NamedFrom, Series};
use serde_json::json;
use weft_artifacts::Error;

fn frame(rows: i64) -> DataFrame {
    let ids: Vec<i64> = (0..rows).collect();
    let scores: Vec<Option<f64>> = (0..rows)
        .map(|i| (i % 3 != 0).then_some(i as f64 / 2.0))
        .collect();
    let names: Vec<Option<String>> = (0..rows)
        .map(|i| (i % 5 != 0).then(|| format!("row {i}")))
        .collect();
    DataFrame::new_infer_height(vec![
        Series::new("id".into(), ids).into(),
        Series::new("score".into(), scores).into(),
        Series::new("../name, \"quoted\"".into(), names).into(),
    ])
    .unwrap()
}

#[test]
fn a_frame_round_trips_with_its_nulls_and_is_described() {
    let f = fixture();
    let table = frame(100);
    let saved = f.store.save(&["t", "1"], &table).unwrap();
    assert_eq!(saved.materializer, "weft.parquet");
    let loaded: DataFrame = f.store.load(&saved.to_stored()).unwrap();
    assert!(loaded.equals_missing(&table), "{loaded:?}");
    assert_eq!(loaded.schema(), table.schema());
    assert_eq!(loaded.column("score").unwrap().null_count(), 34);

    let meta = &saved.metadata;
    assert_eq!(meta["rows"], json!(100));
    assert_eq!(meta["columns"], json!(3));
    let columns = meta["schema"].as_array().unwrap();
    assert_eq!(columns[0]["name"], json!("id"));
    assert_eq!(columns[0]["type"], json!("i64"));
    assert_eq!(
        (&columns[0]["min"], &columns[0]["max"]),
        (&json!(0), &json!(99))
    );
    assert_eq!(columns[0]["mean"], json!(49.5));
    assert_eq!(columns[1]["null_count"], json!(34));
    assert_eq!(columns[1]["max"], json!(49.0));
    assert_eq!(columns[2]["null_count"], json!(20));
    assert!(columns[2].get("min").is_none(), "text has no numeric range");

    let names: Vec<&str> = saved.files.iter().map(|file| file.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "data.parquet",
            "describe.csv",
            "histogram-0-id.svg",
            "histogram-1-score.svg",
            "sample.csv"
        ]
    );
    let read = |name: &str| {
        let head = f.store.read_head(&saved.to_stored(), name, 1 << 20);
        String::from_utf8(head.unwrap()).unwrap()
    };
    let describe = read("describe.csv");
    assert!(
        describe.starts_with("column,type,null_count,min,max,mean,std\nid,i64,0,0,99,49.5,"),
        "{describe}"
    );
    assert!(
        describe.contains("\"../name, \"\"quoted\"\"\",str,20,,,,"),
        "{describe}"
    );
    let sample = read("sample.csv");
    assert_eq!(sample.lines().count(), 21, "{sample}");
    assert_eq!(
        sample.lines().next().unwrap(),
        "id,score,\"../name, \"\"quoted\"\"\""
    );
    assert_eq!(sample.lines().nth(1).unwrap(), "0,,", "{sample}");
    assert_eq!(sample.lines().nth(2).unwrap(), "1,0.5,row 1", "{sample}");
}

#[test]
fn an_empty_frame_round_trips() {
    let f = fixture();
    let empty = frame(0);
    let saved = f.store.save(&["t", "1"], &empty).unwrap();
    assert_eq!(saved.metadata["rows"], json!(0));
    let loaded: DataFrame = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!((loaded.height(), loaded.width()), (0, 3));
    assert_eq!(loaded.schema(), empty.schema());
}

#[cfg(feature = "arrow")]
#[test]
fn a_frame_and_the_same_record_batch_draw_the_same_histograms() {
    let f = fixture();
    let from_frame = f.store.save(&["t", "1"], &frame(1000)).unwrap();
    let batch: arrow_array::RecordBatch = f.store.load(&from_frame.to_stored()).unwrap();
    let from_batch = f.store.save(&["t", "2"], &batch).unwrap();
    for name in ["histogram-0-id.svg", "histogram-1-score.svg"] {
        let read = |saved: &weft_artifacts::SavedArtifact| {
            String::from_utf8(
                f.store
                    .read_head(&saved.to_stored(), name, 1 << 20)
                    .unwrap(),
            )
            .unwrap()
        };
        let drawn = read(&from_frame);
        assert!(
            drawn.contains("(1000 values)") || drawn.contains("(666 values)"),
            "{drawn}"
        );
        assert_eq!(drawn, read(&from_batch), "{name}");
    }
}

#[cfg(feature = "arrow")]
#[test]
fn frames_and_record_batches_read_each_others_files() {
    use std::sync::Arc;

    use arrow_array::{Array, Float64Array, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    let f = fixture();
    let saved = f.store.save(&["t", "1"], &frame(10)).unwrap();
    let batch: RecordBatch = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(batch.num_rows(), 10);
    assert_eq!(batch.column(1).null_count(), 4);

    let schema = Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("y", DataType::Float64, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Float64Array::from(vec![Some(0.5), None, Some(1.5)])),
        ],
    )
    .unwrap();
    let saved = f.store.save(&["t", "2"], &batch).unwrap();
    let frame: DataFrame = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(frame.shape(), (3, 2));
    assert_eq!(frame.column("y").unwrap().null_count(), 1);
    assert_eq!(
        frame.column("x").unwrap().i64().unwrap().to_vec(),
        [Some(1), Some(2), Some(3)]
    );
}

#[test]
fn a_damaged_parquet_file_is_a_clear_error() {
    let f = fixture();
    let saved = f.store.save(&["t", "1"], &frame(50)).unwrap();
    let path = f.store.local_path("t/1/data.parquet").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = f.store.load::<DataFrame>(&saved.to_stored()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    let mut changed = bytes.clone();
    changed[bytes.len() / 3] ^= 0x01;
    std::fs::write(&path, &changed).unwrap();
    let error = f.store.load::<DataFrame>(&saved.to_stored()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");

    let stored = handmade(
        &f.store,
        "t/2",
        "data.parquet",
        &bytes[..bytes.len() / 2],
        ("weft.parquet", std::any::type_name::<DataFrame>()),
    );
    let error = f.store.load::<DataFrame>(&stored).unwrap_err().to_string();
    assert!(
        error.contains("t/2/data.parquet") && error.contains("weft.parquet"),
        "{error}"
    );
}
