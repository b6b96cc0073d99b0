//! Executing static pipelines: outputs, artifacts, lineage, parallelism.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use weft::model::{Direction, Resource};
use weft::prelude::*;
use weft::{ArtifactType, RunConfig, Status};

use crate::{fresh, steps};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Artifact)]
struct Rows {
    values: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Artifact)]
#[artifact(binary, kind = "model")]
struct Model {
    mean: f64,
}

#[step]
fn rows(count: usize) -> Rows {
    Rows {
        values: (0..count).map(|i| i as f64).collect(),
    }
}

#[step(outputs(head, tail = "custom-tail"))]
fn halves(rows: Rows) -> (Rows, Rows) {
    let middle = rows.values.len() / 2;
    (
        Rows {
            values: rows.values[..middle].to_vec(),
        },
        Rows {
            values: rows.values[middle..].to_vec(),
        },
    )
}

#[step]
fn fit(rows: Rows) -> weft::Result<Model> {
    Ok(Model {
        mean: rows.values.iter().sum::<f64>() / rows.values.len() as f64,
    })
}

#[step]
fn describe(model: Model, label: String) -> String {
    format!("{label}: {}", model.mean)
}

#[pipeline]
fn outputs(#[default(10)] count: usize) -> weft::Result<()> {
    let all = rows(count)?;
    let (head, tail) = halves(&all)?;
    let model = fit(&tail)?;
    describe(&model, "tail".to_string())?;
    fit(&head)?;
    Ok(())
}

#[test]
fn outputs_are_versioned_typed_artifacts_with_lineage() {
    let (_dir, client) = fresh();
    let report = client.run(outputs::args(10)).unwrap();
    assert_eq!(report.run.status, Status::Completed);
    assert_eq!(report.step_runs.len(), 5);
    let steps = steps(&report);

    let halves = &steps["halves"];
    let tail = client.output(halves, "tail").unwrap();
    assert_eq!(tail.name, "custom-tail", "custom artifact name");
    assert_eq!(
        tail.load::<Rows>().unwrap().values,
        [5.0, 6.0, 7.0, 8.0, 9.0]
    );
    let head = client.output(halves, "head").unwrap();
    assert_eq!(head.name, "outputs::halves::head");

    let model = client.output(&steps["fit"], "output").unwrap();
    assert_eq!(model.artifact_type, ArtifactType::Model);
    assert_eq!(model.materializer, "weft.msgpack");
    assert_eq!(model.load::<Model>().unwrap(), Model { mean: 7.0 });
    let text = client.output(&steps["describe"], "output").unwrap();
    assert_eq!(text.load::<String>().unwrap(), "tail: 7");
    assert_eq!(text.materializer, "weft.text");

    // Loading as another type names both.
    let error = model.load::<Rows>().unwrap_err().to_string();
    assert!(
        error.contains("execution::Model") && error.contains("execution::Rows"),
        "{error}"
    );

    // Metadata of the version: its size, and the length of collections.
    let metadata = client
        .block_on(
            client
                .metadata_store()
                .metadata(Resource::ArtifactVersion(text.id)),
        )
        .unwrap();
    let keys: Vec<&str> = metadata.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["length", "storage_size"]);

    // Lineage: the description was made from the tail, which came from all rows.
    let upstream = client.lineage(&text, Direction::Upstream, 10).unwrap();
    let mut made_from: Vec<String> = upstream
        .artifact_versions
        .iter()
        .map(|v| v.name.clone())
        .collect();
    made_from.sort();
    assert_eq!(
        made_from,
        [
            "custom-tail",
            "outputs::fit::output",
            "outputs::rows::output"
        ]
    );
    let all_rows = client.output(&steps["rows"], "output").unwrap();
    let downstream = client
        .lineage(&all_rows, Direction::Downstream, 10)
        .unwrap();
    assert_eq!(
        downstream.artifact_versions.len(),
        5,
        "both halves, two models, one description"
    );

    // A second run makes version 2 of every artifact.
    let again = client.run(outputs::args(4)).unwrap();
    let versions = client.artifact_versions("custom-tail").unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["2", "1"]
    );
    assert_eq!(versions[0].load::<Rows>().unwrap().values, [2.0, 3.0]);
    assert_eq!(client.run_record("latest").unwrap().id, again.run.id);
}

/// Two steps that only finish if they run at the same time.
static MET: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

#[step]
fn meet(side: String) -> weft::Result<String> {
    let (arrived, wake) = &MET;
    let mut count = arrived.lock().unwrap();
    *count += 1;
    wake.notify_all();
    let (count, timeout) = wake
        .wait_timeout_while(count, Duration::from_secs(30), |count| *count < 2)
        .unwrap();
    weft::ensure!(
        !timeout.timed_out(),
        "the other side never came: the steps did not run in parallel"
    );
    drop(count);
    Ok(side)
}

#[pipeline]
fn rendezvous() -> weft::Result<()> {
    meet("left".to_string())?;
    meet("right".to_string())?;
    Ok(())
}

#[test]
fn independent_steps_run_in_parallel() {
    let (_dir, client) = fresh();
    let config = RunConfig {
        max_parallelism: Some(2),
        ..Default::default()
    };
    let report = client.run_with(rendezvous::args(), &config).unwrap();
    assert_eq!(
        report.run.status,
        Status::Completed,
        "{:?}",
        report.step_runs
    );
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);

#[step]
fn busy(index: usize) -> usize {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(5));
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    index
}

#[pipeline]
fn wide(width: usize) -> weft::Result<()> {
    for index in 0..width {
        busy(index)?;
    }
    Ok(())
}

#[test]
fn parallelism_is_bounded() {
    let (_dir, client) = fresh();
    let config = RunConfig {
        max_parallelism: Some(1),
        ..Default::default()
    };
    let report = client.run_with(wide::args(8), &config).unwrap();
    assert_eq!(report.run.status, Status::Completed);
    assert_eq!(
        MOST.load(Ordering::SeqCst),
        1,
        "never more than one step at a time"
    );
    assert_eq!(report.run.config["max_parallelism"], 1);
}

#[pipeline]
fn wider(width: usize) -> weft::Result<()> {
    let seed = rows(3)?;
    for _ in 0..width {
        fit(&seed)?;
    }
    Ok(())
}

#[test]
fn a_thousand_step_fan_out_records_everything() {
    let (_dir, client) = fresh();
    let report = client.run(wider::args(1000)).unwrap();
    assert_eq!(report.run.status, Status::Completed);
    assert_eq!(report.step_runs.len(), 1001);
    // The 1000 calls are identical: once one has completed, the others reuse its result.
    assert!(report.step_runs.iter().all(|s| s.status.is_successful()));
    let cached = report
        .step_runs
        .iter()
        .filter(|s| s.status == Status::Cached)
        .count();
    assert!(
        cached >= 990,
        "{cached} of 1000 identical steps reused a result"
    );
    let seed = client.output(&steps(&report)["rows"], "output").unwrap();
    let consumers = client
        .block_on(client.metadata_store().consumers(seed.id))
        .unwrap();
    assert_eq!(consumers.len(), 1000);
}
