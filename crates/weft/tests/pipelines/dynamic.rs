//! Dynamic pipelines: the function runs at run time; synchronous and submitted calls,
//! futures as inputs, map and product, failures the function handles or not, resume.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use weft::prelude::*;
use weft::{RunConfig, Status};

use crate::{fresh, steps};

#[step]
fn number(x: i64) -> i64 {
    x
}

#[step]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[step]
fn total(values: Vec<i64>) -> i64 {
    values.iter().sum()
}

#[step(outputs(low, high))]
fn halves(x: i64) -> (i64, i64) {
    (x / 2, x - x / 2)
}

#[step]
fn nothing() {}

/// Branches and loops on loaded results; sync calls, submits, a map and a fan-in.
#[pipeline(dynamic)]
fn branching(start: i64) -> weft::Result<()> {
    let first = number(start)?;
    let mut value = first.load()?;
    let mut current = first;
    while value < 10 {
        current = add(&current, 3)?;
        value = current.load()?;
    }
    let (low, high) = halves(&current)?;
    let submitted = add::submit(&low, &high);
    let mapped = add::map(unmapped(&current), vec![1, 2, 3])?;
    let sum = total(&mapped)?;
    let both = total(vec![submitted.clone(), number::submit(100)])?;
    weft::ensure!(submitted.load()? == value, "halves add up");
    weft::ensure!(sum.load()? == 3 * value + 6, "the map adds 1, 2, 3");
    weft::ensure!(both.load()? == value + 100, "futures feed a fan-in");
    nothing()?;
    Ok(())
}

#[test]
fn the_function_runs_at_run_time_and_its_calls_are_recorded_like_static_steps() {
    let (_dir, client) = fresh();
    let report = client.run(branching::args(2)).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    let steps = steps(&report);
    let ids: Vec<&str> = report
        .step_runs
        .iter()
        .map(|s| s.invocation.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "number", "add", "add_2", "add_3", "halves", "add_4", "add_5:0", "add_5:1", "add_5:2",
            "total", "number_2", "total_2", "nothing"
        ],
        "ids follow the static rules, map items are <map>:<index>"
    );
    assert!(
        report
            .step_runs
            .iter()
            .all(|s| s.status == Status::Completed)
    );
    // Lineage as for a static step: inputs, parents, outputs.
    let graph = client
        .block_on(client.metadata_store().run_graph(report.run.id))
        .unwrap();
    let parents_of = |id: &str| -> Vec<String> {
        let child = steps[id].id;
        let mut parents: Vec<String> = graph
            .parents
            .iter()
            .filter(|(_, c)| *c == child)
            .map(|(p, _)| {
                report
                    .step_runs
                    .iter()
                    .find(|s| s.id == *p)
                    .unwrap()
                    .invocation
                    .clone()
            })
            .collect();
        parents.sort();
        parents
    };
    assert_eq!(parents_of("add_4"), ["halves"], "{graph:#?}");
    assert_eq!(
        parents_of("total"),
        ["add_5:0", "add_5:1", "add_5:2", "halves"]
    );
    assert_eq!(parents_of("total_2"), ["add_4", "number_2", "total"]);
    assert_eq!(
        parents_of("nothing"),
        ["total_2"],
        "every call follows the last synchronous call"
    );
    assert_eq!(report.run.invocations, 13);
    let snapshot = client
        .block_on(
            client
                .metadata_store()
                .snapshot(report.run.snapshot_id.as_ref().unwrap()),
        )
        .unwrap();
    assert!(snapshot.dynamic && snapshot.invocations.is_empty());
    assert_eq!(snapshot.parameters["start"], 2);
}

static GATE: Mutex<Option<Arc<Barrier>>> = Mutex::new(None);

#[step]
fn gated(x: i64) -> i64 {
    let gate = GATE.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.wait();
    }
    x
}

/// A synchronous call proceeds while a submitted step (and a consumer waiting for it) has
/// not finished.
#[pipeline(dynamic)]
fn overlapping() -> weft::Result<()> {
    let slow = gated::submit(1);
    let consumer = add::submit(&slow, 1);
    let quick = number(5)?;
    weft::ensure!(quick.load()? == 5, "the synchronous call ran");
    weft::ensure!(
        !slow.is_finished() && !consumer.is_finished(),
        "the submitted step and its consumer are still waiting"
    );
    let gate = GATE.lock().unwrap().clone().unwrap();
    gate.wait();
    weft::ensure!(consumer.load()? == 2, "the consumer ran after its input");
    Ok(())
}

#[test]
fn submitted_steps_and_their_consumers_do_not_block_the_function() {
    let (_dir, client) = fresh();
    *GATE.lock().unwrap() = Some(Arc::new(Barrier::new(2)));
    let config = RunConfig {
        max_parallelism: Some(4),
        ..RunConfig::default()
    };
    let report = client.run_with(overlapping::args(), &config).unwrap();
    *GATE.lock().unwrap() = None;
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
}

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[step]
fn fragile(x: i64) -> weft::Result<i64> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    weft::ensure!(x >= 0, "negative input {x}");
    Ok(x)
}

/// Catches a failed call and recovers with another step.
#[pipeline(dynamic)]
fn recovering() -> weft::Result<()> {
    let value = match fragile(-1) {
        Ok(value) => value,
        Err(error) => {
            weft::ensure!(
                format!("{error:#}").contains("negative input -1"),
                "the step's error comes back: {error:#}"
            );
            number(0)?
        }
    };
    add(&value, 1)?;
    Ok(())
}

#[test]
fn a_failure_the_function_handles_lets_the_run_complete() {
    let (_dir, client) = fresh();
    let report = client.run(recovering::args()).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    let steps = steps(&report);
    assert_eq!(steps["fragile"].status, Status::Failed);
    assert_eq!(steps["number"].status, Status::Completed);
    assert_eq!(steps["add"].status, Status::Completed);
}

/// Submits a failing step and never looks at it.
#[pipeline(dynamic)]
fn ignoring() -> weft::Result<()> {
    let _ignored = fragile::submit(-5);
    Ok(())
}

#[test]
fn a_failure_nobody_awaited_fails_the_run_when_it_settles() {
    let (_dir, client) = fresh();
    let report = client.run(ignoring::args()).unwrap();
    assert_eq!(report.run.status, Status::Failed);
    let reason = report.run.status_reason.clone().unwrap();
    assert!(
        reason.contains("step `fragile` failed and the pipeline function did not handle it"),
        "{reason}"
    );
}

/// Propagates a step's failure with `?`.
#[pipeline(dynamic)]
fn propagating() -> weft::Result<()> {
    let pending = gated::submit(1);
    fragile(-1)?;
    pending.wait()?;
    Ok(())
}

#[test]
fn a_failure_propagated_by_the_function_fails_the_run_and_stops_queued_work() {
    let (_dir, client) = fresh();
    let config = RunConfig {
        max_parallelism: Some(1),
        ..RunConfig::default()
    };
    *GATE.lock().unwrap() = None;
    let report = client.run_with(propagating::args(), &config).unwrap();
    assert_eq!(report.run.status, Status::Failed);
    let reason = report.run.status_reason.clone().unwrap();
    assert!(
        reason.contains("the pipeline function failed") && reason.contains("negative input"),
        "{reason}"
    );
    assert!(
        report.step_runs.iter().all(|s| s.status.is_finished()),
        "nothing is left running: {report:#?}"
    );
}

/// Panics in the middle of the run.
#[pipeline(dynamic)]
fn dynamic_panicking() -> weft::Result<()> {
    number(1)?;
    let _pending = number::submit(2);
    panic!("the function gave up");
}

#[test]
fn a_panicking_function_fails_the_run_and_leaves_nothing_running() {
    let (_dir, client) = fresh();
    let report = client.run(dynamic_panicking::args()).unwrap();
    assert_eq!(report.run.status, Status::Failed);
    let reason = report.run.status_reason.clone().unwrap();
    assert!(
        reason.contains("panicked: the function gave up"),
        "{reason}"
    );
    assert!(report.step_runs.iter().all(|s| s.status.is_finished()));
}

#[pipeline(dynamic)]
fn unequal() -> weft::Result<()> {
    let error = add::map(vec![1, 2, 3], vec![1, 2]).unwrap_err();
    weft::ensure!(
        error.to_string().contains("`a` has 3, `b` has 2"),
        "{error}"
    );
    let combinations = add::product(vec![1, 2, 3], vec![10, 20])?;
    let values = combinations.load()?;
    weft::ensure!(
        values == [11, 21, 12, 22, 13, 23],
        "the last argument varies fastest: {values:?}"
    );
    Ok(())
}

#[test]
fn maps_zip_equal_lengths_and_products_take_every_combination() {
    let (_dir, client) = fresh();
    let report = client.run(unequal::args()).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    assert_eq!(report.step_runs.len(), 6);
}

#[test]
fn submit_and_map_outside_a_dynamic_pipeline_are_clear_errors() {
    let future = number::submit(1);
    let error = future.wait().unwrap_err().to_string();
    assert!(
        error.contains(
            "`number::submit` runs steps concurrently, which only a dynamic pipeline does"
        ),
        "{error}"
    );
    let error = add::map(vec![1], vec![2]).unwrap_err().to_string();
    assert!(error.contains("`add::map`"), "{error}");
}

static SMUGGLED: Mutex<Option<(Output<i64>, StepFuture<i64>)>> = Mutex::new(None);

#[pipeline(dynamic)]
fn smuggling(first: bool) -> weft::Result<()> {
    if first {
        let future = number::submit(2);
        future.wait()?;
        *SMUGGLED.lock().unwrap() = Some((number(1)?, future));
    } else {
        let (output, future) = SMUGGLED.lock().unwrap().clone().unwrap();
        let error = add(&output, 1).unwrap_err().to_string();
        weft::ensure!(error.contains("another"), "{error}");
        let error = add::submit(&future, 1).wait().unwrap_err().to_string();
        weft::ensure!(error.contains("another"), "{error}");
        let error = add::after(&future).call(1, 1).unwrap_err().to_string();
        weft::ensure!(error.contains("another"), "{error}");
    }
    Ok(())
}

#[test]
fn an_output_of_another_run_is_refused() {
    let (_dir, client) = fresh();
    let first = client.run(smuggling::args(true)).unwrap();
    assert_eq!(first.run.status, Status::Completed);
    let second = client.run(smuggling::args(false)).unwrap();
    assert_eq!(second.run.status, Status::Completed, "{second:#?}");
    assert!(second.step_runs.is_empty());
}

static COUNTED: AtomicUsize = AtomicUsize::new(0);
static FAIL_AT: AtomicUsize = AtomicUsize::new(usize::MAX);
static OTHER_PATH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[step(cache = false)]
fn counted(x: i64) -> weft::Result<i64> {
    let call = COUNTED.fetch_add(1, Ordering::SeqCst);
    weft::ensure!(
        call != FAIL_AT.load(Ordering::SeqCst),
        "failing call {call}"
    );
    Ok(x)
}

#[pipeline(dynamic)]
fn dynamic_resumable() -> weft::Result<()> {
    let a = counted(1)?;
    counted(&a)?;
    let offset = if OTHER_PATH.load(Ordering::SeqCst) {
        2
    } else {
        1
    };
    let c = counted(offset)?;
    counted(&c)?;
    Ok(())
}

#[test]
fn a_resumed_dynamic_run_reuses_finished_calls_and_reports_another_path() {
    let (_dir, client) = fresh();
    COUNTED.store(0, Ordering::SeqCst);
    FAIL_AT.store(3, Ordering::SeqCst);
    let failed = client.run(dynamic_resumable::args()).unwrap();
    assert_eq!(failed.run.status, Status::Failed);
    assert_eq!(COUNTED.load(Ordering::SeqCst), 4);

    FAIL_AT.store(usize::MAX, Ordering::SeqCst);
    let resumed = client
        .resume(&failed.run.id.to_string(), &RunConfig::default())
        .unwrap();
    assert_eq!(resumed.run.status, Status::Completed, "{resumed:#?}");
    assert_eq!(resumed.run.resumed_from, Some(failed.run.id));
    assert_eq!(
        COUNTED.load(Ordering::SeqCst),
        5,
        "only the call that failed runs again"
    );
    let reused = steps(&resumed);
    for id in ["counted", "counted_2", "counted_3"] {
        assert_eq!(reused[id].status, Status::Cached, "{id}");
    }
    assert_eq!(reused["counted_4"].status, Status::Completed);

    // The function takes another path on re-execution: reported, never silently reused.
    COUNTED.store(0, Ordering::SeqCst);
    FAIL_AT.store(3, Ordering::SeqCst);
    let failed = client.run(dynamic_resumable::args()).unwrap();
    FAIL_AT.store(usize::MAX, Ordering::SeqCst);
    OTHER_PATH.store(true, Ordering::SeqCst);
    let diverged = client
        .resume(&failed.run.id.to_string(), &RunConfig::default())
        .unwrap();
    OTHER_PATH.store(false, Ordering::SeqCst);
    assert_eq!(diverged.run.status, Status::Failed);
    let error = steps(&diverged)["counted_3"].error.clone().unwrap().message;
    assert!(
        error.contains("took another path")
            && error.contains("`counted_3`")
            && error.contains(r#"{"x":1}"#)
            && error.contains(r#"{"x":2}"#),
        "{error}"
    );
}

#[step]
fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[pipeline(dynamic)]
fn dynamic_ordered() -> weft::Result<()> {
    let first = sleepy::submit(50);
    let second = sleepy::start_after(&first).submit(1);
    let third = sleepy::after(&first).submit(2);
    second.wait()?;
    weft::ensure!(
        first.is_running() || first.is_finished(),
        "second started after first"
    );
    third.wait()?;
    weft::ensure!(first.is_finished(), "third ran after first finished");
    Ok(())
}

#[test]
fn after_waits_for_the_end_and_start_after_for_the_start() {
    let (_dir, client) = fresh();
    let report = client.run(dynamic_ordered::args()).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    let steps = steps(&report);
    assert!(steps["sleepy_2"].started_at >= steps["sleepy"].started_at);
    assert!(steps["sleepy_3"].started_at >= steps["sleepy"].ended_at);
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[step(cache = false)]
fn busy(x: u64) -> u64 {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    x
}

#[pipeline(dynamic)]
fn bounded(limit: usize) -> weft::Result<()> {
    let items: Vec<u64> = (0..8).collect();
    let results = if limit == 0 {
        busy::map(items)?
    } else {
        busy::with(StepOptions::new().max_concurrency(limit)).map(items)?
    };
    weft::ensure!(
        results.load()? == (0..8).collect::<Vec<u64>>(),
        "every item"
    );
    let error = busy::with(StepOptions::new().max_concurrency(0))
        .map(vec![1])
        .unwrap_err();
    weft::ensure!(error.to_string().contains("at least 1"), "{error}");
    Ok(())
}

#[test]
fn a_map_runs_at_most_its_max_concurrency_at_once() {
    let (_dir, client) = fresh();
    let config = RunConfig {
        max_parallelism: Some(4),
        ..RunConfig::default()
    };
    PEAK.store(0, Ordering::SeqCst);
    let limited = client.run_with(bounded::args(2), &config).unwrap();
    assert_eq!(limited.run.status, Status::Completed, "{limited:#?}");
    assert_eq!(PEAK.load(Ordering::SeqCst), 2, "the map's own limit");
    PEAK.store(0, Ordering::SeqCst);
    let unlimited = client.run_with(bounded::args(0), &config).unwrap();
    assert_eq!(unlimited.run.status, Status::Completed);
    assert_eq!(PEAK.load(Ordering::SeqCst), 4, "the run's limit");
}

#[step]
fn words(text: String) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[step]
fn shout(word: String) -> String {
    word.to_uppercase()
}

#[pipeline(dynamic)]
fn shouting(text: String) -> weft::Result<()> {
    let list = words(text)?;
    let loud = shout::map(&list)?;
    weft::ensure!(loud.load()? == ["A", "B", "A"], "item by item, in order");
    let pending = words::submit("x y".to_owned());
    let louder = shout::map(&pending)?;
    weft::ensure!(louder.load()? == ["X", "Y"], "over a future too");
    let error = shout::map(&words::submit("".to_owned()))?;
    weft::ensure!(error.is_empty(), "an empty collection maps to nothing");
    Ok(())
}

#[test]
fn a_map_over_a_collection_output_gives_each_invocation_one_item() {
    let (_dir, client) = fresh();
    let report = client.run(shouting::args("a b a".into())).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    let steps = steps(&report);
    for item in ["shout:0", "shout:1", "shout:2"] {
        assert_eq!(
            steps[item].status,
            Status::Completed,
            "equal items at other positions are not cache hits of each other"
        );
    }
    let graph = client
        .block_on(client.metadata_store().run_graph(report.run.id))
        .unwrap();
    let inputs: Vec<(u32, String)> = graph
        .inputs
        .iter()
        .filter(|(step_run, _)| [steps["shout:0"].id, steps["shout:2"].id].contains(step_run))
        .map(|(_, input)| (input.position, input.kind.to_string()))
        .collect();
    assert_eq!(inputs.len(), 2);
    assert!(inputs.contains(&(0, "item".into())) && inputs.contains(&(2, "item".into())));
}

#[step]
fn numbers_and_words(count: u64) -> (Vec<u64>, Vec<String>) {
    (
        (0..count).collect(),
        (0..count).map(|i| format!("\"{i}\",]")).collect(),
    )
}

#[step]
fn quoted_length(word: String) -> u64 {
    word.len() as u64
}

#[step]
fn square_item(x: u64) -> u64 {
    x * x
}

#[pipeline(dynamic)]
fn over_stored_collections(count: u64) -> weft::Result<()> {
    let (numbers, words) = numbers_and_words(count)?;
    let squares = square_item::map(&numbers)?;
    let lengths = quoted_length::map(&words)?;
    let squares = squares.load()?;
    let lengths = lengths.load()?;
    for i in 0..count {
        weft::ensure!(squares[i as usize] == i * i, "item {i} of the .npy array");
        let expected = format!("\"{i}\",]").len() as u64;
        weft::ensure!(
            lengths[i as usize] == expected,
            "item {i} of the JSON array"
        );
    }
    Ok(())
}

#[test]
fn a_map_over_collections_stored_as_files_reads_each_item() {
    let (_dir, client) = fresh();
    let report = client.run(over_stored_collections::args(1500)).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    // 12 KB and 15 KB: files, not kept in their records.
    assert_eq!(report.step_runs.len(), 3001);
}

#[pipeline(dynamic)]
fn modes() -> weft::Result<()> {
    // The failure comes once the slow step runs, whatever the machine's load.
    let slow = sleepy::submit(1000);
    let doomed = fragile::start_after(&slow).submit(-1);
    let (low, high) = halves::submit(9).outputs()?;
    let after_failure = add::after(&doomed).submit(&low, &high);
    let _ = doomed.wait();
    let _ = slow.wait();
    let _ = after_failure.wait();
    Ok(())
}

#[test]
fn dynamic_runs_follow_their_execution_mode() {
    let run = |mode: weft::ExecutionMode| {
        let (dir, client) = fresh();
        let config = RunConfig {
            execution_mode: Some(mode),
            max_parallelism: Some(4),
            no_cache: true,
            ..RunConfig::default()
        };
        let report = client.run_with(modes::args(), &config).unwrap();
        drop(dir);
        (report.run.status, steps(&report))
    };
    // The function saw every failure it waited for, so the run completes; what ran depends
    // on the mode.
    let (status, steps) = run(weft::ExecutionMode::ContinueOnFailure);
    assert_eq!(status, Status::Completed);
    assert_eq!(steps["fragile"].status, Status::Failed);
    assert_eq!(
        steps["sleepy"].status,
        Status::Completed,
        "independent work goes on"
    );
    assert_eq!(
        steps["halves"].status,
        Status::Completed,
        "tuple outputs, per output"
    );
    assert_eq!(
        steps["add"].status,
        Status::Skipped,
        "what follows the failure is skipped"
    );

    let (status, steps) = run(weft::ExecutionMode::FailFast);
    assert_eq!(status, Status::Completed);
    assert_eq!(
        steps["sleepy"].status,
        Status::Stopped,
        "fail_fast stops running steps"
    );
}

static CACHED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[step]
fn remembered(x: i64) -> i64 {
    CACHED_CALLS.fetch_add(1, Ordering::SeqCst);
    x * 10
}

#[pipeline(dynamic)]
fn remembering(x: i64) -> weft::Result<()> {
    let first = remembered(x)?;
    let items = remembered::map(vec![1, 2, 3])?;
    weft::ensure!(
        first.load()? == x * 10 && items.load()? == [10, 20, 30],
        "values"
    );
    Ok(())
}

#[test]
fn dynamic_steps_hit_the_cache_like_static_ones() {
    let (_dir, client) = fresh();
    CACHED_CALLS.store(0, Ordering::SeqCst);
    let first = client.run(remembering::args(7)).unwrap();
    assert_eq!(first.run.status, Status::Completed);
    assert_eq!(CACHED_CALLS.load(Ordering::SeqCst), 4);
    let second = client.run(remembering::args(7)).unwrap();
    assert_eq!(second.run.status, Status::Completed);
    assert_eq!(
        CACHED_CALLS.load(Ordering::SeqCst),
        4,
        "nothing computed again"
    );
    assert!(second.step_runs.iter().all(|s| s.status == Status::Cached));
    let third = client.run(remembering::args(8)).unwrap();
    assert_eq!(third.run.status, Status::Completed);
    assert_eq!(
        CACHED_CALLS.load(Ordering::SeqCst),
        5,
        "only the changed call"
    );
}

/// Each step run's parents, by invocation id, sorted.
fn parents_by_invocation(
    client: &weft::Client,
    report: &weft::RunReport,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let graph = client
        .block_on(client.metadata_store().run_graph(report.run.id))
        .unwrap();
    let invocation = |id: &weft::StepRunId| {
        report
            .step_runs
            .iter()
            .find(|s| s.id == *id)
            .map(|s| s.invocation.clone())
            .expect("a parent of this run")
    };
    let mut parents = std::collections::BTreeMap::<String, Vec<String>>::new();
    for step_run in &report.step_runs {
        parents.entry(step_run.invocation.clone()).or_default();
    }
    for (parent, child) in &graph.parents {
        parents
            .get_mut(&invocation(child))
            .unwrap()
            .push(invocation(parent));
    }
    for list in parents.values_mut() {
        list.sort();
    }
    parents
}

#[test]
fn a_cached_rerun_records_every_hit_with_its_original_and_lineage() {
    // Cache hits of a dynamic pipeline resolve before their records are written (which
    // happens in batches): every record must still be there by the end, in this run, with the
    // same lineage as the run it reuses.
    let (_dir, client) = fresh();
    let first = client.run(branching::args(2)).unwrap();
    let second = client.run(branching::args(2)).unwrap();
    assert_eq!(second.run.status, Status::Completed, "{second:#?}");
    assert_eq!(second.step_runs.len(), first.step_runs.len());
    for (cached, original) in second.step_runs.iter().zip(&first.step_runs) {
        assert_eq!(cached.invocation, original.invocation);
        assert_eq!(cached.status, Status::Cached, "{cached:#?}");
        assert_eq!(cached.original_step_run, Some(original.id));
        assert_eq!(cached.run_id, second.run.id);
    }
    assert_eq!(
        parents_by_invocation(&client, &second),
        parents_by_invocation(&client, &first)
    );
    let outputs = |report: &weft::RunReport, invocation: &str| {
        let step_run = report
            .step_runs
            .iter()
            .find(|s| s.invocation == invocation)
            .unwrap();
        client
            .block_on(client.metadata_store().step_run_outputs(step_run.id))
            .unwrap()
            .into_iter()
            .map(|output| output.artifact_version.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(outputs(&second, "total_2"), outputs(&first, "total_2"));
}

#[pipeline(dynamic)]
fn misordered() -> weft::Result<()> {
    let error = number::after("later").call(1).unwrap_err().to_string();
    weft::ensure!(error.contains("no invocation of that id"), "{error}");
    let error = number::start_after("later")
        .submit(1)
        .wait()
        .unwrap_err()
        .to_string();
    weft::ensure!(error.contains("no invocation of that id"), "{error}");
    let first = number(1)?;
    number::after("number").call(2)?;
    number::start_after(&first).submit(3).wait()?;
    Ok(())
}

#[test]
fn ordering_on_an_invocation_that_does_not_exist_yet_is_refused() {
    let (_dir, client) = fresh();
    let report = client.run(misordered::args()).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    assert_eq!(report.step_runs.len(), 3);
}

#[pipeline(dynamic)]
fn failing_early(limit: usize) -> weft::Result<()> {
    let pending =
        busy::with(StepOptions::new().max_concurrency(limit)).map(vec![1, 2, 3, 4, 5, 6])?;
    let _keep = pending;
    weft::bail!("the function gives up at once");
}

#[test]
fn work_waiting_when_the_function_fails_is_not_started() {
    let (_dir, client) = fresh();
    let config = RunConfig {
        max_parallelism: Some(2),
        ..RunConfig::default()
    };
    let report = client.run_with(failing_early::args(1), &config).unwrap();
    assert_eq!(report.run.status, Status::Failed);
    let started = report
        .step_runs
        .iter()
        .filter(|s| s.status == Status::Completed)
        .count();
    assert!(
        started <= 1,
        "at most the one item already running: {report:#?}"
    );
    assert!(report.step_runs.iter().all(|s| s.status.is_finished()));
}

#[pipeline(dynamic)]
fn waiting_on_waiting() -> weft::Result<()> {
    let slow = sleepy::submit(100);
    let held = number::start_after(&slow).submit(1);
    let after_held = add::after(&held).submit(1, 2);
    let limited = busy::with(StepOptions::new().max_concurrency(1)).map(vec![7, 8, 9])?;
    let after_last = add::after(&limited[2]).submit(3, 4);
    after_held.wait()?;
    after_last.wait()?;
    weft::ensure!(
        held.is_finished() && limited[2].is_finished(),
        "upstreams ran first"
    );
    Ok(())
}

#[test]
fn calls_after_invocations_still_waiting_to_be_scheduled_wait_for_them() {
    let (_dir, client) = fresh();
    let report = client.run(waiting_on_waiting::args()).unwrap();
    assert_eq!(report.run.status, Status::Completed, "{report:#?}");
    let steps = steps(&report);
    assert!(steps["add"].started_at >= steps["number"].ended_at);
    assert!(steps["add_2"].started_at >= steps["busy:2"].ended_at);
}

#[pipeline(dynamic)]
fn wide_map(count: i64) -> weft::Result<()> {
    let items = number::map((0..count).collect::<Vec<i64>>())?;
    total(&items)?;
    Ok(())
}

#[test]
fn runs_show_counts_a_wide_map_in_one_row_and_lists_its_items_when_asked() {
    let (dir, client) = fresh();
    let report = client.run(wide_map::args(40)).unwrap();
    assert_eq!(report.step_runs.len(), 41);
    let stores = weft::StoreConfig::in_folder(dir.path());
    let run = report.run.id.to_string();
    let shown = weft::inspect::output(&stores, &["runs", "show", &run]).unwrap();
    assert!(shown.contains("number:* (40 items)"), "{shown}");
    assert!(shown.contains("40 completed"), "{shown}");
    // The fan-in names the map once, not its 40 items.
    assert!(shown.contains("number (40 items)"), "{shown}");
    assert!(!shown.contains("number:17"), "{shown}");
    assert!(shown.contains("`--items` lists each"), "{shown}");
    let every = weft::inspect::output(&stores, &["runs", "show", &run, "--items"]).unwrap();
    assert!(
        every.contains("number:17") && every.contains("number:39"),
        "{every}"
    );
    assert!(!every.contains("items of maps are counted"), "{every}");
    // JSON always has every step.
    let json = weft::inspect::output(&stores, &["runs", "show", &run, "--json"]).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["steps"].as_array().unwrap().len(), 41);
}

#[test]
fn runs_show_says_a_few_notes_of_a_map_shown_as_one_row() {
    let (dir, client) = fresh();
    client.run(wide_map::args(40)).unwrap();
    // Rerun: every item is a cache hit, with a reason to say.
    let rerun = client.run(wide_map::args(40)).unwrap();
    assert!(
        rerun
            .step_runs
            .iter()
            .all(|step| step.status == Status::Cached),
        "{rerun:#?}"
    );
    let stores = weft::StoreConfig::in_folder(dir.path());
    let run = rerun.run.id.to_string();
    let notes = |text: &str| {
        text.lines()
            .filter(|line| line.starts_with("step `number:"))
            .count()
    };
    let shown = weft::inspect::output(&stores, &["runs", "show", &run]).unwrap();
    assert_eq!(notes(&shown), 5, "{shown}");
    assert!(
        shown.contains("35 more items of `number` have notes: `--items` shows them"),
        "{shown}"
    );
    assert!(shown.contains("step `total` cached"), "{shown}");
    let every = weft::inspect::output(&stores, &["runs", "show", &run, "--items"]).unwrap();
    assert_eq!(notes(&every), 40, "{every}");
    assert!(!every.contains("more items of"), "{every}");
}

#[test]
fn runs_show_lists_only_the_steps_of_a_status_when_asked() {
    let (dir, client) = fresh();
    let report = client.run(recovering::args()).unwrap();
    let stores = weft::StoreConfig::in_folder(dir.path());
    let run = report.run.id.to_string();
    let failed =
        weft::inspect::output(&stores, &["runs", "show", &run, "--status", "failed"]).unwrap();
    assert!(failed.contains("fragile"), "{failed}");
    assert!(
        !failed.contains("number") && !failed.contains("add"),
        "{failed}"
    );
    assert!(
        failed.contains("Only the steps with status failed: 1 of 3."),
        "{failed}"
    );
    let json = weft::inspect::output(
        &stores,
        &["runs", "show", &run, "--status", "completed", "--json"],
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut names: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["add", "number"]);
    let none =
        weft::inspect::output(&stores, &["runs", "show", &run, "--status", "pending"]).unwrap();
    assert!(none.contains("0 of 3"), "{none}");
    let wrong = weft::inspect::output(&stores, &["runs", "show", &run, "--status", "sideways"])
        .unwrap_err()
        .to_string();
    assert!(
        wrong.contains("sideways") && wrong.contains("completed, ") && wrong.contains("pending"),
        "{wrong}"
    );
}

#[test]
fn lineage_of_a_fan_in_over_more_inputs_than_one_statement_takes() {
    // SQLite takes at most 32,766 parameters in one statement.
    let (dir, client) = fresh();
    let report = client.run(wide_map::args(33_000)).unwrap();
    let fan_in = steps(&report)["total"].clone();
    let output = client
        .block_on(client.metadata_store().step_run_outputs(fan_in.id))
        .unwrap()[0]
        .artifact_version
        .id
        .to_string();
    let stores = weft::StoreConfig::in_folder(dir.path());
    let lineage = weft::inspect::output(&stores, &["lineage", &output]).unwrap();
    assert!(lineage.contains("number:32999"), "{}", &lineage[..2000]);
    let shown = weft::inspect::output(&stores, &["runs", "show", "latest"]).unwrap();
    assert!(shown.contains("number:* (33000 items)"), "{shown}");
}
