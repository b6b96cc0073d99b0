//! The artifact store's contract, as one suite every backend runs (feature `conformance`):
//! local folders and any `object_store` backend (in memory here; S3-compatible servers and
//! others pass the same cases). A backend is conforming when
//! [`artifact_store_conformance_tests!`](crate::artifact_store_conformance_tests) passes
//! against it:
//!
//! ```ignore
//! fn fresh() -> (weft_artifacts::ArtifactStore, Box<dyn std::any::Any>) { /* ... */ }
//! weft_artifacts::artifact_store_conformance_tests!(fresh);
//! ```
//!
//! Each case gets a store of its own; the second value is kept alive until the case ends (a
//! temporary folder, a runtime, a bucket). Damage is done through the backend itself (its
//! `object_store`), as an outside writer would.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{Artifact, ArtifactStore, Binary, Error, JsonFormat, SerdeValue, StoredArtifact};

/// Generates one `#[test]` per case of the suite, each on a store from `$fresh`, a function
/// returning `(ArtifactStore, Box<dyn Any>)`.
#[macro_export]
macro_rules! artifact_store_conformance_tests {
    ($fresh:path) => {
        $crate::artifact_store_conformance_tests!(@cases $fresh;
            values_round_trip_in_every_builtin_format,
            small_versions_write_nothing_to_the_store,
            what_must_come_first_is_waited_for_once_before_storing,
            large_files_stream_in_parts_and_verify,
            a_published_file_is_never_overwritten,
            a_failed_save_leaves_nothing,
            changed_bytes_are_corrupt_and_left_in_place,
            a_deleted_file_is_missing,
            a_check_trusts_intact_files_and_catches_changed_ones,
            deleting_a_version_removes_its_files,
            a_version_of_another_store_is_read_where_it_is,
            objects_are_written_once_and_listed,
            objects_are_read_as_streams,
            names_the_backend_treats_specially_round_trip,
            items_of_a_collection_are_read_alone
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (store, guard) = $fresh();
                $crate::conformance::$case(&store);
                drop(guard);
            }
        )*
    };
}

/// A value saved as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Rows {
    x: Vec<[f64; 2]>,
    label: String,
}

impl Artifact for Rows {
    type Materializer = JsonFormat;
}

impl SerdeValue for Rows {
    type VecFormat = JsonFormat;
}

fn rows(count: usize) -> Rows {
    Rows {
        x: (0..count).map(|i| [i as f64, -(i as f64) / 4.0]).collect(),
        label: "weft".into(),
    }
}

/// A value whose encoding fails after most of it was written.
struct FailsMidway;

impl Serialize for FailsMidway {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq};
        let mut sequence = serializer.serialize_seq(None)?;
        // About 12 MiB of text first: more than a part of an upload.
        for i in 0..1_500_000u64 {
            sequence.serialize_element(&(i * 1_000_003))?;
        }
        Err(S::Error::custom("this value refuses to be encoded"))
    }
}

impl<'de> Deserialize<'de> for FailsMidway {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(FailsMidway)
    }
}

impl Artifact for FailsMidway {
    type Materializer = JsonFormat;
}

fn objects(store: &ArtifactStore) -> Arc<dyn ObjectStore> {
    store.objects().clone()
}

/// The object paths under `prefix`, as an outside reader of the backend sees them.
fn listed(store: &ArtifactStore, prefix: &str) -> Vec<String> {
    store.list_objects(prefix).expect("the store lists")
}

/// Replaces an object's bytes behind the store's back.
fn overwrite(store: &ArtifactStore, path: &str, bytes: Vec<u8>) {
    let objects = objects(store);
    store
        .wait(objects.put(&Path::from(path), PutPayload::from(bytes)))
        .expect("the backend takes the write");
}

fn read(store: &ArtifactStore, path: &str) -> Vec<u8> {
    store
        .get_object(path)
        .expect("the backend reads")
        .expect("the object exists")
        .to_vec()
}

/// Values of every built-in format load back equal, with their hash and size recorded and
/// the same content hash each time.
pub fn values_round_trip_in_every_builtin_format(store: &ArtifactStore) {
    let value = rows(200);
    let saved = store.save(&["p", "json", "output", "1"], &value).unwrap();
    assert_eq!(saved.materializer, "weft.json");
    assert_eq!(store.load::<Rows>(&saved.to_stored()).unwrap(), value);
    let again = store.save(&["p", "json", "output", "2"], &value).unwrap();
    assert_eq!(
        again.content_hash, saved.content_hash,
        "same value, same hash"
    );
    assert_eq!(saved.size, saved.files.iter().map(|f| f.size).sum::<u64>());

    let binary = store
        .save(&["p", "msgpack"], &Binary(value.clone()))
        .unwrap();
    assert_eq!(
        store.load::<Binary<Rows>>(&binary.to_stored()).unwrap().0,
        value
    );
    let text = "a line\nanother, with ünïcode\n".repeat(100);
    let saved = store.save(&["p", "text"], &text).unwrap();
    assert_eq!(store.load::<String>(&saved.to_stored()).unwrap(), text);
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();
    let saved = store.save(&["p", "bytes"], &bytes).unwrap();
    assert_eq!(store.load::<Vec<u8>>(&saved.to_stored()).unwrap(), bytes);
    let numbers: Vec<f64> = (0..1000).map(|i| f64::from(i).sqrt()).collect();
    let saved = store.save(&["p", "numbers"], &numbers).unwrap();
    assert_eq!(saved.materializer, "weft.npy");
    assert_eq!(store.load::<Vec<f64>>(&saved.to_stored()).unwrap(), numbers);
    store.verify(&saved.to_stored()).unwrap();
}

/// A version small enough to be kept in its record costs the backend nothing, and loads,
/// verifies and checks like any other.
pub fn small_versions_write_nothing_to_the_store(store: &ArtifactStore) {
    let saved = store.save(&["small"], &42u64).unwrap();
    assert!(
        saved.files.iter().all(|f| f.is_inline()),
        "{:?}",
        saved.files
    );
    assert_eq!(listed(store, "small"), Vec::<String>::new());
    let stored = saved.to_stored();
    assert_eq!(store.load::<u64>(&stored).unwrap(), 42);
    store.verify(&stored).unwrap();
    store.check(&stored).unwrap();
    store.delete(&stored).unwrap();
}

/// `save_after` calls its hook once before a version stores anything (a small put, a
/// local file, an upload in parts), never for a version kept in its record, and a hook that
/// fails fails the save with nothing stored.
pub fn what_must_come_first_is_waited_for_once_before_storing(store: &ArtifactStore) {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let count = || {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    };
    let small = store
        .save_after(&["inline"], &42u64, Vec::new(), &count)
        .unwrap();
    assert!(small.files.iter().all(|f| f.is_inline()));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let medium = store
        .save_after(&["put"], &rows(100), Vec::new(), &count)
        .unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(store.load::<Rows>(&medium.to_stored()).unwrap(), rows(100));
    let big: Vec<u8> = vec![3; 12 * 1024 * 1024];
    store
        .save_after(&["parts"], &big, Vec::new(), &count)
        .unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    let refuse = || Err("the step run is not recorded".into());
    for (name, value) in [("refused-put", rows(100)), ("refused-parts", rows(400_000))] {
        let error = store
            .save_after(&[name], &value, Vec::new(), &refuse)
            .unwrap_err();
        assert!(matches!(error, Error::Write { .. }), "{error}");
        assert!(error.to_string().contains("not recorded"), "{error}");
        assert_eq!(listed(store, name), Vec::<String>::new());
    }
}

/// A file larger than a part streams in parts, hashed while it streams; it loads back whole
/// and nothing of the upload is left beside it.
pub fn large_files_stream_in_parts_and_verify(store: &ArtifactStore) {
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let saved = store.save(&["big"], &big).unwrap();
    assert_eq!(saved.size, big.len() as u64);
    assert_eq!(
        saved.files[0].blake3.to_string(),
        blake3::hash(&big).to_hex().to_string()
    );
    assert!(store.load::<Vec<u8>>(&saved.to_stored()).unwrap() == big);
    store.verify(&saved.to_stored()).unwrap();
    // The entity tag recorded at the save is the one the store reports (cache hits rely on
    // it).
    store.check(&saved.to_stored()).unwrap();
    assert_eq!(
        listed(store, "big"),
        ["big/data.bin"],
        "nothing staged is left"
    );
}

/// Saving where a file was published fails, and the published bytes stay as they were:
/// small files and files uploaded in parts alike.
pub fn a_published_file_is_never_overwritten(store: &ArtifactStore) {
    let first = rows(100);
    let saved = store.save(&["a"], &first).unwrap();
    let before = read(store, "a/data.json");
    let error = store.save(&["a"], &rows(101)).unwrap_err();
    assert!(matches!(error, Error::Write { .. }), "{error}");
    assert_eq!(read(store, "a/data.json"), before);
    assert_eq!(store.load::<Rows>(&saved.to_stored()).unwrap(), first);

    let big: Vec<u8> = vec![1; 12 * 1024 * 1024];
    let saved = store.save(&["b"], &big).unwrap();
    let error = store
        .save(&["b"], &vec![2u8; 12 * 1024 * 1024])
        .unwrap_err();
    assert!(matches!(error, Error::Write { .. }), "{error}");
    assert!(store.load::<Vec<u8>>(&saved.to_stored()).unwrap() == big);
    assert_eq!(listed(store, "b"), ["b/data.bin"], "nothing staged is left");
}

/// A save that fails midway (after more than a part was written) publishes nothing and
/// leaves nothing behind.
pub fn a_failed_save_leaves_nothing(store: &ArtifactStore) {
    let error = store.save(&["bad"], &FailsMidway).unwrap_err();
    assert!(matches!(error, Error::Encode { .. }), "{error}");
    assert!(
        error.to_string().contains("refuses to be encoded"),
        "{error}"
    );
    assert_eq!(listed(store, "bad"), Vec::<String>::new());
}

/// Bytes changed behind the store's back are reported as corrupt when loaded, verified or
/// checked, and left as they are.
pub fn changed_bytes_are_corrupt_and_left_in_place(store: &ArtifactStore) {
    let saved = store.save(&["a"], &rows(100)).unwrap();
    let stored = saved.to_stored();
    // Same length, one digit changed: still valid JSON, so only the hash can tell.
    let text = String::from_utf8(read(store, "a/data.json")).unwrap();
    let tampered = text.replacen("25", "26", 1);
    assert_ne!(tampered, text);
    overwrite(store, "a/data.json", tampered.clone().into_bytes());
    for error in [
        store.load::<Rows>(&stored).unwrap_err(),
        store.verify(&stored).unwrap_err(),
        store.check(&stored).unwrap_err(),
    ] {
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("data.json"), "{error}");
    }
    assert_eq!(read(store, "a/data.json"), tampered.as_bytes());
    // Truncated: decoding would fail too, but the message says why.
    overwrite(store, "a/data.json", tampered.as_bytes()[..10].to_vec());
    let error = store.load::<Rows>(&stored).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
}

/// A file deleted behind the store's back is reported as missing.
pub fn a_deleted_file_is_missing(store: &ArtifactStore) {
    let saved = store.save(&["a"], &rows(100)).unwrap();
    let objects = objects(store);
    store
        .wait(objects.delete(&Path::from("a/data.json")))
        .unwrap();
    for error in [
        store.load::<Rows>(&saved.to_stored()).unwrap_err(),
        store.check(&saved.to_stored()).unwrap_err(),
    ] {
        assert!(matches!(error, Error::Missing { .. }), "{error}");
        assert!(error.to_string().contains("is missing"), "{error}");
    }
}

/// A check of an intact version passes (without re-reading where the backend's entity tag
/// says the file is unchanged); a changed one fails.
pub fn a_check_trusts_intact_files_and_catches_changed_ones(store: &ArtifactStore) {
    let saved = store.save(&["a"], &rows(100)).unwrap();
    store.check(&saved.to_stored()).unwrap();
    let mut bytes = read(store, "a/data.json");
    bytes[5] ^= 0x01;
    overwrite(store, "a/data.json", bytes);
    let error = store.check(&saved.to_stored()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
}

/// Deleting a version removes its files, and only them.
pub fn deleting_a_version_removes_its_files(store: &ArtifactStore) {
    let numbers: Vec<f64> = (0..1000).map(f64::from).collect();
    let kept = store.save(&["v", "1"], &numbers).unwrap();
    let gone = store.save(&["v", "2"], &numbers).unwrap();
    assert!(gone.files.len() > 1, "data and a histogram");
    store.delete(&gone.to_stored()).unwrap();
    assert_eq!(listed(store, "v/2"), Vec::<String>::new());
    assert_eq!(store.load::<Vec<f64>>(&kept.to_stored()).unwrap(), numbers);
}

/// A version recorded in another store (one the project used before: a local folder here)
/// is read where it is, verified like any other; a location of a kind weft cannot open is
/// refused by name.
pub fn a_version_of_another_store_is_read_where_it_is(store: &ArtifactStore) {
    let folder = std::env::temp_dir().join(format!("weft-elsewhere-{}", uuid::Uuid::now_v7()));
    let other = ArtifactStore::local(&folder, store.runtime().clone())
        .unwrap()
        .with_inline_limit(0);
    let value = rows(100);
    let saved = other.save(&["old", "1"], &value).unwrap().to_stored();
    assert_eq!(store.load::<Rows>(&saved).unwrap(), value);
    store.verify(&saved).unwrap();
    store.check(&saved).unwrap();
    // Still verified: a changed file there is corrupt here.
    std::fs::write(folder.join("old/1/data.json"), b"{}").unwrap();
    let error = store.load::<Rows>(&saved).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    let _ = std::fs::remove_dir_all(&folder);

    let unknown = StoredArtifact {
        uri: "gs://bucket/old/1/".into(),
        ..saved
    };
    let error = store.load::<Rows>(&unknown).unwrap_err();
    assert!(matches!(error, Error::ForeignUri { .. }), "{error}");
}

/// Plain objects (logs) are written once, read back, and listed under their prefix.
pub fn objects_are_written_once_and_listed(store: &ArtifactStore) {
    store
        .put_object("logs/r/1.jsonl", b"one\n".to_vec())
        .unwrap();
    assert!(
        store
            .put_object("logs/r/1.jsonl", b"two\n".to_vec())
            .is_err()
    );
    assert_eq!(read(store, "logs/r/1.jsonl"), b"one\n");
    store
        .put_object("logs/r/2.jsonl", b"two\n".to_vec())
        .unwrap();
    assert_eq!(
        listed(store, "logs/r"),
        ["logs/r/1.jsonl", "logs/r/2.jsonl"]
    );
    assert_eq!(store.get_object("logs/r/3.jsonl").unwrap(), None);
}

/// An object read as a stream comes back whole, across the reader's chunks; a missing one
/// is `None`.
pub fn objects_are_read_as_streams(store: &ArtifactStore) {
    use std::io::BufRead as _;
    let lines: String = (0..300_000).map(|i| format!("line {i}\n")).collect();
    assert!(lines.len() > 2 * crate::OBJECT_READ_CHUNK);
    store
        .put_object("logs/r/long.jsonl", lines.clone().into_bytes())
        .unwrap();
    let reader = store
        .open_object("logs/r/long.jsonl")
        .unwrap()
        .expect("it exists");
    let read: Vec<String> = reader.lines().map(Result::unwrap).collect();
    assert_eq!(read.len(), 300_000);
    assert_eq!(read[299_999], "line 299999");
    assert_eq!(read.join("\n") + "\n", lines);
    assert!(store.open_object("logs/r/none.jsonl").unwrap().is_none());

    // Removing a prefix removes what is under it, whole segments only.
    for path in [
        "x/step/1/result.json",
        "x/step/1/stdout",
        "x/step-2/result.json",
    ] {
        store.put_object(path, b"{}".to_vec()).unwrap();
    }
    store.remove_objects("x/step");
    assert_eq!(store.list_objects("x").unwrap(), ["x/step-2/result.json"]);
    store.remove_objects("x/nothing-here");
}

/// Folder names with characters URLs, S3 keys or file systems treat specially (spaces,
/// `+`, `%`, `?`, `#`, `&`, `=`, quotes, non-ASCII, dots, separators) are stored and read back
/// as they were given, and stay inside the store.
pub fn names_the_backend_treats_specially_round_trip(store: &ArtifactStore) {
    let awkward = [
        "a b",
        "x+y",
        "50%",
        "q?a#b",
        "k=v&w",
        "'quoted\"",
        "ünïcödé 名前",
        "..",
        "a/b",
        "tab\there",
    ];
    let value = rows(100);
    for (index, name) in awkward.iter().enumerate() {
        let saved = store
            .save(&["odd", &index.to_string(), name], &value)
            .unwrap_or_else(|e| panic!("saving under {name:?}: {e}"));
        assert!(!saved.files[0].is_inline());
        let stored = saved.to_stored();
        assert_eq!(store.load::<Rows>(&stored).unwrap(), value, "{name:?}");
        store.verify(&stored).unwrap();
        store.check(&stored).unwrap();
        let listed = listed(store, &format!("odd/{index}"));
        assert_eq!(listed.len(), 1, "{name:?}: {listed:?}");
    }
}

/// A collection's items are counted and read one at a time in every built-in collection
/// format (JSON, `.npy`, raw bytes; in a file or in the record); an item past the end is
/// refused with the count; a file changed before its items were found is corrupt, and one
/// changed after is caught at the next item read.
pub fn items_of_a_collection_are_read_alone(store: &ArtifactStore) {
    // Strings with the characters that delimit JSON items inside them.
    let words: Vec<String> = (0..2000).map(|i| format!("w\"{i},]}}\\")).collect();
    let json = store.save(&["items", "json"], &words).unwrap().to_stored();
    assert!(!json.files[0].is_inline());
    assert_eq!(store.item_count::<String>(&json).unwrap(), 2000);
    for index in [0, 1, 999, 1999] {
        assert_eq!(
            store.load_item::<String>(&json, index).unwrap(),
            words[index as usize]
        );
    }
    let error = store.load_item::<String>(&json, 2000).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NoItem {
                index: 2000,
                count: 2000,
                ..
            }
        ),
        "{error}"
    );

    let table: Vec<Rows> = (0..40).map(rows).collect();
    let saved = store.save(&["items", "rows"], &table).unwrap().to_stored();
    assert_eq!(store.load_item::<Rows>(&saved, 39).unwrap(), table[39]);

    let numbers: Vec<f64> = (0..5000).map(|i| f64::from(i) / 3.0).collect();
    let npy = store.save(&["items", "npy"], &numbers).unwrap().to_stored();
    assert_eq!(store.item_count::<f64>(&npy).unwrap(), 5000);
    assert_eq!(store.load_item::<f64>(&npy, 4321).unwrap(), numbers[4321]);
    let error = store.load_item::<f32>(&npy, 0).unwrap_err();
    assert!(error.to_string().contains("float64"), "{error}");
    let flags: Vec<bool> = (0..3000).map(|i| i % 3 == 0).collect();
    let saved = store.save(&["items", "bool"], &flags).unwrap().to_stored();
    assert!(store.load_item::<bool>(&saved, 2997).unwrap());
    assert!(!store.load_item::<bool>(&saved, 2998).unwrap());

    let bytes: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let raw = store.save(&["items", "raw"], &bytes).unwrap().to_stored();
    assert_eq!(store.item_count::<u8>(&raw).unwrap(), 4000);
    assert_eq!(store.load_item::<u8>(&raw, 3000).unwrap(), bytes[3000]);

    let few = vec!["a".to_owned(), "b".to_owned()];
    let inline = store.save(&["items", "few"], &few).unwrap().to_stored();
    assert!(inline.files[0].is_inline());
    assert_eq!(store.load_item::<String>(&inline, 1).unwrap(), "b");
    let empty = store
        .save(&["items", "empty"], &Vec::<String>::new())
        .unwrap()
        .to_stored();
    assert_eq!(store.item_count::<String>(&empty).unwrap(), 0);
    let error = store.load_item::<String>(&empty, 0).unwrap_err();
    assert!(matches!(error, Error::NoItem { count: 0, .. }), "{error}");

    // Changed after its items were found: same length, other bytes.
    let text = read(store, "items/json/data.json");
    let tampered = String::from_utf8(text).unwrap().replacen("w", "v", 1);
    overwrite(store, "items/json/data.json", tampered.into_bytes());
    let error = store.load_item::<String>(&json, 5).unwrap_err();
    assert!(matches!(error, Error::Changed { .. }), "{error}");
    assert!(error.to_string().contains("data.json"), "{error}");
    // Changed before: the first read of the collection checks its hash.
    let mut text = read(store, "items/npy/data.npy");
    let last = text.len() - 1;
    text[last] ^= 1;
    let fresh = store
        .save(&["items", "npy2"], &numbers)
        .unwrap()
        .to_stored();
    overwrite(store, "items/npy2/data.npy", text);
    let error = store.item_count::<f64>(&fresh).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
}
