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
            tags: vec![],
        })
        .await
        .unwrap();
    assert_eq!(second.find_run("latest").await.unwrap().id, run.id);
}

/// Indexes of a store's schema, by name.
fn indexes(path: &std::path::Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[tokio::test]
async fn a_store_of_the_first_schema_is_read_as_it_is_and_migrated_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    drop(SqliteStore::open(&path).await.unwrap());
    assert!(!indexes(&path).contains(&"artifact_versions_by_producer".to_owned()));
    // Back to how the first schema left it.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DELETE FROM weft_migrations WHERE version >= 2;
             DROP TABLE api_keys;
             DROP INDEX runs_by_status;
             CREATE INDEX runs_by_status ON runs (status);
             CREATE INDEX artifact_versions_by_producer ON artifact_versions (producer_step_run_id) WHERE producer_step_run_id IS NOT NULL;
             CREATE INDEX step_run_outputs_by_artifact ON step_run_outputs (artifact_version_id);",
        )
        .unwrap();

    // On a read-only mount (the test needs root), it reads: the missing migrations only
    // change indexes and add the server's keys.
    let folder = dir.path().to_str().unwrap().to_owned();
    let mount = |args: &[&str]| {
        let status = std::process::Command::new("mount").args(args).status();
        assert!(
            status.unwrap().success(),
            "mount {args:?} (the test needs root)"
        );
    };
    mount(&["--bind", &folder, &folder]);
    mount(&["-o", "remount,ro,bind", &folder]);
    let read = async {
        let store = SqliteStore::open_existing(&path).await?;
        assert!(store.is_read_only());
        store.runs(&Default::default()).await
    }
    .await;
    let _ = std::process::Command::new("umount").arg(&folder).status();
    assert!(read.unwrap().is_empty());

    // Written, it is migrated.
    drop(SqliteStore::open(&path).await.unwrap());
    let left = indexes(&path);
    assert!(
        !left.contains(&"artifact_versions_by_producer".to_owned())
            && !left.contains(&"step_run_outputs_by_artifact".to_owned()),
        "{left:?}"
    );
}
