//! Compiling static pipelines: invocation ids, wiring, validation errors.

use weft::prelude::*;

use crate::fresh;

#[step]
fn number(value: u64) -> u64 {
    value
}

#[step]
fn add(left: u64, right: u64) -> u64 {
    left + right
}

#[step]
fn total(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[step]
fn noop() {}

#[pipeline]
fn ids() -> weft::Result<()> {
    let a = number(1)?;
    let b = number(2)?;
    let named = number::id("forty_two").call(42)?;
    let c = add(&a, &b)?;
    total(vec![a, b, c, named])?;
    Ok(())
}

#[test]
fn invocation_ids_count_calls_and_explicit_ids_are_kept() {
    let (_dir, client) = fresh();
    let report = client.run(ids::args()).unwrap();
    assert_eq!(report.run.status, weft::Status::Completed);
    let mut names: Vec<&str> = report
        .step_runs
        .iter()
        .map(|s| s.invocation.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["add", "forty_two", "number", "number_2", "total"]);
    let total = client.step_run(&report.run, "total").unwrap();
    assert_eq!(
        client
            .output(&total, "output")
            .unwrap()
            .load::<u64>()
            .unwrap(),
        1 + 2 + 3 + 42
    );
    // The fan-in input is recorded item by item, in order.
    let inputs = client
        .block_on(client.metadata_store().step_run_inputs(total.id))
        .unwrap();
    let positions: Vec<u32> = inputs.iter().map(|i| i.position).collect();
    assert_eq!(positions, [0, 1, 2, 3]);
}

#[pipeline]
fn duplicate() -> weft::Result<()> {
    number::id("same").call(1)?;
    number::id("same").call(2)?;
    Ok(())
}

#[pipeline]
fn duplicate_ignored() -> weft::Result<()> {
    number::id("same").call(1)?;
    // The error is ignored here, but compilation still fails.
    let _ = number::id("same").call(2);
    Ok(())
}

#[pipeline]
fn cycle() -> weft::Result<()> {
    let first = number::after("third").call(1)?;
    let second = add(&first, 1)?;
    add::id("third").call(&second, 1)?;
    Ok(())
}

#[pipeline]
fn unknown_after() -> weft::Result<()> {
    number::after("nowhere").call(1)?;
    Ok(())
}

#[pipeline]
fn empty() -> weft::Result<()> {
    Ok(())
}

#[pipeline]
fn missing() -> weft::Result<()> {
    add(1, weft::configured())?;
    Ok(())
}

#[pipeline]
fn panicking() -> weft::Result<()> {
    number(1)?;
    panic!("the pipeline function itself panicked");
}

fn compile_error(call: weft::PipelineCall) -> String {
    let (_dir, client) = fresh();
    let error = client.run(call).unwrap_err();
    // Nothing was recorded.
    assert!(
        client.runs(&Default::default()).unwrap().is_empty(),
        "no run was recorded"
    );
    format!("{error:#}")
}

#[test]
fn validation_errors_name_the_invocation_and_record_nothing() {
    expect_test::expect![[r#"invocation id `same` is used twice (the second time by a call of step `number`); ids given with `.id(..)` must be unique in a pipeline"#]]
        .assert_eq(&compile_error(duplicate::args()));
    assert_eq!(
        compile_error(duplicate_ignored::args()),
        compile_error(duplicate::args())
    );
    expect_test::expect!["invocations form a cycle: number -> add -> third -> number"]
        .assert_eq(&compile_error(cycle::args()));
    expect_test::expect![
        "invocation `number` runs after `nowhere`, but the pipeline has no invocation `nowhere`"
    ]
    .assert_eq(&compile_error(unknown_after::args()));
    expect_test::expect!["pipeline `empty` is empty: its function called no step"]
        .assert_eq(&compile_error(empty::args()));
    expect_test::expect!["input `right` of invocation `add` has no value: pass it in the pipeline or set `[steps.add.parameters] right = ...` in the run configuration"]
        .assert_eq(&compile_error(missing::args()));
    let panicked = compile_error(panicking::args());
    assert!(
        panicked.contains("the function of pipeline `panicking` panicked while compiling"),
        "{panicked}"
    );
}

#[pipeline]
fn ordered() -> weft::Result<()> {
    let first = noop()?;
    noop::after(&first).call()?;
    Ok(())
}

#[test]
fn after_orders_steps_without_data_and_records_the_parent() {
    let (_dir, client) = fresh();
    let config = weft::RunConfig {
        no_cache: true,
        ..Default::default()
    };
    let report = client.run_with(ordered::args(), &config).unwrap();
    let steps = crate::steps(&report);
    let parents = client
        .block_on(client.metadata_store().step_run_parents(steps["noop_2"].id))
        .unwrap();
    assert_eq!(parents, [steps["noop"].id]);
    assert!(steps["noop_2"].started_at.is_some());
    assert!(steps["noop_2"].started_at >= steps["noop"].ended_at);

    // With the cache, the second call repeats the first, whose completion may not be
    // written yet when it is prepared: it is written first, and reused.
    let (_dir, client) = fresh();
    let report = client.run(ordered::args()).unwrap();
    let steps = crate::steps(&report);
    assert_eq!(steps["noop_2"].status, weft::Status::Cached);
    assert_eq!(steps["noop_2"].original_step_run, Some(steps["noop"].id));
}

#[test]
fn the_same_plan_is_stored_once() {
    let (_dir, client) = fresh();
    let first = client.run(ids::args()).unwrap().run;
    let second = client.run(ids::args()).unwrap().run;
    assert_ne!(first.id, second.id);
    assert_eq!(first.snapshot_id, second.snapshot_id);
    let snapshot = client
        .block_on(
            client
                .metadata_store()
                .snapshot(first.snapshot_id.as_ref().unwrap()),
        )
        .unwrap();
    assert_eq!(snapshot.invocations.len(), 5);
    let add = snapshot.invocation("add").unwrap();
    assert_eq!(*add.upstream, ["number".into(), "number_2".into()]);
    assert!(add.step.ends_with("::add"), "{}", add.step);
}
