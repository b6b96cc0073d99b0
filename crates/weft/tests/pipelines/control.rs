//! Retries, timeouts, hooks, step metadata, stop requests, crash reconciliation and resume.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use weft::model::{MetadataSource, NewRun, Owner, Resource, StepErrorKind, StepRun};
use weft::prelude::*;
use weft::{Clock, ManualClock, RunConfig, Status, StoreConfig};

use crate::{damage_content_hash, fresh, steps};

/// A client whose clock moves only when the engine waits, starting now.
fn manual() -> (tempfile::TempDir, Client, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now(), 0.5));
    let client =
        Client::open_with_clock(&StoreConfig::in_folder(dir.path()), clock.clone()).unwrap();
    (dir, client, clock)
}

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);
static HOOKS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn started(context: &weft::StepContext) {
    HOOKS
        .lock()
        .unwrap()
        .push(format!("start {}", context.attempt));
}

fn succeeded(context: &weft::StepContext) {
    HOOKS
        .lock()
        .unwrap()
        .push(format!("success {}", context.attempt));
}

fn failed(context: &weft::StepContext, error: &weft::model::StepError) {
    HOOKS
        .lock()
        .unwrap()
        .push(format!("failure {} {}", context.attempt, error.message));
}

/// Fails on its first two calls.
#[step(retry(max_attempts = 3, delay = "10s", backoff = 2.0, jitter = false), on_start = started, on_success = succeeded, on_failure = failed)]
fn flaky(x: u32) -> weft::Result<u32> {
    let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    weft::ensure!(call > 2, "transient failure {call}");
    Ok(x)
}

#[pipeline]
fn retried() -> weft::Result<()> {
    flaky(7)?;
    Ok(())
}

#[test]
fn failed_attempts_are_retried_with_backoff_each_as_its_own_step_run() {
    let (_dir, client, clock) = manual();
    let start = clock.now();
    let report = client
        .run_with(
            retried::args(),
            &RunConfig {
                no_cache: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        report.run.status,
        Status::Completed,
        "{:?}",
        report.step_runs
    );
    let attempts: Vec<(u32, Status)> = report
        .step_runs
        .iter()
        .map(|s| (s.attempt, s.status))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Status::Retried),
            (2, Status::Retried),
            (3, Status::Completed)
        ]
    );
    assert_eq!(
        report.step_runs[0].error.as_ref().unwrap().message,
        "transient failure 1"
    );
    // Backoff: 10 s, then 20 s, waited on the manual clock (no test time spent).
    let waits: Vec<i64> = clock
        .waits()
        .iter()
        .map(|at| (*at - start).num_seconds())
        .collect();
    assert_eq!(waits, [10, 30]);
    // Hooks: start on every attempt, success once, failure never (the last attempt worked).
    assert_eq!(
        *HOOKS.lock().unwrap(),
        ["start 1", "start 2", "start 3", "success 3"]
    );
    // The step run as found later is the last attempt.
    let found = client.step_run(&report.run, "flaky").unwrap();
    assert_eq!((found.attempt, found.status), (3, Status::Completed));
}

static FATAL_CALLS: AtomicUsize = AtomicUsize::new(0);

#[step(retry = 5)]
fn fatal(x: u32) -> weft::Result<u32> {
    FATAL_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(weft::non_retryable(weft::Error::msg(format!(
        "the input {x} is malformed"
    ))))
}

#[pipeline]
fn doomed() -> weft::Result<()> {
    fatal(3)?;
    Ok(())
}

#[test]
fn non_retryable_errors_are_not_retried() {
    let (_dir, client, clock) = manual();
    let report = client.run(doomed::args()).unwrap();
    assert_eq!(report.run.status, Status::Failed);
    assert_eq!(report.step_runs.len(), 1);
    let error = report.step_runs[0].error.clone().unwrap();
    assert!(!error.retryable);
    assert_eq!(error.message, "the input 3 is malformed");
    assert_eq!(FATAL_CALLS.load(Ordering::SeqCst), 1);
    assert!(clock.waits().is_empty());
}

/// Shut until the test opens it.
struct Gate {
    open: Mutex<bool>,
    wake: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    const fn new() -> Self {
        Self {
            open: Mutex::new(false),
            wake: Condvar::new(),
            entered: AtomicUsize::new(0),
        }
    }

    fn wait(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let _open = self
            .wake
            .wait_timeout_while(open, Duration::from_secs(30), |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.wake.notify_all();
    }

    fn wait_for_entries(&self, count: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.entered.load(Ordering::SeqCst) < count && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
    }
}

static STUCK: Gate = Gate::new();

#[step(timeout = "5s", retry(max_attempts = 2, delay = "1s", jitter = false))]
fn stuck(x: u32) -> u32 {
    STUCK.wait();
    x
}

#[step]
fn after_stuck(x: u32) -> u32 {
    x
}

#[pipeline]
fn hanging() -> weft::Result<()> {
    let x = stuck(1)?;
    after_stuck(&x)?;
    Ok(())
}

#[test]
fn an_attempt_past_its_timeout_fails_and_its_late_result_is_dropped() {
    let (_dir, client, clock) = manual();
    let start = clock.now();
    let report = client.run(hanging::args()).unwrap();
    STUCK.open();
    assert_eq!(report.run.status, Status::Failed);
    let steps = steps(&report);
    let attempts: Vec<(u32, Status)> = report
        .step_runs
        .iter()
        .filter(|s| s.invocation == "stuck")
        .map(|s| (s.attempt, s.status))
        .collect();
    assert_eq!(
        attempts,
        [(1, Status::Retried), (2, Status::Failed)],
        "each attempt timed out"
    );
    let error = steps["stuck"].error.clone().unwrap();
    assert_eq!(error.kind, StepErrorKind::Timeout);
    assert_eq!(error.message, "the step timed out after 5.0 s");
    assert_eq!(steps["after_stuck"].status, Status::Skipped);
    let waits: Vec<i64> = clock
        .waits()
        .iter()
        .map(|at| (*at - start).num_seconds())
        .collect();
    assert_eq!(waits, [5, 6, 11], "timeout, retry delay, timeout");
    assert!(
        client.artifact_versions("hanging::stuck::output").is_err(),
        "no output of a timed-out attempt"
    );
}

#[step]
fn reporting(x: u32) -> weft::Result<u32> {
    weft::log_metadata("accuracy", 0.93)?;
    weft::log_metadata("accuracy", 0.95)?;
    weft::log_metadata("confusion", vec![vec![1, 0], vec![0, 1]])?;
    weft::add_output_tags("output", &["best", "iris"])?;
    let context = weft::context().unwrap();
    weft::ensure!(context.invocation == "reporting" && context.attempt == 1);
    Ok(x)
}

#[pipeline]
fn reported() -> weft::Result<()> {
    reporting(1)?;
    Ok(())
}

#[test]
fn steps_record_metadata_and_tag_their_outputs() {
    let (_dir, client) = fresh();
    let report = client.run(reported::args()).unwrap();
    assert_eq!(
        report.run.status,
        Status::Completed,
        "{:?}",
        report.step_runs
    );
    let step_run = &steps(&report)["reporting"];
    let entries = client
        .block_on(
            client
                .metadata_store()
                .metadata(Resource::StepRun(step_run.id)),
        )
        .unwrap();
    let entries: Vec<(&str, serde_json::Value, MetadataSource)> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.clone(), e.source))
        .collect();
    assert_eq!(
        entries,
        [
            ("accuracy", serde_json::json!(0.95), MetadataSource::User),
            (
                "confusion",
                serde_json::json!([[1, 0], [0, 1]]),
                MetadataSource::User
            ),
        ]
    );
    assert_eq!(
        client.output(step_run, "output").unwrap().tags,
        ["best", "iris"]
    );
    let run = client
        .block_on(
            client
                .metadata_store()
                .metadata(Resource::Run(report.run.id)),
        )
        .unwrap();
    assert!(
        run.iter()
            .any(|e| e.key == "weft_version" && e.source == MetadataSource::System)
    );
    assert!(
        weft::log_metadata("outside", 1).is_err(),
        "only inside a step"
    );
}

static HOLD: Gate = Gate::new();

#[step]
fn holding(x: u32) -> u32 {
    HOLD.wait();
    x
}

#[step]
fn next_one(x: u32) -> u32 {
    x + 1
}

#[pipeline]
fn stoppable() -> weft::Result<()> {
    let x = holding(1)?;
    let y = next_one(&x)?;
    next_one(&y)?;
    Ok(())
}

#[test]
fn a_stopped_run_starts_nothing_new_and_ends_stopped() {
    let (_dir, client) = fresh();
    let config = RunConfig {
        no_cache: true,
        ..Default::default()
    };
    let runner = std::thread::spawn({
        let client = client.clone();
        move || client.run_with(stoppable::args(), &config).unwrap()
    });
    HOLD.wait_for_entries(1);
    let stopping = client.stop("latest").unwrap();
    assert_eq!(stopping.status, Status::Stopping);
    HOLD.open();
    let report = runner.join().unwrap();
    assert_eq!(report.run.status, Status::Stopped);
    let steps = steps(&report);
    assert_eq!(
        steps["holding"].status,
        Status::Completed,
        "running steps finish"
    );
    assert_eq!(steps["next_one"].status, Status::Skipped);
    assert_eq!(steps["next_one_2"].status, Status::Skipped);
    assert!(
        client.stop(&report.run.id.to_string()).is_err(),
        "a finished run cannot stop"
    );
}

#[test]
fn runs_whose_process_died_are_failed_with_their_running_steps() {
    let (_dir, client) = fresh();
    let snapshot = client
        .compile(stoppable::args(), &RunConfig::default())
        .unwrap();
    let me = weft_engine::owner::current();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let store = client.metadata_store();
    let dead = client
        .block_on(store.create_run(NewRun {
            snapshot: snapshot.clone(),
            config: serde_json::json!({}),
            owner: Some(Owner {
                pid,
                started: Some(1),
                ..me.clone()
            }),
            resumed_from: None,
            tags: vec![],
        }))
        .unwrap();
    let mut step_run = weft::model::NewStepRun {
        id: weft::StepRunId::new(),
        run_id: dead.id,
        invocation: "holding".into(),
        step: snapshot.invocations[0].step.to_string(),
        code_hash: String::new(),
        parameters: (&serde_json::json!({})).into(),
        config: (&serde_json::json!({})).into(),
        status: Status::Running,
        status_reason: None,
        error: None,
        inputs: vec![],
        parents: vec![],
        cache_key: None,
        cache_parts: None,
        cache_expires_at: None,
        original_step_run: None,
    };
    client
        .block_on(store.create_step_runs(vec![step_run.clone()]))
        .unwrap();
    // A run of a live process elsewhere, heard from recently: left alone.
    let elsewhere = client
        .block_on(store.create_run(NewRun {
            snapshot,
            config: serde_json::json!({}),
            owner: Some(Owner {
                host: "another-host".into(),
                pid: 1,
                started: None,
                pid_namespace: None,
                boot_id: None,
            }),
            resumed_from: None,
            tags: vec![],
        }))
        .unwrap();
    step_run.run_id = elsewhere.id;
    step_run.id = weft::StepRunId::new();
    client
        .block_on(store.create_step_runs(vec![step_run]))
        .unwrap();

    let reconciled = client.reconcile().unwrap();
    assert_eq!(reconciled.len(), 1);
    assert_eq!(reconciled[0].run.id, dead.id);
    assert!(
        reconciled[0]
            .reason
            .starts_with("orchestrator process died"),
        "{}",
        reconciled[0].reason
    );
    let run = client.run_record(&dead.id.to_string()).unwrap();
    assert_eq!(run.status, Status::Failed);
    let step_runs = client.step_runs(&run).unwrap();
    assert_eq!(step_runs[0].status, Status::Failed);
    assert!(
        step_runs[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("orchestrator process died")
    );
    assert_eq!(
        client.run_record(&elsewhere.id.to_string()).unwrap().status,
        Status::Running
    );
    assert!(client.reconcile().unwrap().is_empty(), "nothing more to do");
}

static BROKEN: AtomicBool = AtomicBool::new(true);
static COMPUTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[step]
fn stage(name: String) -> weft::Result<String> {
    COMPUTED.lock().unwrap().push(name.clone());
    weft::ensure!(
        !(name == "c" && BROKEN.load(Ordering::SeqCst)),
        "c is broken"
    );
    Ok(name)
}

#[step]
fn join(parts: Vec<String>) -> String {
    COMPUTED.lock().unwrap().push("join".into());
    parts.concat()
}

/// Runs that neither read nor write the cache: what is reused comes from the resumed run.
fn without_cache() -> RunConfig {
    RunConfig {
        no_cache: true,
        ..Default::default()
    }
}

#[pipeline]
fn resumable() -> weft::Result<()> {
    let a = stage("a".to_string())?;
    let b = stage("b".to_string())?;
    let c = stage("c".to_string())?;
    join(vec![a, b, c])?;
    Ok(())
}

/// What `join` returned in a run's step runs (`steps`).
fn joined(client: &Client, steps: &BTreeMap<String, StepRun>) -> String {
    let output = client.output(&steps["join"], "output").unwrap();
    output.load::<String>().unwrap()
}

/// A run of `resumable` that fails (`c` is broken), without the cache.
fn failed_without_cache(client: &Client) -> weft::RunReport {
    let failed = client
        .run_with(resumable::args(), &without_cache())
        .unwrap();
    assert_eq!(failed.run.status, Status::Failed);
    failed
}

/// Repairs `c`, resumes `failed` without the cache, and returns the resumed run, completed,
/// with the stages it computed, sorted.
fn resumed_repaired(client: &Client, failed: &weft::RunReport) -> (weft::RunReport, Vec<String>) {
    COMPUTED.lock().unwrap().clear();
    BROKEN.store(false, Ordering::SeqCst);
    let resumed = client
        .resume(&failed.run.id.to_string(), &without_cache())
        .unwrap();
    assert_eq!(resumed.run.status, Status::Completed);
    let mut computed = COMPUTED.lock().unwrap().clone();
    computed.sort();
    (resumed, computed)
}

#[test]
fn a_resumed_run_reuses_finished_steps_even_without_the_cache() {
    let (_dir, client) = fresh();
    let failed = failed_without_cache(&client);

    let (resumed, computed) = resumed_repaired(&client, &failed);
    assert_eq!(resumed.run.resumed_from, Some(failed.run.id));
    assert_eq!(
        resumed.run.snapshot_id, failed.run.snapshot_id,
        "the same plan"
    );
    assert_eq!(computed, ["c", "join"], "only what had not finished");
    let steps = steps(&resumed);
    assert_eq!(steps["stage"].status, Status::Cached);
    assert!(
        steps["stage"]
            .status_reason
            .as_ref()
            .unwrap()
            .starts_with("resumed: reuses step run")
    );
    assert_eq!(joined(&client, &steps), "abc");
    let error = client
        .resume("nope", &without_cache())
        .unwrap_err()
        .to_string();
    assert!(error.contains("no run matches `nope`"), "{error}");
}

#[test]
fn a_finished_step_whose_record_is_damaged_is_computed_again_on_resume() {
    let (dir, client) = fresh();
    let failed = failed_without_cache(&client);
    let b = client.output(&steps(&failed)["stage_2"], "output").unwrap();
    damage_content_hash(dir.path(), b.id, "damaged");

    let (resumed, computed) = resumed_repaired(&client, &failed);
    assert_eq!(computed, ["b", "c", "join"], "b's record cannot be reused");
    let steps = steps(&resumed);
    assert_eq!(steps["stage"].status, Status::Cached);
    assert_eq!(steps["stage_2"].status, Status::Completed);
    assert_eq!(joined(&client, &steps), "abc");
}

#[test]
fn a_resume_without_the_cache_computes_what_did_not_finish_even_if_cached_elsewhere() {
    let (_dir, client) = fresh();
    let failed = client.run(resumable::args()).unwrap();
    assert_eq!(failed.run.status, Status::Failed);
    BROKEN.store(false, Ordering::SeqCst);
    let repaired = client.run(resumable::args()).unwrap();
    assert_eq!(
        repaired.run.status,
        Status::Completed,
        "c and join now cached"
    );

    let (resumed, computed) = resumed_repaired(&client, &failed);
    assert_eq!(
        computed,
        ["c", "join"],
        "`--no-cache` holds although the original was compiled with caching on"
    );
    let steps = steps(&resumed);
    assert_eq!(steps["stage_3"].status, Status::Completed);
    assert_eq!(steps["stage_3"].cache_key, None, "no entry recorded either");
}

static DYNAMIC_HOLD: Gate = Gate::new();

#[step]
fn held_dynamically(x: u32) -> u32 {
    DYNAMIC_HOLD.wait();
    x
}

#[pipeline(dynamic)]
fn stoppable_dynamic() -> weft::Result<()> {
    let x = held_dynamically(1)?;
    let error = next_one(&x).unwrap_err();
    weft::ensure!(
        format!("{error:#}").contains("the run was stopped"),
        "a call after the stop is refused: {error:#}"
    );
    Err(error)
}

#[test]
fn a_stopped_dynamic_run_refuses_new_calls_and_ends_stopped() {
    let (_dir, client) = fresh();
    let runner = std::thread::spawn({
        let client = client.clone();
        move || client.run(stoppable_dynamic::args()).unwrap()
    });
    DYNAMIC_HOLD.wait_for_entries(1);
    assert_eq!(client.stop("latest").unwrap().status, Status::Stopping);
    DYNAMIC_HOLD.open();
    let report = runner.join().unwrap();
    assert_eq!(report.run.status, Status::Stopped, "{report:#?}");
    let steps = steps(&report);
    assert_eq!(steps["held_dynamically"].status, Status::Completed);
    assert_eq!(steps["next_one"].status, Status::Skipped);
}
