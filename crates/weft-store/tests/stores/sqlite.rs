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
    let run = weft_store::conformance::new_run(&first, "p").await;
    assert_eq!(second.find_run("latest").await.unwrap().id, run);
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
async fn a_store_of_the_first_schema_is_refused_read_only_and_migrated_when_written() {
    use weft_store::StepRunStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let run = weft_store::conformance::new_run(&store, "p").await;
    let mut new = weft_store::conformance::running(run, "a");
    new.config = (&serde_json::json!({"retries": 3})).into();
    new.cache_key = Some("k".into());
    new.cache_parts = Some((&serde_json::json!({"code": "x"})).into());
    let step_run = store.create_step_runs(vec![new]).await.unwrap().remove(0);
    drop(store);
    assert!(!indexes(&path).contains(&"artifact_versions_by_producer".to_owned()));
    // Back to how the first schema left it: settings on every row.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DELETE FROM weft_migrations WHERE version >= 2;
             DROP TABLE api_keys;
             DROP INDEX step_runs_by_run;
             DROP INDEX runs_by_status;
             CREATE INDEX runs_by_status ON runs (status);
             CREATE INDEX artifact_versions_by_producer ON artifact_versions (producer_step_run_id) WHERE producer_step_run_id IS NOT NULL;
             CREATE INDEX step_run_outputs_by_artifact ON step_run_outputs (artifact_version_id);
             UPDATE step_runs SET
                 config = (SELECT c.config FROM step_configs c WHERE c.config_key = step_runs.config);
             DROP TABLE step_configs;",
        )
        .unwrap();

    // On a read-only mount (the test needs root) it cannot be read: the settings moved to a
    // table of their own. The error says what to do.
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
    let read = SqliteStore::open_existing(&path).await.map(drop);
    let _ = std::process::Command::new("umount").arg(&folder).status();
    let error = read.unwrap_err().to_string();
    assert!(
        error.contains("has schema versions [1]") && error.contains("where it can be written"),
        "{error}"
    );

    // Written, it is migrated, and the step run keeps its settings and cache parts.
    let store = SqliteStore::open(&path).await.unwrap();
    let read = store.step_run(step_run.id).await.unwrap();
    assert_eq!(read.config.value(), serde_json::json!({"retries": 3}));
    assert_eq!(
        read.cache_parts.map(|parts| parts.value()),
        Some(serde_json::json!({"code": "x"}))
    );
    drop(store);
    let left = indexes(&path);
    assert!(
        !left.contains(&"artifact_versions_by_producer".to_owned())
            && !left.contains(&"step_run_outputs_by_artifact".to_owned())
            && left.contains(&"step_runs_by_run".to_owned()),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_being_created_is_waited_for_not_refused_as_empty() {
    // Another process creating the store leaves its file empty for a moment; a reader that
    // opens it then waits for the first write instead of calling it a lost store.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    std::fs::write(&path, b"").unwrap();
    let creator = {
        let path = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            SqliteStore::open(&path).await.map(drop)
        })
    };
    let reader = SqliteStore::open_existing(&path).await.unwrap();
    assert!(reader.runs(&Default::default()).await.unwrap().is_empty());
    creator.await.unwrap().unwrap();
}
