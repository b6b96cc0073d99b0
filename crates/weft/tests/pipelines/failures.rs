//! Failing steps: errors, panics, execution modes, and damaged artifacts.

use weft::model::StepErrorKind;
use weft::prelude::*;
use weft::{ExecutionMode, RunConfig, Status};

use crate::{fresh, steps};

#[derive(Debug)]
struct Unreadable {
    path: String,
    source: std::io::Error,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}", self.path)
    }
}

impl std::error::Error for Unreadable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[step]
fn value(x: u64) -> u64 {
    x
}

/// Fails with a typed error that has a cause: any error type converts with `?`.
#[step]
fn read_file(path: String) -> Result<u64, Unreadable> {
    std::fs::read_to_string(&path)
        .map(|text| text.len() as u64)
        .map_err(|source| Unreadable { path, source })
}

#[step]
fn explode(x: u64) -> u64 {
    if x > 0 {
        panic!("the step exploded on {x}");
    }
    x
}

#[step]
fn after_failure(x: u64) -> u64 {
    x + 1
}

/// Held shut until the test opens it, so the step is still running when the run fails.
static GATE: (std::sync::Mutex<bool>, std::sync::Condvar) =
    (std::sync::Mutex::new(false), std::sync::Condvar::new());

#[step]
fn slow(x: u64) -> u64 {
    let (open, wake) = &GATE;
    let guard = open.lock().unwrap();
    let _open = wake
        .wait_timeout_while(guard, std::time::Duration::from_secs(30), |open| !*open)
        .unwrap();
    x
}

/// `a` fails; `b` depends on it; `c` and `d` are independent of it.
#[pipeline]
fn partly_broken(fail_with_panic: bool) -> weft::Result<()> {
    let a = if fail_with_panic {
        explode(1)?
    } else {
        read_file("/nonexistent/weft".to_string())?
    };
    after_failure::id("b").call(&a)?;
    let c = value::id("c").call(2)?;
    after_failure::id("d").call(&c)?;
    Ok(())
}

fn run(
    mode: ExecutionMode,
    panic: bool,
) -> (
    weft::RunReport,
    std::collections::BTreeMap<String, weft::model::StepRun>,
) {
    let (_dir, client) = fresh();
    let config = RunConfig {
        execution_mode: Some(mode),
        max_parallelism: Some(1),
        ..Default::default()
    };
    let report = client
        .run_with(partly_broken::args(panic), &config)
        .unwrap();
    let steps = steps(&report);
    (report, steps)
}

#[test]
fn an_error_fails_the_step_with_its_chain_and_skips_only_downstream() {
    let (report, steps) = run(ExecutionMode::ContinueOnFailure, false);
    assert_eq!(report.run.status, Status::Failed);
    assert!(report.run.ended_at.is_some());
    let failed = &steps["read_file"];
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.as_ref().unwrap();
    assert_eq!(error.kind, StepErrorKind::Error);
    assert_eq!(error.chain[0], "cannot read /nonexistent/weft");
    assert!(error.chain[1].contains("No such file"), "{:?}", error.chain);
    assert_eq!(steps["b"].status, Status::Skipped);
    assert_eq!(
        steps["b"].status_reason.as_deref(),
        Some("upstream `read_file` failed")
    );
    assert_eq!(steps["c"].status, Status::Completed);
    assert_eq!(steps["d"].status, Status::Completed);
    assert_eq!(report.failed_steps().count(), 1);
}

#[test]
fn a_panic_fails_the_step_with_its_message_and_location() {
    let (report, steps) = run(ExecutionMode::ContinueOnFailure, true);
    assert_eq!(report.run.status, Status::Failed);
    let error = steps["explode"].error.clone().unwrap();
    assert_eq!(error.kind, StepErrorKind::Panic);
    assert!(
        error.message.contains("the step exploded on 1"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("failures.rs"),
        "the location is kept: {}",
        error.message
    );
    assert_eq!(
        steps["d"].status,
        Status::Completed,
        "other branches still run"
    );
}

#[test]
fn stop_on_failure_starts_nothing_after_a_failure() {
    let (report, steps) = run(ExecutionMode::StopOnFailure, false);
    assert_eq!(report.run.status, Status::Failed);
    assert_eq!(steps["read_file"].status, Status::Failed);
    // With one step at a time, nothing else had started.
    for id in ["b", "c", "d"] {
        assert_eq!(steps[id].status, Status::Skipped, "{id}");
        assert!(
            steps[id]
                .status_reason
                .as_ref()
                .unwrap()
                .contains("no new step starts after `read_file` failed")
        );
    }
}

#[pipeline]
fn race() -> weft::Result<()> {
    let a = slow(1)?;
    after_failure::id("after_slow").call(&a)?;
    read_file("/nonexistent/weft".to_string())?;
    Ok(())
}

#[test]
fn fail_fast_stops_running_steps_and_discards_their_outputs() {
    let (dir, client) = fresh();
    let config = RunConfig {
        execution_mode: Some(ExecutionMode::FailFast),
        max_parallelism: Some(2),
        ..Default::default()
    };
    let report = client.run_with(race::args(), &config).unwrap();
    let steps = steps(&report);
    assert_eq!(report.run.status, Status::Failed);
    assert_eq!(steps["slow"].status, Status::Stopped);
    assert!(
        steps["slow"]
            .status_reason
            .as_ref()
            .unwrap()
            .contains("`read_file` failed")
    );
    assert_eq!(steps["after_slow"].status, Status::Skipped);
    // The stopped step still runs on its thread (threads cannot be killed); once it returns,
    // its output is refused (see the engine's unit tests) and nothing more is recorded.
    let (open, wake) = &GATE;
    *open.lock().unwrap() = true;
    wake.notify_all();
    assert!(
        client.artifact_versions("race::slow::output").is_err(),
        "no version of a stopped step"
    );
    drop(dir);
}

#[step]
fn consume(x: u64) -> u64 {
    x * 10
}

#[pipeline]
fn reuse(#[default(None)] input: Option<String>) -> weft::Result<()> {
    let _ = input;
    let x = value(4)?;
    consume(&x)?;
    Ok(())
}

#[pipeline]
fn external(version: String) -> weft::Result<()> {
    let input: weft::External<u64> = weft::External::new(version.parse()?);
    consume(input)?;
    Ok(())
}

/// Over 2 KiB: stored as a file, not kept in its record.
#[step]
fn page(x: u64) -> String {
    x.to_string().repeat(2048)
}

#[step]
fn read_page(text: String) -> usize {
    text.len()
}

#[pipeline]
fn paging() -> weft::Result<()> {
    page(4)?;
    Ok(())
}

#[pipeline]
fn external_page(version: String) -> weft::Result<()> {
    let input: weft::External<String> = weft::External::new(version.parse()?);
    read_page(input)?;
    Ok(())
}

#[test]
fn a_damaged_artifact_is_a_clear_error_and_is_left_as_it_is() {
    let (_dir, client) = fresh();
    let report = client.run(paging::args()).unwrap();
    let version = client.output(&steps(&report)["page"], "output").unwrap();
    let path = version.local_path("data.txt").expect("a file");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "4".repeat(2048));

    // Changed bytes: loading fails and says the file is corrupt.
    std::fs::write(&path, "5".repeat(2048)).unwrap();
    let error = format!("{:#}", version.load::<String>().unwrap_err());
    assert!(error.contains("is corrupt"), "{error}");
    // A step reading it fails the same way, and the file is not overwritten.
    let report = client
        .run(external_page::args(version.id.to_string()))
        .unwrap();
    assert_eq!(report.run.status, Status::Failed);
    let failed = &steps(&report)["read_page"];
    let message = failed.error.as_ref().unwrap().chain.join(": ");
    assert!(
        message.contains("cannot load input `text`") && message.contains("is corrupt"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "5".repeat(2048));

    // A missing file.
    std::fs::remove_file(&path).unwrap();
    let error = format!("{:#}", version.load::<String>().unwrap_err());
    assert!(error.contains("is missing"), "{error}");
}

#[test]
fn an_external_input_of_another_type_names_both_types() {
    let (_dir, client) = fresh();
    let report = client.run(reuse::args(None)).unwrap();
    let consumed = client.output(&steps(&report)["consume"], "output").unwrap();
    assert_eq!(consumed.load::<u64>().unwrap(), 40);
    let as_text = consumed.load::<String>().unwrap_err().to_string();
    assert!(
        as_text.contains("`u64`") && as_text.contains("`alloc::string::String`"),
        "{as_text}"
    );
    // The same version, passed back in as an external input, is recorded as such.
    let report = client.run(external::args(consumed.id.to_string())).unwrap();
    assert_eq!(report.run.status, Status::Completed);
    let inputs = client
        .block_on(
            client
                .metadata_store()
                .step_run_inputs(steps(&report)["consume"].id),
        )
        .unwrap();
    assert_eq!(inputs[0].kind, weft::model::InputKind::External);
    assert_eq!(inputs[0].artifact_version.id, consumed.id);
}
