//! Artifacts and their versions: metadata, visualizations, files (downloaded as they were
//! written, checked against their hash), lineage, and tags.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use weft_core::ArtifactVersionId;
use weft_store::model::{
    Artifact, ArtifactVersion, Direction, Lineage, MetadataEntry, Resource, StepRun,
};

use super::streamed::StreamedJson;
use super::{Shared, blocking, parse_id};
use crate::error::{ApiError, ApiResult};

/// Every artifact, by name.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ArtifactList {
    #[schema(value_type = Vec<Object>)]
    artifacts: Vec<Artifact>,
}

/// Artifacts with their version counts; `custom=true` keeps only those named by their steps.
#[utoipa::path(get, path = "/api/v1/artifacts", tag = "artifacts",
    params(("custom" = Option<bool>, Query, description = "only artifacts with a name of their own")),
    responses((status = 200, body = ArtifactList)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn list(
    state: Shared,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ArtifactList>> {
    let custom_only = super::switch(&query, "custom", ["false", "true"])?;
    Ok(Json(ArtifactList {
        artifacts: state.metadata.artifacts(custom_only).await?,
    }))
}

/// The versions of one artifact.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct VersionList {
    #[schema(value_type = Vec<Object>)]
    versions: Vec<ArtifactVersion>,
}

/// The versions of the artifact `name`, oldest first.
#[utoipa::path(get, path = "/api/v1/artifacts/{name}/versions", tag = "artifacts",
    params(("name" = String, Path, description = "the artifact's name (percent-encoded)")),
    responses((status = 200, body = VersionList), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn versions(
    state: Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<VersionList>> {
    Ok(Json(VersionList {
        versions: state.metadata.artifact_versions(&name).await?,
    }))
}

/// One version with what describes and shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct VersionDetail {
    #[schema(value_type = Object)]
    version: ArtifactVersion,
    /// Extracted and logged metadata (shape, dtype, statistics, ...).
    #[schema(value_type = Vec<Object>)]
    metadata: Vec<MetadataEntry>,
    /// The files that show it: `{name, type, size}` (`type`: png, svg, csv, markdown, html, json).
    visualizations: Vec<Visualization>,
    /// The step run that wrote it.
    #[schema(value_type = Option<Object>)]
    producer: Option<StepRun>,
    /// The step runs that read it.
    #[schema(value_type = Vec<Object>)]
    consumers: Vec<StepRun>,
    /// How to load it: in Rust, and in Python where the format allows.
    load: LoadSnippets,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Visualization {
    name: String,
    r#type: String,
    size: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoadSnippets {
    rust: String,
    python: Option<String>,
}

/// One artifact version by id.
#[utoipa::path(get, path = "/api/v1/artifact-versions/{id}", tag = "artifacts",
    params(("id" = String, Path, description = "an artifact version id")),
    responses((status = 200, body = VersionDetail), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn one(state: Shared, Path(id): Path<String>) -> ApiResult<Json<VersionDetail>> {
    let id: ArtifactVersionId = parse_id("artifact version", &id)?;
    let store = &state.metadata;
    let version = store.artifact_version(id).await?;
    let metadata = store.metadata(Resource::ArtifactVersion(id)).await?;
    let producer = store.producer(id).await?;
    let consumers = store.consumers(id).await?;
    let stored = weft_engine::launcher::stored(&version);
    let visualizations = weft_artifacts::visualizations(&stored)
        .into_iter()
        .map(|(file, kind)| Visualization {
            name: file.name.clone(),
            r#type: kind.as_str().to_owned(),
            size: file.size,
        })
        .collect();
    let load = snippets(&state.artifacts, &version);
    Ok(Json(VersionDetail {
        version,
        metadata,
        visualizations,
        producer,
        consumers,
        load,
    }))
}

/// The lines that load a version, in Rust and (for open formats) in Python.
fn snippets(artifacts: &weft_artifacts::ArtifactStore, version: &ArtifactVersion) -> LoadSnippets {
    let rust = format!(
        "let value: {} = weft::Client::discover()?.artifact_version(\"{}\")?.load()?;",
        version.data_type, version.id
    );
    let data = version
        .files
        .iter()
        .find(|file| file.name.starts_with("data."))
        .or_else(|| version.files.first());
    let python = data.and_then(|file| {
        let local = (!file.is_inline())
            .then(|| {
                let relative = version.uri.strip_prefix(artifacts.root())?;
                artifacts.local_path(&format!("{relative}{}", file.name))
            })
            .flatten();
        // A file that is no file here (kept in the metadata store, or in a bucket) is written
        // out first, checked against its hash, by the same line.
        let (export, path) = match local {
            Some(path) => (String::new(), path.display().to_string()),
            None => {
                let folder = format!("weft-export/{}", version.id);
                (
                    format!(
                        "import subprocess; subprocess.run([\"weft\", \"artifacts\", \"export\", \"{}\", \"--out\", \"{folder}\"], check=True); ",
                        version.id
                    ),
                    format!("{folder}/{}", file.name),
                )
            }
        };
        let path = serde_json::to_string(&path).expect("a string");
        let load = match version.materializer.as_str() {
            "weft.npy" => format!("import numpy; value = numpy.load({path})"),
            "weft.parquet" => {
                format!("import pyarrow.parquet; table = pyarrow.parquet.read_table({path})")
            }
            "weft.safetensors" => {
                format!("from safetensors.numpy import load_file; tensors = load_file({path})")
            }
            "weft.png" => format!("from PIL import Image; image = Image.open({path})"),
            "weft.json" => format!("import json; value = json.load(open({path}))"),
            "weft.text" | "weft.markdown" | "weft.html" | "weft.csv" => {
                format!("text = open({path}, encoding=\"utf-8\").read()")
            }
            _ => return None,
        };
        Some(export + &load)
    });
    LoadSnippets { rust, python }
}

/// The content type a file is served with, by its name.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("csv") => "text/csv; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json" | "jsonl") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

/// File `name` of a version, as written, streamed; checked against its recorded hash as it
/// goes (a file that changed since is cut short: the client never gets a complete copy of
/// it). HTML and SVG are served with a policy that forbids scripts and reaching out, so a
/// visualization opened directly cannot act for the signed-in user. `?download=1` asks the
/// browser to save it.
#[utoipa::path(get, path = "/api/v1/artifact-versions/{id}/files/{name}", tag = "artifacts",
    params(("id" = String, Path, description = "an artifact version id"), ("name" = String, Path, description = "one of the version's file names"), ("download" = Option<bool>, Query, description = "save rather than show")),
    responses((status = 200, description = "the file"), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn file(
    state: Shared,
    Path((id, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id: ArtifactVersionId = parse_id("artifact version", &id)?;
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        return Err(ApiError::bad_request(format!(
            "`{name}` is not a file name of a version"
        )));
    }
    let version = state.metadata.artifact_version(id).await?;
    let Some(record) = version.files.iter().find(|file| file.name == name) else {
        return Err(ApiError::not_found(format!(
            "version {id} has no file `{name}`; it has {}",
            version
                .files
                .iter()
                .map(|file| file.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let size = record.size;
    let stored = weft_engine::launcher::stored(&version);
    let artifacts = state.artifacts.clone();
    let opened = name.clone();
    let reader = blocking(move || Ok(artifacts.open_version_file(&stored, &opened)?)).await?;
    let body = Body::from_stream(stream_file(reader));
    let mut response = body.into_response();
    // Served as stored: compressing hundreds of MiB of an array costs seconds of CPU.
    response.extensions_mut().insert(crate::AsStored);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&name)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'",
        ),
    );
    let disposition = if query
        .get("download")
        .is_some_and(|v| v == "1" || v == "true")
    {
        "attachment"
    } else {
        "inline"
    };
    // The name is the version's own, but may hold any text: quote it safely.
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename=\"{ascii}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Streams a file in chunks read on a blocking thread; ends with an error (which aborts the
/// response) if the file does not match its recorded hash.
fn stream_file(
    mut reader: weft_artifacts::FileReader,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        loop {
            let mut chunk = vec![0; 256 * 1024];
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => {
                    chunk.truncate(read);
                    if sender.blocking_send(Ok(chunk.into())).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        }
        if let Err(error) = reader.verify() {
            tracing::warn!(target: "weft::server", "a download was cut short: {error}");
            let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    // Fused: a body may be polled again once it ended.
    futures::StreamExt::fuse(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    ))
}

/// Where a version came from and what was made from it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LineageResponse {
    /// What the version was made from (absent with `direction=downstream`).
    #[schema(value_type = Option<Object>)]
    upstream: Option<Lineage>,
    /// What was made from it (absent with `direction=upstream`).
    #[schema(value_type = Option<Object>)]
    downstream: Option<Lineage>,
}

/// Step runs and versions a lineage graph holds each way unless asked for another number.
const DEFAULT_LINEAGE_LIMIT: usize = 1000;
/// The most a request may ask for.
const MAX_LINEAGE_LIMIT: usize = 100_000;

/// The lineage graph of a version: upstream, downstream or both, to a depth (1 to 20,
/// default 3), with at most `limit` step runs and versions each way (default 1,000: the
/// output of a fan-in over 100,000 items would otherwise be a graph no page can draw); a
/// graph cut at its limit says so (`truncated`), and `weft lineage` lists it whole.
#[utoipa::path(get, path = "/api/v1/artifact-versions/{id}/lineage", tag = "artifacts",
    params(("id" = String, Path, description = "an artifact version id"),
        ("direction" = Option<String>, Query, description = "`upstream`, `downstream` or `both` (default)"),
        ("depth" = Option<u32>, Query, description = "how many steps away, 1 to 20 (default 3; larger is capped)"),
        ("limit" = Option<u32>, Query, description = "at most this many step runs and versions each way, 1 to 100,000 (default 1,000)")),
    responses((status = 200, body = LineageResponse), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn lineage(
    state: Shared,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<StreamedJson<LineageResponse>> {
    let id: ArtifactVersionId = parse_id("artifact version", &id)?;
    let (upstream, downstream) = match query.get("direction").map(String::as_str) {
        None | Some("both") => (true, true),
        Some("upstream") => (true, false),
        Some("downstream") => (false, true),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`direction` is `upstream`, `downstream` or `both`, not `{other}`"
            )));
        }
    };
    let depth = match query.get("depth") {
        None => 3,
        Some(text) => text
            .parse::<u32>()
            .map_err(|_| {
                ApiError::bad_request(format!("`depth` must be a whole number, not `{text}`"))
            })?
            .clamp(1, 20),
    };
    let limit = match query.get("limit") {
        None => DEFAULT_LINEAGE_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit @ 1..=MAX_LINEAGE_LIMIT) => limit,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`limit` must be a whole number from 1 to {MAX_LINEAGE_LIMIT}, not `{text}`"
                )));
            }
        },
    };
    state.metadata.artifact_version(id).await?;
    let walk = |wanted: bool, direction: Direction| {
        let store = state.metadata.clone();
        async move {
            match wanted {
                true => store
                    .lineage(id, direction, depth, Some(limit))
                    .await
                    .map(Some),
                false => Ok(None),
            }
        }
    };
    Ok(StreamedJson(LineageResponse {
        upstream: walk(upstream, Direction::Upstream).await?,
        downstream: walk(downstream, Direction::Downstream).await?,
    }))
}

/// Tags to add or remove.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagsRequest {
    pub(crate) tags: Vec<String>,
}

/// The tags (of a version, or a run) after the change.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TagsResponse {
    pub(crate) tags: Vec<String>,
}

/// Checks the tags of a request: 1 to 100 of them, each with visible text and no control
/// characters.
pub(crate) fn check_tags(tags: &[String]) -> ApiResult<()> {
    if tags.is_empty() || tags.len() > 100 {
        return Err(ApiError::bad_request("give 1 to 100 tags"));
    }
    if let Some(bad) = tags
        .iter()
        .find(|tag| tag.trim().is_empty() || tag.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(format!(
            "{bad:?} is not a tag: a tag has visible text and no control characters"
        )));
    }
    let limit = weft_core::limits::NAME;
    if let Some(long) = tags.iter().find(|tag| tag.chars().count() > limit) {
        return Err(ApiError::bad_request(format!(
            "a tag has at most {limit} characters; `{}…` has {}",
            long.chars().take(40).collect::<String>(),
            long.chars().count()
        )));
    }
    Ok(())
}

/// Tags a version.
#[utoipa::path(post, path = "/api/v1/artifact-versions/{id}/tags", tag = "artifacts",
    params(("id" = String, Path, description = "an artifact version id")),
    request_body = TagsRequest,
    responses((status = 200, body = TagsResponse), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn add_tags(
    state: Shared,
    Path(id): Path<String>,
    body: Result<Json<TagsRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<TagsResponse>> {
    change_tags(state, &id, body, true).await
}

/// Removes tags from a version.
#[utoipa::path(delete, path = "/api/v1/artifact-versions/{id}/tags", tag = "artifacts",
    params(("id" = String, Path, description = "an artifact version id")),
    request_body = TagsRequest,
    responses((status = 200, body = TagsResponse), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn remove_tags(
    state: Shared,
    Path(id): Path<String>,
    body: Result<Json<TagsRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<TagsResponse>> {
    change_tags(state, &id, body, false).await
}

/// Adds or removes tags; answers with the version's tags after the change.
async fn change_tags(
    state: Shared,
    id: &str,
    body: Result<Json<TagsRequest>, axum::extract::rejection::JsonRejection>,
    add: bool,
) -> ApiResult<Json<TagsResponse>> {
    let id: ArtifactVersionId = parse_id("artifact version", id)?;
    let Json(request) = body.map_err(super::json_rejection)?;
    check_tags(&request.tags)?;
    if add {
        state
            .metadata
            .tag_artifact_version(id, &request.tags)
            .await?;
    } else {
        state
            .metadata
            .untag_artifact_version(id, &request.tags)
            .await?;
    }
    let tags = state.metadata.artifact_version(id).await?.tags;
    Ok(Json(TagsResponse { tags }))
}
