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
