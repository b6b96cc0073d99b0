//! The Slurm step operator: an isolated step's host submitted as a Slurm job.
//!
//! The job is a small shell script, submitted with `sbatch --parsable` and the step's
//! resources as options; its standard output and error go to the exchange folder, under the
//! project root, which the nodes share. Its state is read with `scontrol -o show job` until it
//! ends; cancelling it (a timeout, a stop, fail-fast) is `scancel`. A job that ended without
//! a result (cancelled by an administrator, out of time, failed outside the step) fails the
//! step with Slurm's state and exit code.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weft_core::StepRunId;
use weft_core::snapshot::SlurmJob;

use super::{Capture, HostEnd, Launch, Launched, StepOperator};

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

/// Submits each host as a Slurm job asking for `job`'s resources.
#[derive(Clone, Debug, Default)]
pub struct SlurmOperator {
    job: SlurmJob,
}

impl SlurmOperator {
    /// An operator whose jobs ask for these resources.
    pub fn new(job: SlurmJob) -> Self {
        Self { job }
    }
}

impl StepOperator for SlurmOperator {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn exchange_folder(
        &self,
        base: &Path,
        step_run: StepRunId,
    ) -> std::io::Result<tempfile::TempDir> {
        // Under the project root, which a cluster's nodes share with the submitting machine.
        let jobs = base.join(".weft").join("jobs");
        std::fs::create_dir_all(&jobs)?;
        tempfile::Builder::new()
            .prefix(&format!("{step_run}-"))
            .tempdir_in(jobs)
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Launched>, String> {
        let script = launch.folder.join("job.sh");
        let mut text = String::from("#!/bin/sh\n");
        for (key, value) in &launch.env {
            text.push_str(&format!("export {key}={}\n", quote(value)));
        }
        let host = command_line(&launch.program, &launch.arguments);
        let (output, error) = match &launch.capture {
            Capture::Folder => {
                text.push_str(&format!("exec {host}\n"));
                (launch.stdout(), launch.stderr())
            }
            Capture::Upload { program, arguments } => {
                // The output is kept on the node and handed back by the upload; the job's
                // own output (the upload's) is not needed anywhere.
                let upload = command_line(program, arguments);
                text.push_str(&format!(
                    "captured=$(mktemp -d \"${{TMPDIR:-/tmp}}/weft-job.XXXXXX\") || exit 1\n\
                     {host} >\"$captured/stdout\" 2>\"$captured/stderr\"\n\
                     status=$?\n\
                     {upload} \"$captured/stdout\" \"$captured/stderr\"\n\
                     uploaded=$?\n\
                     rm -rf \"$captured\"\n\
                     [ \"$uploaded\" -eq 0 ] || exit 99\n\
                     exit $status\n"
                ));
                ("/dev/null".into(), "/dev/null".into())
            }
        };
        std::fs::write(&script, text)
            .map_err(|e| format!("cannot write the Slurm job script: {e}"))?;
        let mut sbatch = Command::new("sbatch");
        sbatch
            .arg("--parsable")
            .arg(format!("--job-name=weft-{}", launch.name))
            .arg(format!("--comment={}", comment(launch.step_run)))
            .arg(format!("--output={}", output.display()))
            .arg(format!("--error={}", error.display()))
            .arg(format!("--chdir={}", launch.workdir.display()))
            .args(options(&self.job))
            .arg(&script)
            // sbatch hands its environment to the job: secrets stay out of the script.
            .envs(&launch.secret_env)
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
        tracing::info!(target: "weft", "step `{}` is Slurm job {id}", launch.name);
        Ok(Box::new(Job {
            id,
            ended: AtomicBool::new(false),
        }))
    }

    fn end_orphans(&self, step_runs: &[StepRunId]) {
        cancel_jobs(step_runs);
    }
}

struct Job {
    id: String,
    ended: AtomicBool,
}

impl Launched for Job {
    fn id(&self) -> String {
        format!("Slurm job {}", self.id)
    }

    fn wait(&self) -> Result<HostEnd, String> {
        let (state, exit) = loop {
            match state(&self.id) {
                Some((state, exit)) if ENDED.contains(&state.as_str()) => break (state, exit),
                Some(_) => {}
                // Slurm forgot the job (it ended long enough ago): the result file tells.
                None => break ("ENDED".to_owned(), String::new()),
            }
            std::thread::sleep(POLL);
        };
        self.ended.store(true, Ordering::Release);
        let id = &self.id;
        Ok(HostEnd {
            success: state == "COMPLETED",
            description: if exit.is_empty() {
                format!("the Slurm job {id} ended {state}")
            } else {
                format!("the Slurm job {id} ended {state} (exit code {exit})")
            },
        })
    }

    fn cancel(&self) {
        if self.ended.load(Ordering::Acquire) {
            return;
        }
        let _ = Command::new("scancel")
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The comment a step run's job carries, so that reconciling a dead run can find and cancel
/// its jobs without having recorded their ids.
fn comment(step_run: weft_core::StepRunId) -> String {
    format!("weft-step-run:{step_run}")
}

/// Cancels the jobs of `step_runs` on this machine's cluster, if it has one: the jobs of a
/// run whose orchestrator died would otherwise run on, and write for step runs already
/// recorded failed.
fn cancel_jobs(step_runs: &[weft_core::StepRunId]) {
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

/// `program` and its `arguments` as one shell command line.
fn command_line(program: &Path, arguments: &[std::ffi::OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(arguments.iter().map(|argument| argument.as_os_str()))
        .map(|word| quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
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
