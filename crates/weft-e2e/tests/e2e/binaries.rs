//! A pipeline binary and the `weft` command, run as processes against one project folder.

use crate::common::{PIPELINES, Project, WEFT};
use serde_json::Value;

#[test]
fn the_quickstart_runs_and_everything_it_recorded_can_be_inspected() {
    let project = Project::new();
    let run = project.pipelines(&["run", "training", "--param", "epochs=50"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("completed"), "{run:?}");
    assert!(
        run.stdout.contains(" runs show "),
        "it says where to look next: {run:?}"
    );
    assert!(
        run.stderr.contains("[train_softmax] training"),
        "step logs are shown: {run:?}"
    );

    // The tool contract: `runs list --json`.
    let runs = project.json(&["runs", "list", "--json"]);
    let runs = runs.as_array().expect("an array of runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["pipeline"], "training");
    assert_eq!(runs[0]["status"], "completed");
    let id = runs[0]["id"].as_str().unwrap().to_owned();

    // The tool contract: `runs show <id|latest> --json`.
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["status"], "completed");
    let steps = shown["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "load",
            "split",
            "train_softmax",
            "train_centroids",
            "evaluate",
            "evaluate_2",
            "compare"
        ],
        "in dependency order"
    );
    assert!(steps.iter().all(|s| s["status"] == "completed"));
    let split = &steps[1];
    let outputs = split["outputs"].as_object().unwrap();
    assert_eq!(outputs.keys().collect::<Vec<_>>(), ["test", "train"]);
    let report_version = steps[6]["outputs"]["report"].as_str().unwrap().to_owned();
    assert_eq!(
        project.json(&["runs", "show", &id, "--json"])["id"],
        id.as_str()
    );

    // For people.
    let table = project.weft(&["runs", "show", &id[..8]]);
    assert_eq!(table.code, 0, "{table:?}");
    for expected in [
        "Pipeline    training",
        "Status      completed",
        "train_centroids",
        "iris-report:1",
        "weft_version=",
    ] {
        assert!(table.stdout.contains(expected), "`{expected}` in {table:?}");
    }
    let listed = project.weft(&["runs", "list"]);
    assert!(listed.stdout.contains(&id), "{listed:?}");

    // Logs of one step.
    let logs = project.weft(&["logs", "latest", "train_softmax"]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(
        logs.stdout.contains("training") && logs.stdout.contains("epoch=49"),
        "{logs:?}"
    );
    let records = project.json(&["logs", &id, "evaluate", "--json"]);
    assert_eq!(records[0]["fields"]["model"], "softmax regression");

    // Artifacts.
    let artifacts = project.weft(&["artifacts", "list"]);
    assert!(
        artifacts.stdout.contains("iris-report")
            && artifacts.stdout.contains("training::split::train"),
        "{artifacts:?}"
    );
    let versions = project.json(&["artifacts", "versions", "iris-report", "--json"]);
    assert_eq!(versions[0]["id"], report_version.as_str());
    let shown = project.weft(&["artifacts", "show", &report_version]);
    assert!(
        shown.stdout.contains("best: "),
        "the value is previewed: {shown:?}"
    );
    assert!(
        shown.stdout.contains("Produced by   step `compare`"),
        "{shown:?}"
    );
    let details = project.json(&["artifacts", "show", "iris-report:latest", "--json"]);
    assert_eq!(details["producer"]["invocation"], "compare");
    assert_eq!(details["materializer"], "weft.text");

    // Tags.
    let tagged = project.weft(&["artifacts", "tag", "iris-report:latest", "best", "v1"]);
    assert!(tagged.stdout.contains("is tagged: best, v1"), "{tagged:?}");
    assert_eq!(
        project.json(&["artifacts", "show", &report_version, "--json"])["tags"],
        serde_json::json!(["best", "v1"])
    );

    // Lineage of the report: made from both metrics, the models, the split, the data.
    let lineage = project.weft(&["lineage", "iris-report:latest"]);
    assert_eq!(lineage.code, 0, "{lineage:?}");
    for step in ["compare", "evaluate_2", "train_softmax", "split", "load"] {
        assert!(
            lineage.stdout.contains(&format!("step `{step}`")),
            "`{step}` in {lineage:?}"
        );
    }
    let train = shown_id(&project, "training::split::train:latest");
    let downstream = project.json(&["lineage", &train, "--json"]);
    let made: Vec<&str> = downstream["downstream"]["artifact_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(made.contains(&"iris-report"), "{made:?}");
}

fn shown_id(project: &Project, reference: &str) -> String {
    project.json(&["artifacts", "show", reference, "--json"])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_failing_step_fails_the_run_and_the_exit_code_says_so() {
    let project = Project::new();
    let run = project.pipelines(&["run", "fragile", "--param", "by=0"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("step `divide` failed: cannot divide 10 values by zero"),
        "{run:?}"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["steps"][1]["error"]["kind"], "error");

    let run = project.pipelines(&["run", "fragile", "--param", "panic=true"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("step `crash` failed: the step panicked at"),
        "{run:?}"
    );
    assert!(run.stdout.contains("index out of bounds"), "{run:?}");
    let table = project.weft(&["runs", "show", "latest"]);
    assert!(table.stdout.contains("step `crash` failed"), "{table:?}");
}

#[test]
fn runs_are_tagged_from_the_command_line_and_listed_by_tag() {
    let project = Project::new();
    let tagged = project.pipelines(&["run", "fragile", "--tag", "nightly", "--tag", "gpu"]);
    assert_eq!(tagged.code, 0, "{tagged:?}");
    let failed = project.pipelines(&["run", "fragile", "--param", "by=0", "--tag", "nightly"]);
    assert_eq!(failed.code, 1, "{failed:?}");
    let plain = project.pipelines(&["run", "fragile"]);
    assert_eq!(plain.code, 0, "{plain:?}");

    let nightly = project.json(&["runs", "list", "--tag", "nightly", "--json"]);
    let nightly = nightly.as_array().unwrap();
    assert_eq!(nightly.len(), 2, "{nightly:?}");
    assert_eq!(nightly[1]["tags"], serde_json::json!(["gpu", "nightly"]));
    let table = project.weft(&["runs", "list", "--tag", "gpu"]);
    assert!(table.stdout.contains("gpu, nightly"), "{table:?}");
    assert_eq!(table.stdout.matches("fragile-").count(), 1, "{table:?}");
    let none = project.weft(&["runs", "list", "--tag", "absent"]);
    assert_eq!(none.code, 0, "{none:?}");
    assert!(none.stdout.contains("No runs match"), "{none:?}");

    // Tags are attached and removed later; `runs show` lists them.
    let added = project.weft(&["runs", "tag", "latest", "baseline", "<b>x</b>"]);
    assert_eq!(added.code, 0, "{added:?}");
    assert!(added.stdout.contains("<b>x</b>, baseline"), "{added:?}");
    let shown = project.weft(&["runs", "show", "latest"]);
    assert!(
        shown.stdout.contains("Tags        <b>x</b>, baseline"),
        "{shown:?}"
    );
    let removed = project.weft(&["runs", "tag", "latest", "<b>x</b>", "--remove"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["tags"], serde_json::json!(["baseline"]), "{shown}");

    // A resumed run keeps its original's tags, with its own.
    let failed_id = nightly[0]["id"].as_str().unwrap();
    let resumed = project.pipelines(&["run", "--resume", failed_id, "--tag", "retry"]);
    assert_eq!(resumed.code, 1, "still dividing by zero: {resumed:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(
        shown["tags"],
        serde_json::json!(["nightly", "retry"]),
        "{shown}"
    );

    // Bad tags and unknown runs are refused, and change nothing.
    for bad in [
        &["runs", "tag", "latest", " "][..],
        &["runs", "tag", "latest", "a\u{7}b"],
        &["runs", "tag", "no-such-run", "x"],
        &["runs", "tag", "latest"],
    ] {
        let refused = project.weft(bad);
        assert_ne!(refused.code, 0, "{bad:?}: {refused:?}");
        assert!(!refused.stderr.is_empty(), "{bad:?}: {refused:?}");
    }
    let bad_run = project.pipelines(&["run", "fragile", "--tag", ""]);
    assert_eq!(bad_run.code, 2, "{bad_run:?}");
    assert!(bad_run.stderr.contains("tag"), "{bad_run:?}");
    assert_eq!(
        project
            .json(&["runs", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        4,
        "no run recorded for a bad tag"
    );
}

#[test]
fn the_pipeline_binary_lists_its_pipelines() {
    let project = Project::new();
    let listed = project.pipelines(&["list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(
        listed
            .stdout
            .contains("fragile(size: usize = 10, by: u64 = 1, panic: bool = false)"),
        "{listed:?}"
    );
    assert!(
        listed.stdout.contains("training(limit: usize = 150"),
        "{listed:?}"
    );
    assert!(
        listed
            .stdout
            .lines()
            .any(|line| line.starts_with("sweep(") && line.ends_with("(dynamic)")),
        "{listed:?}"
    );
    assert!(listed.stdout.contains("shared(width: usize)"), "{listed:?}");
}

#[test]
fn bad_arguments_are_refused_with_clear_errors_and_nothing_recorded() {
    let project = Project::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "trainnig"],
            "unknown pipeline `trainnig`; this binary has: endurance, endurance_dynamic, fragile, gated_talk, greeted, isolated_call, isolated_fan, isolation, isolation_crash, isolation_dynamic, isolation_timeout, long_chain, processes, shared, slumber, sweep, training",
        ),
        (
            &["run", "fragile", "--param", "sise=3"],
            "pipeline `fragile` has no parameter `sise`; its parameters are: size, by, panic",
        ),
        (
            &["run", "fragile", "--param", "size=many"],
            "parameter `size` of pipeline `fragile` expects `usize`, got \"many\"",
        ),
        (
            &["run", "fragile", "--param", "size=-1"],
            "parameter `size` of pipeline `fragile` expects `usize`, got -1",
        ),
        (
            &["run", "fragile", "--param", "size"],
            "`--param size` is not of the form NAME=VALUE",
        ),
        (
            &["run", "shared"],
            "pipeline `shared` needs parameter `width` (a `usize`): pass --param width=...",
        ),
        (
            &["run", "fragile", "--config", "missing.toml"],
            "cannot read the run configuration missing.toml",
        ),
    ];
    for (args, expected) in cases {
        let refused = project.pipelines(args);
        assert_eq!(refused.code, 2, "{args:?}: {refused:?}");
        assert!(
            refused.stderr.contains(expected),
            "{args:?}: `{expected}` in {refused:?}"
        );
    }
    let usage = project.pipelines(&["run", "fragile", "--max-parallelism", "0"]);
    assert_eq!(usage.code, 2, "{usage:?}");

    std::fs::write(
        project.path().join("run.toml"),
        "execution_mode = \"fast\"\n",
    )
    .unwrap();
    let refused = project.pipelines(&["run", "fragile", "--config", "run.toml"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("invalid run configuration run.toml")
            && refused.stderr.contains("execution_mode"),
        "{refused:?}"
    );
    std::fs::write(
        project.path().join("run.toml"),
        "[steps.divide.parameters]\nspeed = 1\n",
    )
    .unwrap();
    let refused = project.pipelines(&["run", "fragile", "--config", "run.toml"]);
    assert!(
        refused
            .stderr
            .contains("step `divide` has no argument `speed` (it has: values, by)"),
        "{refused:?}"
    );

    let runs = project.json(&["runs", "list", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 0, "nothing was recorded");
}

#[test]
fn a_run_configuration_file_sets_parameters_and_the_execution_mode() {
    let project = Project::new();
    std::fs::write(
        project.path().join("run.toml"),
        "execution_mode = \"stop_on_failure\"\nmax_parallelism = 1\n[parameters]\nsize = 4\nby = 0\n",
    )
    .unwrap();
    let run = project.pipelines(&["run", "fragile", "--config", "run.toml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("cannot divide 4 values by zero"),
        "{run:?}"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["execution_mode"], "stop_on_failure");
    assert_eq!(shown["config"]["max_parallelism"], 1);
    // Command-line parameters win over the file's.
    let run = project.pipelines(&["run", "fragile", "--config", "run.toml", "--param", "by=2"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn stores_that_cannot_be_written_are_refused_up_front() {
    let project = Project::new();
    std::fs::write(project.path().join("blocker"), "a file, not a folder").unwrap();
    let metadata = project.run(
        env!("CARGO_BIN_EXE_e2e-pipelines"),
        &["run", "fragile"],
        &[("WEFT_STORE", "sqlite://blocker/weft.db")],
    );
    assert_eq!(metadata.code, 2, "{metadata:?}");
    assert!(
        metadata
            .stderr
            .contains("cannot open the metadata store at"),
        "{metadata:?}"
    );
    let artifacts = project.run(
        env!("CARGO_BIN_EXE_e2e-pipelines"),
        &["run", "fragile"],
        &[("WEFT_ARTIFACTS", "file://blocker/artifacts")],
    );
    assert_eq!(artifacts.code, 2, "{artifacts:?}");
    assert!(
        artifacts
            .stderr
            .contains("cannot open the artifact store at"),
        "{artifacts:?}"
    );
    let unsupported = project.run(
        env!("CARGO_BIN_EXE_e2e-weft"),
        &["runs", "list"],
        &[("WEFT_STORE", "mongodb://x")],
    );
    assert_eq!(unsupported.code, 1, "{unsupported:?}");
    assert!(
        unsupported
            .stderr
            .contains("`mongodb://` is not a metadata store; use sqlite://<path>, postgres://"),
        "{unsupported:?}"
    );
}

#[test]
fn two_pipeline_processes_share_one_store_without_losing_versions() {
    let project = Project::new();
    // Create the store first, then race two processes on it.
    drop(project.client());
    let width = "200";
    let spawn = || {
        project
            .command(
                PIPELINES,
                &[
                    "run",
                    "shared",
                    "--no-cache",
                    "--param",
                    &format!("width={width}"),
                ],
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
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
    }
    let versions = project.json(&["artifacts", "versions", "shared", "--json"]);
    let mut numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().parse().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=400).collect::<Vec<u64>>(),
        "every version once, none lost"
    );
    let runs = project.json(&["runs", "list", "--json"]);
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "completed")
    );
}

#[test]
fn the_weft_command_explains_what_it_cannot_find() {
    let project = Project::new();
    // Reading never creates: outside any project, a read command says where it looked.
    let nowhere = project.weft(&["runs", "list"]);
    assert_eq!(nowhere.code, 2, "{nowhere:?}");
    assert!(
        nowhere.stderr.contains(&format!(
            "no weft project found (looked from {} up",
            project.path().display()
        )),
        "{nowhere:?}"
    );
    assert!(!project.path().join(".weft").exists());
    // In a project whose stores do not exist yet there is nothing to show, and still
    // nothing is created.
    std::fs::write(project.path().join("weft.toml"), "").unwrap();
    let empty = project.weft(&["runs", "list"]);
    assert!(!project.path().join(".weft").exists());
    assert_eq!(empty.code, 0, "{empty:?}");
    assert!(empty.stdout.contains("No runs yet"), "{empty:?}");
    let cases: &[(&[&str], &str)] = &[
        (&["runs", "show", "latest"], "no run matches `latest`"),
        (&["runs", "show", "nope"], "no run matches `nope`"),
        (
            &["artifacts", "versions", "ghost"],
            "no artifact matches `ghost`",
        ),
        (
            &["artifacts", "show", "ghost:1"],
            "no artifact version matches `ghost:1`",
        ),
        (&["lineage", "0000"], "no artifact version matches `0000`"),
    ];
    for (args, expected) in cases {
        let refused = project.weft(args);
        assert_eq!(refused.code, 1, "{args:?}: {refused:?}");
        assert!(
            refused.stderr.contains(expected),
            "{args:?}: `{expected}` in {refused:?}"
        );
    }
    assert_eq!(project.pipelines(&["run", "fragile"]).code, 0);
    let refused = project.weft(&["logs", "latest", "ghost"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("has no step `ghost`; its steps: prepare, divide"),
        "{refused:?}"
    );
    let usage = project.weft(&["runs", "frobnicate"]);
    assert_eq!(usage.code, 2, "{usage:?}");
}

fn step<'a>(shown: &'a Value, name: &str) -> &'a Value {
    shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {shown}"))
}

#[test]
fn cache_hits_are_shown_explained_and_expired_from_the_command_line() {
    let project = Project::new();
    assert_eq!(project.pipelines(&["run", "fragile"]).code, 0);
    let first = project.json(&["runs", "show", "latest", "--json"]);
    let first_id = first["id"].as_str().unwrap();
    let rerun = project.pipelines(&["run", "fragile"]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert!(rerun.stdout.contains("2 cached"), "{rerun:?}");
    let second = project.json(&["runs", "show", "latest", "--json"]);
    let prepare = step(&second, "prepare");
    assert_eq!(prepare["status"], "cached", "{second}");
    assert_eq!(prepare["cached_from"]["run"], first_id, "{second}");
    assert_eq!(
        prepare["outputs"]["output"],
        step(&first, "prepare")["outputs"]["output"],
        "a hit reuses the original's artifact version"
    );
    let table = project.weft(&["runs", "show", "latest"]);
    assert!(table.stdout.contains("cached"), "{table:?}");
    assert!(table.stdout.contains(first_id), "{table:?}");

    let explained = project.weft(&["cache", "explain", "latest", "prepare"]);
    assert_eq!(explained.code, 0, "{explained:?}");
    assert!(explained.stdout.contains("parameters"), "{explained:?}");
    assert!(
        explained
            .stdout
            .contains(&format!("Same key as step `prepare` of run {first_id}")),
        "{explained:?}"
    );
    assert_eq!(
        project.pipelines(&["run", "fragile", "-p", "size=11"]).code,
        0
    );
    let explained = project.weft(&["cache", "explain", "latest", "divide"]);
    assert!(
        explained
            .stdout
            .contains("Differs from step `divide` of run")
            && explained.stdout.contains("in: input `values`"),
        "a new upstream value changes the input part: {explained:?}"
    );
    let explained = project.weft(&["cache", "explain", "latest", "prepare"]);
    assert!(explained.stdout.contains("in: parameters"), "{explained:?}");
    let parts = project.json(&["cache", "explain", "latest", "prepare", "--json"]);
    assert_eq!(parts["parts"]["format"], "weft-cache-v1", "{parts}");

    let expired = project.weft(&["cache", "expire", "--step", "prepare"]);
    assert_eq!(expired.code, 0, "{expired:?}");
    assert!(
        expired.stdout.contains("2 cache entries expired"),
        "{expired:?}"
    );
    assert_eq!(project.pipelines(&["run", "fragile"]).code, 0);
    let after = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(step(&after, "prepare")["status"], "completed", "{after}");
    assert_eq!(
        step(&after, "divide")["status"],
        "cached",
        "identical bytes upstream let the downstream step hit: {after}"
    );
    let expired = project.weft(&["cache", "expire", "latest", "divide"]);
    assert!(
        expired.stdout.contains("1 cache entry expired"),
        "{expired:?}"
    );
    let everything = project.weft(&["cache", "expire", "--all"]);
    assert_eq!(everything.code, 0, "{everything:?}");

    let unsaid = project.weft(&["cache", "expire"]);
    assert_eq!(unsaid.code, 1, "{unsaid:?}");
    assert!(
        unsaid.stderr.contains("say which entries expire"),
        "{unsaid:?}"
    );
    let ghost = project.weft(&["cache", "explain", "latest", "ghost"]);
    assert_eq!(ghost.code, 1, "{ghost:?}");

    let uncached = project.pipelines(&["run", "fragile", "--no-cache"]);
    assert!(uncached.stdout.contains(": 2 completed."), "{uncached:?}");
    let explained = project.weft(&["cache", "explain", "latest", "prepare"]);
    assert!(
        explained.stdout.contains("caching was off"),
        "{explained:?}"
    );
}

#[test]
fn damaged_artifacts_are_reported_by_verify_and_computed_again() {
    let project = Project::new();
    // 1,000 values: files on disk (a handful would be kept in their records).
    let run = ["run", "fragile", "--param", "size=1000"];
    assert_eq!(project.pipelines(&run).code, 0);
    let intact = project.weft(&["artifacts", "verify"]);
    assert_eq!(intact.code, 0, "{intact:?}");
    assert!(
        intact.stdout.contains("2 of 2 artifact version(s) intact"),
        "{intact:?}"
    );
    let version = project.json(&["artifacts", "show", "fragile::prepare::output:1", "--json"]);
    let folder = version["uri"]
        .as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap()
        .to_owned();
    let file = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let damaged = project.weft(&["artifacts", "verify"]);
    assert_eq!(damaged.code, 1, "{damaged:?}");
    assert!(
        damaged.stdout.contains("fragile::prepare::output v1"),
        "{damaged:?}"
    );
    assert!(
        damaged.stdout.contains("1 of 2 artifact version(s) intact"),
        "{damaged:?}"
    );
    let rerun = project.pipelines(&run);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    let prepare = step(&shown, "prepare");
    assert_eq!(prepare["status"], "completed", "{shown}");
    assert!(
        prepare["status_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("unusable")),
        "the CLI says why the step ran again: {shown}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the damaged file is left alone, not overwritten"
    );
    std::fs::remove_file(&file).unwrap();
    let missing = project.weft(&["artifacts", "verify", "fragile::prepare::output:1"]);
    assert_eq!(missing.code, 1, "{missing:?}");
}

#[test]
fn a_stopped_run_starts_no_new_step_and_a_resume_finishes_it() {
    let project = Project::new();
    let journal = project.path().join("journal.txt");
    let journal_param = format!("journal={}", journal.display());
    let child = project
        .command(
            PIPELINES,
            &[
                "run",
                "endurance",
                "-p",
                &journal_param,
                "-p",
                "pause_ms=250",
                "-p",
                "bytes=16",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first step is running, then stop the run.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&journal).is_ok_and(|text| text.contains("origin")) {
        assert!(started.elapsed().as_secs() < 30, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let stopped = project.weft(&["runs", "stop", "latest"]);
    assert_eq!(stopped.code, 0, "{stopped:?}");
    assert!(stopped.stdout.contains("stopping"), "{stopped:?}");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("stopped"), "{summary}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "stopped", "{shown}");
    assert_eq!(step(&shown, "origin")["status"], "completed", "{shown}");
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        1,
        "no step started after the stop"
    );
    let again = project.weft(&["runs", "stop", "latest"]);
    assert_eq!(again.code, 1, "a finished run cannot stop: {again:?}");

    let stopped_id = shown["id"].as_str().unwrap().to_owned();
    let resumed = project.pipelines(&["run", "--resume", &stopped_id, "--no-cache"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let finished = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(finished["status"], "completed", "{finished}");
    assert_eq!(finished["resumed_from"], stopped_id.as_str());
    assert_eq!(step(&finished, "origin")["status"], "cached", "{finished}");
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(
        lines.lines().count(),
        12,
        "each step computed once: {lines}\n{resumed:?}"
    );
}

#[test]
fn a_dynamic_sweep_runs_from_the_command_line_and_shows_what_it_did() {
    let project = Project::new();
    let run = project.pipelines(&[
        "run",
        "sweep",
        "--param",
        "learning_rates=[0.05, 0.5]",
        "--param",
        "epochs=50",
        "--param",
        "threshold=1.5",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("below 150.0%: trying nearest centroids"),
        "the function branched on loaded results: {run:?}"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["dynamic"], true);
    assert_eq!(shown["status"], "completed");
    let steps = shown["steps"].as_array().unwrap();
    let names: Vec<&str> = steps
        .iter()
        .map(|step| step["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "compare",
            "evaluate",
            "evaluate_2",
            "evaluate_3",
            "load",
            "split",
            "train_centroids",
            "train_softmax:0",
            "train_softmax:1"
        ],
        "the DAG as it was executed, map items included"
    );
    for (position, step) in steps.iter().enumerate() {
        for upstream in step["upstream"].as_array().unwrap() {
            let at = names.iter().position(|name| upstream == name).unwrap();
            assert!(at < position, "{upstream} comes before {}", step["name"]);
        }
    }
    assert_eq!(
        steps[2]["group"], "train_softmax",
        "map items name their map"
    );
    assert!(steps[0].get("group").is_none());
    let compare = steps.iter().find(|step| step["name"] == "compare").unwrap();
    assert_eq!(
        compare["upstream"],
        serde_json::json!(["evaluate", "evaluate_2", "evaluate_3"])
    );
    let table = project.weft(&["runs", "show", "latest"]);
    assert!(
        table.stdout.contains("stop_on_failure, dynamic")
            && table.stdout.contains("train_softmax:1"),
        "{table:?}"
    );
    // A completed dynamic run has nothing to resume: refused, and nothing recorded.
    let resumed = project.pipelines(&["run", "--resume", "latest"]);
    assert_eq!(resumed.code, 2, "{resumed:?}");
    assert!(
        resumed
            .stderr
            .contains("completed: there is nothing to resume"),
        "{resumed:?}"
    );
    assert_eq!(
        project.json(&["runs", "show", "latest", "--json"])["id"],
        shown["id"]
    );
    // A reader that goes away before the end (`| head -1`) is no error.
    for arguments in [
        ["runs", "show", "latest", "--json"],
        ["runs", "show", "latest", "--items"],
    ] {
        let mut child = project
            .command(WEFT, &arguments)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the weft command starts");
        drop(child.stdout.take());
        let gone = child.wait_with_output().expect("the command ends");
        assert_eq!(gone.status.code(), Some(0), "{gone:?}");
        assert!(gone.stderr.is_empty(), "{gone:?}");
    }
}

#[test]
fn a_running_steps_log_can_be_followed() {
    use std::io::BufRead as _;

    let project = Project::new();
    let (mut run, gate) = project.start_gated_talk(&[]);
    let mut follow = project
        .command(
            crate::common::WEFT,
            &["logs", "latest", "talkative", "--follow"],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.contains("before the gate"),
        "the record shows while the step still runs: {first}"
    );
    std::fs::write(&gate, "").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(follow.wait().unwrap().success());
    assert_eq!(run.wait().unwrap().code(), Some(0));
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(rest[0].contains("after the gate"), "{rest:?}");
    let live: Vec<_> = std::fs::read_dir(project.path().join(".weft/artifacts/logs"))
        .unwrap()
        .flatten()
        .flat_map(|run| std::fs::read_dir(run.path()).unwrap().flatten())
        .filter(|file| file.file_name().to_string_lossy().contains(".live."))
        .collect();
    assert!(live.is_empty(), "the live copy is removed: {live:?}");
}
