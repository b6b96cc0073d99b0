//! Arrow record batches as Parquet: round trips with nulls, described columns, table
//! visualizations, and damaged files.
#![cfg(feature = "arrow")]

use std::sync::Arc;

use crate::common::{bar_counts, fixture, handmade};
use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::json;
use weft_artifacts::Error;

fn batch(offset: i32, rows: i32) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("score", DataType::Float64, true),
        Field::new("../name, \"quoted\"", DataType::Utf8, true),
    ]));
    let ids: ArrayRef = Arc::new(Int32Array::from_iter_values(offset..offset + rows));
    let scores: ArrayRef = Arc::new(Float64Array::from_iter(
        (offset..offset + rows).map(|i| (i % 3 != 0).then_some(f64::from(i) / 2.0)),
    ));
    let names: ArrayRef = Arc::new(StringArray::from_iter(
        (offset..offset + rows).map(|i| (i % 5 != 0).then(|| format!("row {i}"))),
    ));
    RecordBatch::try_new(schema, vec![ids, scores, names]).unwrap()
}

#[test]
fn a_table_round_trips_with_its_nulls_and_is_described() {
    let f = fixture();
    let table = batch(0, 100);
    let saved = f.store.save(&["t", "1"], &table).unwrap();
    assert_eq!(saved.materializer, "weft.parquet");
    let loaded: RecordBatch = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(loaded, table);
    assert_eq!(loaded.column(1).null_count(), 34);

    let meta = &saved.metadata;
    assert_eq!(meta["rows"], json!(100));
    assert_eq!(meta["columns"], json!(3));
    let columns = meta["schema"].as_array().unwrap();
    assert_eq!(columns[0]["name"], json!("id"));
    assert_eq!(columns[0]["type"], json!("Int32"));
    assert_eq!(
        (columns[0]["min"].clone(), columns[0]["max"].clone()),
        (json!(0), json!(99))
    );
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
        String::from_utf8(
            f.store
                .read_head(&saved.to_stored(), name, 1 << 20)
                .unwrap(),
        )
        .unwrap()
    };
    let describe = read("describe.csv");
    assert!(
        describe.starts_with("column,type,null_count,min,max,mean,std\nid,Int32,0,0,99,49.5,"),
        "{describe}"
    );
    assert!(
        describe.contains("\"../name, \"\"quoted\"\"\",Utf8,20,,,,"),
        "{describe}"
    );
    let sample = read("sample.csv");
    assert_eq!(sample.lines().count(), 21, "{sample}");
    assert!(
        sample.lines().nth(2).unwrap().starts_with("1,0.5,row 1"),
        "{sample}"
    );
}

#[test]
fn histograms_count_every_batch_over_the_whole_table_range() {
    // Ids 0..160 over two batches: 40 bars of 4 over 0..=159, though neither batch alone
    // spans the range. Scores are half the ids, a third of them null: left out of the bars.
    let f = fixture();
    let table = vec![batch(0, 100), batch(100, 60)];
    let saved = f.store.save(&["t", "h"], &table).unwrap();
    let read = |name: &str| {
        let svg = f
            .store
            .read_head(&saved.to_stored(), name, 1 << 20)
            .unwrap();
        bar_counts(&String::from_utf8(svg).unwrap())
    };
    assert_eq!(read("histogram-0-id.svg"), vec![4; 40]);
    let scores = read("histogram-1-score.svg");
    assert_eq!(scores.len(), 40);
    assert_eq!(
        scores.iter().sum::<u64>(),
        (0..160).filter(|i| i % 3 != 0).count() as u64
    );
    // The same table saved whole gets the same bars.
    let whole = arrow_select::concat::concat_batches(&table[0].schema(), &table).unwrap();
    let saved_whole = f.store.save(&["t", "w"], &whole).unwrap();
    let svg = f
        .store
        .read_head(&saved_whole.to_stored(), "histogram-1-score.svg", 1 << 20)
        .unwrap();
    assert_eq!(bar_counts(&String::from_utf8(svg).unwrap()), scores);
}

#[test]
fn batches_come_back_cut_where_they_were() {
    let f = fixture();
    let batches = vec![batch(0, 10), batch(10, 0), batch(10, 25)];
    let saved = f.store.save(&["t", "1"], &batches).unwrap();
    assert_eq!(saved.metadata["rows"], json!(35));
    let loaded: Vec<RecordBatch> = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(loaded, batches);
    // The same version loads as one table too.
    let whole: RecordBatch = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(whole.num_rows(), 35);

    let empty = f
        .store
        .save(&["t", "2"], &Vec::<RecordBatch>::new())
        .unwrap();
    assert_eq!(empty.metadata["rows"], json!(0));
    assert!(
        f.store
            .load::<Vec<RecordBatch>>(&empty.to_stored())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn batches_of_different_schemas_are_refused_and_leave_nothing() {
    let f = fixture();
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)])),
        vec![Arc::new(Int32Array::from(vec![1]))],
    )
    .unwrap();
    let error = f
        .store
        .save(&["t", "1"], &vec![batch(0, 3), other])
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("every batch must have the first batch's schema"),
        "{error}"
    );
    let folder = f.dir.path().join("artifacts/t/1");
    let left: Vec<_> = std::fs::read_dir(&folder)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_truncated_parquet_file_is_a_clear_error() {
    let f = fixture();
    let saved = f.store.save(&["t", "1"], &batch(0, 50)).unwrap();
    let path = f.store.local_path("t/1/data.parquet").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Truncated behind weft's back: the hash check catches it.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = f.store.load::<RecordBatch>(&saved.to_stored()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    // One byte changed in a value, the size kept: the file still decodes, but what it
    // decodes to is not returned.
    let mut changed = bytes.clone();
    changed[bytes.len() / 3] ^= 0x01;
    std::fs::write(&path, &changed).unwrap();
    let error = f.store.load::<RecordBatch>(&saved.to_stored()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    // Grown by a byte.
    std::fs::write(&path, [&bytes[..], b"x"].concat()).unwrap();
    let error = f.store.load::<RecordBatch>(&saved.to_stored()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");

    // Truncated before it was recorded (a hand-made version): the decoder says so.
    let half = &bytes[..bytes.len() / 2];
    let stored = handmade(
        &f.store,
        "t/2",
        "data.parquet",
        half,
        ("weft.parquet", std::any::type_name::<RecordBatch>()),
    );
    let error = f
        .store
        .load::<RecordBatch>(&stored)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("t/2/data.parquet") && error.contains("weft.parquet"),
        "{error}"
    );
}
