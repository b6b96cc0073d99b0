//! What the artifact store's tests share: a store in a temporary folder, and versions made by
//! hand (as a hostile or damaged file would be).
#![allow(dead_code, unreachable_pub)]

use weft_artifacts::{ArtifactStore, FileRecord, StoredArtifact};

pub struct Fixture {
    _runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub store: ArtifactStore,
}

/// A store whose every file is a file (no bytes kept in records), for tests of files on
/// disk; [`fixture_with_inline`] keeps small files in their records, as stores do by default.
pub fn fixture() -> Fixture {
    let mut fixture = fixture_with_inline();
    fixture.store = fixture.store.with_inline_limit(0);
    fixture
}

/// A store with the default inline limit.
pub fn fixture_with_inline() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store =
        ArtifactStore::local(&dir.path().join("artifacts"), runtime.handle().clone()).unwrap();
    Fixture {
        _runtime: runtime,
        dir,
        store,
    }
}

/// A version whose only file, `name` in `folder`, holds `bytes`, recorded with their true
/// hash: only the materializer can object to it.
pub fn handmade(
    store: &ArtifactStore,
    folder: &str,
    name: &str,
    bytes: &[u8],
    (materializer, data_type): (&str, &str),
) -> StoredArtifact {
    store
        .put_object(&format!("{folder}/{name}"), bytes.to_vec())
        .unwrap();
    StoredArtifact {
        uri: format!("{}{folder}/", store.root()),
        files: vec![FileRecord {
            name: name.into(),
            size: bytes.len() as u64,
            blake3: weft_core::Digest::of(bytes),
            etag: None,
            visualization: None,
            inline: None,
        }],
        materializer: materializer.to_owned().into(),
        materializer_version: 1,
        data_type: data_type.to_owned().into(),
    }
}

/// The bar counts of a histogram SVG, in order.
pub fn bar_counts(svg: &str) -> Vec<u64> {
    svg.split("<title>")
        .skip(1)
        .map(|rest| rest[..rest.find('<').unwrap()].parse().unwrap())
        .collect()
}
