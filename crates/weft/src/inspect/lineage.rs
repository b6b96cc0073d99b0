//! `weft lineage <artifact version>`: where a version came from and what was made from it,
//! across runs.

use std::collections::{HashMap, HashSet};

use crate::Client;
use crate::model::{ArtifactVersion, Direction, Lineage, StepRun};
use crate::{ArtifactVersionId, StepRunId};
use serde::Serialize;

use super::output::Output;
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

pub(crate) fn run(
    client: &Client,
    arguments: Arguments,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
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
    Graph::new(&upstream).upstream(out, version.record(), 1);
    say!(out);
    say!(out, "Used by (downstream):");
    Graph::new(&downstream).downstream(out, version.record(), 1);
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

/// A lineage indexed once, printed as a tree in which each version is expanded once: a
/// version reached again (a diamond, a shared ancestor) says so instead of repeating its
/// whole subtree, so the output grows with the graph, not with its paths.
struct Graph<'a> {
    steps: HashMap<StepRunId, &'a StepRun>,
    versions: HashMap<ArtifactVersionId, &'a ArtifactVersion>,
    /// Per step run: the versions it read, with the input's name.
    reads_of: HashMap<StepRunId, Vec<(ArtifactVersionId, &'a str)>>,
    /// Per version: the step runs that read it, with the input's name.
    readers_of: HashMap<ArtifactVersionId, Vec<(StepRunId, &'a str)>>,
    /// Per step run: the versions it wrote, with the output's name.
    writes_of: HashMap<StepRunId, Vec<(ArtifactVersionId, &'a str)>>,
    expanded: HashSet<ArtifactVersionId>,
}

impl<'a> Graph<'a> {
    fn new(lineage: &'a Lineage) -> Self {
        let mut graph = Self {
            steps: lineage.step_runs.iter().map(|s| (s.id, s)).collect(),
            versions: lineage
                .artifact_versions
                .iter()
                .map(|v| (v.id, v))
                .collect(),
            reads_of: HashMap::new(),
            readers_of: HashMap::new(),
            writes_of: HashMap::new(),
            expanded: HashSet::new(),
        };
        for (read, step_run, input) in &lineage.reads {
            graph
                .reads_of
                .entry(*step_run)
                .or_default()
                .push((*read, input));
            graph
                .readers_of
                .entry(*read)
                .or_default()
                .push((*step_run, input));
        }
        for (writer, written, output) in &lineage.writes {
            graph
                .writes_of
                .entry(*writer)
                .or_default()
                .push((*written, output));
        }
        graph
    }

    fn upstream(&mut self, out: &mut Output<'_>, version: &ArtifactVersion, depth: usize) {
        let indent = "  ".repeat(depth);
        let Some(producer) = version.producer.and_then(|id| self.steps.get(&id).copied()) else {
            if depth == 1 {
                say!(out, "{indent}(no producing step: {})", version.save_type);
            }
            return;
        };
        if depth > 1 && !self.expanded.insert(version.id) {
            say!(out, "{indent}(made as shown above)");
            return;
        }
        say!(out, "{indent}<- {}", step_label(producer));
        for (read, input) in self.reads_of.get(&producer.id).cloned().unwrap_or_default() {
            if let Some(parent) = self.versions.get(&read).copied() {
                say!(out, "{indent}   {input}: {}", label(parent));
                self.upstream(out, parent, depth + 2);
            }
        }
    }

    fn downstream(&mut self, out: &mut Output<'_>, version: &ArtifactVersion, depth: usize) {
        let indent = "  ".repeat(depth);
        if depth > 1 && !self.expanded.insert(version.id) {
            say!(out, "{indent}(used as shown above)");
            return;
        }
        let mut any = false;
        for (step_run, input) in self
            .readers_of
            .get(&version.id)
            .cloned()
            .unwrap_or_default()
        {
            let Some(consumer) = self.steps.get(&step_run).copied() else {
                continue;
            };
            any = true;
            say!(out, "{indent}-> {} (as `{input}`)", step_label(consumer));
            for (written, output) in self.writes_of.get(&step_run).cloned().unwrap_or_default() {
                if let Some(child) = self.versions.get(&written).copied() {
                    say!(out, "{indent}   {output}: {}", label(child));
                    self.downstream(out, child, depth + 2);
                }
            }
        }
        if !any && depth == 1 {
            say!(out, "{indent}(not used by any step yet)");
        }
    }
}
