//! The Slurm step operator: an isolated step submitted as a Slurm job that runs the pipeline
//! binary's step host (see [`crate::isolated`]).
//!
//! The job is a small shell script, submitted with `sbatch --parsable` and the step's
//! resources as options; its standard output and error go to files in a folder under the
//! project root, which the nodes share. Its state is read with `scontrol -o show job` until it
//! ends; cancelling it (a timeout, a stop, fail-fast) is `scancel`. What the step produced
//! comes back through the host's result file, as for a local process; a job that ended
//! without one (cancelled by an administrator, out of time, failed outside the step) fails
//! the step with Slurm's state and exit code.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use weft_core::snapshot::SlurmJob;

use crate::isolated::{ProcessHandle, Spawn};

/// How often a running job's state is read.
const POLL: Duration = Duration::from_millis(50);

/// States in which a job has ended.
const ENDED: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
];

/// Submits the job and waits for it to end; says how it ended (`the Slurm job 12 ended
/// FAILED (exit code 3:0)`), or why it could not run.
pub(crate) fn run_job(
    spawn: &Spawn,
    job: &SlurmJob,
    arguments: &[OsString],
    folder: &Path,
    (stdout, stderr): (&Path, &Path),
    handle: &ProcessHandle,
) -> Result<String, String> {
    let script = folder.join("job.sh");
    let mut text = String::from("#!/bin/sh\n");
    for (key, value) in &spawn.env {
        text.push_str(&format!("export {key}={}\n", quote(value)));
    }
    text.push_str("exec ");
    text.push_str(&quote(&spawn.worker.to_string_lossy()));
    for argument in arguments {
        text.push(' ');
        text.push_str(&quote(&argument.to_string_lossy()));
    }
    text.push('\n');
    std::fs::write(&script, text).map_err(|e| format!("cannot write the Slurm job script: {e}"))?;
    let mut sbatch = Command::new("sbatch");
    sbatch
        .arg("--parsable")
        .arg(format!("--job-name=weft-{}", spawn.invocation))
        .arg(format!("--comment={}", comment(spawn.step_run)))
        .arg(format!("--output={}", stdout.display()))
        .arg(format!("--error={}", stderr.display()))
        .arg(format!("--chdir={}", spawn.base.display()))
        .args(options(job))
        .arg(&script)
        // sbatch hands its environment to the job: the store URL stays out of the script.
        .env(crate::isolated::METADATA_ENV, &spawn.metadata)
        .env_remove("WEFT_LOG")
        .stdin(Stdio::null());
    let submitted = sbatch
        .output()
        .map_err(|e| format!("cannot run sbatch (is Slurm installed on this machine?): {e}"))?;
    if !submitted.status.success() {
        return Err(format!(
            "sbatch refused the step's job: {}",
            String::from_utf8_lossy(&submitted.stderr).trim()
        ));
    }
    let id = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    if id.is_empty() {
        return Err("sbatch printed no job id".into());
    }
    tracing::info!(target: "weft", "step `{}` is Slurm job {id}", spawn.invocation);
    *handle.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
    if handle.killed() {
        handle.kill();
    }
    let ended = loop {
        match state(&id) {
            Some((state, exit)) if ENDED.contains(&state.as_str()) => break (state, exit),
            Some(_) => {}
            // Slurm forgot the job (it ended long enough ago): the result file tells.
            None => break ("ENDED".to_owned(), String::new()),
        }
        std::thread::sleep(POLL);
    };
    *handle.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let (state, exit) = ended;
    Ok(if exit.is_empty() {
        format!("the Slurm job {id} ended {state}")
    } else {
        format!("the Slurm job {id} ended {state} (exit code {exit})")
    })
}

/// The comment a step run's job carries, so that reconciling a dead run can find and cancel
/// its jobs without having recorded their ids.
fn comment(step_run: weft_core::StepRunId) -> String {
    format!("weft-step-run:{step_run}")
}

/// Cancels the jobs of `step_runs` on this machine's cluster, if it has one: the jobs of a
/// run whose orchestrator died would otherwise run on, and write for step runs already
/// recorded failed.
pub(crate) fn cancel_jobs(step_runs: &[weft_core::StepRunId]) {
    // No Slurm here (no `squeue`): nothing to cancel.
    let Ok(listed) = Command::new("squeue")
        .args(["-h", "-o", "%i %k"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    let wanted: Vec<String> = step_runs.iter().map(|id| comment(*id)).collect();
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let Some((job, comment)) = line.trim().split_once(' ') else {
            continue;
        };
        if wanted.iter().any(|wanted| wanted == comment.trim()) {
            tracing::warn!(target: "weft", "cancelling Slurm job {job}: its run's orchestrator died");
            let _ = Command::new("scancel")
                .arg(job)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The `sbatch` options for what the job asks for.
fn options(job: &SlurmJob) -> Vec<String> {
    let mut options = Vec::new();
    if let Some(cpus) = job.cpus {
        options.push(format!("--cpus-per-task={cpus}"));
    }
    if let Some(memory) = job.memory {
        options.push(format!("--mem={}M", memory.div_ceil(1 << 20).max(1)));
    }
    if let Some(gpus) = job.gpus {
        options.push(format!("--gres=gpu:{gpus}"));
    }
    if let Some(seconds) = job.time_limit {
        options.push(format!("--time={}", seconds.div_ceil(60).max(1)));
    }
    if let Some(partition) = &job.partition {
        options.push(format!("--partition={partition}"));
    }
    if let Some(account) = &job.account {
        options.push(format!("--account={account}"));
    }
    options
}

/// The job's state and exit code, from `scontrol -o show job`; `None` once Slurm no longer
/// knows it.
fn state(id: &str) -> Option<(String, String)> {
    let shown = Command::new("scontrol")
        .args(["-o", "show", "job", id])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !shown.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&shown.stdout);
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name))
            .map(str::to_owned)
    };
    Some((field("JobState=")?, field("ExitCode=").unwrap_or_default()))
}

/// `value` as one shell word.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_become_sbatch_options() {
        let job = SlurmJob {
            cpus: Some(4),
            memory: Some(8 << 30),
            gpus: Some(1),
            time_limit: Some(5400),
            partition: Some("gpu".into()),
            account: Some("ml".into()),
        };
        assert_eq!(
            options(&job),
            [
                "--cpus-per-task=4",
                "--mem=8192M",
                "--gres=gpu:1",
                "--time=90",
                "--partition=gpu",
                "--account=ml"
            ]
        );
        assert!(options(&SlurmJob::default()).is_empty());
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
