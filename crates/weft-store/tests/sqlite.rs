//! The conformance suite against the embedded SQLite store, plus SQLite-specific behaviour.

use std::any::Any;
use std::sync::Arc;

use weft_store::{MetadataStore, RunStore, SqliteStore};

async fn fresh() -> (Arc<dyn MetadataStore>, Box<dyn Any + Send>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("weft.db"))
        .await
        .unwrap();
    (Arc::new(store), Box::new(dir))
}

weft_store::conformance_tests!(fresh);

#[tokio::test]
async fn a_store_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let error = SqliteStore::open(&blocker.join("weft.db"))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot open the metadata store at"),
        "{error}"
    );
    let error = weft_store::open("redis://x", dir.path()).await.unwrap_err();
    assert!(
        error.to_string().contains("is not a metadata store"),
        "{error}"
    );
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_other_and_reopen_without_migrating_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    let (first, second) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
    let (first, second) = (first.unwrap(), second.unwrap());
    let run = first
        .create_run(weft_store::model::NewRun {
            snapshot: weft_store::conformance::chain_snapshot("p", Default::default()),
            config: serde_json::json!({}),
            owner: None,
            resumed_from: None,
        })
        .await
        .unwrap();
    assert_eq!(second.find_run("latest").await.unwrap().id, run.id);
}
