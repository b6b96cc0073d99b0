//! A pipeline binary and the `weft` command, run as processes against one project folder.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// What a finished process printed.
struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A project folder: stores are discovered in it (`.weft/`).
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, binary: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
        let mut command = Command::new(binary);
        command.args(args).current_dir(self.path());
        for variable in ["WEFT_STORE", "WEFT_ARTIFACTS", "WEFT_LOG", "WEFT_STEP_LOG"] {
            command.env_remove(variable);
        }
        command.envs(env.iter().copied());
        let output = command.output().expect("the binary starts");
        Finished {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn pipelines(&self, args: &[&str]) -> Finished {
        self.run(env!("CARGO_BIN_EXE_e2e-pipelines"), args, &[])
    }

    fn weft(&self, args: &[&str]) -> Finished {
        self.run(env!("CARGO_BIN_EXE_e2e-weft"), args, &[])
    }

    fn json(&self, args: &[&str]) -> Value {
        let finished = self.weft(args);
        assert_eq!(finished.code, 0, "{finished:?}");
        serde_json::from_str(&finished.stdout).expect("JSON output")
    }
}

#[test]
fn the_quickstart_runs_and_everything_it_recorded_can_be_inspected() {
    let project = Project::new();
    let run = project.pipelines(&["run", "training", "--param", "epochs=50"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("completed"), "{run:?}");
    assert!(
        run.stdout.contains("weft runs show "),
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
    assert!(listed.stdout.contains("shared(width: usize)"), "{listed:?}");
}

#[test]
fn bad_arguments_are_refused_with_clear_errors_and_nothing_recorded() {
    let project = Project::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "trainnig"],
            "unknown pipeline `trainnig`; this binary has: fragile, shared, training",
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
            .contains("`mongodb://` metadata stores are not supported"),
        "{unsupported:?}"
    );
}

#[test]
fn two_pipeline_processes_share_one_store_without_losing_versions() {
    let project = Project::new();
    // Create the store first, then race two processes on it.
    assert_eq!(project.weft(&["runs", "list"]).code, 0);
    let width = "200";
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_e2e-pipelines"))
            .args([
                "run",
                "shared",
                "--no-cache",
                "--param",
                &format!("width={width}"),
            ])
            .current_dir(project.path())
            .env_remove("WEFT_STORE")
            .env_remove("WEFT_ARTIFACTS")
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
    let empty = project.weft(&["runs", "list"]);
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
        refused.stderr.contains("no step run matches `ghost"),
        "{refused:?}"
    );
    let usage = project.weft(&["runs", "frobnicate"]);
    assert_eq!(usage.code, 2, "{usage:?}");
}
