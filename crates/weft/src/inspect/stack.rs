//! `weft stack`: the stacks `weft.toml` defines, and which one is active.

use std::path::Path;

use crate::config::{Project, Stack, redact_url};
use clap::Subcommand;
use serde::Serialize;

use super::output::Output;
use super::render;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// The stacks of this project; the active one is marked with `*`.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A stack's components and per-step settings (default: the active stack).
    Show {
        /// The stack's name.
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a stack the active one: writes `stack = "NAME"` into `weft.toml`.
    Set {
        /// The stack's name.
        name: String,
    },
}

#[derive(Serialize)]
struct Shown<'a> {
    name: &'a str,
    active: bool,
    #[serde(flatten)]
    stack: Stack,
}

/// The stack as shown: store URLs without their passwords.
fn displayed(stack: &Stack) -> Stack {
    let mut stack = stack.clone();
    stack.metadata = stack.metadata.as_deref().map(redact_url);
    stack.artifacts = stack.artifacts.as_deref().map(redact_url);
    stack
}

pub(crate) fn run(command: Command, out: &mut Output<'_>) -> anyhow::Result<()> {
    let current = std::env::current_dir()?;
    let project = Project::discover_from(&current)?;
    match command {
        Command::List { json } => list(&project, json, out),
        Command::Show { name, json } => show(&project, name.as_deref(), json, out),
        Command::Set { name } => set(&project, &name, out),
    }
}

fn list(project: &Project, json: bool, out: &mut Output<'_>) -> anyhow::Result<()> {
    let shown: Vec<Shown<'_>> = project
        .stacks
        .iter()
        .map(|(name, stack)| Shown {
            name,
            active: project.active.as_deref() == Some(name),
            stack: displayed(stack),
        })
        .collect();
    if json {
        return render::json(out, &shown);
    }
    if shown.is_empty() {
        say!(
            out,
            "This project defines no stack: pipelines run locally, on the stores of [store] in weft.toml or in .weft/."
        );
        say!(
            out,
            "Define one with a [stacks.NAME] table in weft.toml (see `weft stack show --help`)."
        );
        return Ok(());
    }
    let mut table = render::table(&["", "stack", "orchestrator", "metadata", "artifacts"]);
    for stack in &shown {
        table.add_row(vec![
            if stack.active { "*" } else { "" }.to_owned(),
            stack.name.to_owned(),
            stack.stack.orchestrator.to_string(),
            stack.stack.metadata.clone().unwrap_or_else(|| "-".into()),
            stack.stack.artifacts.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    say!(out, "{table}");
    Ok(())
}

fn show(
    project: &Project,
    name: Option<&str>,
    json: bool,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let Some((name, stack)) = project.stack(name)? else {
        anyhow::bail!(
            "no stack is active: name one (`weft stack show NAME`), or make one active with `weft stack set NAME`"
        );
    };
    let shown = Shown {
        name,
        active: project.active.as_deref() == Some(name),
        stack: displayed(stack),
    };
    let stack = &shown.stack;
    if json {
        return render::json(out, &shown);
    }
    let active = if shown.active { " (active)" } else { "" };
    say!(out, "Stack          {name}{active}");
    say!(out, "Orchestrator   {}", stack.orchestrator);
    say!(
        out,
        "Metadata       {}",
        stack
            .metadata
            .as_deref()
            .unwrap_or("- (the [store] table, else .weft/)")
    );
    say!(
        out,
        "Artifacts      {}",
        stack
            .artifacts
            .as_deref()
            .unwrap_or("- (the [store] table, else .weft/)")
    );
    say!(
        out,
        "Step operator  {}",
        stack
            .step_operator
            .map_or("- (steps run inline)".into(), |operator| operator
                .to_string())
    );
    if !stack.steps.is_empty() {
        say!(out);
        let mut table = render::table(&["step", "step operator", "resources", "environment"]);
        for (step, settings) in &stack.steps {
            let resources = &settings.resources;
            let mut asked = Vec::new();
            if let Some(cpus) = resources.cpus {
                asked.push(format!("cpus={cpus}"));
            }
            if let Some(memory) = resources.memory {
                asked.push(format!("memory={memory} B"));
            }
            if let Some(gpus) = resources.gpus {
                asked.push(format!("gpus={gpus}"));
            }
            if let Some(limit) = resources.time_limit {
                asked.push(format!("time_limit={}s", limit.as_secs()));
            }
            if let Some(partition) = &resources.partition {
                asked.push(format!("partition={partition}"));
            }
            if let Some(account) = &resources.account {
                asked.push(format!("account={account}"));
            }
            let env: Vec<String> = settings
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            table.add_row(vec![
                step.clone(),
                settings
                    .step_operator
                    .map_or("-".into(), |operator| operator.to_string()),
                asked.join(", "),
                env.join(", "),
            ]);
        }
        say!(out, "{table}");
    }
    Ok(())
}

fn set(project: &Project, name: &str, out: &mut Output<'_>) -> anyhow::Result<()> {
    let Some(file) = &project.file else {
        anyhow::bail!("this project has no weft.toml: define a [stacks.{name}] table in one first");
    };
    project.stack(Some(name))?;
    let text = std::fs::read_to_string(file)?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|error| anyhow::anyhow!("invalid {}: {error}", file.display()))?;
    document["stack"] = toml_edit::value(name);
    write_atomically(file, &document.to_string())?;
    say!(out, "Stack `{name}` is active ({}).", file.display());
    Ok(())
}

/// Replaces `file` with `text` in one step: written beside it, then renamed over it.
fn write_atomically(file: &Path, text: &str) -> anyhow::Result<()> {
    let staged = file.with_extension(format!("toml.{}.tmp", std::process::id()));
    std::fs::write(&staged, text)?;
    if let Err(error) = std::fs::rename(&staged, file) {
        let _ = std::fs::remove_file(&staged);
        return Err(error.into());
    }
    Ok(())
}
