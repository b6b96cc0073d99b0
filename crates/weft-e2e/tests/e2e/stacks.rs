//! Stacks in `weft.toml`: listed, shown, made active, used by pipeline binaries and by the
//! `weft` command; invalid ones are refused with the file and the key.

use crate::common::Project;

const STACKS: &str = r#"# the team's stacks
[stacks.laptop]
metadata = "sqlite://laptop/weft.db"
artifacts = "file://laptop/artifacts"

[stacks.cluster]
orchestrator = "slurm"
metadata = "sqlite://cluster/weft.db"

[stacks.cluster.steps.train_softmax]
env = { OMP_NUM_THREADS = "4" }
resources = { cpus = 4, memory = "8 GiB", time_limit = "2h", partition = "gpu" }

[stacks.mixed]
metadata = "sqlite://mixed/weft.db"

[stacks.mixed.steps.prepare]
resources = { cpus = 2 }
"#;

#[test]
fn stacks_are_listed_shown_made_active_and_used() {
    let project = Project::new();
    let file = project.path().join("weft.toml");
    std::fs::write(&file, STACKS).unwrap();

    let listed = project.json(&["stack", "list", "--json"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|stack| stack["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cluster", "laptop", "mixed"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["active"] == false)
    );

    let shown = project.json(&["stack", "show", "cluster", "--json"]);
    assert_eq!(shown["orchestrator"], "slurm");
    let resources = &shown["steps"]["train_softmax"]["resources"];
    assert_eq!(resources["cpus"], 4);
    assert_eq!(resources["memory"], format!("{} B", 8u64 << 30));
    assert_eq!(resources["time_limit"], "2h");
    assert_eq!(resources["partition"], "gpu");
    let table = project.weft(&["stack", "show", "cluster"]);
    assert!(
        table.stdout.contains("train_softmax") && table.stdout.contains("OMP_NUM_THREADS=4"),
        "{table:?}"
    );

    let set = project.weft(&["stack", "set", "laptop"]);
    assert_eq!(set.code, 0, "{set:?}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("stack = \"laptop\""), "{written}");
    assert!(
        written.contains("# the team's stacks"),
        "the file keeps its comments"
    );
    let table = project.weft(&["stack", "list"]);
    assert!(
        table
            .stdout
            .lines()
            .any(|line| line.contains('*') && line.contains("laptop")),
        "{table:?}"
    );

    // Pipelines run on the active stack's stores; the weft command reads them.
    let run = project.pipelines(&["run", "fragile"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(project.path().join("laptop/weft.db").is_file());
    assert!(!project.path().join(".weft/weft.db").exists());
    let runs = project.json(&["runs", "list", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    // Settings that cannot apply are refused before anything is recorded.
    let refused = project.pipelines(&["run", "fragile", "--stack", "mixed"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("stacks.mixed.steps.prepare.resources")
            && refused.stderr.contains("only Slurm jobs take resources"),
        "{refused:?}"
    );
    let elsewhere = project.weft(&["--stack", "mixed", "runs", "list", "--json"]);
    assert_eq!(
        elsewhere.stdout.trim(),
        "[]",
        "nothing recorded there: {elsewhere:?}"
    );

    let unknown = project.weft(&["stack", "set", "nope"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no stack is named `nope`")
            && unknown.stderr.contains("cluster, laptop, mixed"),
        "{unknown:?}"
    );
    let unknown = project.pipelines(&["run", "fragile", "--stack", "nope"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
}

#[test]
fn invalid_stacks_name_the_file_and_the_key() {
    let cases = [
        ("[stacks.a]\norchestrator = \"slrum\"\n", "slrum"),
        ("[stacks.a]\norchestrater = \"local\"\n", "orchestrater"),
        (
            "[stacks.a.steps.train.resources]\nmemory = \"8 parsecs\"\n",
            "unknown memory unit `parsecs`",
        ),
        (
            "[stacks.a.steps.train.resources]\ntime_limit = \"soon\"\n",
            "time_limit",
        ),
        (
            "[stacks.a.steps.train]\nstep_operator = \"kubernetes\"\n",
            "kubernetes",
        ),
        ("stack = \"b\"\n[stacks.a]\n", "`stack` names `b`"),
    ];
    for (text, expected) in cases {
        let project = Project::new();
        std::fs::write(project.path().join("weft.toml"), text).unwrap();
        for finished in [
            project.weft(&["stack", "list"]),
            project.weft(&["runs", "list"]),
            project.pipelines(&["run", "fragile"]),
        ] {
            assert_ne!(finished.code, 0, "{text}: {finished:?}");
            assert!(
                finished.stderr.contains("weft.toml") && finished.stderr.contains(expected),
                "{text}: the error names the file and `{expected}`: {finished:?}"
            );
        }
    }
}

#[test]
fn the_local_process_orchestrator_and_the_process_step_operator_isolate_steps() {
    let project = Project::new();
    std::fs::write(
        project.path().join("weft.toml"),
        r#"
[stacks.processes]
orchestrator = "local_process"

[stacks.greeter.steps.greeting]
step_operator = "process"
env = { GREETING = "hello" }

[stacks.inline.steps.greeting]
env = { GREETING = "hello" }
"#,
    )
    .unwrap();
    let inline = project.pipelines(&["run", "processes"]);
    assert_eq!(
        inline.code, 1,
        "inline, both calls share a process: {inline:?}"
    );
    let isolated = project.pipelines(&["run", "processes", "--stack", "processes"]);
    assert_eq!(isolated.code, 0, "{isolated:?}");

    let greeted = project.pipelines(&[
        "run",
        "greeted",
        "--stack",
        "greeter",
        "-p",
        "expected=hello",
    ]);
    assert_eq!(
        greeted.code, 0,
        "the step's process has its environment: {greeted:?}"
    );
    let refused = project.pipelines(&[
        "run",
        "greeted",
        "--stack",
        "inline",
        "-p",
        "expected=hello",
    ]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("stacks.inline.steps.greeting.env")
            && refused.stderr.contains("isolate it"),
        "{refused:?}"
    );
}

#[test]
fn store_passwords_are_never_shown_and_can_stay_out_of_the_file() {
    let project = Project::new();
    std::fs::write(
        project.path().join("weft.toml"),
        "[stacks.team]\nmetadata = \"postgres://weft:s3cret@db.example:5432/weft\"\n\n\
         [stacks.safe]\nmetadata = \"postgres://weft:${WEFT_TEST_NOT_SET}@db.example/weft\"\n\n\
         [stacks.nodb]\nmetadata = \"postgres://weft:s3cret@db.example:5432\"\n",
    )
    .unwrap();
    for args in [
        &["stack", "show", "team"][..],
        &["stack", "show", "team", "--json"],
        &["stack", "list"],
        &["stack", "list", "--json"],
    ] {
        let shown = project.weft(args);
        assert_eq!(shown.code, 0, "{shown:?}");
        assert!(
            shown.stdout.contains("weft:***@db.example") && !shown.stdout.contains("s3cret"),
            "{args:?}: {shown:?}"
        );
    }
    let unset = project.pipelines(&["run", "training", "--stack", "safe"]);
    assert_eq!(unset.code, 2, "{unset:?}");
    assert!(
        unset
            .stderr
            .contains("`stacks.safe.metadata` uses `${WEFT_TEST_NOT_SET}`, which is not set"),
        "{unset:?}"
    );
    let no_database = project.pipelines(&["run", "training", "--stack", "nodb"]);
    assert_eq!(no_database.code, 2, "{no_database:?}");
    assert!(
        no_database.stderr.contains("weft.toml: `stacks.nodb.metadata`: invalid metadata store URL `postgres://weft:***@db.example:5432`: the URL names no database"),
        "{no_database:?}"
    );
}
