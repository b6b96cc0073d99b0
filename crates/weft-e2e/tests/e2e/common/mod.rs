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

/// A database server the tests can put a project's metadata store on, each started by a
/// script of `scripts/` (which `scripts/test.sh` runs).
#[derive(Clone, Copy, Debug)]
pub enum Server {
    Postgres,
    MariaDb,
}

impl Server {
    /// A new, empty database on the server.
    fn database(self) -> weft_store::conformance::TestDatabase {
        let (variable, default, script) = match self {
            Server::Postgres => (
                "WEFT_TEST_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:54329/postgres",
                "scripts/postgres-up.sh",
            ),
            Server::MariaDb => (
                "WEFT_TEST_MYSQL_URL",
                "mysql://weft:weft@127.0.0.1:33069/mysql",
                "scripts/mariadb-up.sh",
            ),
        };
        let server = weft_store::conformance::TestDatabase::server(variable, default);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime
            .block_on(weft_store::conformance::TestDatabase::create(&server))
            .unwrap_or_else(|e| panic!("no test server at {server} (start it with {script}): {e}"))
    }
}

/// A project folder: stores are discovered in it (`.weft/`), or the metadata store is a
/// database of its own on a server.
pub struct Project {
    dir: tempfile::TempDir,
    database: Option<weft_store::conformance::TestDatabase>,
}

impl Project {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
            database: None,
        }
    }

    /// A project whose metadata store is a new database on `server` (`WEFT_STORE`).
    pub fn on(server: Server) -> Self {
        Self {
            database: Some(server.database()),
            ..Self::new()
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A client on the project's stores, as its commands find them.
    pub fn client(&self) -> weft::Client {
        let mut stores = weft::config::StoreConfig::in_folder(self.path().join(".weft"));
        if let Some(database) = &self.database {
            stores.metadata = database.url.clone();
        }
        weft::Client::open(&stores).expect("the stores open")
    }

    /// `binary` with `args`, in the project folder, with no store settings inherited.
    pub fn command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command.args(args).current_dir(self.path());
        for variable in ["WEFT_STORE", "WEFT_ARTIFACTS", "WEFT_LOG", "WEFT_STEP_LOG"] {
            command.env_remove(variable);
        }
        if let Some(database) = &self.database {
            command.env("WEFT_STORE", &database.url);
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

    /// Starts `gated_talk` (one inline step that logs, waits for the file it names, and
    /// logs again) with `env`, its output discarded, and waits until the step runs; the
    /// process and the file that lets the step go on.
    pub fn start_gated_talk(
        &self,
        env: &[(&str, &str)],
    ) -> (std::process::Child, std::path::PathBuf) {
        let gate = self.path().join("gate");
        let gate_param = format!("gate={}", gate.display());
        let run = self
            .command(PIPELINES, &["run", "gated_talk", "-p", &gate_param])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the pipeline starts");
        self.wait_for_a_running_step();
        (run, gate)
    }

    /// Waits (up to 30 s) until the latest run has a step running.
    pub fn wait_for_a_running_step(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let shown = self.weft(&["runs", "show", "latest", "--json"]);
            if shown.code == 0 && shown.stdout.contains("\"running\"") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the step never ran");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn json(&self, args: &[&str]) -> Value {
        self.json_with(args, &[])
    }

    /// What the `weft` command prints as JSON, with `env` set.
    pub fn json_with(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let finished = self.run(WEFT, args, env);
        assert_eq!(finished.code, 0, "{finished:?}");
        serde_json::from_str(&finished.stdout).expect("JSON output")
    }
}

/// Runs `isolated_fan` with 16 isolated steps, 8 at a time, and checks that every step
/// completed and every artifact is intact: many processes at once lose nothing.
pub fn isolated_fan_loses_nothing(project: &Project) {
    let run = project.pipelines(&[
        "run",
        "isolated_fan",
        "-p",
        "width=16",
        "--max-parallelism",
        "8",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let shown = project.json(&["runs", "show", "latest", "--json"]);
    let steps = shown["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 17);
    assert!(
        steps.iter().all(|step| step["status"] == "completed"),
        "{shown}"
    );
    let verified = project.weft(&["artifacts", "verify"]);
    assert!(verified.stdout.contains("17 of 17"), "{verified:?}");
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
