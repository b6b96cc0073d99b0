//! `weft runs list` and `weft runs show`.

use std::collections::{BTreeMap, HashMap};

use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;
use weft::Client;
use weft::model::{RunFilter, StepError, StepRun};

use crate::render;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// List runs, newest first.
    List {
        /// Only runs of this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Only runs with this status (running, completed, failed, ...).
        #[arg(long)]
        status: Option<weft::Status>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON: an array of runs.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its steps in dependency order, with statuses, durations and outputs.
    Show {
        /// A run id (or a unique prefix of one), a run name, or `latest`.
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(client: &Client, command: Command, out: &mut String) -> anyhow::Result<()> {
    match command {
        Command::List {
            pipeline,
            status,
            limit,
            json,
        } => list(client, pipeline, status, limit, json, out),
        Command::Show { run, json } => show(client, &run, json, out),
    }
}

fn list(
    client: &Client,
    pipeline: Option<String>,
    status: Option<weft::Status>,
    limit: u32,
    json: bool,
    out: &mut String,
) -> anyhow::Result<()> {
    let runs = client.runs(&RunFilter {
        pipeline,
        status,
        limit: Some(limit),
    })?;
    if json {
        return render::json(out, &runs);
    }
    if runs.is_empty() {
        say!(
            out,
            "No runs yet. Run a pipeline binary, e.g.: cargo run --example quickstart -- run training"
        );
        return Ok(());
    }
    let mut table = render::table(&["id", "pipeline", "status", "steps", "started", "took"]);
    for run in &runs {
        table.add_row(vec![
            run.id.to_string(),
            run.pipeline.clone(),
            run.status.to_string(),
            run.invocations.to_string(),
            render::time(run.started_at.or(Some(run.created_at))),
            render::took(run.started_at, run.ended_at),
        ]);
    }
    say!(out, "{table}");
    Ok(())
}

/// One invocation of a shown run.
#[derive(Serialize)]
struct Step {
    /// The invocation id.
    name: String,
    step: String,
    status: String,
    status_reason: Option<String>,
    step_run_id: Option<String>,
    attempt: Option<u32>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
    duration_ms: Option<f64>,
    upstream: Vec<String>,
    parameters: Value,
    inputs: BTreeMap<String, Vec<String>>,
    outputs: BTreeMap<String, String>,
    output_versions: BTreeMap<String, String>,
    cached_from: Option<String>,
    error: Option<StepError>,
}

#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    run: weft::model::Run,
    execution_mode: Option<String>,
    parameters: Value,
    steps: Vec<Step>,
}

fn show(client: &Client, reference: &str, json: bool, out: &mut String) -> anyhow::Result<()> {
    let run = client.run_record(reference)?;
    let store = client.metadata_store();
    let graph = client.block_on(store.run_graph(run.id))?;
    let snapshot = match &run.snapshot_id {
        Some(id) => Some(client.block_on(store.snapshot(id))?),
        None => None,
    };
    // The latest attempt of each invocation.
    let mut latest: HashMap<&str, &StepRun> = HashMap::new();
    for step_run in &graph.step_runs {
        let entry = latest
            .entry(step_run.invocation.as_str())
            .or_insert(step_run);
        if step_run.attempt > entry.attempt {
            *entry = step_run;
        }
    }
    let mut outputs: HashMap<_, BTreeMap<String, &weft::model::ArtifactVersion>> = HashMap::new();
    for (step_run, output) in &graph.outputs {
        outputs
            .entry(*step_run)
            .or_default()
            .insert(output.name.clone(), &output.artifact_version);
    }
    let mut inputs: HashMap<_, BTreeMap<String, Vec<String>>> = HashMap::new();
    for (step_run, input) in &graph.inputs {
        inputs
            .entry(*step_run)
            .or_default()
            .entry(input.name.clone())
            .or_default()
            .push(input.artifact_version.id.to_string());
    }
    let invocations: Vec<(String, String, Vec<String>, Value)> = match &snapshot {
        Some(snapshot) => snapshot
            .topological_order()
            .into_iter()
            .map(|i| {
                let invocation = &snapshot.invocations[i];
                let parameters = Value::Object(invocation.parameters.clone().into_iter().collect());
                (
                    invocation.id.clone(),
                    invocation.step.clone(),
                    invocation.upstream.clone(),
                    parameters,
                )
            })
            .collect(),
        None => graph
            .step_runs
            .iter()
            .map(|s| {
                (
                    s.invocation.clone(),
                    s.step.clone(),
                    Vec::new(),
                    s.parameters.clone(),
                )
            })
            .collect(),
    };
    let steps: Vec<Step> = invocations
        .into_iter()
        .map(|(name, step, upstream, parameters)| {
            let step_run = latest.get(name.as_str()).copied();
            let step_outputs = step_run.and_then(|s| outputs.get(&s.id));
            Step {
                status: step_run.map_or("pending".into(), |s| s.status.to_string()),
                status_reason: step_run.and_then(|s| s.status_reason.clone()),
                step_run_id: step_run.map(|s| s.id.to_string()),
                attempt: step_run.map(|s| s.attempt),
                started_at: step_run.and_then(|s| s.started_at),
                ended_at: step_run.and_then(|s| s.ended_at),
                duration_ms: step_run.and_then(|s| {
                    Some((s.ended_at? - s.started_at?).num_microseconds()? as f64 / 1e3)
                }),
                inputs: step_run
                    .and_then(|s| inputs.get(&s.id).cloned())
                    .unwrap_or_default(),
                outputs: step_outputs
                    .map(|o| {
                        o.iter()
                            .map(|(n, v)| (n.clone(), v.id.to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                output_versions: step_outputs
                    .map(|o| {
                        o.iter()
                            .map(|(n, v)| (n.clone(), format!("{}:{}", v.name, v.version)))
                            .collect()
                    })
                    .unwrap_or_default(),
                cached_from: step_run.and_then(|s| s.original_step_run.map(|id| id.to_string())),
                error: step_run.and_then(|s| s.error.clone()),
                name,
                step,
                upstream,
                parameters,
            }
        })
        .collect();
    let shown = Shown {
        execution_mode: snapshot.as_ref().map(|s| s.execution_mode.to_string()),
        parameters: snapshot
            .as_ref()
            .map(|s| Value::Object(s.parameters.clone().into_iter().collect()))
            .unwrap_or(Value::Null),
        run,
        steps,
    };
    if json {
        return render::json(out, &shown);
    }
    print_run(&shown, out);
    Ok(())
}

fn print_run(shown: &Shown, out: &mut String) {
    let run = &shown.run;
    say!(out, "Run         {}", run.name);
    say!(out, "Id          {}", run.id);
    say!(out, "Pipeline    {}", run.pipeline);
    let reason = run
        .status_reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    say!(out, "Status      {}{reason}", run.status);
    say!(
        out,
        "Started     {}   took {}",
        render::time(run.started_at),
        render::took(run.started_at, run.ended_at)
    );
    if let Value::Object(parameters) = &shown.parameters
        && !parameters.is_empty()
    {
        let text: Vec<String> = parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        say!(out, "Parameters  {}", text.join(", "));
    }
    if let Some(mode) = &shown.execution_mode {
        say!(out, "Mode        {mode}");
    }
    say!(out);
    let mut table = render::table(&["step", "status", "took", "after", "outputs"]);
    for step in &shown.steps {
        let status = match &step.cached_from {
            Some(original) => format!(
                "{} (from {})",
                step.status,
                &original[..8.min(original.len())]
            ),
            None => step.status.clone(),
        };
        let outputs: Vec<String> = step
            .output_versions
            .iter()
            .map(|(name, version)| format!("{name}: {version}"))
            .collect();
        table.add_row(vec![
            step.name.clone(),
            status,
            step.duration_ms
                .map(|ms| render::duration(std::time::Duration::from_secs_f64(ms / 1e3)))
                .unwrap_or_else(|| "-".into()),
            step.upstream.join(", "),
            outputs.join("\n"),
        ]);
    }
    say!(out, "{table}");
    for step in &shown.steps {
        if let Some(error) = &step.error {
            say!(out);
            say!(
                out,
                "step `{}` failed: {}",
                step.name,
                error.chain.join(": ")
            );
            if let Some(backtrace) = &error.backtrace {
                say!(out, "{backtrace}");
            }
        } else if let (Some(reason), "skipped" | "stopped") =
            (&step.status_reason, step.status.as_str())
        {
            say!(out, "step `{}` {}: {reason}", step.name, step.status);
        }
    }
    say!(out);
    say!(out, "Logs of a step: weft logs {} <step>", run.id);
}
