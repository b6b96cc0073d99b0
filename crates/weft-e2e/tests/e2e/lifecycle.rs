//! Signals to a pipeline process: the first stops the run as `weft runs stop` does (its
//! summary printed, exit 128 + the signal), a second exits at once; either way the run is
//! recorded `stopped` or `failed`, never left `running`, and no step process outlives it,
//! not even one whose orchestrator was killed with SIGKILL. A run whose orchestrator lives in
//! another PID namespace is judged by its heartbeat, not by a process id that means nothing
//! here.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{PIPELINES, Project, step};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Starts `args`, in the background.
fn start(project: &Project, args: &[&str]) -> Child {
    project
        .command(PIPELINES, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the pipeline starts")
}

/// Starts `gated_talk`, whose one inline step runs until the file it names exists, and waits
/// until that step runs; the process and the file.
fn start_gated(project: &Project) -> (Child, std::path::PathBuf) {
    let gate = project.path().join("gate");
    let gate_param = format!("gate={}", gate.display());
    let child = start(project, &["run", "gated_talk", "-p", &gate_param]);
    running_step(project);
    (child, gate)
}

/// Waits until the latest run has a running step; that step's step run id.
fn running_step(project: &Project) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = project.weft(&["runs", "show", "latest", "--json"]);
        if shown.code == 0 {
            let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
            let running = shown["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|step| step["status"] == "running");
            if let Some(running) = running {
                return running["step_run_id"].as_str().unwrap().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "no step started running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).expect("the signal is sent");
}

/// Whether a process hosting step run `step_run` is alive.
fn step_process_alive(step_run: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|line| String::from_utf8_lossy(&line).contains(step_run))
    })
}

#[test]
fn sigterm_stops_a_run_and_kills_its_isolated_step() {
    let project = Project::new();
    let child = start(&project, &["run", "slumber", "-p", "seconds=60"]);
    let step_run = running_step(&project);
    // Recorded running first, then started: its process appears a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !step_process_alive(&step_run) {
        assert!(
            Instant::now() < deadline,
            "the step runs in its own process"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, Signal::SIGTERM);
    let finished = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&finished.stdout);
    assert_eq!(finished.status.code(), Some(143), "{stdout}");
    assert!(
        stdout.contains("stopped in"),
        "the summary is printed: {stdout}"
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "stopped", "{shown}");
    assert_eq!(step(&shown, "sleeping")["status"], "stopped", "{shown}");
    assert!(!step_process_alive(&step_run), "no step process is left");
}

#[test]
fn sigint_lets_a_running_inline_step_finish_and_starts_nothing_new() {
    let project = Project::new();
    let (child, gate) = start_gated(&project);
    signal(&child, Signal::SIGINT);
    // Once the stop is recorded (and not before: the step must not win the race with the
    // signal), the step ends on its own within the grace period.
    let deadline = Instant::now() + Duration::from_secs(30);
    while project.json(&["runs", "show", "latest", "--json"])["status"] != "stopping" {
        assert!(Instant::now() < deadline, "the stop was never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&gate, "").unwrap();
    let finished = child.wait_with_output().unwrap();
    assert_eq!(finished.status.code(), Some(130));
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "stopped", "{shown}");
    assert_eq!(step(&shown, "talkative")["status"], "completed", "{shown}");
}

#[test]
fn a_second_signal_exits_at_once_and_the_run_is_recorded_failed() {
    let project = Project::new();
    let (child, _gate) = start_gated(&project);
    signal(&child, Signal::SIGINT);
    // The first is handled before the second comes: wait until the stop is recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while project.json(&["runs", "show", "latest", "--json"])["status"] != "stopping" {
        assert!(Instant::now() < deadline, "the stop was never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, Signal::SIGINT);
    let finished = child.wait_with_output().unwrap();
    assert_eq!(finished.status.code(), Some(130));
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "failed", "{shown}");
    assert_eq!(step(&shown, "talkative")["status"], "failed", "{shown}");
    assert!(
        shown["status_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("interrupted twice")),
        "{shown}"
    );
}

/// Waits until `done` holds (bounded); says what did not happen otherwise.
fn settle(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any temporary folder of step run `step_run`'s process is left.
fn temporary_folder_left(step_run: &str) -> bool {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("weft-step-{step_run}-"))
        })
}

/// Whether any file under the project's artifact store belongs to step run `step_run`.
fn outputs_left(project: &Project, step_run: &str) -> bool {
    fn walk(folder: &std::path::Path, step_run: &str) -> bool {
        std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                entry.file_name().to_string_lossy() == step_run
                    || (entry.path().is_dir() && walk(&entry.path(), step_run))
            })
    }
    walk(&project.path().join(".weft/artifacts"), step_run)
}

#[test]
fn a_killed_orchestrator_takes_its_isolated_step_with_it() {
    let project = Project::new();
    let mut child = start(&project, &["run", "slumber", "-p", "seconds=60"]);
    let step_run = running_step(&project);
    // Recorded running first, then started: its folder and process appear a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(temporary_folder_left(&step_run) && step_process_alive(&step_run)) {
        assert!(
            Instant::now() < deadline,
            "the step's process and its folder never appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, Signal::SIGKILL);
    let _ = child.wait();
    settle("the step's process outlived its orchestrator", || {
        !step_process_alive(&step_run)
    });
    let reconciled = project.weft(&["runs", "reconcile"]);
    assert_eq!(reconciled.code, 0, "{reconciled:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "failed", "{shown}");
    assert_eq!(step(&shown, "sleeping")["status"], "failed", "{shown}");
    assert!(
        !temporary_folder_left(&step_run),
        "reconcile removed its folder"
    );
    assert!(
        !outputs_left(&project, &step_run),
        "no file without a version"
    );
}

/// Needs root (`unshare --pid`).
#[test]
fn a_run_in_another_pid_namespace_is_not_taken_for_dead() {
    let project = Project::new();
    let gate = project.path().join("gate");
    let gate_param = format!("gate={}", gate.display());
    let mut args = vec!["--pid", "--fork", "--mount-proc", PIPELINES];
    args.extend(["run", "gated_talk", "-p", &gate_param]);
    let child = project
        .command("unshare", &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare starts");
    running_step(&project);
    // Its process id (1 or 2 in its namespace) names another process here, or none.
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "running", "{shown}");
    let reconciled = project.weft(&["runs", "reconcile"]);
    assert_eq!(reconciled.code, 0, "{reconciled:?}");
    std::fs::write(&gate, "").unwrap();
    let finished = child.wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "the run went on: {}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    assert_eq!(shown["status"], "completed", "{shown}");
}
