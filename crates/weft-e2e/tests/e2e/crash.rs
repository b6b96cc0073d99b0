//! Kills a real pipeline process with SIGKILL at random moments and checks what it leaves
//! behind: after `weft runs reconcile` (or any command that opens the stores) no run is
//! unfinished, every registered artifact version is intact, no file that was being written
//! is left in the artifact store, no log is left of a step run that did not finish
//! (recorded or not: steps start before their records are written), and `run --resume`
//! completes the run computing each unfinished step exactly once.
//!
//! Static and dynamic runs take turns (`endurance` and `endurance_dynamic`, the same twelve
//! invocations). The moments are drawn from a seeded generator; `WEFT_CRASH_SEED=<n>`
//! replays a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{PIPELINES, Project};
use serde_json::Value;

const KILLS: usize = 24;
/// Invocations of the `endurance` pipelines.
const INVOCATIONS: usize = 12;

#[test]
fn killed_pipelines_are_reconciled_and_resumed_without_losing_or_repeating_work() {
    kill_repeatedly(&Project::new(), KILLS);
}

/// The same with the metadata store on PostgreSQL: a killed orchestrator leaves its
/// connection's transaction to the server, which rolls it back.
#[test]
fn killed_pipelines_on_postgresql_are_reconciled_and_resumed() {
    kill_repeatedly(&Project::on(crate::common::Server::Postgres), KILLS / 3);
}

/// A run of fast steps killed in its stride: the steps that started (and finished) since its
/// last commit have no record, and nothing of theirs may stay behind, neither logs (steps
/// with small outputs, kept in their records) nor files (larger outputs, whose steps wait
/// for their record before they store anything).
#[test]
fn steps_killed_before_their_records_were_written_leave_nothing() {
    for bytes in ["16", "4096"] {
        let project = Project::new();
        let context = format!("a chain of outputs of {bytes} bytes");
        let mut child = project
            .command(
                PIPELINES,
                &[
                    "run",
                    "long_chain",
                    "--no-cache",
                    "-p",
                    "length=20000",
                    "-p",
                    &format!("bytes={bytes}"),
                ],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the pipeline starts");
        // Wait until the run is recorded, then kill in the middle of the chain.
        let started = std::time::Instant::now();
        while runs(&project).is_empty() && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        child.kill().expect("SIGKILL");
        child.wait().expect("the process is reaped");
        let reconciled = project.weft(&["runs", "reconcile"]);
        assert_eq!(reconciled.code, 0, "{context}: {reconciled:?}");
        let shown = project.json(&["runs", "show", "latest", "--json"]);
        assert_eq!(shown["status"], "failed", "{context}: killed mid-run");
        let completed = shown["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|step| step["status"] == "completed")
            .count();
        assert!(completed > 10, "{context}: {completed} steps completed");
        let verified = project.weft(&["artifacts", "verify"]);
        assert_eq!(verified.code, 0, "{context}: {verified:?}");
        assert_only_registered_files(&project, "long_chain", &context);
        assert_only_logs_of_finished_steps(&project, &context);
    }
}

fn kill_repeatedly(project: &Project, kills: usize) {
    let seed = std::env::var("WEFT_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    println!("seed {seed} (set WEFT_CRASH_SEED to replay)");
    let mut random = fastrand::Rng::with_seed(seed);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for kill in 0..kills {
        let pause_ms = random.u64(20..=40);
        // A run takes about 300 ms here; the later kills land after it finished.
        let delay = Duration::from_millis(random.u64(0..=340));
        let journal = project.path().join(format!("journal-{kill}.txt"));
        let pipeline = if kill % 4 < 2 {
            "endurance"
        } else {
            "endurance_dynamic"
        };
        let context = format!(
            "kill {kill} of {pipeline} (seed {seed}) after {delay:?}, steps of {pause_ms} ms"
        );
        let outcome = kill_and_recover(
            project,
            pipeline,
            &journal,
            pause_ms,
            delay,
            kill % 2 == 0,
            &context,
        );
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("outcomes: {outcomes:?}");
    assert!(
        outcomes.get("interrupted").copied().unwrap_or(0) >= kills / 3,
        "most kills should land while steps run: {outcomes:?}"
    );
}

/// Starts a run, kills it after `delay`, reconciles, checks the stores and resumes; says
/// what the kill interrupted.
fn kill_and_recover(
    project: &Project,
    pipeline: &str,
    journal: &Path,
    pause_ms: u64,
    delay: Duration,
    explicit_reconcile: bool,
    context: &str,
) -> &'static str {
    let runs_before = runs(project).len();
    let journal_param = format!("journal={}", journal.display());
    let pause_param = format!("pause_ms={pause_ms}");
    let mut child = project
        .command(
            PIPELINES,
            &[
                "run",
                pipeline,
                "--no-cache",
                "-p",
                &journal_param,
                "-p",
                &pause_param,
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the pipeline starts");
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    child.wait().expect("the process is reaped");

    // Every other time, leave it to the next command: opening the stores reconciles too.
    if explicit_reconcile {
        let reconciled = project.weft(&["runs", "reconcile"]);
        assert_eq!(reconciled.code, 0, "{context}: {reconciled:?}");
    }
    let listed = runs(project);
    for run in &listed {
        assert!(
            ["completed", "failed"].contains(&run["status"].as_str().unwrap()),
            "{context}: a run is left unfinished: {run}"
        );
    }
    let verified = project.weft(&["artifacts", "verify"]);
    assert_eq!(verified.code, 0, "{context}: {verified:?}");
    assert_only_registered_files(project, pipeline, context);
    assert_only_logs_of_finished_steps(project, context);

    if listed.len() == runs_before {
        return "before the run was created";
    }
    let killed = &listed[0];
    let killed_id = killed["id"].as_str().unwrap().to_owned();
    let shown = project.json(&["runs", "show", &killed_id, "--json"]);
    if killed["status"] == "completed" {
        assert_eq!(journal_counts(journal).len(), INVOCATIONS, "{context}");
        return "after the run completed";
    }
    let died = |reason: &Value| {
        reason
            .as_str()
            .is_some_and(|reason| reason.contains("orchestrator process died"))
    };
    assert!(died(&shown["status_reason"]), "{context}: {shown}");
    let finished: BTreeSet<String> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["status"] == "completed")
        .map(|step| step["name"].as_str().unwrap().to_owned())
        .collect();
    for step in shown["steps"].as_array().unwrap() {
        if step["status"] == "failed" {
            assert!(died(&step["error"]["message"]), "{context}: {step}");
        }
    }
    let computed_before = journal_counts(journal);

    let resumed = project.pipelines(&["run", "--resume", &killed_id, "--no-cache"]);
    assert_eq!(resumed.code, 0, "{context}: {resumed:?}");
    let computed_after = journal_counts(journal);
    let mut computed_by_resume = BTreeSet::new();
    for (invocation, count) in &computed_after {
        let before = computed_before.get(invocation).copied().unwrap_or(0);
        assert!(
            count - before <= 1,
            "{context}: `{invocation}` computed {} times on resume",
            count - before
        );
        if count > &before {
            computed_by_resume.insert(invocation.clone());
        }
    }
    let all: BTreeSet<String> = computed_after.keys().cloned().collect();
    assert_eq!(all.len(), INVOCATIONS, "{context}: {computed_after:?}");
    let unfinished: BTreeSet<String> = all.difference(&finished).cloned().collect();
    assert_eq!(
        computed_by_resume, unfinished,
        "{context}: the resume computes exactly what did not finish"
    );
    let resumed_run = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(resumed_run["status"], "completed", "{context}");
    assert_eq!(resumed_run["resumed_from"], killed_id.as_str(), "{context}");
    let verified = project.weft(&["artifacts", "verify"]);
    assert_eq!(verified.code, 0, "{context}: {verified:?}");
    "interrupted"
}

fn runs(project: &Project) -> Vec<Value> {
    // A process killed before it made the project's stores leaves no project to read.
    let listed = project.weft(&["runs", "list", "--json", "--limit", "1000"]);
    if listed.code == 2 && listed.stderr.contains("no weft project found") {
        return Vec::new();
    }
    let listed = project.json(&["runs", "list", "--json", "--limit", "1000"]);
    listed.as_array().unwrap().clone()
}

/// How many times each invocation started computing.
fn journal_counts(journal: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        *counts.entry(line.to_owned()).or_default() += 1;
    }
    counts
}

/// Every file under the pipeline's artifact folders belongs to a registered version: what a
/// killed step was writing is gone.
fn assert_only_registered_files(project: &Project, pipeline: &str, context: &str) {
    let folder = project.path().join(".weft");
    let client = project.client();
    let mut registered = BTreeSet::new();
    for artifact in client.artifacts(false).unwrap() {
        for version in client.artifact_versions(&artifact.name).unwrap() {
            let path = version.uri.strip_prefix("file://").expect("a local uri");
            registered.insert(PathBuf::from(path.trim_end_matches('/')));
        }
    }
    let mut files = Vec::new();
    collect_files(&folder.join("artifacts").join(pipeline), &mut files);
    for file in files {
        assert!(
            registered.iter().any(|version| file.starts_with(version)),
            "{context}: {} is not part of a registered version",
            file.display()
        );
    }
}

/// Every stored log (and live copy) belongs to a finished step run.
fn assert_only_logs_of_finished_steps(project: &Project, context: &str) {
    let mut finished = BTreeSet::new();
    for run in runs(project) {
        let id = run["id"].as_str().unwrap();
        let shown = project.json(&["runs", "show", id, "--json"]);
        for step in shown["steps"].as_array().unwrap() {
            if ["completed", "failed", "cached", "skipped", "stopped"]
                .contains(&step["status"].as_str().unwrap())
            {
                finished.insert(step["step_run_id"].as_str().unwrap().to_owned());
            }
        }
    }
    let mut logs = Vec::new();
    collect_files(&project.path().join(".weft/artifacts/logs"), &mut logs);
    for log in logs {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        let step_run = name.split('.').next().unwrap();
        assert!(
            finished.contains(step_run),
            "{context}: {} is the log of no finished step run",
            log.display()
        );
    }
}

fn collect_files(folder: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files);
        } else {
            files.push(path);
        }
    }
}
