//! Runs the end-to-end binaries as processes against one project folder.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The pipeline binary.
pub const PIPELINES: &str = env!("CARGO_BIN_EXE_e2e-pipelines");
/// The `weft` command.
pub const WEFT: &str = env!("CARGO_BIN_EXE_e2e-weft");

/// What a finished process printed.
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
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
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `binary` with `args`, in the project folder, with no store settings inherited.
    pub fn command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command.args(args).current_dir(self.path());
        for variable in ["WEFT_STORE", "WEFT_ARTIFACTS", "WEFT_LOG", "WEFT_STEP_LOG"] {
            command.env_remove(variable);
        }
        command
    }

    pub fn run(&self, binary: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
        let output = self
            .command(binary, args)
            .envs(env.iter().copied())
            .output()
            .expect("the binary starts");
        Finished {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn pipelines(&self, args: &[&str]) -> Finished {
        self.run(PIPELINES, args, &[])
    }

    pub fn weft(&self, args: &[&str]) -> Finished {
        self.run(WEFT, args, &[])
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let finished = self.weft(args);
        assert_eq!(finished.code, 0, "{finished:?}");
        serde_json::from_str(&finished.stdout).expect("JSON output")
    }
}

/// The step called `name` in the JSON of `weft runs show`.
#[allow(dead_code)] // not every test binary needs it
pub fn step<'a>(shown: &'a Value, name: &str) -> &'a Value {
    shown["steps"]
        .as_array()
        .expect("a run's steps")
        .iter()
        .find(|step| step["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {shown}"))
}
