//! `weft runs list | show | tag | stop | reconcile`.

use std::collections::HashMap;

use crate::Client;
use crate::model::{
    InputLink, JsonText, MetadataEntry, OutputLink, Resource, RunFilter, RunOverview, StepError,
    StepRunSummary,
};
use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;
use weft_core::parameters::Parameters;
use weft_core::{RunId, StepRunId};

use super::output::Output;
use super::render;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// List runs, newest first.
    List {
        /// Only runs of this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Only runs with this status (running, completed, failed, ...).
        #[arg(long)]
        status: Option<crate::Status>,
        /// Only runs with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON: an array of runs.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its steps in dependency order, with statuses, durations, outputs, cache
    /// hits and metadata.
    Show {
        /// A run id (or a unique prefix of one), a run name, or `latest`.
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// List every item of a map on its own row (by default a map of more than a few
        /// items is one row, with its items counted by status).
        #[arg(long)]
        items: bool,
        /// Only the steps with this status (`failed`, `completed`, `cached`, ..., or
        /// `pending` for those that never ran): the failed items of a map of thousands.
        #[arg(long, value_parser = step_status)]
        status: Option<String>,
    },
    /// Attach tags to a run (or detach them with `--remove`).
    Tag {
        /// A run id (or a unique prefix of one), a run name, or `latest`.
        run: String,
        /// The tags.
        #[arg(required = true)]
        tags: Vec<String>,
        /// Detach the tags instead (tags the run does not have are ignored).
        #[arg(long)]
        remove: bool,
    },
    /// Ask a run to stop: no new step starts, running steps finish, and it ends `stopped`.
    Stop {
        /// A run id (or a unique prefix of one), a run name, or `latest`.
        run: String,
    },
    /// Fail the runs whose orchestrator died (this also happens whenever a command opens the
    /// stores), with their running steps, and remove what those steps were writing.
    Reconcile,
}

pub(crate) fn run(client: &Client, command: Command, out: &mut Output<'_>) -> anyhow::Result<()> {
    match command {
        Command::List {
            pipeline,
            status,
            tag,
            limit,
            json,
        } => {
            let filter = RunFilter {
                pipeline,
                status,
                tag,
                ..Default::default()
            };
            list(client, filter, limit, json, out)
        }
        Command::Tag { run, tags, remove } => {
            let run = client.run_record(&run)?;
            let store = client.metadata_store();
            let run = if remove {
                client.block_on(store.untag_run(run.id, &tags))?
            } else {
                client.block_on(store.tag_run(run.id, &tags))?
            };
            match run.tags.is_empty() {
                true => say!(out, "Run {} has no tags.", run.id),
                false => say!(out, "Run {} is tagged {}.", run.id, run.tags.join(", ")),
            }
            Ok(())
        }
        Command::Show {
            run,
            json,
            items,
            status,
        } => show(client, &run, json, items, status.as_deref(), out),
        Command::Stop { run } => {
            let run = client.stop(&run)?;
            say!(
                out,
                "Run {} is {}: no new step starts; it ends stopped once its running steps finish.",
                run.id,
                run.status
            );
            Ok(())
        }
        Command::Reconcile => {
            // Opening the client has reconciled already; report that together with a last pass.
            let mut reconciled = client.reconciled_on_open().to_vec();
            reconciled.extend(client.reconcile()?);
            let unfinished = client.block_on(client.metadata_store().unfinished_runs())?;
            for item in &reconciled {
                say!(out, "run {} failed: {}", item.run.id, item.reason);
            }
            say!(
                out,
                "{} run(s) reconciled now; {} unfinished run(s) have a living orchestrator.",
                reconciled.len(),
                unfinished.len()
            );
            Ok(())
        }
    }
}

fn list(
    client: &Client,
    filter: RunFilter,
    limit: u32,
    json: bool,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let filtered = filter.pipeline.is_some() || filter.status.is_some() || filter.tag.is_some();
    // One more than shown, to say whether more exist.
    let mut runs = client.runs(&RunFilter {
        limit: Some(limit.saturating_add(1)),
        ..filter
    })?;
    let more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    if json {
        return render::json(out, &runs);
    }
    if runs.is_empty() && filtered {
        say!(out, "No runs match.");
        return Ok(());
    }
    if runs.is_empty() {
        say!(
            out,
            "No runs yet. Run a pipeline binary, e.g.: cargo run --example quickstart -- run training"
        );
        return Ok(());
    }
    let tagged = runs.iter().any(|run| !run.tags.is_empty());
    let mut columns = vec!["id", "name", "status", "steps", "started", "took"];
    if tagged {
        columns.push("tags");
    }
    let mut table = render::table(&columns);
    for run in &runs {
        let mut row = vec![
            run.id.to_string(),
            run.name.clone(),
            run.status.to_string(),
            run.invocations.to_string(),
            render::time(run.started_at.or(Some(run.created_at))),
            render::took(run.started_at, run.ended_at),
        ];
        if tagged {
            row.push(run.tags.join(", "));
        }
        table.add_row(row);
    }
    say!(out, "{table}");
    if more {
        say!(
            out,
            "The newest {limit} runs; more exist (--limit N shows more; --pipeline, --status and --tag filter)."
        );
    }
    Ok(())
}

/// Where a cached step's outputs come from.
#[derive(Serialize)]
struct CachedFrom {
    step_run: StepRunId,
    run: Option<RunId>,
}

/// A step's parameters: recorded on its step run, or planned in the snapshot.
#[derive(Clone, Copy, Serialize)]
#[serde(untagged)]
enum ParametersOf<'a> {
    Recorded(&'a JsonText),
    Planned(&'a Parameters),
}

/// A step run's inputs, serialized by name: `{"name": [version, ...]}`.
struct InputsByName<'a>(&'a [InputLink]);

impl Serialize for InputsByName<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for same in self.0.chunk_by(|a, b| a.name == b.name) {
            let versions: Vec<_> = same.iter().map(|input| input.artifact_version).collect();
            map.serialize_entry(&same[0].name, &versions)?;
        }
        map.end()
    }
}

/// A step run's outputs by name, as version ids or as `artifact:version`.
struct OutputsByName<'a> {
    outputs: &'a [OutputLink],
    as_versions: bool,
}

impl Serialize for OutputsByName<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.outputs.len()))?;
        for output in self.outputs {
            match self.as_versions {
                true => map.serialize_entry(
                    &output.name,
                    &format_args!("{}:{}", output.artifact, output.version),
                )?,
                false => map.serialize_entry(&output.name, &output.artifact_version)?,
            }
        }
        map.end()
    }
}

/// One invocation of a shown run, borrowed from what the store returned: a run of thousands
/// of steps is shown without copying each of their strings.
#[derive(Serialize)]
struct Step<'a> {
    /// The invocation id.
    name: &'a str,
    /// The map an item belongs to (dynamic pipelines: `<map>:<index>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    step: &'a str,
    status: &'static str,
    status_reason: Option<&'a str>,
    step_run_id: Option<StepRunId>,
    attempt: Option<u32>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
    duration_ms: Option<f64>,
    upstream: &'a [String],
    parameters: ParametersOf<'a>,
    inputs: InputsByName<'a>,
    outputs: OutputsByName<'a>,
    output_versions: OutputsByName<'a>,
    cache_key: Option<&'a str>,
    cached_from: Option<CachedFrom>,
    metadata: Vec<MetadataEntry>,
    error: Option<&'a StepError>,
}

#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    run: crate::model::Run,
    execution_mode: Option<String>,
    /// Whether the pipeline is dynamic (its steps are what its function called).
    dynamic: bool,
    parameters: Value,
    metadata: Vec<MetadataEntry>,
    steps: Vec<Step<'a>>,
}

/// An invocation to show: its id, step, what it waited for and its parameters.
struct Planned<'a> {
    id: &'a str,
    step: &'a str,
    upstream: std::borrow::Cow<'a, [String]>,
    parameters: ParametersOf<'a>,
}

/// The run's records of each step run, in the store's order, found by step run.
struct ByStepRun<T> {
    records: Vec<T>,
    ranges: HashMap<StepRunId, std::ops::Range<usize>>,
}

impl<T> ByStepRun<T> {
    /// Groups `records` by step run, each group in `order`.
    fn new(
        mut records: Vec<T>,
        step_run: impl Fn(&T) -> StepRunId,
        order: impl Fn(&T, &T) -> std::cmp::Ordering,
    ) -> Self {
        records.sort_by(|a, b| step_run(a).cmp(&step_run(b)).then_with(|| order(a, b)));
        let mut ranges = HashMap::new();
        let mut start = 0;
        for group in records.chunk_by(|a, b| step_run(a) == step_run(b)) {
            ranges.insert(step_run(&group[0]), start..start + group.len());
            start += group.len();
        }
        Self { records, ranges }
    }

    fn of(&self, step_run: Option<StepRunId>) -> &[T] {
        match step_run.and_then(|id| self.ranges.get(&id)) {
            Some(range) => &self.records[range.clone()],
            None => &[],
        }
    }
}

/// A status a step of `runs show` can have: a step run's, or `pending` (it never ran).
fn step_status(text: &str) -> Result<String, String> {
    if text == "pending" || text.parse::<weft_core::Status>().is_ok() {
        return Ok(text.to_owned());
    }
    let known: Vec<&str> = weft_core::Status::ALL.map(weft_core::Status::as_str).into();
    Err(format!(
        "not a status: use one of {}, pending",
        known.join(", ")
    ))
}

fn show(
    client: &Client,
    reference: &str,
    json: bool,
    every_item: bool,
    status: Option<&str>,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let run = client.run_record(reference)?;
    let store = client.metadata_store();
    let RunOverview {
        step_runs,
        parents,
        inputs,
        outputs,
    } = client.block_on(store.run_overview(run.id, true))?;
    let outline = match &run.snapshot_id {
        Some(id) => Some(client.block_on(store.snapshot_outline(id))?),
        None => None,
    };
    // The latest attempt of each invocation.
    let mut latest: HashMap<&str, &StepRunSummary> = HashMap::with_capacity(step_runs.len());
    for step_run in &step_runs {
        let entry = latest
            .entry(step_run.invocation.as_str())
            .or_insert(step_run);
        if step_run.attempt > entry.attempt {
            *entry = step_run;
        }
    }
    let outputs = ByStepRun::new(outputs, |o| o.step_run, |a, b| a.name.cmp(&b.name));
    let inputs = ByStepRun::new(
        inputs,
        |i| i.step_run,
        |a, b| a.name.cmp(&b.name).then(a.position.cmp(&b.position)),
    );
    let planned: Vec<Planned<'_>> = match &outline {
        // A dynamic run's plan is what it did: its invocations in the order they were
        // recorded (each after those it waited for), with the parents they had.
        Some(outline) if outline.dynamic => dynamic_invocations(&step_runs, &parents),
        Some(outline) => outline
            .topological_order()
            .into_iter()
            .map(|i| {
                let invocation = &outline.invocations[i];
                Planned {
                    id: &invocation.id,
                    step: &invocation.step,
                    upstream: (&invocation.upstream[..]).into(),
                    parameters: ParametersOf::Planned(&invocation.parameters),
                }
            })
            .collect(),
        None => step_runs
            .iter()
            .map(|s| Planned {
                id: &s.invocation,
                step: &s.step,
                upstream: Vec::new().into(),
                parameters: ParametersOf::Recorded(&s.parameters),
            })
            .collect(),
    };
    // Every step's metadata and every original's run in one query each, not one per step:
    // a run of thousands of steps shows in milliseconds.
    let mut metadata_of: HashMap<_, Vec<MetadataEntry>> = HashMap::new();
    for (step_run, entry) in client.block_on(store.step_runs_metadata(run.id))? {
        metadata_of.entry(step_run).or_default().push(entry);
    }
    let original_runs: HashMap<_, _> = client
        .block_on(store.original_runs(run.id))?
        .into_iter()
        .collect();
    let mut steps: Vec<Step<'_>> = planned
        .iter()
        .map(|planned| {
            let step_run = latest.get(planned.id).copied();
            let id = step_run.map(|s| s.id);
            Step {
                status: step_run.map_or("pending", |s| s.status.as_str()),
                status_reason: step_run.and_then(|s| s.status_reason.as_deref()),
                step_run_id: id,
                attempt: step_run.map(|s| s.attempt),
                started_at: step_run.and_then(|s| s.started_at),
                ended_at: step_run.and_then(|s| s.ended_at),
                duration_ms: step_run.and_then(|s| {
                    Some((s.ended_at? - s.started_at?).num_microseconds()? as f64 / 1e3)
                }),
                inputs: InputsByName(inputs.of(id)),
                outputs: OutputsByName {
                    outputs: outputs.of(id),
                    as_versions: false,
                },
                output_versions: OutputsByName {
                    outputs: outputs.of(id),
                    as_versions: true,
                },
                cache_key: step_run.and_then(|s| s.cache_key.as_deref()),
                cached_from: step_run.and_then(|s| {
                    s.original_step_run.map(|original| CachedFrom {
                        step_run: original,
                        run: original_runs.get(&s.id).copied(),
                    })
                }),
                metadata: id
                    .and_then(|id| metadata_of.remove(&id))
                    .unwrap_or_default(),
                error: step_run.and_then(|s| s.error.as_ref()),
                group: planned.id.split_once(':').map(|(group, _)| group),
                name: planned.id,
                step: planned.step,
                upstream: &planned.upstream,
                parameters: planned.parameters,
            }
        })
        .collect();
    let every = steps.len();
    if let Some(status) = status {
        steps.retain(|step| step.status == status);
    }
    let shown = Shown {
        execution_mode: outline.as_ref().map(|s| s.execution_mode.to_string()),
        dynamic: outline.as_ref().is_some_and(|s| s.dynamic),
        parameters: outline
            .as_ref()
            .map(|s| Value::Object(s.parameters.clone().into_iter().collect()))
            .unwrap_or(Value::Null),
        metadata: client.block_on(store.metadata(Resource::Run(run.id)))?,
        run,
        steps,
    };
    if json {
        return render::json(out, &shown);
    }
    print_run(&shown, every_item, out);
    if let Some(status) = status {
        say!(
            out,
            "Only the steps with status {status}: {} of {every}.",
            shown.steps.len()
        );
    }
    Ok(())
}

/// The invocations of a dynamic run, from its step runs: first attempts' order, latest
/// attempts' parents.
fn dynamic_invocations<'a>(
    step_runs: &'a [StepRunSummary],
    parents: &[(StepRunId, StepRunId)],
) -> Vec<Planned<'a>> {
    let invocation_of: HashMap<_, &str> = step_runs
        .iter()
        .map(|s| (s.id, s.invocation.as_str()))
        .collect();
    let mut upstream_of: HashMap<&str, Vec<String>> = HashMap::new();
    for (parent, child) in parents {
        if let (Some(parent), Some(child)) = (invocation_of.get(parent), invocation_of.get(child)) {
            // Several attempts of one parent repeat it: sorted out below, not searched for
            // here (a fan-in over 100,000 items would search 100,000 times).
            upstream_of
                .entry(child)
                .or_default()
                .push((*parent).to_owned());
        }
    }
    let mut seen = std::collections::HashSet::new();
    step_runs
        .iter()
        .filter(|s| seen.insert(s.invocation.as_str()))
        .map(|s| {
            let mut upstream = upstream_of
                .remove(s.invocation.as_str())
                .unwrap_or_default();
            upstream.sort_unstable();
            upstream.dedup();
            Planned {
                id: &s.invocation,
                step: &s.step,
                upstream: upstream.into(),
                parameters: ParametersOf::Recorded(&s.parameters),
            }
        })
        .collect()
}

/// A map of more items than this is one row of `runs show`.
const COLLAPSED_MAP: usize = 10;

/// Items of a map shown as one row whose notes (error, reason, metadata) are printed; the
/// others are counted.
const NOTES_PER_MAP: usize = 5;

/// The row of a map's items: their range, statuses counted, the longest took, what they
/// waited for.
fn map_row(group: &str, items: &[Step<'_>]) -> Vec<String> {
    let mut statuses: Vec<(&str, usize)> = Vec::new();
    for item in items {
        match statuses
            .iter_mut()
            .find(|(status, _)| *status == item.status)
        {
            Some((_, count)) => *count += 1,
            None => statuses.push((item.status, 1)),
        }
    }
    let status = statuses
        .iter()
        .map(|(status, count)| format!("{count} {status}"))
        .collect::<Vec<_>>()
        .join(", ");
    let slowest = items
        .iter()
        .filter_map(|item| item.duration_ms)
        .fold(None, |slowest: Option<f64>, ms| {
            Some(slowest.map_or(ms, |s| s.max(ms)))
        });
    let mut upstream: Vec<String> = items
        .iter()
        .flat_map(|item| item.upstream.iter().cloned())
        .collect();
    upstream.sort();
    upstream.dedup();
    vec![
        format!("{group}:* ({} items)", items.len()),
        status,
        slowest
            .map(|ms| {
                format!(
                    "up to {}",
                    render::duration(std::time::Duration::from_secs_f64(ms / 1e3))
                )
            })
            .unwrap_or_else(|| "-".into()),
        upstream_summary(&upstream),
        "-".into(),
    ]
}

/// The invocations a step waited for, as a table cell: a fan-in over a map of 100,000 items
/// names the map once with its count (a cell listing every item would be as wide as the
/// list, and every row of the table padded to it).
fn upstream_summary(upstream: &[String]) -> String {
    const SHOWN: usize = 4;
    if upstream.len() <= SHOWN {
        return upstream.join(", ");
    }
    // Items of a map are `<group>:<index>`: one entry per group, in first-seen order. Found
    // through a map: a static fan-in of 10,000 has 10,000 groups of one.
    let mut groups: Vec<(&str, usize)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for id in upstream {
        let group = id.split_once(':').map_or(id.as_str(), |(group, _)| group);
        match position.get(group) {
            Some(&at) => groups[at].1 += 1,
            None => {
                position.insert(group, groups.len());
                groups.push((group, 1));
            }
        }
    }
    let mut parts: Vec<String> = groups
        .iter()
        .take(SHOWN)
        .map(|&(group, count)| match count {
            1 => group.to_owned(),
            _ => format!("{group} ({count} items)"),
        })
        .collect();
    if groups.len() > SHOWN {
        parts.push(format!("and {} more", groups.len() - SHOWN));
    }
    parts.join(", ")
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

fn print_run(shown: &Shown<'_>, every_item: bool, out: &mut Output<'_>) {
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
    if let Some(original) = run.resumed_from {
        say!(out, "Resumes     run {original}");
    }
    if !run.tags.is_empty() {
        say!(out, "Tags        {}", run.tags.join(", "));
    }
    if let Value::Object(parameters) = &shown.parameters
        && !parameters.is_empty()
    {
        let text: Vec<String> = parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        say!(out, "Parameters  {}", text.join(", "));
    }
    if let Some(mode) = &shown.execution_mode {
        let kind = if shown.dynamic { ", dynamic" } else { "" };
        let meaning = match mode.as_str() {
            "continue_on_failure" => "a failed step skips what depends on it; the rest runs",
            "stop_on_failure" => "after a failure nothing new starts; running steps finish",
            "fail_fast" => "a failure stops everything at once",
            _ => "",
        };
        say!(out, "Mode        {mode}{kind} ({meaning})");
    }
    if !shown.metadata.is_empty() {
        let text: Vec<String> = shown
            .metadata
            .iter()
            .map(|entry| format!("{}={}", entry.key, entry.value))
            .collect();
        say!(out, "Metadata    {}", text.join(", "));
    }
    say!(out);
    let mut table = render::table(&["step", "status", "took", "after", "outputs"]);
    let mut collapsed = 0;
    // The maps shown as one row: their notes are shown as few too.
    let mut collapsed_maps: HashMap<&str, usize> = HashMap::new();
    let mut position = 0;
    while position < shown.steps.len() {
        let step = &shown.steps[position];
        // A map of many items is one row, unless every item was asked for.
        let members = match step.group {
            Some(group) if !every_item => shown.steps[position..]
                .iter()
                .take_while(|other| other.group == Some(group))
                .count(),
            _ => 1,
        };
        if members > COLLAPSED_MAP {
            let group = step.group.unwrap_or_default();
            table.add_row(map_row(group, &shown.steps[position..position + members]));
            collapsed_maps.insert(group, 0);
            collapsed += members;
            position += members;
            continue;
        }
        position += 1;
        let mut status = step.status.to_owned();
        if let Some(from) = &step.cached_from {
            status = match from.run {
                Some(original) if original != run.id => {
                    format!("{status} (run {})", short(&original.to_string()))
                }
                _ => format!("{status} (step run {})", short(&from.step_run.to_string())),
            };
        }
        if let Some(attempt) = step.attempt.filter(|attempt| *attempt > 1) {
            status = format!("{status}, attempt {attempt}");
        }
        let outputs: Vec<String> = step
            .outputs
            .outputs
            .iter()
            .map(|o| format!("{}: {}:{}", o.name, o.artifact, o.version))
            .collect();
        table.add_row(vec![
            step.name.to_owned(),
            status,
            step.duration_ms
                .map(|ms| render::duration(std::time::Duration::from_secs_f64(ms / 1e3)))
                .unwrap_or_else(|| "-".into()),
            upstream_summary(step.upstream),
            outputs.join("\n"),
        ]);
    }
    say!(out, "{table}");
    if collapsed > 0 {
        say!(
            out,
            "{collapsed} items of maps are counted above; `--items` lists each, `--json` gives every field."
        );
    }
    let mut notes = Vec::new();
    for step in &shown.steps {
        // The items of a map shown as one row say their first few notes; the rest are counted
        // (a rerun of 100,000 cached items would say 100,000 times where each came from).
        if let Some(count) = step.group.and_then(|group| collapsed_maps.get_mut(group)) {
            let has_notes =
                step.error.is_some() || step.status_reason.is_some() || !step.metadata.is_empty();
            *count += usize::from(has_notes);
            if *count > NOTES_PER_MAP {
                continue;
            }
        }
        if let Some(error) = &step.error {
            notes.push(format!(
                "step `{}` failed: {}",
                step.name,
                weft_core::message::one_line(&error.chain)
            ));
            if let Some(backtrace) = &error.backtrace {
                notes.push(backtrace.clone());
            }
        } else if let Some(reason) = step.status_reason {
            // A reason may open with the status itself (`cached: reuses ...`): say it once.
            let status = step.status;
            let reason = reason
                .strip_prefix(status)
                .and_then(|rest| rest.strip_prefix(':'))
                .map_or(reason, str::trim_start);
            notes.push(format!("step `{}` {status}: {reason}", step.name));
        }
        for entry in &step.metadata {
            notes.push(format!(
                "step `{}` metadata: {} = {}",
                step.name, entry.key, entry.value
            ));
        }
    }
    let mut unsaid: Vec<(&str, usize)> = collapsed_maps
        .into_iter()
        .filter(|&(_, count)| count > NOTES_PER_MAP)
        .map(|(group, count)| (group, count - NOTES_PER_MAP))
        .collect();
    unsaid.sort_unstable();
    for (group, count) in unsaid {
        notes.push(format!(
            "{count} more items of `{group}` have notes: `--items` shows them (`--status failed` only the failed ones)"
        ));
    }
    if !notes.is_empty() {
        say!(out);
        for note in notes {
            say!(out, "{note}");
        }
    }
    say!(out);
    say!(
        out,
        "Logs of a step: {} logs {} <step>",
        super::inspector(),
        run.id
    );
}

#[cfg(test)]
mod tests {
    use super::upstream_summary;

    #[test]
    fn a_long_upstream_list_names_maps_once_and_counts_the_rest() {
        let few: Vec<String> = ["a", "b"].map(String::from).to_vec();
        assert_eq!(upstream_summary(&few), "a, b");
        let map: Vec<String> = (0..1000).map(|i| format!("square:{i}")).collect();
        assert_eq!(upstream_summary(&map), "square (1000 items)");
        let fan_in: Vec<String> = (0..10_000).map(|i| format!("add_{i}")).collect();
        assert_eq!(
            upstream_summary(&fan_in),
            "add_0, add_1, add_2, add_3, and 9996 more"
        );
    }
}
