//! End-to-end tests of static pipelines, run in-process against real embedded stores
//! (SQLite and local files in a temporary folder).

mod caching;
mod compile;
mod control;
mod dynamic;
mod execution;
mod failures;
mod inspection;
mod logs;
mod ml_data;
mod parameters;
mod plain;

use weft::Client;

/// A client on fresh stores in a temporary folder (kept alive by the returned guard).
pub(crate) fn fresh() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let client = Client::in_folder(dir.path()).expect("the stores open");
    (dir, client)
}

/// Overwrites the content hash recorded for an artifact version in the store under `dir`, as
/// damage to the database would.
pub(crate) fn damage_content_hash(
    dir: &std::path::Path,
    version: weft::ArtifactVersionId,
    hash: &str,
) {
    let db = rusqlite::Connection::open(dir.join("weft.db")).expect("the database opens");
    let changed = db
        .execute(
            "UPDATE artifact_versions SET content_hash = ?1 WHERE id = ?2",
            [hash, &version.to_string()],
        )
        .expect("the record is updated");
    assert_eq!(changed, 1, "version {version} is recorded");
}

/// The step runs of a run by invocation id.
pub(crate) fn steps(
    report: &weft::RunReport,
) -> std::collections::BTreeMap<String, weft::model::StepRun> {
    report
        .step_runs
        .iter()
        .map(|s| (s.invocation.clone(), s.clone()))
        .collect()
}
