//! Pipelines with the metadata store on a database server, PostgreSQL and MariaDB (started
//! by `scripts/postgres-up.sh` and `scripts/mariadb-up.sh`, which `scripts/test.sh` runs):
//! the same runs as on SQLite, with many processes writing at once.

use crate::common::{Project, Server, step};

/// The quickstart pipeline runs, is shown, and its second run is served from the cache.
fn a_pipeline_runs_and_reruns_from_the_cache(server: Server) {
    let project = Project::on(server);
    let first = project.pipelines(&["run", "training"]);
    assert_eq!(first.code, 0, "{first:?}");
    let second = project.pipelines(&["run", "training"]);
    assert_eq!(second.code, 0, "{second:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "completed", "{shown}");
    let steps = shown["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert!(
        steps.iter().all(|step| step["status"] == "cached"),
        "{shown}"
    );
    let listed = project.json(&["runs", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

/// Sixteen isolated steps in their own processes, eight at a time, and a dynamic pipeline's
/// synchronous and submitted isolated calls: nothing is lost.
fn isolated_steps_share_the_server(server: Server) {
    let project = Project::on(server);
    crate::common::isolated_fan_loses_nothing(&project);
    let dynamic = project.pipelines(&["run", "isolation_dynamic", "--no-cache"]);
    assert_eq!(dynamic.code, 0, "{dynamic:?}");
}

/// Two pipeline processes write 100 versions each of one artifact at once.
fn two_processes_number_versions_without_gaps(server: Server) {
    let project = Project::on(server);
    let spawn = || {
        project
            .command(
                crate::common::PIPELINES,
                &["run", "shared", "--no-cache", "-p", "width=100"],
            )
            .output()
            .expect("the binary starts")
    };
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(spawn);
        let second = scope.spawn(spawn);
        (first.join().unwrap(), second.join().unwrap())
    });
    for output in [&first, &second] {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let versions = project.json(&["artifacts", "versions", "shared", "--json"]);
    let mut numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().parse().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=200).collect::<Vec<u64>>());
}

/// A failed step's error and a stopped run read back the same as on SQLite.
fn failures_are_recorded(server: Server) {
    let project = Project::on(server);
    let run = project.pipelines(&["run", "fragile", "-p", "by=0"]);
    assert_eq!(run.code, 1, "{run:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "failed", "{shown}");
    let message = step(&shown, "divide")["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot divide 10 values by zero"),
        "{message}"
    );
}

macro_rules! on_each_server {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(#[test] fn $case() { super::$case(super::Server::Postgres) })*
        }
        mod mariadb {
            $(#[test] fn $case() { super::$case(super::Server::MariaDb) })*
        }
    };
}

on_each_server!(
    a_pipeline_runs_and_reruns_from_the_cache,
    isolated_steps_share_the_server,
    two_processes_number_versions_without_gaps,
    failures_are_recorded,
);
