//! `weft artifacts list | versions | show`.

use crate::Client;
use crate::model::{MetadataEntry, Resource, StepRun};
use clap::Subcommand;
use serde::Serialize;

use super::output::Output;
use super::render;

/// Files up to this size are previewed by `artifacts show`.
const PREVIEW_BYTES: usize = 2048;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// List artifacts with their number of versions.
    List {
        /// Only artifacts with names chosen in code (not `<pipeline>::<step>::<output>`).
        #[arg(long)]
        custom: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the versions of an artifact, newest first.
    Versions {
        /// The artifact's name.
        name: String,
        /// Only versions whose metadata meets this condition (repeat for several): KEY=VALUE,
        /// KEY!=VALUE, KEY<N, KEY<=N, KEY>N or KEY>=N (`rows>=1000`, `dtype=float64`). The
        /// table shows each key named.
        #[arg(long = "where", value_name = "CONDITION")]
        conditions: Vec<crate::MetadataCondition>,
        /// Print JSON (each version with its metadata when conditions are given).
        #[arg(long)]
        json: bool,
    },
    /// Check that artifact versions' files are still there and unchanged (every byte is
    /// re-hashed); exits with 1 if one is not.
    Verify {
        /// A version id (or unique prefix), `<name>:<version>` or `<name>:latest`; every
        /// version if none.
        version: Option<String>,
    },
    /// Attach tags to an artifact version.
    Tag {
        /// A version id (or unique prefix), `<name>:<version>` or `<name>:latest`.
        version: String,
        /// The tags.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Write an artifact version's visualizations (histograms, table samples, images,
    /// reports) to a folder, and print where.
    Visualize {
        /// A version id (or unique prefix), `<name>:<version>` or `<name>:latest`.
        version: String,
        /// The folder to write them to (created if needed); by default
        /// `weft-visualizations/<artifact>-v<version>` in the current folder.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Write every file of an artifact version (its data and its visualizations) to a folder,
    /// checked against their hashes, and print where: for reading it with other tools.
    Export {
        /// A version id (or unique prefix), `<name>:<version>` or `<name>:latest`.
        version: String,
        /// The folder to write them to (created if needed); by default
        /// `weft-export/<artifact>-v<version>` in the current folder.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Show one artifact version: where it is, what it holds, who made and used it.
    Show {
        /// A version id (or unique prefix), `<name>:<version>` or `<name>:latest`.
        version: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(client: &Client, command: Command, out: &mut Output<'_>) -> anyhow::Result<()> {
    match command {
        Command::List { custom, json } => list(client, custom, json, out),
        Command::Versions {
            name,
            conditions,
            json,
        } => versions(client, &name, &conditions, json, out),
        Command::Show { version, json } => show(client, &version, json, out),
        Command::Verify { version } => verify(client, version.as_deref(), out),
        Command::Visualize {
            version,
            out: folder,
        } => visualize(client, &version, folder, out),
        Command::Export {
            version,
            out: folder,
        } => {
            let version = client.artifact_version(&version)?;
            let files: Vec<_> = version.files.iter().map(|f| (f.clone(), None)).collect();
            write_out(&version, &files, folder, "weft-export", out)
        }
        Command::Tag { version, tags } => {
            let version = client.artifact_version(&version)?;
            client.tag(&version, &tags)?;
            let version = client.artifact_version(&version.id.to_string())?;
            say!(
                out,
                "{} v{} is tagged: {}",
                version.name,
                version.version,
                version.tags.join(", ")
            );
            Ok(())
        }
    }
}

fn list(client: &Client, custom: bool, json: bool, out: &mut Output<'_>) -> anyhow::Result<()> {
    let artifacts = client.artifacts(custom)?;
    if json {
        return render::json(out, &artifacts);
    }
    if artifacts.is_empty() {
        say!(out, "No artifacts yet.");
        return Ok(());
    }
    let mut table = render::table(&["name", "versions", "latest", "created"]);
    for artifact in &artifacts {
        table.add_row(vec![
            artifact.name.clone(),
            artifact.version_count.to_string(),
            artifact
                .latest_version
                .clone()
                .unwrap_or_else(|| "-".into()),
            render::time(Some(artifact.created_at)),
        ]);
    }
    say!(out, "{table}");
    Ok(())
}

fn versions(
    client: &Client,
    name: &str,
    conditions: &[crate::MetadataCondition],
    json: bool,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    if conditions.is_empty() {
        let versions = client.artifact_versions(name)?;
        if json {
            let records: Vec<_> = versions.iter().map(|v| v.record()).collect();
            return render::json(out, &records);
        }
        let versions = versions.into_iter().map(|v| (v, Vec::new())).collect();
        return versions_table(versions, &[], out);
    }
    let versions = client.artifact_versions_where(name, conditions)?;
    if json {
        #[derive(Serialize)]
        struct Matching<'a> {
            #[serde(flatten)]
            version: &'a crate::model::ArtifactVersion,
            metadata: &'a [MetadataEntry],
        }
        let records: Vec<_> = versions
            .iter()
            .map(|(version, metadata)| Matching {
                version: version.record(),
                metadata,
            })
            .collect();
        return render::json(out, &records);
    }
    if versions.is_empty() {
        if client.artifact_versions(name)?.is_empty() {
            anyhow::bail!("artifact `{name}` has no versions");
        }
        say!(out, "No version of `{name}` meets the conditions.");
        return Ok(());
    }
    let mut keys: Vec<&str> = conditions.iter().map(|c| c.key()).collect();
    keys.dedup();
    versions_table(versions, &keys, out)
}

/// The versions as a table, with a column for each of `keys` of their metadata.
fn versions_table(
    versions: Vec<(crate::ArtifactVersion, Vec<MetadataEntry>)>,
    keys: &[&str],
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let mut header = vec!["version", "id", "type", "size", "created"];
    header.extend(keys);
    let mut table = render::table(&header);
    for (version, metadata) in &versions {
        let mut row = vec![
            version.version.clone(),
            version.id.to_string(),
            render::short_type(&version.data_type),
            version.size.to_string(),
            render::time(Some(version.created_at)),
        ];
        for key in keys {
            let value = metadata.iter().find(|e| e.key == *key).map(|e| &e.value);
            row.push(match value {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => "-".into(),
            });
        }
        table.add_row(row);
    }
    say!(out, "{table}");
    Ok(())
}

#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    version: &'a crate::model::ArtifactVersion,
    metadata: Vec<MetadataEntry>,
    producer: Option<StepRun>,
    consumers: Vec<StepRun>,
    /// Where each file is on this machine (local stores).
    paths: std::collections::BTreeMap<String, std::path::PathBuf>,
    visualizations: Vec<ShownVisualization>,
}

#[derive(Serialize)]
struct ShownVisualization {
    file: String,
    #[serde(rename = "type")]
    kind: crate::materializers::VisualizationType,
}

fn show(client: &Client, reference: &str, json: bool, out: &mut Output<'_>) -> anyhow::Result<()> {
    let version = client.artifact_version(reference)?;
    let store = client.metadata_store();
    let metadata = client.block_on(store.metadata(Resource::ArtifactVersion(version.id)))?;
    let producer = client.block_on(store.producer(version.id))?;
    let consumers = client.block_on(store.consumers(version.id))?;
    let paths: std::collections::BTreeMap<_, _> = version
        .files
        .iter()
        .filter_map(|file| Some((file.name.clone(), version.local_path(&file.name)?)))
        .collect();
    let visualizations: Vec<ShownVisualization> = version
        .visualizations()
        .into_iter()
        .map(|(file, kind)| ShownVisualization {
            file: file.name,
            kind,
        })
        .collect();
    if json {
        return render::json(
            out,
            &Shown {
                version: version.record(),
                metadata,
                producer,
                consumers,
                paths,
                visualizations,
            },
        );
    }
    say!(
        out,
        "Artifact      {} (version {})",
        version.name,
        version.version
    );
    say!(out, "Id            {}", version.id);
    say!(
        out,
        "Type          {} ({})",
        render::short_type(&version.data_type),
        version.artifact_type
    );
    say!(
        out,
        "Materializer  {} v{}",
        version.materializer,
        version.materializer_version
    );
    say!(out, "Location      {}", version.uri);
    say!(
        out,
        "Size          {} bytes in {} file(s)",
        version.size,
        version.files.len()
    );
    say!(out, "Content hash  {}", version.content_hash);
    for file in &version.files {
        let role = if file.visualization.is_some() {
            " (visualization)"
        } else {
            ""
        };
        match paths.get(&file.name) {
            Some(path) => say!(
                out,
                "File          {}{role}  {} bytes",
                path.display(),
                file.size
            ),
            None if file.is_inline() => say!(
                out,
                "File          {}{role}  {} bytes, kept in the metadata store (write it out: weft artifacts export {})",
                file.name,
                file.size,
                version.id
            ),
            None => say!(
                out,
                "File          {}{role}  {} bytes",
                file.name,
                file.size
            ),
        }
    }
    if !visualizations.is_empty() {
        let listed: Vec<String> = visualizations
            .iter()
            .map(|shown| format!("{} ({})", shown.file, shown.kind))
            .collect();
        say!(
            out,
            "Visualized by {}  (write them out: weft artifacts visualize {})",
            listed.join(", "),
            version.id
        );
    }
    say!(
        out,
        "Created       {}",
        render::time(Some(version.created_at))
    );
    if !version.tags.is_empty() {
        say!(out, "Tags          {}", version.tags.join(", "));
    }
    for entry in &metadata {
        say!(out, "  {} = {}", entry.key, entry.value);
    }
    match &producer {
        Some(step_run) => say!(
            out,
            "Produced by   step `{}` of run {}",
            step_run.invocation,
            step_run.run_id
        ),
        None => say!(out, "Produced by   (not a step: {})", version.save_type),
    }
    for consumer in &consumers {
        say!(
            out,
            "Used by       step `{}` of run {}",
            consumer.invocation,
            consumer.run_id
        );
    }
    if let [file] = version.files.as_slice() {
        let previewable = file.name.ends_with(".json") || file.name.ends_with(".txt");
        if previewable && file.size as usize <= PREVIEW_BYTES {
            match version.read_head(&file.name, PREVIEW_BYTES) {
                Ok(bytes) => say!(out, "Value         {}", String::from_utf8_lossy(&bytes)),
                Err(error) => say!(out, "Value         unreadable: {error}"),
            }
        }
    }
    Ok(())
}

fn visualize(
    client: &Client,
    reference: &str,
    folder: Option<std::path::PathBuf>,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let version = client.artifact_version(reference)?;
    let shown = version.visualizations();
    if shown.is_empty() {
        say!(
            out,
            "{} v{} has no visualizations ({} writes none).",
            version.name,
            version.version,
            version.materializer
        );
        return Ok(());
    }
    let files: Vec<_> = shown.into_iter().map(|(f, kind)| (f, Some(kind))).collect();
    write_out(&version, &files, folder, "weft-visualizations", out)
}

/// Writes `files` of `version` into `folder` (by default `<default_parent>/<name>-v<version>`)
/// and prints each one written.
fn write_out(
    version: &crate::ArtifactVersion,
    files: &[(
        crate::materializers::FileRecord,
        Option<crate::materializers::VisualizationType>,
    )],
    folder: Option<std::path::PathBuf>,
    default_parent: &str,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let folder = folder.unwrap_or_else(|| {
        let name: String = version
            .name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::path::Path::new(default_parent).join(format!("{name}-v{}", version.version))
    });
    std::fs::create_dir_all(&folder)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", folder.display()))?;
    for (file, kind) in files {
        // Names were checked when written, but a metadata store is not to be trusted with
        // paths: nothing is written outside the folder.
        let plain = !file.name.is_empty()
            && !file.name.starts_with('.')
            && !file.name.contains(['/', '\\']);
        anyhow::ensure!(
            plain,
            "refusing to write `{}`: not a plain file name",
            file.name
        );
        let destination = folder.join(&file.name);
        let size = version.export_file(&file.name, &destination)?;
        match kind {
            Some(kind) => say!(out, "{}  ({kind}, {size} bytes)", destination.display()),
            None => say!(out, "{}  ({size} bytes)", destination.display()),
        }
    }
    Ok(())
}

fn verify(client: &Client, reference: Option<&str>, out: &mut Output<'_>) -> anyhow::Result<()> {
    let versions = match reference {
        Some(reference) => vec![client.artifact_version(reference)?],
        None => {
            let mut all = Vec::new();
            for artifact in client.artifacts(false)? {
                all.extend(client.artifact_versions(&artifact.name)?);
            }
            all
        }
    };
    let mut damaged = 0;
    for version in &versions {
        if let Err(error) = version.verify() {
            damaged += 1;
            say!(
                out,
                "{} v{} ({}): {error}",
                version.name,
                version.version,
                version.id
            );
        }
    }
    say!(
        out,
        "{} of {} artifact version(s) intact.",
        versions.len() - damaged,
        versions.len()
    );
    anyhow::ensure!(
        damaged == 0,
        "{damaged} artifact version(s) are missing files or have changed"
    );
    Ok(())
}
