//! What a new user meets first, through the binaries: the pipeline binary answers the
//! inspection commands its closing hint names, stores are never created by reading, a store
//! that cannot be written can still be read, an empty store file is not taken for a new store
//! when its history is elsewhere, and absurd settings are refused with the option's name.

use crate::common::{PIPELINES, Project};

#[test]
fn the_closing_hint_names_a_command_that_works() {
    let project = Project::new();
    let run = project.pipelines(&["run", "training"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("created a new metadata store") && run.stderr.contains(".weft/weft.db"),
        "the first run says where it created the store: {run:?}"
    );
    let hint = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Inspect it:"))
        .unwrap_or_else(|| panic!("a hint in {run:?}"))
        .trim()
        .to_owned();
    // `weft` is not installed where the tests run: the hint names this binary itself.
    let words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(words[0], PIPELINES, "{hint}");
    let shown = project.pipelines(&words[1..]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("Status      completed"), "{shown:?}");
    let second = project.pipelines(&["run", "training"]);
    assert!(
        !second.stderr.contains("created a new metadata store"),
        "{second:?}"
    );
}

#[test]
fn an_empty_store_file_beside_artifacts_is_refused_and_left_alone() {
    let project = Project::new();
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    let database = project.path().join(".weft/weft.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    std::fs::write(&database, b"").unwrap();
    for finished in [
        project.pipelines(&["run", "training"]),
        project.weft(&["runs", "list"]),
    ] {
        assert_ne!(finished.code, 0, "{finished:?}");
        assert!(
            finished
                .stderr
                .contains("is an empty file (0 bytes), not a weft store"),
            "{finished:?}"
        );
    }
    assert_eq!(std::fs::metadata(&database).unwrap().len(), 0);
    // With no artifacts either, an empty file is simply a new store.
    std::fs::remove_dir_all(project.path().join(".weft/artifacts")).unwrap();
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
}

#[test]
fn absurd_parallelism_is_refused_with_the_option_named() {
    let project = Project::new();
    let run = project.pipelines(&["run", "training", "--max-parallelism", "4294967295"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--max-parallelism"), "{run:?}");
    assert!(
        !project.path().join(".weft").exists(),
        "nothing ran: {run:?}"
    );
    // A large but sane bound starts no more threads than the run has steps: it completes.
    let wide = project.pipelines(&["run", "training", "--max-parallelism", "4096"]);
    assert_eq!(wide.code, 0, "{wide:?}");
}

#[test]
fn a_short_prefix_matching_many_runs_is_ambiguous() {
    let project = Project::new();
    for _ in 0..2 {
        assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    }
    let runs = project.json(&["runs", "list", "--json"]);
    let first = runs[0]["id"].as_str().unwrap().to_owned();
    let second = runs[1]["id"].as_str().unwrap().to_owned();
    let shared: String = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .take(3)
        .collect();
    let one = project.weft(&["runs", "list", "--limit", "1"]);
    assert!(
        one.stdout.contains(&first) && !one.stdout.contains(&second),
        "{one:?}"
    );
    assert!(
        one.stdout.contains("training-"),
        "runs are listed by name: {one:?}"
    );
    assert!(
        one.stdout.contains("The newest 1 runs; more exist"),
        "{one:?}"
    );
    let all = project.weft(&["runs", "list"]);
    assert!(!all.stdout.contains("more exist"), "{all:?}");
    let shown = project.weft(&["runs", "show", &shared]);
    assert_eq!(shown.code, 1, "{shown:?}");
    assert!(
        shown
            .stderr
            .contains(&format!("`{shared}` matches 2 runs; give more characters")),
        "{shown:?}"
    );
}

/// A store on a read-only mount can be listed and shown. Needs root (a bind mount).
#[test]
fn a_store_on_a_read_only_mount_can_be_read() {
    let project = Project::new();
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    let folder = project.path().join(".weft");
    let mount = ReadOnly::mount(&folder);
    let listed = project.weft(&["runs", "list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(listed.stdout.contains("training"), "{listed:?}");
    let shown = project.weft(&["runs", "show", "latest"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("iris-report:1"), "{shown:?}");
    let artifact = project.weft(&["artifacts", "show", "iris-report:latest"]);
    assert_eq!(artifact.code, 0, "{artifact:?}");
    drop(mount);
}

/// A read-only bind mount of a folder onto itself, undone when dropped.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn mount(folder: &std::path::Path) -> Self {
        let run = |args: &[&str]| {
            let status = std::process::Command::new("mount")
                .args(args)
                .status()
                .expect("mount runs");
            assert!(status.success(), "mount {args:?} (the test needs root)");
        };
        let path = folder.to_str().unwrap();
        run(&["--bind", path, path]);
        let mounted = Self(folder.to_owned());
        run(&["-o", "remount,ro,bind", path]);
        assert!(
            std::fs::write(folder.join("probe"), b"").is_err(),
            "the folder is read-only"
        );
        mounted
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_completed_run_is_not_resumed() {
    let project = Project::new();
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    let resumed = project.pipelines(&["run", "--resume", "latest"]);
    assert_eq!(resumed.code, 2, "{resumed:?}");
    assert!(
        resumed
            .stderr
            .contains("completed: there is nothing to resume"),
        "{resumed:?}"
    );
    let runs = project.json(&["runs", "list", "--json"]);
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "no run was recorded: {runs}"
    );
}

#[test]
fn lineage_prints_a_shared_ancestor_once() {
    let project = Project::new();
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    let lineage = project.weft(&["lineage", "iris-report:latest"]);
    assert_eq!(lineage.code, 0, "{lineage:?}");
    // The report is made from two evaluations, both of the split, both of one load.
    let loads = lineage.stdout.matches("<- step `load`").count();
    assert_eq!(loads, 1, "{}", lineage.stdout);
    assert!(
        lineage.stdout.contains("(made as shown above)"),
        "{}",
        lineage.stdout
    );
}

#[test]
fn messages_say_a_thing_once_and_name_what_exists() {
    let project = Project::new();
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    // A step the run does not have: the run's steps are listed.
    let logs = project.weft(&["logs", "latest", "trian_softmax"]);
    assert_eq!(logs.code, 1, "{logs:?}");
    assert!(
        logs.stderr
            .contains("has no step `trian_softmax`; its steps: load, split,"),
        "{logs:?}"
    );
    // An integer too large for any integer type is not called a float.
    let large = project.pipelines(&["run", "training", "-p", "limit=99999999999999999999999"]);
    assert_eq!(large.code, 2, "{large:?}");
    assert!(
        large
            .stderr
            .contains("the number is too large for parameter `limit` (a `usize`)"),
        "{large:?}"
    );
    assert!(!large.stderr.contains("floating point"), "{large:?}");
    // A store that is not a database says so once.
    let database = project.path().join(".weft/weft.db");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    std::fs::write(
        &database,
        b"this is not a database, only text long enough to look like one",
    )
    .unwrap();
    let listed = project.weft(&["runs", "list"]);
    assert_ne!(listed.code, 0, "{listed:?}");
    assert_eq!(
        listed.stderr.matches("file is not a database").count(),
        1,
        "{listed:?}"
    );
}

#[test]
fn a_failing_step_shows_no_backtrace_even_with_rust_backtrace_set() {
    let project = Project::new();
    let failed = project.run(
        PIPELINES,
        &["run", "fragile", "-p", "by=0"],
        &[("RUST_BACKTRACE", "1")],
    );
    assert_eq!(failed.code, 1, "{failed:?}");
    let shown = project.run(
        crate::common::WEFT,
        &["runs", "show", "latest"],
        &[("RUST_BACKTRACE", "1")],
    );
    assert!(shown.stdout.contains("failed"), "{shown:?}");
    assert!(!shown.stdout.contains("stack backtrace"), "{shown:?}");
    assert!(!shown.stdout.contains("rust_begin_unwind"), "{shown:?}");
}

#[test]
fn a_closed_pipe_is_no_crash() {
    let project = Project::new();
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    // Standard output and error both go to a reader that is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = project
        .command(crate::common::WEFT, &["runs", "show", "nope"])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "an error, said or not, and no panic (101)"
    );
}

/// Needs root (a small tmpfs).
#[test]
fn a_full_disk_is_said_once_per_step_with_the_run_and_its_summary() {
    let project = Project::new();
    let path = project.path().to_str().unwrap().to_owned();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", &path])
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mount a tmpfs (the test needs root)");
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(path.clone());
    let journal = format!(
        "journal={}",
        std::env::temp_dir()
            .join(format!("weft-journal-{}", std::process::id()))
            .display()
    );
    let run = project.pipelines(&[
        "run",
        "endurance",
        "-p",
        &journal,
        "-p",
        "bytes=600000",
        "-p",
        "pause_ms=0",
    ]);
    assert_eq!(run.code, 1, "steps ran, and the run failed: {run:?}");
    assert!(run.stdout.contains("failed in"), "the summary: {run:?}");
    assert!(
        run.stdout.contains("no space left on device, at "),
        "{run:?}"
    );
    // Steps' failures, one line each (the metadata store may fill up too, depending on which
    // write comes first: the orchestrator's own failure is then said on a line of its own).
    let failed: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.contains("step `") && line.contains("no space left on device"))
        .collect();
    let steps: std::collections::BTreeSet<&str> = failed
        .iter()
        .filter_map(|line| line.split('`').nth(1))
        .collect();
    assert_eq!(
        failed.len(),
        steps.len(),
        "each step's failure said once: {failed:#?}"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "failed", "{shown}");
}
