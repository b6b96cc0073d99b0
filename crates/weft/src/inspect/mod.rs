//! The inspection commands: read what pipelines recorded in the metadata store and the
//! artifact store. They are the `weft` command (`weft-cli`, a thin `main` over
//! [`main`]), and every pipeline binary answers them too (`<binary> runs show latest`), so
//! that a run's closing hint works without installing anything. They find the stores the
//! same way pipeline binaries do (`WEFT_STORE`, `WEFT_ARTIFACTS`, `weft.toml`, `.weft/`).
//!
//! Every command prints a table for people by default and JSON with `--json`. The JSON of
//! `runs list` (an array of objects with at least `id`, `pipeline`, `status`) and of
//! `runs show` (an object with `id`, `status` and `steps`, each with `name`, `status` and
//! `outputs`) is a contract for tools. Exit codes: 0 success, 1 error, 2 usage.

/// Appends a line to the output (writing to a `String` cannot fail).
macro_rules! say {
    ($out:expr) => {{
        let _ = std::fmt::Write::write_char($out, '\n');
    }};
    ($out:expr, $($argument:tt)*) => {{
        let _ = std::fmt::Write::write_fmt($out, format_args!($($argument)*));
        let _ = std::fmt::Write::write_char($out, '\n');
    }};
}

mod artifacts;
mod cache;
mod lineage;
mod logs;
mod output;
mod render;
mod runs;
mod stack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Inspect what weft pipelines recorded: runs, steps, logs, artifacts, lineage."
)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
    /// Read the stores of this stack of `weft.toml` (default: `WEFT_STACK`, else the active
    /// stack).
    #[arg(long, global = true, value_name = "NAME")]
    stack: Option<String>,
}

/// The inspection commands, shared by `weft` and every pipeline binary.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Runs of pipelines.
    Runs {
        #[command(subcommand)]
        command: runs::Command,
    },
    /// Print the log of one step of a run.
    Logs(logs::Arguments),
    /// Artifacts and their versions.
    Artifacts {
        #[command(subcommand)]
        command: artifacts::Command,
    },
    /// Show where an artifact version came from and what was made from it.
    Lineage(lineage::Arguments),
    /// Explain and expire cache entries.
    Cache {
        #[command(subcommand)]
        command: cache::Command,
    },
    /// The stacks of `weft.toml`: list, show, and set the active one.
    Stack {
        #[command(subcommand)]
        command: stack::Command,
    },
}

/// Runs the `weft` command with the process's arguments: `weft-cli`'s `main`. Exit codes: 0
/// success, 1 error, 2 usage.
pub fn main() -> ExitCode {
    main_with(|never: NoMore, _| match never {})
}

/// No commands beyond the inspections.
#[derive(Subcommand)]
pub enum NoMore {}

/// The inspections, or one of the commands of `E`.
#[derive(Subcommand)]
enum Either<E: Subcommand> {
    #[command(flatten)]
    Inspect(Command),
    #[command(flatten)]
    More(E),
}

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Inspect what weft pipelines recorded: runs, steps, logs, artifacts, lineage; serve them."
)]
struct ArgumentsWith<E: Subcommand> {
    #[command(subcommand)]
    command: Either<E>,
    /// Read the stores of this stack of `weft.toml` (default: `WEFT_STACK`, else the active
    /// stack).
    #[arg(long, global = true, value_name = "NAME")]
    stack: Option<String>,
}

/// Runs the `weft` command with the inspections and the commands of `E` (the server's, in
/// `weft-cli`), which `more` runs with the `--stack` given. Exit codes: 0 success, 1 error,
/// 2 usage.
pub fn main_with<E: Subcommand>(more: impl FnOnce(E, Option<&str>) -> ExitCode) -> ExitCode {
    let arguments = match ArgumentsWith::<E>::try_parse() {
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
    match arguments.command {
        Either::Inspect(command) => execute(command, arguments.stack.as_deref()),
        Either::More(command) => more(command, arguments.stack.as_deref()),
    }
}

/// Runs one inspection command and prints what it says as it goes; its exit code.
pub(crate) fn execute(command: Command, stack: Option<&str>) -> ExitCode {
    let mut stdout = std::io::stdout();
    let mut out = output::Output::streamed(&mut stdout);
    let result = run(command, stack, &mut out);
    // A reader that went away (`| head`) is not an error.
    if let Err(error) = out.finish()
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        to_stderr!("error: cannot write the output: {error}");
        return ExitCode::from(1);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            to_stderr!("error: {}", weft_core::message::one_line(error.chain()));
            // Nothing to read here at all is a usage error, like a wrong argument.
            let nothing_here = error
                .chain()
                .any(|cause| cause.is::<crate::config::NoProject>());
            ExitCode::from(if nothing_here { 2 } else { 1 })
        }
    }
}

/// What the `weft` command would print for `arguments` (without the command's name), on
/// the stores of `stores`: for embedding the inspections in another program, and for
/// testing them.
pub fn output(stores: &crate::StoreConfig, arguments: &[&str]) -> anyhow::Result<String> {
    let mut out = output::Output::kept();
    inspect_stores(stores, arguments, &mut out)?;
    Ok(out.into_string())
}

/// Writes what the `weft` command would print for `arguments` to `sink` as it is produced,
/// as the command does to its standard output: for measuring the inspections.
pub fn write_output(
    stores: &crate::StoreConfig,
    arguments: &[&str],
    sink: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let mut out = output::Output::streamed(sink);
    let result = inspect_stores(stores, arguments, &mut out);
    out.finish()?;
    result
}

fn inspect_stores(
    stores: &crate::StoreConfig,
    arguments: &[&str],
    out: &mut output::Output<'_>,
) -> anyhow::Result<()> {
    let arguments =
        Arguments::try_parse_from(std::iter::once("weft").chain(arguments.iter().copied()))?;
    match arguments.command {
        Command::Stack { command } => stack::run(command, out),
        command => inspect(&crate::Client::open_existing(stores)?, command, out),
    }
}

fn run(command: Command, stack: Option<&str>, out: &mut output::Output<'_>) -> anyhow::Result<()> {
    if let Command::Stack { command } = command {
        return stack::run(command, out);
    }
    let client = crate::Client::open_existing(&crate::StoreConfig::discover_existing_on(stack)?)?;
    inspect(&client, command, out)
}

fn inspect(
    client: &crate::Client,
    command: Command,
    out: &mut output::Output<'_>,
) -> anyhow::Result<()> {
    match command {
        Command::Stack { .. } => unreachable!("stack commands read no store"),
        Command::Runs { command } => runs::run(client, command, out),
        Command::Logs(arguments) => logs::run(client, arguments, out),
        Command::Artifacts { command } => artifacts::run(client, command, out),
        Command::Lineage(arguments) => lineage::run(client, arguments, out),
        Command::Cache { command } => cache::run(client, command, out),
    }
}

/// The command a closing hint names for inspecting a run: `weft` where it is installed, else
/// this very binary (which answers the same commands), as it was started.
pub(crate) fn inspector() -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let installed = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|folder| {
            std::fs::metadata(folder.join("weft"))
                .is_ok_and(|file| file.is_file() && file.permissions().mode() & 0o111 != 0)
        })
    });
    if installed {
        return "weft".into();
    }
    let binary = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "weft".into());
    // A binary found through PATH is named as typed; one given by path keeps its folder.
    let shown = binary.display().to_string();
    if shown.contains(char::is_whitespace) {
        format!("'{shown}'")
    } else {
        shown
    }
}
