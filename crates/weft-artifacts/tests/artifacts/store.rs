//! The artifact store against real local folders: what is particular to them (the
//! conformance suite, `conformance.rs` beside this file, holds what every store guarantees).

use std::collections::BTreeMap;

use crate::common::fixture;
use serde::{Deserialize, Serialize};
use weft_artifacts::{
    Artifact, ArtifactStore, Binary, Error, Json, JsonFormat, SerdeValue, StoredArtifact,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Rows {
    x: Vec<[f64; 2]>,
    y: Vec<u8>,
}

impl Artifact for Rows {
    type Materializer = JsonFormat;
}
impl SerdeValue for Rows {
    type VecFormat = JsonFormat;
}

fn rows() -> Rows {
    Rows {
        x: vec![[1.0, 2.5], [3.0, -4.0]],
        y: vec![0, 1],
    }
}

#[test]
fn values_round_trip_in_every_builtin_format() {
    let f = fixture();
    let saved = f
        .store
        .save(&["p", "load", "output", "1"], &rows())
        .unwrap();
    assert_eq!(saved.materializer, "weft.json");
    assert_eq!(saved.files[0].name, "data.json");
    assert!(saved.uri.starts_with("file://") && saved.uri.ends_with("/p/load/output/1/"));
    assert_eq!(f.store.load::<Rows>(&saved.to_stored()).unwrap(), rows());

    let text = f.store.save(&["t"], &"héllo".to_string()).unwrap();
    assert_eq!(text.metadata["length"], 5);
    assert_eq!(f.store.load::<String>(&text.to_stored()).unwrap(), "héllo");

    let bytes = f.store.save(&["b"], &vec![0u8, 255, 7]).unwrap();
    assert_eq!(bytes.materializer, "weft.bytes");
    assert_eq!(
        f.store.load::<Vec<u8>>(&bytes.to_stored()).unwrap(),
        [0, 255, 7]
    );

    let number = f.store.save(&["n"], &0.25f64).unwrap();
    assert_eq!(number.metadata["value"], 0.25);
    assert_eq!(f.store.load::<f64>(&number.to_stored()).unwrap(), 0.25);

    let list = f.store.save(&["l"], &vec![rows(), rows()]).unwrap();
    assert_eq!(list.metadata["length"], 2);
    assert_eq!(
        f.store.load::<Vec<Rows>>(&list.to_stored()).unwrap().len(),
        2
    );

    let map = BTreeMap::from([("a".to_string(), 1.5f64)]);
    let saved_map = f.store.save(&["m"], &map).unwrap();
    assert_eq!(
        f.store
            .load::<BTreeMap<String, f64>>(&saved_map.to_stored())
            .unwrap(),
        map
    );

    let many = Rows {
        x: (0..1000)
            .map(|i| [i as f64 / 7.0, i as f64 / 3.0])
            .collect(),
        y: vec![1; 1000],
    };
    let binary = f.store.save(&["bin"], &Binary(many.clone())).unwrap();
    let json = f.store.save(&["json"], &many).unwrap();
    assert_eq!(binary.materializer, "weft.msgpack");
    assert!(
        binary.size < json.size,
        "MessagePack is more compact than JSON"
    );
    assert_eq!(
        f.store.load::<Binary<Rows>>(&binary.to_stored()).unwrap().0,
        many
    );

    let json = f.store.save(&["j"], &Json(vec![1u8, 2])).unwrap();
    assert_eq!(
        f.store.load::<Json<Vec<u8>>>(&json.to_stored()).unwrap().0,
        [1, 2]
    );
}

#[test]
fn storage_size_and_content_hash_are_recorded() {
    let f = fixture();
    let first = f.store.save(&["a"], &rows()).unwrap();
    let second = f.store.save(&["b"], &rows()).unwrap();
    let other = f
        .store
        .save(
            &["c"],
            &Rows {
                y: vec![1, 1],
                ..rows()
            },
        )
        .unwrap();
    let on_disk = std::fs::metadata(f.dir.path().join("artifacts/a/data.json"))
        .unwrap()
        .len();
    assert_eq!(first.size, on_disk);
    assert_eq!(first.metadata["storage_size"], on_disk);
    assert_eq!(
        first.files[0].blake3.to_string(),
        blake3::hash(&std::fs::read(f.dir.path().join("artifacts/a/data.json")).unwrap())
            .to_hex()
            .to_string()
    );
    assert_eq!(
        first.content_hash, second.content_hash,
        "same bytes, same hash"
    );
    assert_ne!(first.content_hash, other.content_hash);
}

#[test]
fn loading_as_another_type_names_both_types() {
    let f = fixture();
    let saved = f.store.save(&["a"], &rows()).unwrap();
    let error = f.store.load::<Vec<f64>>(&saved.to_stored()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::TypeMismatch { .. }));
    assert!(
        message.contains("store::Rows") && message.contains("alloc::vec::Vec<f64>"),
        "{message}"
    );
}

#[test]
fn a_newer_format_is_refused() {
    let f = fixture();
    let mut stored = f.store.save(&["a"], &1u32).unwrap().to_stored();
    stored.materializer_version = 99;
    let error = f.store.load::<u32>(&stored).unwrap_err();
    assert!(error.to_string().contains("upgrade weft"), "{error}");
}

#[test]
fn a_store_that_cannot_be_written_fails_when_opened() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"").unwrap();
    let error =
        ArtifactStore::local(&file.join("artifacts"), runtime.handle().clone()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot open the artifact store at"),
        "{error}"
    );
    let error =
        ArtifactStore::open("gs://bucket", dir.path(), runtime.handle().clone()).unwrap_err();
    assert!(error.to_string().contains("not supported"), "{error}");
    let error =
        ArtifactStore::open("s3:///prefix", dir.path(), runtime.handle().clone()).unwrap_err();
    let expected = if cfg!(feature = "s3") {
        "no bucket is named"
    } else {
        "need weft's `s3` feature"
    };
    assert!(error.to_string().contains(expected), "{error}");
}

#[test]
fn a_version_recorded_in_a_missing_folder_is_missing() {
    let f = fixture();
    let saved = f.store.save(&["a"], &rows()).unwrap();
    let stored = StoredArtifact {
        uri: "file:///nowhere/that/exists/a/".into(),
        ..saved.to_stored()
    };
    let error = f.store.load::<Rows>(&stored).unwrap_err();
    assert!(matches!(error, Error::Missing { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("/nowhere/that/exists/a/data.json"),
        "{error}"
    );
}

#[test]
fn hostile_segments_stay_inside_the_store() {
    let f = fixture();
    let saved = f.store.save(&["..", "a/b", "c"], &1u32).unwrap();
    assert!(f.store.load::<u32>(&saved.to_stored()).is_ok());
    let outside = f.dir.path().join("a");
    assert!(!outside.exists(), "nothing escaped the store's root");
}

#[test]
fn a_local_store_keeps_its_id() {
    let f = fixture();
    let id = f.store.id().to_owned();
    assert_eq!(id.len(), 36);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let again =
        ArtifactStore::local(&f.dir.path().join("artifacts"), runtime.handle().clone()).unwrap();
    assert_eq!(again.id(), id);
}

#[test]
fn partial_outputs_of_a_step_run_can_be_removed_with_their_staged_files() {
    let f = fixture();
    let kept = f
        .store
        .save(&["p", "step", "output", "run-1"], &1u32)
        .unwrap();
    f.store
        .save(&["p", "step", "output", "run-2"], &2u32)
        .unwrap();
    let staged = f.dir.path().join("artifacts/p/step/other/run-2");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join("data.json#7"), b"half").unwrap();
    f.store.remove_partial("p/step/", "run-2");
    assert!(!f.dir.path().join("artifacts/p/step/output/run-2").exists());
    assert!(!staged.exists(), "staged files go too");
    assert_eq!(
        f.store.load::<u32>(&kept.to_stored()).unwrap(),
        1,
        "other step runs are untouched"
    );
}

#[test]
fn a_cheap_check_trusts_an_unchanged_file_and_rehashes_a_changed_one() {
    let f = fixture();
    let saved = f.store.save(&["a"], &1234u32).unwrap();
    assert!(saved.files[0].etag.is_some(), "the entity tag is recorded");
    f.store.check(&saved.to_stored()).unwrap();
    let path = f.dir.path().join("artifacts/a/data.json");
    std::fs::write(&path, "4321").unwrap();
    assert!(matches!(
        f.store.check(&saved.to_stored()),
        Err(Error::Corrupt { .. })
    ));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        f.store.check(&saved.to_stored()),
        Err(Error::Missing { .. })
    ));
}

/// Everything under the store's folder but its own marker files.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                pending.push(path);
            } else if !name.starts_with(".weft-") {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found
}

#[test]
fn small_values_live_in_their_records_hashed_and_verified_like_files() {
    let f = crate::common::fixture_with_inline();
    let saved = f.store.save(&["p", "s", "out", "1"], &rows()).unwrap();
    let record = &saved.files[0];
    assert!(record.is_inline(), "{record:?}");
    assert_eq!(
        files_under(&f.dir.path().join("artifacts")),
        Vec::<String>::new(),
        "no file, no folder"
    );
    let stored = saved.to_stored();
    assert_eq!(f.store.load::<Rows>(&stored).unwrap(), rows());
    f.store.verify(&stored).unwrap();
    f.store.check(&stored).unwrap();
    // The same value stored as a file has the same content hash: caching cannot tell.
    let as_file = f
        .store
        .clone()
        .with_inline_limit(0)
        .save(&["p", "s", "out", "2"], &rows())
        .unwrap();
    assert!(!as_file.files[0].is_inline());
    assert_eq!(as_file.content_hash, saved.content_hash);
    // The record survives the metadata store's JSON.
    let json = serde_json::to_string(&stored).unwrap();
    assert!(json.contains(r#""inline":{"text":"#), "{json}");
    let back: StoredArtifact = serde_json::from_str(&json).unwrap();
    assert_eq!(f.store.load::<Rows>(&back).unwrap(), rows());
    f.store.delete(&back).unwrap();

    // Binary bytes are kept as base64.
    let binary = f.store.save(&["b"], &Binary(rows())).unwrap().to_stored();
    let json = serde_json::to_string(&binary).unwrap();
    assert!(json.contains(r#""inline":{"base64":"#), "{json}");
    let back: StoredArtifact = serde_json::from_str(&json).unwrap();
    assert_eq!(f.store.load::<Binary<Rows>>(&back).unwrap().0, rows());
}

#[test]
fn changed_bytes_in_a_record_are_reported_as_corrupt() {
    let f = crate::common::fixture_with_inline();
    let mut stored = f.store.save(&["p"], &rows()).unwrap().to_stored();
    let inline = stored.files[0].inline.as_mut().unwrap();
    inline.0[2] ^= 0x01;
    for error in [
        f.store.load::<Rows>(&stored).unwrap_err(),
        f.store.verify(&stored).unwrap_err(),
        f.store.check(&stored).unwrap_err(),
    ] {
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    }
}

#[test]
fn only_what_fits_the_limit_is_kept_in_records() {
    let f = crate::common::fixture_with_inline();
    // 2 KiB of text is a file.
    let long = "x".repeat(2048);
    let saved = f.store.save(&["long"], &long).unwrap();
    assert!(!saved.files[0].is_inline());
    assert_eq!(
        files_under(&f.dir.path().join("artifacts")),
        ["long/data.txt"]
    );
    // A vector of 100 numbers (.npy, 928 bytes) fits; its histogram (SVG, larger than what
    // is left) is a file beside it.
    let values: Vec<f64> = (0..100).map(f64::from).collect();
    let saved = f.store.save(&["vector"], &values).unwrap();
    let inline: Vec<(&str, bool)> = saved
        .files
        .iter()
        .map(|file| (file.name.as_str(), file.is_inline()))
        .collect();
    assert_eq!(inline, [("data.npy", true), ("histogram.svg", false)]);
    assert_eq!(
        f.store.load::<Vec<f64>>(&saved.to_stored()).unwrap(),
        values
    );
    f.store.verify(&saved.to_stored()).unwrap();
}
