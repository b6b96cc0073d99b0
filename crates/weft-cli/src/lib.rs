//! The `weft` command: reads what pipelines recorded in the metadata store and the artifact
//! store. It finds the stores the same way pipeline binaries do (`WEFT_STORE`,
//! `WEFT_ARTIFACTS`, `weft.toml`, `.weft/`).
//!
//! Every command prints a table for people by default and JSON with `--json`. The JSON of
//! `runs list` (an array of objects with at least `id`, `pipeline`, `status`) and of
//! `runs show` (an object with `id`, `status` and `steps`, each with `name`, `status` and
//! `outputs`) is a contract for tools. Exit codes: 0 success, 1 error, 2 usage.

/// Appends a line to the output (writing to a `String` cannot fail).
macro_rules! say {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($argument:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($argument)*);
    }};
}

mod artifacts;
mod cache;
mod lineage;
mod logs;
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

#[derive(Subcommand)]
enum Command {
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

/// Runs the `weft` command with the process's arguments.
pub fn main() -> ExitCode {
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
    let mut out = String::new();
    let result = run(arguments.command, arguments.stack.as_deref(), &mut out);
    // Output is written once, at the end; a reader that went away (`| head`) is not an error.
    let written = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    if let Err(error) = written
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write the output: {error}");
        return ExitCode::from(1);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::from(1)
        }
    }
}

fn run(command: Command, stack: Option<&str>, out: &mut String) -> anyhow::Result<()> {
    if let Command::Stack { command } = command {
        return stack::run(command, out);
    }
    let client = weft::Client::open(&weft::StoreConfig::discover_on(stack)?)?;
    match command {
        Command::Stack { .. } => unreachable!("handled above"),
        Command::Runs { command } => runs::run(&client, command, out),
        Command::Logs(arguments) => logs::run(&client, arguments, out),
        Command::Artifacts { command } => artifacts::run(&client, command, out),
        Command::Lineage(arguments) => lineage::run(&client, arguments, out),
        Command::Cache { command } => cache::run(&client, command, out),
    }
}
