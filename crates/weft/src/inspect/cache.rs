//! `weft cache explain | expire`.

use crate::Client;
use crate::cache::KeyParts;
use crate::model::{CacheExpiry, RunFilter, StepRun};
use clap::Subcommand;

use super::output::Output;
use super::render;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Show what a step run's cache key is made of, and how it differs from the same step
    /// in another run (by default the pipeline's previous run).
    Explain {
        /// A run id (or a unique prefix of one), a run name, or `latest`.
        run: String,
        /// The step's invocation id.
        step: String,
        /// Compare with this run instead of the previous one.
        #[arg(long, value_name = "RUN")]
        compare: Option<String>,
        /// Print JSON: the step run's key and parts.
        #[arg(long)]
        json: bool,
    },
    /// Make cache entries expire now, so that the next run computes them again.
    Expire {
        /// With STEP: the run whose step run expires.
        #[arg(requires = "step", conflicts_with_all = ["name", "all"])]
        run: Option<String>,
        /// With RUN: the step's invocation id.
        step: Option<String>,
        /// Every entry of the step with this name (`train`, or `module::path::train`).
        #[arg(long = "step", value_name = "NAME", conflicts_with = "all")]
        name: Option<String>,
        /// Every entry.
        #[arg(long)]
        all: bool,
    },
}

pub(crate) fn run(client: &Client, command: Command, out: &mut Output<'_>) -> anyhow::Result<()> {
    match command {
        Command::Explain {
            run,
            step,
            compare,
            json,
        } => explain(client, &run, &step, compare.as_deref(), json, out),
        Command::Expire {
            run,
            step,
            name,
            all,
        } => {
            let which = match (run, step, name, all) {
                (Some(run), Some(step), None, false) => {
                    let run = client.run_record(&run)?;
                    let step_run = client.step_run(&run, &step)?;
                    // A cached step run's entry is its original's.
                    CacheExpiry::StepRuns(vec![step_run.original_step_run.unwrap_or(step_run.id)])
                }
                (None, None, Some(name), false) => CacheExpiry::Step(name),
                (None, None, None, true) => CacheExpiry::All,
                _ => anyhow::bail!("say which entries expire: RUN STEP, --step NAME, or --all"),
            };
            let expired = client.block_on(client.metadata_store().expire_cache(which))?;
            say!(
                out,
                "{expired} cache entr{} expired.",
                if expired == 1 { "y" } else { "ies" }
            );
            Ok(())
        }
    }
}

fn parts(step_run: &StepRun) -> Option<KeyParts> {
    step_run
        .cache_parts
        .as_ref()
        .and_then(|parts| serde_json::from_str(parts.as_str()).ok())
}

fn explain(
    client: &Client,
    reference: &str,
    step: &str,
    compare: Option<&str>,
    json: bool,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let run = client.run_record(reference)?;
    let step_run = client.step_run(&run, step)?;
    if json {
        return render::json(
            out,
            &serde_json::json!({ "cache_key": step_run.cache_key, "parts": step_run.cache_parts, "status": step_run.status }),
        );
    }
    let Some(key) = &step_run.cache_key else {
        say!(
            out,
            "step `{}` of run {} was not cached: caching was off for it.",
            step.trim(),
            run.id
        );
        return Ok(());
    };
    say!(
        out,
        "Step        {} ({})",
        step_run.invocation,
        step_run.step
    );
    say!(out, "Status      {}", step_run.status);
    if let Some(original) = step_run.original_step_run {
        say!(out, "Reuses      step run {original}");
    }
    if let Some(reason) = &step_run.status_reason {
        say!(out, "Note        {reason}");
    }
    say!(out, "Key         {key}");
    if let Some(expires) = step_run.cache_expires_at {
        say!(out, "Expires     {}", render::time(Some(expires)));
    }
    let Some(parts) = parts(&step_run) else {
        return Ok(());
    };
    say!(out, "Made of:");
    say!(out, "  format          {}", parts.format);
    say!(out, "  artifact store  {}", parts.artifact_store);
    say!(out, "  step            {}", parts.step);
    say!(
        out,
        "  code            {}",
        parts.code_hash.as_deref().unwrap_or("(not included)")
    );
    say!(
        out,
        "  parameters      {}",
        parts.parameters.as_deref().unwrap_or("(not included)")
    );
    for (name, versions) in &parts.inputs {
        say!(out, "  input {name:<9} {versions}");
    }
    for (name, materializer, version) in &parts.outputs {
        say!(out, "  output {name:<8} {materializer} v{version}");
    }
    for (name, value) in &parts.env {
        say!(
            out,
            "  env {name:<11} {}",
            value.as_deref().unwrap_or("(unset)")
        );
    }
    for (path, hash) in &parts.files {
        say!(out, "  file {path:<10} {hash}");
    }
    if let Some(value) = &parts.key_fn {
        say!(out, "  key function    {value}");
    }
    let other = match compare {
        Some(other) => Some(client.run_record(other)?),
        None => client
            .runs(&RunFilter {
                pipeline: Some(run.pipeline.clone()),
                ..Default::default()
            })?
            .into_iter()
            .find(|other| other.id < run.id),
    };
    let Some(other) = other else { return Ok(()) };
    let Ok(earlier) = client.step_run(&other, step) else {
        say!(
            out,
            "Run {} has no step `{step}` to compare with.",
            other.id
        );
        return Ok(());
    };
    match parts_or_original(client, &earlier) {
        Some(earlier_parts) => {
            let differences = parts.differences(&earlier_parts);
            if differences.is_empty() {
                say!(out, "Same key as step `{step}` of run {}.", other.id);
            } else {
                say!(
                    out,
                    "Differs from step `{step}` of run {} in: {}.",
                    other.id,
                    differences.join(", ")
                );
            }
        }
        None => say!(
            out,
            "Step `{step}` of run {} was not cached: nothing to compare.",
            other.id
        ),
    }
    Ok(())
}

fn parts_or_original(client: &Client, step_run: &StepRun) -> Option<KeyParts> {
    parts(step_run).or_else(|| {
        let original = client
            .block_on(
                client
                    .metadata_store()
                    .step_run(step_run.original_step_run?),
            )
            .ok()?;
        parts(&original)
    })
}
