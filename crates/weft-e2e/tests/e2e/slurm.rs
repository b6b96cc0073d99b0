//! The Slurm step operator against a real single-node Slurm on this machine (started by
//! `scripts/slurm-up.sh`, which `scripts/test.sh` runs first).

use std::time::{Duration, Instant};

use crate::common::{PIPELINES, Project, Server, step};

const STACKS: &str = r#"
[stacks.hpc.steps.elsewhere]
step_operator = "slurm"
resources = { cpus = 1, memory = "200 MiB", time_limit = "5m" }

[stacks.hpc.steps.sleeping]
step_operator = "slurm"

[stacks.hpc.steps.overrunning]
step_operator = "slurm"

[stacks.cluster]
orchestrator = "slurm"

[stacks.wrong.steps.elsewhere]
step_operator = "slurm"
resources = { partition = "no-such-partition" }
"#;

fn project() -> Project {
    on(Project::new())
}

/// `project` with the Slurm stacks, once Slurm is known to run.
fn on(project: Project) -> Project {
    let ready = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .is_ok_and(|output| output.status.success() && !output.stdout.is_empty());
    assert!(
        ready,
        "Slurm is not running on this machine: start it with scripts/slurm-up.sh"
    );
    std::fs::write(project.path().join("weft.toml"), STACKS).unwrap();
    project
}

/// Our jobs Slurm still has queued or running, by name.
fn queued(name: &str) -> Vec<String> {
    let listed = std::process::Command::new("squeue")
        .args(["-h", "-n", name, "-o", "%i %T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_step_runs_as_a_slurm_job_and_its_output_is_in_its_log() {
    let project = project();
    let run = project.pipelines(&["run", "isolation", "--stack", "hpc", "--no-cache"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("is Slurm job"), "{run:?}");
    let logs = project.weft(&["logs", "latest", "elsewhere"]);
    assert!(
        logs.stdout.contains("printed by process")
            && logs.stdout.contains("traced in the isolated step"),
        "{logs:?}"
    );
}

#[test]
fn a_job_sbatch_refuses_fails_its_step_and_leaves_nothing_queued() {
    let project = project();
    let run = project.pipelines(&["run", "isolation", "--stack", "wrong", "--no-cache"]);
    assert_eq!(run.code, 1, "{run:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "failed");
    let message = step(&shown, "elsewhere")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("sbatch refused the step's job") && message.contains("partition"),
        "{message}"
    );
    assert!(
        queued("weft-elsewhere")
            .iter()
            .all(|job| !job.contains("PENDING"))
    );
}

#[test]
fn a_job_an_administrator_cancels_fails_its_step_with_the_reason() {
    let project = project();
    let mut run = project
        .command(
            PIPELINES,
            &["run", "slumber", "--stack", "hpc", "-p", "seconds=60"],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let running: Vec<String> = queued("weft-sleeping")
            .into_iter()
            .filter(|job| job.ends_with("RUNNING"))
            .collect();
        if let Some(job) = running.first() {
            break job.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(50));
    };
    let cancelled = std::process::Command::new("scancel")
        .arg(&job)
        .status()
        .unwrap();
    assert!(cancelled.success());
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    let message = step(&shown, "sleeping")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(&format!("the Slurm job {job} ended CANCELLED")),
        "{message}"
    );
}

#[test]
fn a_job_past_its_timeout_is_cancelled() {
    let project = project();
    let started = Instant::now();
    let run = project.pipelines(&["run", "isolation_timeout", "--stack", "hpc"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancelled, not waited for"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    let message = step(&shown, "overrunning")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("timed out"), "{message}");
    // The job's id is kept with the step run, though nobody waited for its end.
    let facts = step(&shown, "overrunning")["metadata"].to_string();
    assert!(facts.contains("\"Slurm job "), "{facts}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while queued("weft-overrunning")
        .iter()
        .any(|job| job.ends_with("RUNNING"))
    {
        assert!(Instant::now() < deadline, "the job was not cancelled");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn on_the_slurm_orchestrator_every_step_is_a_job_and_a_stop_cancels_them() {
    let project = project();
    let run = project.pipelines(&["run", "processes", "--stack", "cluster"]);
    assert_eq!(run.code, 0, "every call in a job of its own: {run:?}");
    assert_eq!(run.stderr.matches("is Slurm job").count(), 3, "{run:?}");

    let mut run = project
        .command(
            PIPELINES,
            &["run", "slumber", "--stack", "cluster", "-p", "seconds=120"],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !queued("weft-sleeping")
        .iter()
        .any(|job| job.ends_with("RUNNING"))
    {
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = project.weft(&["runs", "stop", "latest"]);
    assert_eq!(stopped.code, 0, "{stopped:?}");
    let started = Instant::now();
    run.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the job was cancelled, not waited for"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "stopped", "{shown}");
    assert_eq!(step(&shown, "sleeping")["status"], "stopped", "{shown}");
    assert!(
        !queued("weft-sleeping")
            .iter()
            .any(|job| job.ends_with("RUNNING"))
    );
}

#[test]
fn a_binary_the_node_cannot_reach_fails_the_step_with_the_reason() {
    let project = project();
    let run = project.run(
        PIPELINES,
        &["run", "isolation", "--stack", "hpc", "--no-cache"],
        &[("WEFT_WORKER", "/nowhere/e2e-pipelines")],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    let message = step(&shown, "elsewhere")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("ended FAILED") && message.contains("/nowhere/e2e-pipelines"),
        "{message}"
    );
}

#[test]
fn on_the_slurm_orchestrator_a_dynamic_function_runs_in_a_job_of_its_own() {
    let project = project();
    let run = project.pipelines(&[
        "run",
        "isolation_dynamic",
        "--stack",
        "cluster",
        "--no-cache",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("the pipeline function runs in Slurm job")
            && run.stderr.contains("is Slurm job"),
        "{run:?}"
    );
    assert!(run.stdout.contains("completed"), "{run:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "completed", "{shown}");
}

#[test]
fn slurm_jobs_share_a_metadata_store_on_postgresql() {
    let project = on(Project::on(Server::Postgres));
    let operator = project.pipelines(&["run", "isolation", "--stack", "hpc", "--no-cache"]);
    assert_eq!(operator.code, 0, "one step as a job: {operator:?}");
    let orchestrator = project.pipelines(&["run", "processes", "--stack", "cluster"]);
    assert_eq!(orchestrator.code, 0, "every step a job: {orchestrator:?}");
    assert_eq!(orchestrator.stderr.matches("is Slurm job").count(), 3);
    let runs = project.json(&["runs", "list", "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter().all(|run| run["status"] == "completed"),
        "{runs:?}"
    );
}

/// The state of the Slurm job of step run `step_run` while Slurm lists it.
fn job_of(step_run: &str) -> Option<String> {
    let listed = std::process::Command::new("squeue")
        .args(["-h", "-o", "%T %k"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find_map(|line| {
            let (state, comment) = line.trim().split_once(' ')?;
            (comment == format!("weft-step-run:{step_run}")).then(|| state.to_owned())
        })
}

#[test]
fn the_jobs_of_a_killed_orchestrator_are_cancelled_when_its_run_is_reconciled() {
    let project = project();
    let mut run = project
        .command(
            PIPELINES,
            &["run", "slumber", "--stack", "hpc", "-p", "seconds=120"],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let step_run = loop {
        let shown = project.weft(&["runs", "show", "latest", "--json"]);
        let running = (shown.code == 0)
            .then(|| serde_json::from_str::<serde_json::Value>(&shown.stdout).unwrap())
            .and_then(|shown| {
                step(&shown, "sleeping")["step_run_id"]
                    .as_str()
                    .map(str::to_owned)
            })
            .filter(|step_run| job_of(step_run).as_deref() == Some("RUNNING"));
        if let Some(step_run) = running {
            break step_run;
        }
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(50));
    };
    run.kill().unwrap();
    run.wait().unwrap();
    let reconciled = project.weft(&["runs", "reconcile"]);
    assert_eq!(reconciled.code, 0, "{reconciled:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "failed", "{shown}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while job_of(&step_run).is_some_and(|state| state == "RUNNING" || state == "PENDING") {
        assert!(Instant::now() < deadline, "the job was never cancelled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<String> = std::fs::read_dir(project.path().join(".weft/jobs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&step_run))
        .collect();
    assert!(left.is_empty(), "the job's folder is removed: {left:?}");
}

#[test]
fn a_pipeline_whose_artifacts_live_only_on_s3_runs_as_slurm_jobs_that_share_no_folder() {
    let project = project();
    let env = crate::s3::s3_environment();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = project.run(
        PIPELINES,
        &["run", "isolation", "--stack", "hpc", "--no-cache"],
        &env,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let weft = |args: &[&str]| project.run(crate::common::WEFT, args, &env);
    // The job's output came back through the bucket: Slurm wrote it nowhere.
    let logs = weft(&["logs", "latest", "elsewhere"]);
    for expected in [
        "traced in the isolated step",
        "printed by process",
        "written to standard error",
    ] {
        assert!(logs.stdout.contains(expected), "`{expected}` in {logs:?}");
    }
    let shown = weft(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let facts = step(&shown, "elsewhere")["metadata"].to_string();
    let job = facts
        .split("Slurm job ")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no Slurm job recorded in {facts}"))
        .to_owned();
    let described = std::process::Command::new("scontrol")
        .args(["-o", "show", "job", &job])
        .output()
        .unwrap();
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains("StdOut=/dev/null") && described.contains("StdErr=/dev/null"),
        "the job wrote its output to a file: {described}"
    );
    assert!(
        !project.path().join(".weft/artifacts").exists(),
        "nothing is stored on the local disk"
    );
    // Nothing of the exchange is left in the bucket or in the project.
    let jobs = project.path().join(".weft/jobs");
    let left: Vec<_> = std::fs::read_dir(&jobs)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let exported = weft(&["artifacts", "list"]);
    assert_eq!(exported.code, 0, "{exported:?}");
}
