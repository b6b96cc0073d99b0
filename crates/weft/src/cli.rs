//! The command line of every pipeline binary: `weft::main()`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::{Parser, Subcommand};
use weft_core::{ExecutionMode, Status};

use crate::client::Client;
use crate::config::{Project, RunConfig, StoreConfig};
use crate::registry;

#[derive(Parser)]
#[command(
    about = "Runs the weft pipelines of this binary, and inspects what they recorded.",
    disable_help_subcommand = true
)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
    /// Run on, or read the stores of, this stack of `weft.toml` (default: `WEFT_STACK`, else
    /// the active stack).
    #[arg(long, global = true, value_name = "NAME")]
    stack: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a pipeline, record it, and run it; or resume an earlier run.
    Run {
        /// The pipeline's name (see `list`). Not needed with `--resume`.
        #[arg(required_unless_present = "resume")]
        pipeline: Option<String>,
        /// Start a new run of the same plan as this run (an id, a unique id prefix, or
        /// `latest`), reusing every step that finished in it and running only the rest.
        #[arg(long, value_name = "RUN", conflicts_with_all = ["params", "config"])]
        resume: Option<String>,
        /// Run every step, reusing nothing from the cache.
        #[arg(long)]
        no_cache: bool,
        /// A tag to attach to the run (find its runs with `runs list --tag`). Repeat it.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// A pipeline parameter, as `name=value` (the value is JSON, or else text). Repeat it.
        #[arg(short, long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A run configuration file (TOML): parameters, execution mode, per-step parameters.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// At most this many steps run at once (default: the number of cores; at most 4096).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::config::MAX_PARALLELISM as i64))]
        max_parallelism: Option<u32>,
        /// What a failure does to the rest of the run.
        #[arg(long, value_name = "MODE", value_parser = ["continue_on_failure", "stop_on_failure", "fail_fast"])]
        execution_mode: Option<String>,
    },
    /// List the pipelines of this binary and their parameters.
    List,
    /// The `weft` command's inspection commands: runs, logs, artifacts, lineage, cache, stack.
    #[command(flatten)]
    Inspect(crate::inspect::Command),
}

/// Runs the command line of a pipeline binary and returns its exit code: 0 when the run
/// completed, 1 when it failed, 2 when it could not start (bad arguments, configuration or
/// stores). Call it from `main`:
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     weft::main()
/// }
/// ```
pub fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw
        .get(1)
        .is_some_and(|command| command == weft_engine::isolated::COMMAND)
    {
        return crate::worker::main(&raw[2..]);
    }
    if raw
        .get(1)
        .is_some_and(|command| command == weft_engine::isolated::HAND_BACK_COMMAND)
    {
        return crate::worker::hand_back(&raw[2..]);
    }
    let arguments = match Arguments::try_parse() {
        Ok(arguments) => arguments,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    weft_engine::logs::install_global();
    match arguments.command {
        Command::List => {
            list();
            ExitCode::SUCCESS
        }
        Command::Inspect(command) => crate::inspect::execute(command, arguments.stack.as_deref()),
        Command::Run {
            pipeline,
            resume,
            no_cache,
            tags,
            params,
            config,
            max_parallelism,
            execution_mode,
        } => {
            let options = Options {
                resume,
                no_cache,
                tags,
                params,
                config,
                max_parallelism,
                execution_mode,
                stack: arguments.stack,
            };
            match run(pipeline.as_deref(), options) {
                Ok(code) => code,
                Err(error) => {
                    to_stderr!("error: {}", chain(&error));
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn list() {
    let pipelines = registry::pipelines();
    if pipelines.is_empty() {
        to_stdout!("This binary has no pipelines.");
    }
    for pipeline in pipelines {
        let parameters: Vec<String> = pipeline
            .parameters
            .iter()
            .map(|parameter| {
                let default = parameter
                    .default
                    .map(|default| format!(" = {}", default()))
                    .unwrap_or_default();
                format!(
                    "{}: {}{default}",
                    parameter.name,
                    short_type((parameter.type_name)())
                )
            })
            .collect();
        let kind = if pipeline.dynamic { "  (dynamic)" } else { "" };
        to_stdout!("{}({}){kind}", pipeline.name, parameters.join(", "));
    }
}

fn short_type(name: &str) -> String {
    // `alloc::string::String` reads better as `String`.
    name.split('<')
        .map(|part| part.rsplit("::").next().unwrap_or(part))
        .collect::<Vec<_>>()
        .join("<")
}

/// What `run` was asked.
struct Options {
    resume: Option<String>,
    no_cache: bool,
    tags: Vec<String>,
    params: Vec<String>,
    config: Option<PathBuf>,
    max_parallelism: Option<u32>,
    execution_mode: Option<String>,
    stack: Option<String>,
}

fn run(name: Option<&str>, options: Options) -> crate::Result<ExitCode> {
    let mut config = match &options.config {
        Some(path) => RunConfig::from_file(path)?,
        None => RunConfig::default(),
    };
    if let Some(max_parallelism) = options.max_parallelism {
        config.max_parallelism = Some(max_parallelism as usize);
    }
    if let Some(mode) = options.execution_mode {
        config.execution_mode = Some(mode.parse::<ExecutionMode>()?);
    }
    config.no_cache |= options.no_cache;
    config.tags.extend(options.tags.iter().cloned());
    let stack = options
        .stack
        .clone()
        .or_else(|| std::env::var("WEFT_STACK").ok().filter(|v| !v.is_empty()));
    let current = std::env::current_dir()
        .map_err(|e| crate::Error::msg(format!("cannot read the current directory: {e}")))?;
    if let Some((name, chosen)) = Project::discover_from(&current)?.stack(stack.as_deref())? {
        chosen.check(name)?;
        config.stack = Some(chosen.clone());
    }
    // On Slurm, a dynamic pipeline's function runs in an orchestration job of its own: this
    // command submits itself and waits for it.
    let on_slurm = config
        .stack
        .as_ref()
        .is_some_and(|stack| stack.orchestrator == crate::config::OrchestratorKind::Slurm);
    let stores = StoreConfig::discover_on(stack.as_deref())?;
    let new_store = match stores.metadata.split_once("://") {
        Some(("sqlite", path)) => Some(stores.base.join(path)).filter(|path| !path.exists()),
        _ => None,
    };
    let mut client = Client::open(&stores)?;
    let (interrupt, signalled) = watch_signals(&mut client)?;
    if let Some(path) = new_store {
        to_stderr!("weft: created a new metadata store: {}", path.display());
    }
    let dynamic = match (&options.resume, name) {
        (None, Some(name)) => registry::pipeline(name)?.dynamic,
        (Some(original), _) => {
            let run = client.run_record(original)?;
            match &run.snapshot_id {
                Some(id) => {
                    client
                        .block_on(client.metadata_store().snapshot(id))?
                        .dynamic
                }
                None => false,
            }
        }
        (None, None) => false,
    };
    if on_slurm && dynamic && std::env::var_os(ORCHESTRATION_JOB).is_none() {
        return orchestration_job(&current);
    }
    let started = match (&options.resume, name) {
        (Some(original), _) => client.resume(original, &config),
        (None, Some(name)) => {
            let pipeline = registry::pipeline(name)?;
            let mut call = pipeline.call();
            for param in &options.params {
                let (key, value) = param.split_once('=').ok_or_else(|| {
                    crate::Error::msg(format!("`--param {param}` is not of the form NAME=VALUE"))
                })?;
                let key = key.trim();
                if let Some(declared) = too_large(pipeline, key, value) {
                    return Err(crate::Error::msg(format!(
                        "`--param {key}={}`: the number is too large for parameter `{key}` (a `{declared}`)",
                        value.trim()
                    )));
                }
                call = call.param_json(key, pipeline.parse_parameter(key, value));
            }
            client.run_with(call, &config)
        }
        (None, None) => {
            return Err(crate::Error::msg(
                "name a pipeline to run, or a run to --resume",
            ));
        }
    };
    let report = match started {
        Ok(report) => report,
        // The run was recorded, and then its orchestrator failed (a full disk, a store gone):
        // steps may have run, so this is no "nothing could run"; the run's summary says how
        // far it got.
        Err(error) => match interrupt.run().map(|run| client.report(run)) {
            Some(Ok(mut report)) => {
                to_stderr!("error: {}", chain(&error));
                if report.run.status_reason.is_none() {
                    report.run.status_reason =
                        Some(format!("the orchestrator failed: {}", chain(&error)));
                }
                report
            }
            _ => return Err(error),
        },
    };
    let run = &report.run;
    let elapsed = match (run.started_at, run.ended_at) {
        (Some(start), Some(end)) => {
            weft_engine::launcher::human((end - start).to_std().unwrap_or_default())
        }
        _ => "no time".into(),
    };
    let mut counts: Vec<(Status, usize)> = Vec::new();
    for step_run in &report.step_runs {
        match counts
            .iter_mut()
            .find(|(status, _)| *status == step_run.status)
        {
            Some((_, count)) => *count += 1,
            None => counts.push((step_run.status, 1)),
        }
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(status, count)| format!("{count} {status}"))
        .collect();
    let mut summary = format!(
        "\nRun {} {} in {elapsed}: {}.\n",
        run.name,
        run.status,
        counts.join(", ")
    );
    for failed in report.failed_steps() {
        let reason = failed
            .error
            .as_ref()
            .map(|e| e.chain.join(": "))
            .unwrap_or_default();
        summary.push_str(&format!(
            "  step `{}` failed: {reason}\n",
            failed.invocation
        ));
    }
    if let Some(reason) = &run.status_reason {
        summary.push_str(&format!("  {reason}\n"));
    }
    let inspector = crate::inspect::inspector();
    summary.push_str(&format!("Inspect it:  {inspector} runs show {}\n", run.id));
    summary.push_str(&format!(
        "Step logs:   {inspector} logs {} <step>\n",
        run.id
    ));
    // A closed stdout (`| head`) must not turn a finished run into a crash.
    let _ = std::io::stdout().write_all(summary.as_bytes());
    Ok(match signalled.load(std::sync::atomic::Ordering::Acquire) {
        0 if run.status == Status::Completed => ExitCode::SUCCESS,
        0 => ExitCode::from(1),
        // Interrupted: the shell's convention, 128 + the signal's number.
        signal => ExitCode::from(128 + signal as u8),
    })
}

/// Stops the run on SIGINT (Ctrl-C), SIGTERM or SIGHUP as `weft runs stop` does; a second
/// signal records the run failed and exits at once. Returns the interrupt handle (which also
/// learns the run's id) and where the first signal's number is kept once one came (0 until
/// then).
fn watch_signals(client: &mut Client) -> crate::Result<(weft_engine::Interrupt, Arc<AtomicI32>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = weft_engine::Interrupt::new();
    let handle = interrupt.clone();
    client.set_interrupt(interrupt.clone());
    let signalled = Arc::new(AtomicI32::new(0));
    let (mut interrupted, mut terminated, mut hung_up) = {
        let _entered = client.runtime_handle().enter();
        let listen = |kind: SignalKind| {
            signal(kind).map_err(|e| crate::Error::msg(format!("cannot watch for signals: {e}")))
        };
        (
            listen(SignalKind::interrupt())?,
            listen(SignalKind::terminate())?,
            listen(SignalKind::hangup())?,
        )
    };
    let (store, first) = (client.metadata_store().clone(), signalled.clone());
    client.runtime_handle().spawn(async move {
        loop {
            let kind = tokio::select! {
                _ = interrupted.recv() => SignalKind::interrupt(),
                _ = terminated.recv() => SignalKind::terminate(),
                _ = hung_up.recv() => SignalKind::hangup(),
            };
            let number = kind.as_raw_value();
            if first
                .compare_exchange(0, number, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                to_stderr!(
                    "\nweft: stopping the run (no new step starts); interrupt again to exit at once"
                );
                interrupt.request();
                continue;
            }
            // A second signal: record the run failed, so it is never left running, and go.
            if let Some(run) = interrupt.run() {
                let reason = "the pipeline process was interrupted twice and exited at once";
                let _ = store.fail_run(run, reason).await;
                to_stderr!("weft: run {run} failed: {reason}");
            }
            std::process::exit(128 + first.load(Ordering::Acquire));
        }
    });
    Ok((handle, signalled))
}

/// The declared type of integer parameter `key`, if `text` is an integer beyond any
/// integer type (JSON would read it as a float, and the type error would speak of floating
/// point).
fn too_large(pipeline: &registry::PipelineDef, key: &str, text: &str) -> Option<&'static str> {
    let text = text.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let integer = !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit());
    let fits = text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok();
    if !integer || fits {
        return None;
    }
    pipeline
        .parameters
        .iter()
        .find(|parameter| parameter.name == key)
        .map(|parameter| (parameter.type_name)())
}

fn chain(error: &crate::Error) -> String {
    weft_core::message::one_line(error.chain())
}

/// Set in the environment of the Slurm job that runs a dynamic pipeline's function.
const ORCHESTRATION_JOB: &str = "WEFT_ORCHESTRATION_JOB";

/// Runs this very command again as a Slurm job (its function there, its steps as jobs of
/// their own), waits for it, and passes on what it printed and its exit code.
fn orchestration_job(project: &std::path::Path) -> crate::Result<ExitCode> {
    let quote =
        |value: &std::ffi::OsStr| format!("'{}'", value.to_string_lossy().replace('\'', r"'\''"));
    let command: Vec<String> = std::env::args_os()
        .enumerate()
        .map(|(index, argument)| match index {
            0 => std::env::current_exe()
                .map(|exe| quote(exe.as_os_str()))
                .unwrap_or_else(|_| quote(&argument)),
            _ => quote(&argument),
        })
        .collect();
    let jobs = project.join(".weft").join("jobs");
    std::fs::create_dir_all(&jobs)
        .map_err(|e| crate::Error::msg(format!("cannot make {}: {e}", jobs.display())))?;
    let folder = tempfile::Builder::new()
        .prefix("orchestration-")
        .tempdir_in(&jobs)
        .map_err(|e| crate::Error::msg(format!("cannot make a folder for the job: {e}")))?;
    let (stdout, stderr) = (folder.path().join("stdout"), folder.path().join("stderr"));
    let submitted = std::process::Command::new("sbatch")
        .arg("--wait")
        .arg("--parsable")
        .arg("--job-name=weft-orchestration")
        .arg(format!("--output={}", stdout.display()))
        .arg(format!("--error={}", stderr.display()))
        .arg(format!("--chdir={}", project.display()))
        .arg(format!("--export=ALL,{ORCHESTRATION_JOB}=1"))
        .arg(format!("--wrap={}", command.join(" ")))
        .output()
        .map_err(|e| crate::Error::msg(format!("cannot run sbatch (is Slurm installed?): {e}")))?;
    let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    to_stderr!("the pipeline function runs in Slurm job {job}");
    let _ = std::io::stderr().write_all(&std::fs::read(&stderr).unwrap_or_default());
    let _ = std::io::stdout().write_all(&std::fs::read(&stdout).unwrap_or_default());
    if job.is_empty() {
        return Err(crate::Error::msg(format!(
            "sbatch refused the orchestration job: {}",
            String::from_utf8_lossy(&submitted.stderr).trim()
        )));
    }
    Ok(ExitCode::from(
        submitted
            .status
            .code()
            .and_then(|code| u8::try_from(code).ok())
            .unwrap_or(1),
    ))
}
