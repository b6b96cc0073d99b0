//! `weft lineage <artifact version>`: where a version came from and what was made from it,
//! across runs.

use std::collections::HashMap;

use crate::Client;
use crate::model::{ArtifactVersion, Direction, Lineage, StepRun};
use serde::Serialize;

use super::render;

#[derive(clap::Args)]
pub(crate) struct Arguments {
    /// A version id (or unique prefix), `<name>:<version>` or `<name>:latest`.
    version: String,
    /// How many steps to follow in each direction.
    #[arg(long, default_value_t = 10)]
    depth: u32,
    /// Print JSON: `{"artifact_version", "upstream", "downstream"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Both<'a> {
    artifact_version: &'a ArtifactVersion,
    upstream: Lineage,
    downstream: Lineage,
}

pub(crate) fn run(client: &Client, arguments: Arguments, out: &mut String) -> anyhow::Result<()> {
    let version = client.artifact_version(&arguments.version)?;
    let upstream = client.lineage(&version, Direction::Upstream, arguments.depth)?;
    let downstream = client.lineage(&version, Direction::Downstream, arguments.depth)?;
    if arguments.json {
        return render::json(
            out,
            &Both {
                artifact_version: version.record(),
                upstream,
                downstream,
            },
        );
    }
    say!(out, "{}", label(version.record()));
    say!(out);
    say!(out, "Made from (upstream):");
    print_upstream(out, &upstream, version.record(), 1);
    say!(out);
    say!(out, "Used by (downstream):");
    print_downstream(out, &downstream, version.record(), 1);
    Ok(())
}

fn label(version: &ArtifactVersion) -> String {
    format!(
        "{} v{} ({}, {})",
        version.name,
        version.version,
        render::short_type(&version.data_type),
        version.id
    )
}

fn step_label(step_run: &StepRun) -> String {
    format!(
        "step `{}` [{}] of run {}",
        step_run.invocation, step_run.status, step_run.run_id
    )
}

fn print_upstream(out: &mut String, lineage: &Lineage, version: &ArtifactVersion, depth: usize) {
    let indent = "  ".repeat(depth);
    let steps: HashMap<_, _> = lineage.step_runs.iter().map(|s| (s.id, s)).collect();
    let versions: HashMap<_, _> = lineage
        .artifact_versions
        .iter()
        .map(|v| (v.id, v))
        .collect();
    let Some(producer) = version.producer.and_then(|id| steps.get(&id)) else {
        if depth == 1 {
            say!(out, "{indent}(no producing step: {})", version.save_type);
        }
        return;
    };
    say!(out, "{indent}<- {}", step_label(producer));
    for (read, step_run, input) in &lineage.reads {
        if *step_run == producer.id
            && let Some(parent) = versions.get(read)
        {
            say!(out, "{indent}   {input}: {}", label(parent));
            print_upstream(out, lineage, parent, depth + 2);
        }
    }
}

fn print_downstream(out: &mut String, lineage: &Lineage, version: &ArtifactVersion, depth: usize) {
    let indent = "  ".repeat(depth);
    let steps: HashMap<_, _> = lineage.step_runs.iter().map(|s| (s.id, s)).collect();
    let versions: HashMap<_, _> = lineage
        .artifact_versions
        .iter()
        .map(|v| (v.id, v))
        .collect();
    let mut any = false;
    for (read, step_run, input) in &lineage.reads {
        if *read != version.id {
            continue;
        }
        let Some(consumer) = steps.get(step_run) else {
            continue;
        };
        any = true;
        say!(out, "{indent}-> {} (as `{input}`)", step_label(consumer));
        for (writer, written, output) in &lineage.writes {
            if writer == step_run
                && let Some(child) = versions.get(written)
            {
                say!(out, "{indent}   {output}: {}", label(child));
                print_downstream(out, lineage, child, depth + 2);
            }
        }
    }
    if !any && depth == 1 {
        say!(out, "{indent}(not used by any step yet)");
    }
}
