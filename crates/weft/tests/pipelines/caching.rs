//! Caching: what hits, what misses, and what makes a cached result unusable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use weft::model::CacheExpiry;
use weft::prelude::*;
use weft::{Clock, RunConfig, Status};

use crate::{damage_content_hash, fresh, steps};

/// How often each counted step's body ran, by step.
static CALLS: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

fn calls(step: usize) -> usize {
    CALLS[step].load(Ordering::SeqCst)
}

#[step]
fn absolute(x: i64) -> i64 {
    CALLS[0].fetch_add(1, Ordering::SeqCst);
    x.abs()
}

#[step]
fn double(x: i64) -> i64 {
    CALLS[1].fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[pipeline]
fn doubling(x: i64) -> weft::Result<()> {
    let a = absolute(x)?;
    double(&a)?;
    Ok(())
}

fn status(report: &weft::RunReport, invocation: &str) -> Status {
    steps(report)[invocation].status
}

#[test]
fn identical_runs_reuse_results_and_changed_parameters_do_not() {
    let (_dir, client) = fresh();
    let before = (calls(0), calls(1));
    let first = client.run(doubling::args(3)).unwrap();
    assert_eq!(
        (status(&first, "absolute"), status(&first, "double")),
        (Status::Completed, Status::Completed)
    );

    let second = client.run(doubling::args(3)).unwrap();
    assert_eq!(second.run.status, Status::Completed);
    assert_eq!(
        (status(&second, "absolute"), status(&second, "double")),
        (Status::Cached, Status::Cached)
    );
    assert_eq!(
        (calls(0), calls(1)),
        (before.0 + 1, before.1 + 1),
        "a cached step never runs"
    );
    // A cached step run points at the original and reuses its versions: no copy.
    let original = &steps(&first)["double"];
    let cached = &steps(&second)["double"];
    assert_eq!(cached.original_step_run, Some(original.id));
    assert_eq!(cached.cache_key, original.cache_key);
    let reused = client.output(cached, "output").unwrap();
    assert_eq!(reused.id, client.output(original, "output").unwrap().id);
    assert_eq!(reused.load::<i64>().unwrap(), 6);

    // Another parameter: a miss, and the run computes again.
    let third = client.run(doubling::args(4)).unwrap();
    assert_eq!(
        (status(&third, "absolute"), status(&third, "double")),
        (Status::Completed, Status::Completed)
    );
}

#[test]
fn an_upstream_that_reproduces_the_same_bytes_lets_downstream_hit() {
    let (_dir, client) = fresh();
    client.run(doubling::args(5)).unwrap();
    // |-5| = |5|: `absolute` runs again (another parameter) but writes the same bytes, so
    // `double`'s input has the same content hash (early cutoff).
    let report = client.run(doubling::args(-5)).unwrap();
    assert_eq!(status(&report, "absolute"), Status::Completed);
    assert_eq!(status(&report, "double"), Status::Cached);
    assert_eq!(
        client
            .output(&steps(&report)["double"], "output")
            .unwrap()
            .load::<i64>()
            .unwrap(),
        10
    );
}

#[test]
fn code_is_part_of_the_key_and_settings_are_not() {
    let (_dir, client) = fresh();
    let config = RunConfig::default();
    let snapshot = client.compile(doubling::args(7), &config).unwrap();
    client.run_snapshot(snapshot.clone(), &config).unwrap();

    // Another body of `double` has another code hash: a miss.
    let mut edited = snapshot.clone();
    edited.invocations[1].code_hash = "another body".into();
    let report = client.run_snapshot(edited, &config).unwrap();
    assert_eq!(
        (status(&report, "absolute"), status(&report, "double")),
        (Status::Cached, Status::Completed)
    );

    // Other settings (retries, timeouts: what attributes change) leave the key alone.
    let mut retried = snapshot;
    std::sync::Arc::make_mut(&mut retried.invocations[1].config)
        .retry
        .max_attempts = 5;
    std::sync::Arc::make_mut(&mut retried.invocations[1].config).timeout =
        Some(std::time::Duration::from_secs(60));
    let report = client.run_snapshot(retried, &config).unwrap();
    assert_eq!(status(&report, "double"), Status::Cached);
}

/// A number spelled out over 2 KiB: too long to be kept in its record, so it is a file.
#[step]
fn spell(x: i64) -> String {
    format!("{x:>2048}")
}

#[pipeline]
fn spelling(x: i64) -> weft::Result<()> {
    let a = absolute(x)?;
    spell(&a)?;
    Ok(())
}

#[test]
fn a_result_whose_files_are_gone_or_damaged_is_computed_again() {
    let (_dir, client) = fresh();
    let first = client.run(spelling::args(11)).unwrap();
    let output = client.output(&steps(&first)["spell"], "output").unwrap();
    let path = output.local_path("data.txt").expect("a file");

    std::fs::write(&path, "99").unwrap();
    let report = client.run(spelling::args(11)).unwrap();
    let spelled = &steps(&report)["spell"];
    assert_eq!(spelled.status, Status::Completed, "computed again");
    let reason = spelled.status_reason.clone().unwrap();
    assert!(
        reason.starts_with("ran again: the cached outputs of step run")
            && reason.contains("is corrupt"),
        "{reason}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "99",
        "the damaged file is left as it is"
    );
    let again = client.output(spelled, "output").unwrap();
    assert_eq!(again.load::<String>().unwrap().trim(), "11");

    // The new result is now the one reused; remove its file too.
    std::fs::remove_file(again.local_path("data.txt").unwrap()).unwrap();
    let report = client.run(spelling::args(11)).unwrap();
    let reason = steps(&report)["spell"].status_reason.clone().unwrap();
    assert!(reason.contains("is missing"), "{reason}");
}

#[test]
fn a_result_whose_recorded_content_hash_is_damaged_is_computed_again() {
    let (dir, client) = fresh();
    let first = client.run(spelling::args(12)).unwrap();
    let output = client.output(&steps(&first)["spell"], "output").unwrap();
    damage_content_hash(dir.path(), output.id, "not-a-hash");
    let report = client.run(spelling::args(12)).unwrap();
    let spelled = &steps(&report)["spell"];
    assert_eq!(spelled.status, Status::Completed, "computed again");
    let reason = spelled.status_reason.clone().unwrap();
    assert!(
        reason.starts_with("ran again: the cached outputs of step run")
            && reason.contains("`not-a-hash` is not a BLAKE3 hash"),
        "{reason}"
    );
    let again = client.output(spelled, "output").unwrap();
    assert_eq!(again.load::<String>().unwrap().trim(), "12");
}

#[test]
fn small_results_are_kept_in_their_records_and_reused_from_there() {
    let (dir, client) = fresh();
    let first = client.run(doubling::args(21)).unwrap();
    let output = client.output(&steps(&first)["double"], "output").unwrap();
    assert!(output.files[0].is_inline(), "{:?}", output.files);
    assert_eq!(output.local_path("data.json"), None);
    assert_eq!(output.load::<i64>().unwrap(), 42);
    output.verify().unwrap();
    // No folder was made for either output.
    let pipeline = dir.path().join("artifacts/doubling");
    assert!(!pipeline.exists(), "{} exists", pipeline.display());
    let report = client.run(doubling::args(21)).unwrap();
    assert_eq!(status(&report, "double"), Status::Cached);
    // Written out on request, for other tools.
    let exported = dir.path().join("out/value.json");
    std::fs::create_dir_all(exported.parent().unwrap()).unwrap();
    output.export_file("data.json", &exported).unwrap();
    assert_eq!(std::fs::read_to_string(&exported).unwrap(), "42");
}

#[step(cache(expires_after = "1h"))]
fn fetch(day: u32) -> u32 {
    CALLS[2].fetch_add(1, Ordering::SeqCst);
    day
}

#[pipeline]
fn fetching(day: u32) -> weft::Result<()> {
    fetch(day)?;
    Ok(())
}

#[test]
fn results_expire() {
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::Utc::now();
    let clock = Arc::new(weft::ManualClock::new(start, 0.5));
    let client =
        Client::open_with_clock(&weft::StoreConfig::in_folder(dir.path()), clock.clone()).unwrap();
    let first = client.run(fetching::args(1)).unwrap();
    let expires = steps(&first)["fetch"].cache_expires_at.unwrap();
    let off = (expires - (start + chrono::Duration::hours(1)))
        .num_microseconds()
        .unwrap();
    assert!(
        off.abs() <= 1,
        "expires an hour after the step ran (stored to the microsecond)"
    );
    assert_eq!(
        status(&client.run(fetching::args(1)).unwrap(), "fetch"),
        Status::Cached
    );
    // Two hours later.
    futures_lite_wait(clock.sleep_until(start + chrono::Duration::hours(2)));
    assert_eq!(
        status(&client.run(fetching::args(1)).unwrap(), "fetch"),
        Status::Completed
    );

    // Expiring on demand.
    assert_eq!(
        status(&client.run(fetching::args(1)).unwrap(), "fetch"),
        Status::Cached
    );
    let expired = client
        .block_on(
            client
                .metadata_store()
                .expire_cache(CacheExpiry::Step("fetch".into())),
        )
        .unwrap();
    assert!(expired >= 1);
    assert_eq!(
        status(&client.run(fetching::args(1)).unwrap(), "fetch"),
        Status::Completed
    );
}

fn futures_lite_wait(future: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future);
}

#[step]
fn noise(seed: u64) -> u64 {
    seed * 7919
}

#[step(cache(ignored_inputs = ["noise"]))]
fn stable(value: u64, noise: u64) -> u64 {
    CALLS[3].fetch_add(1, Ordering::SeqCst);
    let _ = noise;
    value + 1
}

#[pipeline]
fn noisy(seed: u64) -> weft::Result<()> {
    let n = noise(seed)?;
    stable(41, &n)?;
    Ok(())
}

#[test]
fn ignored_inputs_do_not_count() {
    let (_dir, client) = fresh();
    client.run(noisy::args(1)).unwrap();
    let report = client.run(noisy::args(2)).unwrap();
    assert_eq!(status(&report, "noise"), Status::Completed);
    assert_eq!(
        status(&report, "stable"),
        Status::Cached,
        "another noise, the same key"
    );
}

/// What `data_version` reports, changed by the test.
static DATA_VERSION: AtomicUsize = AtomicUsize::new(1);

fn data_version() -> String {
    format!("v{}", DATA_VERSION.load(Ordering::SeqCst))
}

#[step(cache(env = ["HOME", "WEFT_TEST_UNSET"], file_dependencies = ["labels.txt"], key_fn = data_version))]
fn labelled(x: u8) -> u8 {
    CALLS[4].fetch_add(1, Ordering::SeqCst);
    x
}

#[pipeline]
fn labelling() -> weft::Result<()> {
    labelled(1)?;
    Ok(())
}

#[test]
fn a_run_file_can_name_a_key_function_of_the_binary_and_no_other() {
    let (_dir, client) = fresh();
    let unknown = RunConfig::from_toml("[cache]\nkey_fn = \"nope\"\n").unwrap();
    let error = client
        .run_with(doubling::args(3), &unknown)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cache key function `nope` is not part of this binary")
            && error.contains("data_version"),
        "{error}"
    );
    assert!(
        client.runs(&Default::default()).unwrap().is_empty(),
        "nothing is recorded"
    );

    let known = RunConfig::from_toml("[cache]\nkey_fn = \"data_version\"\n").unwrap();
    let report = client.run_with(doubling::args(3), &known).unwrap();
    // The report lists step runs without their key parts; one step run has them.
    assert_eq!(steps(&report)["double"].cache_parts, None);
    let parts = client
        .step_run(&report.run, "double")
        .unwrap()
        .cache_parts
        .unwrap()
        .value();
    assert!(
        parts["key_fn"].as_str().unwrap().starts_with('v'),
        "{parts}"
    );
}

#[test]
fn declared_files_environment_and_key_functions_count() {
    let (dir, client) = fresh();
    std::fs::write(dir.path().join("labels.txt"), "a").unwrap();
    let run = || status(&client.run(labelling::args()).unwrap(), "labelled");
    assert_eq!(run(), Status::Completed);
    assert_eq!(run(), Status::Cached);
    std::fs::write(dir.path().join("labels.txt"), "b").unwrap();
    assert_eq!(run(), Status::Completed, "the file changed");
    assert_eq!(run(), Status::Cached);
    DATA_VERSION.store(2, Ordering::SeqCst);
    assert_eq!(run(), Status::Completed, "the key function's value changed");
    assert_eq!(run(), Status::Cached);
    // The key's parts are kept with the step run. (That another value of a declared variable
    // changes the key is shown by weft-core's cache tests: setting variables here would
    // race with other tests.)
    let step_run = client
        .step_run(&client.run_record("latest").unwrap(), "labelled")
        .unwrap();
    let parts = step_run.cache_parts.unwrap().value();
    assert_eq!(
        parts["env"]["HOME"],
        std::env::var("HOME")
            .map(serde_json::Value::from)
            .unwrap_or_default()
    );
    assert_eq!(parts["env"]["WEFT_TEST_UNSET"], serde_json::Value::Null);
    assert_eq!(parts["key_fn"], "v2");
    assert!(parts["files"]["labels.txt"].is_string());

    std::fs::remove_file(dir.path().join("labels.txt")).unwrap();
    let report = client.run(labelling::args()).unwrap();
    let failed = &steps(&report)["labelled"];
    assert_eq!(failed.status, Status::Failed);
    let message = &failed.error.as_ref().unwrap().message;
    assert!(
        message.contains("cache file dependency `labels.txt` cannot be read"),
        "{message}"
    );
}

#[step]
fn counted(x: u32) -> u32 {
    CALLS[5].fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[pipeline]
fn long_chain(length: usize) -> weft::Result<()> {
    let mut value = counted(0)?;
    for _ in 1..length {
        value = counted(&value)?;
    }
    Ok(())
}

#[test]
fn a_fully_cached_run_schedules_nothing_and_no_cache_runs_everything() {
    // Longer than the pre-pass hands to one commit (128 records), so its records are
    // written by several.
    const LENGTH: usize = 300;
    let (_dir, client) = fresh();
    let first = client.run(long_chain::args(LENGTH)).unwrap();
    let before = calls(5);
    let report = client.run(long_chain::args(LENGTH)).unwrap();
    assert_eq!(report.run.status, Status::Completed);
    assert_eq!(report.step_runs.len(), LENGTH);
    assert!(report.step_runs.iter().all(|s| s.status == Status::Cached));
    assert_eq!(calls(5), before, "no body ran");

    // Each cached step run names its original, reads back its parts, and is the parent of
    // the next one in its own run.
    let originals = steps(&first);
    let cached = steps(&report);
    let graph = client
        .block_on(client.metadata_store().run_graph(report.run.id))
        .unwrap();
    let parents: HashMap<_, _> = graph
        .parents
        .iter()
        .map(|(parent, child)| (*child, *parent))
        .collect();
    assert_eq!(parents.len(), LENGTH - 1);
    for index in 1..LENGTH {
        let id = |i: usize| match i {
            0 => "counted".to_owned(),
            i => format!("counted_{}", i + 1),
        };
        let step_run = &cached[id(index).as_str()];
        let original = &originals[id(index).as_str()];
        assert_eq!(step_run.original_step_run, Some(original.id));
        assert_eq!(parents[&step_run.id], cached[id(index - 1).as_str()].id);
        let read = client.step_run(&report.run, &id(index)).unwrap();
        let original_parts = client.step_run(&first.run, &id(index)).unwrap().cache_parts;
        assert!(original_parts.is_some());
        assert_eq!(read.cache_parts, original_parts);
    }

    let report = client
        .run_with(
            long_chain::args(LENGTH),
            &RunConfig {
                no_cache: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        report
            .step_runs
            .iter()
            .all(|s| s.status == Status::Completed)
    );
    assert_eq!(calls(5), before + LENGTH);
}

#[step(cache = false)]
fn uncached(x: u32) -> u32 {
    x
}

#[pipeline(cache = false)]
fn never_cached() -> weft::Result<()> {
    counted(100)?;
    Ok(())
}

#[test]
fn steps_and_pipelines_can_turn_caching_off() {
    let (_dir, client) = fresh();
    let config = RunConfig::default();
    let snapshot = client.compile(never_cached::args(), &config).unwrap();
    assert!(
        !snapshot.invocations[0].config.cache.enabled,
        "the pipeline's setting"
    );
    client.run(never_cached::args()).unwrap();
    assert_eq!(
        status(&client.run(never_cached::args()).unwrap(), "counted"),
        Status::Completed
    );
    // A step's own setting wins over the run's.
    let on = RunConfig::from_toml("[cache]\nenabled = true\n").unwrap();
    let snapshot = client.compile(never_cached::args(), &on).unwrap();
    assert!(!snapshot.invocations[0].config.cache.enabled);
    assert!(!uncached::STEP.settings.cache().resolve().enabled);
}

#[step]
fn constant() -> i64 {
    5
}

#[step]
fn sum_two(a: i64, b: i64) -> i64 {
    a + b
}

#[pipeline]
fn twins() -> weft::Result<()> {
    let a = constant()?;
    let b = constant()?;
    sum_two(&a, &b)?;
    Ok(())
}

#[test]
fn cached_steps_are_the_parents_of_their_consumers_in_their_own_run() {
    let (_dir, client) = fresh();
    client.run(twins::args()).unwrap();
    // Both `constant` calls reuse the same original step run here.
    let second = client.run(twins::args()).unwrap();
    assert_eq!(second.run.status, Status::Completed, "{second:#?}");
    let graph = client
        .block_on(client.metadata_store().run_graph(second.run.id))
        .unwrap();
    let steps = steps(&second);
    let mut parents: Vec<_> = graph
        .parents
        .iter()
        .filter(|(_, child)| *child == steps["sum_two"].id)
        .map(|(parent, _)| *parent)
        .collect();
    parents.sort();
    let mut expected = vec![steps["constant"].id, steps["constant_2"].id];
    expected.sort();
    assert_eq!(
        parents, expected,
        "the parents are this run's cached step runs"
    );
}

#[step]
fn tenfold(x: u32) -> u32 {
    x * 10
}

#[step]
fn total(values: Vec<u32>) -> u32 {
    CALLS[6].fetch_add(1, Ordering::SeqCst);
    values.iter().sum()
}

/// `total` over `count` items, item `changed` made different.
#[pipeline(dynamic)]
fn totals(count: u32, changed: u32) -> weft::Result<()> {
    let items = (0..count).map(|i| if i == changed { i + count } else { i });
    let tens = tenfold::map(items.collect::<Vec<u32>>())?;
    total(&tens)?;
    Ok(())
}

#[test]
fn a_fan_in_over_many_outputs_keeps_their_count_and_digest_in_its_key() {
    let (_dir, client) = fresh();
    let count = weft::cache::LISTED_VERSIONS as u32 + 44;
    let before = calls(6);
    let first = client.run(totals::args(count, count)).unwrap();
    assert_eq!(status(&first, "total"), Status::Completed);
    let step_run = client.step_run(&first.run, "total").unwrap();
    let parts = step_run.cache_parts.unwrap();
    assert!(parts.as_str().len() < 2048, "{parts}");
    let parts = parts.value();
    assert_eq!(parts["inputs"]["values"]["count"], count);
    let digest = parts["inputs"]["values"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(digest.len(), 64, "{parts}");

    // Every item's output was computed again, with the same bytes: the fan-in is reused.
    let again = client.run(totals::args(count, count)).unwrap();
    assert_eq!(status(&again, "total"), Status::Cached);
    assert_eq!(calls(6), before + 1);

    // One item differs, past the ones a list would show: the fan-in runs again.
    let changed = client.run(totals::args(count, count - 3)).unwrap();
    assert_eq!(status(&changed, "total"), Status::Completed);
    assert_eq!(calls(6), before + 2);
    let parts = client
        .step_run(&changed.run, "total")
        .unwrap()
        .cache_parts
        .unwrap()
        .value();
    assert_eq!(parts["inputs"]["values"]["count"], count);
    assert_ne!(parts["inputs"]["values"]["digest"], digest.as_str());
}
