//! What the client reads back: runs, step runs, statuses, records.

use weft::Status;
use weft::model::RunFilter;
use weft::prelude::*;

use crate::{fresh, steps};

#[step]
fn one() -> u8 {
    1
}

#[step]
fn two(x: u8) -> u8 {
    x + 1
}

#[pipeline]
fn tiny() -> weft::Result<()> {
    let x = one()?;
    two(&x)?;
    Ok(())
}

#[test]
fn runs_and_step_runs_are_recorded_completely() {
    let (_dir, client) = fresh();
    let report = client.run(tiny::args()).unwrap();
    let run = client.run_record(&report.run.id.to_string()).unwrap();
    assert_eq!(run.status, Status::Completed);
    assert_eq!(run.pipeline, "tiny");
    assert!(run.started_at.is_some() && run.ended_at >= run.started_at);
    assert_eq!(client.run_record("latest").unwrap().id, run.id);
    assert_eq!(client.run_record(&run.name).unwrap().id, run.id);
    let listed = client
        .runs(&RunFilter {
            pipeline: Some("tiny".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 1);

    let steps = steps(&report);
    let two = &steps["two"];
    assert_eq!((two.status, two.attempt), (Status::Completed, 1));
    assert!(two.code_hash.len() == 64 && two.code_hash != steps["one"].code_hash);
    let parents = client
        .block_on(client.metadata_store().step_run_parents(two.id))
        .unwrap();
    assert_eq!(parents, [steps["one"].id]);
    let graph = client
        .block_on(client.metadata_store().run_graph(run.id))
        .unwrap();
    assert_eq!(graph.step_runs.len(), 2);
    assert_eq!(graph.outputs.len(), 2);
    assert_eq!(graph.inputs.len(), 1);

    let version = client.artifact_version("tiny::two::output:latest").unwrap();
    assert_eq!(version.load::<u8>().unwrap(), 2);
    assert_eq!(version.producer, Some(two.id));
    assert!(version.verify().is_ok());
}
