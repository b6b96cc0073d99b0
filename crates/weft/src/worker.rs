//! The hidden commands of every pipeline binary that host one isolated step (see
//! `weft_engine::isolated`): `<binary> __weft-step --protocol N --artifacts URL --base DIR
//! --step-run ID --last-attempt BOOL (--result FILE | --result-object KEY)`, with the
//! metadata store's URL in `WEFT_WORKER_METADATA` (or `--metadata URL`); and `<binary>
//! __weft-hand-back --protocol N --artifacts URL --base DIR --prefix KEY STDOUT STDERR`,
//! which a remote host's job runs after it to upload its output.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use weft_engine::isolated::{METADATA_ENV, PROTOCOL, ResultTarget, exit, host, run_hosted};

use crate::client::Client;
use crate::config::StoreConfig;

#[derive(Parser)]
#[command(
    name = "__weft-step",
    about = "Hosts one isolated step of a running weft run."
)]
struct Arguments {
    /// The protocol the orchestrator speaks.
    #[arg(long)]
    protocol: u32,
    /// The metadata store's URL (from the environment, so that no password shows in the
    /// process list).
    #[arg(long, env = METADATA_ENV, hide_env_values = true)]
    metadata: String,
    /// The artifact store's URL.
    #[arg(long)]
    artifacts: String,
    /// The folder relative store paths are taken from.
    #[arg(long)]
    base: PathBuf,
    /// The step run to host.
    #[arg(long)]
    step_run: String,
    /// Whether no attempt follows this one if it fails.
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
    last_attempt: bool,
    /// Where to write the result: a file the orchestrator reads...
    #[arg(
        long,
        required_unless_present = "result_object",
        conflicts_with = "result_object"
    )]
    result: Option<PathBuf>,
    /// ... or an object of the artifact store (a host that shares no folder with it).
    #[arg(long)]
    result_object: Option<String>,
}

#[derive(Parser)]
#[command(
    name = "__weft-hand-back",
    about = "Hands an isolated step's output back through the artifact store."
)]
struct HandBackArguments {
    /// The protocol the orchestrator speaks.
    #[arg(long)]
    protocol: u32,
    /// The artifact store's URL.
    #[arg(long)]
    artifacts: String,
    /// The folder relative store paths are taken from.
    #[arg(long)]
    base: PathBuf,
    /// Where in the store the output goes.
    #[arg(long)]
    prefix: String,
    /// The captured standard output.
    stdout: PathBuf,
    /// The captured standard error.
    stderr: PathBuf,
}

/// Uploads a remote host's captured output (the arguments after the command's name).
pub(crate) fn hand_back(arguments: &[OsString]) -> ExitCode {
    let arguments = match HandBackArguments::try_parse_from(
        std::iter::once(OsString::from(weft_engine::isolated::HAND_BACK_COMMAND))
            .chain(arguments.iter().cloned()),
    ) {
        Ok(arguments) if arguments.protocol == PROTOCOL => arguments,
        Ok(arguments) => {
            to_stderr!(
                "error: the orchestrator speaks weft step protocol {}, this binary speaks {PROTOCOL}",
                arguments.protocol
            );
            return ExitCode::from(exit::USAGE);
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(exit::USAGE);
        }
    };
    // A runtime with a worker of its own: the store's blocking calls come from another
    // thread, and only a worker drives the connections of those.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            to_stderr!("error: cannot start: {error}");
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    let artifacts = match weft_artifacts::ArtifactStore::open(
        &arguments.artifacts,
        &arguments.base,
        runtime.handle().clone(),
    ) {
        Ok(artifacts) => artifacts,
        Err(error) => {
            to_stderr!("error: cannot open the artifact store: {error}");
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    // The store's calls block on the runtime: they run on a thread outside it.
    let handed = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                weft_engine::isolated::hand_back(
                    &artifacts,
                    &arguments.prefix,
                    &arguments.stdout,
                    &arguments.stderr,
                )
            })
            .join()
            .unwrap_or_else(|_| Err("the upload panicked".into()))
    });
    match handed {
        Ok(()) => ExitCode::from(exit::RAN),
        Err(error) => {
            to_stderr!("error: {error}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}

/// Hosts the step named by `arguments` (the ones after the command's name).
pub(crate) fn main(arguments: &[OsString]) -> ExitCode {
    // The protocol first: arguments of another version may not parse at all.
    let protocol = arguments
        .windows(2)
        .find(|pair| pair[0] == "--protocol")
        .map(|pair| pair[1].to_string_lossy().into_owned());
    if let Some(protocol) = protocol.filter(|p| *p != PROTOCOL.to_string()) {
        to_stderr!(
            "error: the orchestrator speaks weft step protocol {protocol}, this binary speaks {PROTOCOL}: build the pipeline binary and the orchestrator from the same weft version",
        );
        return ExitCode::from(exit::USAGE);
    }
    let arguments = match Arguments::try_parse_from(
        std::iter::once(OsString::from(weft_engine::isolated::COMMAND))
            .chain(arguments.iter().cloned()),
    ) {
        Ok(arguments) => arguments,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(exit::USAGE);
        }
    };
    let unavailable = |error: String| {
        to_stderr!("error: {error}");
        ExitCode::from(exit::UNAVAILABLE)
    };
    let Ok(step_run) = arguments.step_run.parse() else {
        to_stderr!("error: `{}` is not a step run id", arguments.step_run);
        return ExitCode::from(exit::USAGE);
    };
    let config = StoreConfig {
        metadata: arguments.metadata,
        artifacts: arguments.artifacts,
        base: arguments.base,
    };
    weft_engine::isolated::watch_parent();
    let client = match Client::connect(&config, Arc::new(weft_engine::clock::SystemClock)) {
        Ok(client) => client,
        Err(error) => return unavailable(format!("cannot open the stores: {error:#}")),
    };
    let job = match client.block_on(host(client.engine(), step_run, arguments.last_attempt)) {
        Ok(job) => job,
        Err(error) => return unavailable(format!("cannot prepare step run {step_run}: {error}")),
    };
    let (pipeline, invocation) = (job.context.pipeline.clone(), job.context.invocation.clone());
    // The body runs here, outside the runtime: local artifact files are written in place.
    let result = match (arguments.result, arguments.result_object) {
        (Some(path), _) => ResultTarget::File(path),
        (None, Some(key)) => ResultTarget::Object(key),
        (None, None) => unreachable!("clap requires one"),
    };
    let hosted = run_hosted(job, &result);
    // A step run that ended meanwhile (its run was reconciled after its orchestrator died)
    // owns nothing: what this process saved is removed, and its result is not handed back.
    if client.block_on(weft_engine::isolated::finished_elsewhere(
        client.engine(),
        step_run,
    )) {
        weft_engine::isolated::remove_outputs(
            client.engine().artifacts(),
            &pipeline,
            &invocation,
            step_run,
        );
        weft_engine::isolated::remove_result(client.engine().artifacts(), &result);
        return unavailable(format!(
            "step run {step_run} ended while this process ran it: its outputs were removed"
        ));
    }
    match hosted {
        Ok(()) => ExitCode::from(exit::RAN),
        Err(error) => unavailable(format!("cannot write the result to {result}: {error}")),
    }
}
