//! The local step operator: a step host as a child process of the orchestrator.

use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use weft_core::StepRunId;

use super::{Capture, HostEnd, Launch, Launched, StepOperator};
use crate::isolated::{PARENT_ENV, temporary_prefix};

/// Runs each host as a child process in a process group of its own (so that ending it ends
/// whatever the step started), with a pipe on its standard input that is held open until
/// it ended: the host watches that pipe and ends itself when the orchestrator is gone,
/// however the orchestrator ended (see [`PARENT_ENV`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessOperator;

impl StepOperator for ProcessOperator {
    fn name(&self) -> &'static str {
        "process"
    }

    fn is_local(&self) -> bool {
        true
    }

    fn exchange_folder(
        &self,
        _base: &Path,
        step_run: StepRunId,
    ) -> std::io::Result<tempfile::TempDir> {
        // In the system's temporary folder, named so that reconciling a dead run finds it.
        tempfile::Builder::new()
            .prefix(&temporary_prefix(step_run))
            .tempdir()
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Launched>, String> {
        let file = |path: &Path| {
            std::fs::File::create(path)
                .map_err(|e| format!("cannot capture the step's output: {e}"))
        };
        // With an upload, the output goes to files the upload then hands back; this machine
        // is the host's, so they are in the exchange folder either way.
        let (stdout, stderr) = match &launch.capture {
            Capture::Folder => (launch.stdout(), launch.stderr()),
            Capture::Upload { .. } => (
                launch.folder.join("host-stdout"),
                launch.folder.join("host-stderr"),
            ),
        };
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.arguments)
            .current_dir(&launch.workdir)
            .env_remove("WEFT_LOG")
            .envs(&launch.secret_env)
            .envs(&launch.env)
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(file(&stdout)?)
            .stderr(file(&stderr)?);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start the step's process `{}`: {e}",
                launch.program.display()
            )
        })?;
        let lifeline = child.stdin.take();
        Ok(Box::new(ChildHost {
            group: Mutex::new(Some(child.id() as i32)),
            pid: child.id(),
            child: Mutex::new(child),
            lifeline: Mutex::new(lifeline),
            upload: match &launch.capture {
                Capture::Folder => None,
                Capture::Upload { program, arguments } => {
                    let mut upload = Command::new(program);
                    upload
                        .args(arguments)
                        .arg(&stdout)
                        .arg(&stderr)
                        .current_dir(&launch.workdir)
                        .env_remove("WEFT_LOG")
                        .envs(&launch.secret_env)
                        .envs(&launch.env)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    Some(Mutex::new(upload))
                }
            },
        }))
    }
}

struct ChildHost {
    /// The process group while the child has not been waited for: after that its id may
    /// belong to another process.
    group: Mutex<Option<i32>>,
    pid: u32,
    child: Mutex<Child>,
    /// Held open, never written, until the child ended.
    lifeline: Mutex<Option<ChildStdin>>,
    /// Hands the output back once the child ended ([`Capture::Upload`]).
    upload: Option<Mutex<Command>>,
}

impl Launched for ChildHost {
    fn id(&self) -> String {
        format!("process {}", self.pid)
    }

    fn wait(&self) -> Result<HostEnd, String> {
        let status = self.child.lock().unwrap_or_else(|p| p.into_inner()).wait();
        *self.group.lock().unwrap_or_else(|p| p.into_inner()) = None;
        drop(
            self.lifeline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let status = status.map_err(|e| format!("cannot wait for the step's process: {e}"))?;
        if let Some(upload) = &self.upload {
            let uploaded = upload.lock().unwrap_or_else(|p| p.into_inner()).status();
            if !uploaded.is_ok_and(|status| status.success()) {
                return Err(format!(
                    "the step's process {}, and its output could not be handed back",
                    describe(status)
                ));
            }
        }
        Ok(HostEnd {
            success: status.success(),
            description: format!("the step's process {}", describe(status)),
        })
    }

    fn cancel(&self) {
        if let Some(group) = *self.group.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `exited with status 3`, `was killed by signal 9 (SIGKILL)`.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|signal| format!(" ({})", signal.as_str()))
                .unwrap_or_default();
            format!("was killed by signal {signal}{name}")
        }
        (None, None) => "ended".to_owned(),
    }
}
