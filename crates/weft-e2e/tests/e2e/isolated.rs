//! Isolated steps: each in a process of its own (the pipeline binary hosting it), with its
//! output captured, its crashes reported, and its overruns killed.

use std::time::{Duration, Instant};

use crate::common::{PIPELINES, Project, step};

#[test]
fn an_isolated_step_runs_in_its_own_process_and_its_output_is_in_its_log() {
    let project = Project::new();
    let run = project.pipelines(&["run", "isolation"]);
    assert_eq!(run.code, 0, "{run:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "completed");
    assert_eq!(step(&shown, "elsewhere")["status"], "completed");
    assert_eq!(step(&shown, "apart")["status"], "completed", "{shown}");
    // Where it ran is recorded: the operator and the host's process.
    let facts = &step(&shown, "elsewhere")["metadata"];
    let fact = |key: &str| {
        facts
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["key"] == key && entry["source"] == "system")
            .map(|entry| entry["value"].clone())
    };
    assert_eq!(fact("weft.operator"), Some("process".into()), "{facts}");
    assert!(
        fact("weft.host").is_some_and(|host| host.as_str().unwrap().starts_with("process ")),
        "{facts}"
    );
    let logs = project.weft(&["logs", "latest", "elsewhere"]);
    assert_eq!(logs.code, 0, "{logs:?}");
    for expected in [
        "traced in the isolated step",
        "printed by process",
        "written to standard error",
    ] {
        assert!(logs.stdout.contains(expected), "`{expected}` in {logs:?}");
    }
}

#[test]
fn a_dynamic_pipeline_runs_isolated_steps_synchronously_and_submitted() {
    let project = Project::new();
    let run = project.pipelines(&["run", "isolation_dynamic"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn a_child_that_dies_fails_its_step_with_its_exit_status_and_standard_error() {
    let cases = [
        ("exit", "exited with status 7"),
        ("abort", "was killed by signal 6 (SIGABRT)"),
        ("kill", "was killed by signal 9 (SIGKILL)"),
        ("panic", "the isolated step panicked"),
        ("error", "the isolated step failed"),
    ];
    for (how, expected) in cases {
        let project = Project::new();
        let how_param = format!("how={how}");
        let run = project.pipelines(&["run", "isolation_crash", "-p", &how_param]);
        assert_eq!(run.code, 1, "{how}: {run:?}");
        let shown = project.json(&["runs", "show", "latest", "--json"]);
        assert_eq!(shown["status"], "failed", "{how}");
        let crashed = step(&shown, "crashing");
        assert_eq!(crashed["status"], "failed", "{how}");
        let message = crashed["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{how}: {message}");
        if ["exit", "abort", "kill"].contains(&how) {
            assert!(
                message.contains(&format!("about to {how}")),
                "{how}: the tail of its standard error is quoted: {message}"
            );
        }
    }
}

#[test]
fn an_isolated_step_past_its_timeout_is_killed() {
    let project = Project::new();
    let started = Instant::now();
    let run = project.pipelines(&["run", "isolation_timeout"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the 60 s step was killed, not waited for"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    let overran = step(&shown, "overrunning");
    assert_eq!(overran["status"], "failed");
    assert!(
        overran["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 1.0 s"),
        "{overran}"
    );
}

#[test]
fn the_step_host_checks_the_protocol_and_its_arguments_first() {
    let project = Project::new();
    let artifacts = format!("file://{}/artifacts", project.path().display());
    // The step host with a protocol version and a metadata store.
    let host = |protocol: &str, metadata: &str| {
        project.run(
            PIPELINES,
            &[
                "__weft-step",
                "--protocol",
                protocol,
                "--artifacts",
                &artifacts,
                "--base",
                ".",
                "--step-run",
                "01a20000-0000-7000-8000-000000000000",
                "--result",
                "result.json",
            ],
            &[("WEFT_WORKER_METADATA", metadata)],
        )
    };
    let mismatch = host("99", "sqlite://nowhere.db");
    assert_eq!(mismatch.code, 2, "{mismatch:?}");
    assert!(
        mismatch.stderr.contains("protocol 99") && mismatch.stderr.contains("speaks 3"),
        "{mismatch:?}"
    );
    // An older orchestrator's arguments: the protocol is checked before they are parsed.
    let older = project.pipelines(&["__weft-step", "--protocol", "1", "--metadata", "x"]);
    assert_eq!(older.code, 2, "{older:?}");
    assert!(older.stderr.contains("protocol 1"), "{older:?}");
    let missing = project.pipelines(&["__weft-step", "--protocol", "3"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    let unknown = host(
        "3",
        &format!("sqlite://{}/weft.db", project.path().display()),
    );
    assert_eq!(unknown.code, 3, "{unknown:?}");
    assert!(
        unknown.stderr.contains("cannot prepare step run"),
        "{unknown:?}"
    );
    let unreachable = host("3", "sqlite:///proc/weft/weft.db");
    assert_eq!(unreachable.code, 3, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("cannot open the stores"),
        "{unreachable:?}"
    );
    // A database server the child cannot reach: a clear error, and no password in it.
    let unreachable = host("3", "postgres://weft:s3cret@127.0.0.1:1/weft");
    assert_eq!(unreachable.code, 3, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("cannot open the stores")
            && unreachable
                .stderr
                .contains("postgres://weft:***@127.0.0.1:1/weft"),
        "{unreachable:?}"
    );
    assert!(!unreachable.stderr.contains("s3cret"), "{unreachable:?}");

    // The hand-back command (a remote host's output, uploaded after it ran) checks the same.
    std::fs::write(project.path().join("out"), "printed").unwrap();
    let hand_back = |protocol: &str, store: &str, file: &str| {
        project.pipelines(&[
            "__weft-hand-back",
            "--protocol",
            protocol,
            "--artifacts",
            store,
            "--base",
            ".",
            "--prefix",
            ".weft/exchange/x/y",
            file,
            file,
        ])
    };
    let mismatch = hand_back("99", &artifacts, "out");
    assert_eq!(mismatch.code, 2, "{mismatch:?}");
    assert!(mismatch.stderr.contains("protocol 99"), "{mismatch:?}");
    let missing = project.pipelines(&["__weft-hand-back", "--protocol", "3"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    let no_file = hand_back("3", &artifacts, "no-such-file");
    assert_eq!(no_file.code, 3, "{no_file:?}");
    assert!(no_file.stderr.contains("no-such-file"), "{no_file:?}");
    let handed = hand_back("3", &artifacts, "out");
    assert_eq!(handed.code, 0, "{handed:?}");
    assert_eq!(
        std::fs::read_to_string(project.path().join("artifacts/.weft/exchange/x/y/stdout"))
            .unwrap(),
        "printed"
    );
}

#[test]
fn a_binary_that_cannot_be_started_fails_the_step_with_the_reason() {
    let project = Project::new();
    let run = project.run(
        PIPELINES,
        &["run", "isolation"],
        &[("WEFT_WORKER", "/nowhere/e2e-pipelines")],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    let message = step(&shown, "elsewhere")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("cannot start the step's process `/nowhere/e2e-pipelines`"),
        "{message}"
    );
}

#[test]
fn many_isolated_steps_at_once_lose_nothing() {
    let project = Project::new();
    crate::common::isolated_fan_loses_nothing(&project);
}

#[test]
fn one_call_can_ask_for_a_process_of_its_own() {
    let project = Project::new();
    let run = project.pipelines(&["run", "isolated_call"]);
    assert_eq!(run.code, 0, "{run:?}");
}
