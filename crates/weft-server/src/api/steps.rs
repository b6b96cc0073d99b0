//! Step runs: everything recorded about one, its log (paged, filtered, searched), and cache
//! expiry.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query};
use serde::{Deserialize, Serialize};
use weft_core::StepRunId;
use weft_store::model::{
    CacheExpiry, LogRef, MetadataEntry, MetadataSource, Resource, StepInput, StepOutput, StepRun,
};

use super::{MAX_PAGE, Shared, blocking, parse_id};
use crate::error::{ApiError, ApiResult};
use crate::logs::{self, LogPage, LogQuery};

/// One step run with its inputs, outputs, attempts, metadata and log.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StepRunDetail {
    /// The step run: configuration, parameters, cache key and its parts, error and chain.
    #[schema(value_type = Object)]
    step_run: StepRun,
    /// The map it is an item of, if any.
    group: Option<String>,
    /// Every attempt of its invocation in its run, oldest first (this one included).
    #[schema(value_type = Vec<Object>)]
    attempts: Vec<StepRun>,
    /// The versions it read.
    #[schema(value_type = Vec<Object>)]
    inputs: Vec<StepInput>,
    /// The versions it wrote or reused.
    #[schema(value_type = Vec<Object>)]
    outputs: Vec<StepOutput>,
    /// Its metadata (logged by the step, or recorded by weft: host, process, Slurm job).
    #[schema(value_type = Vec<Object>)]
    metadata: Vec<MetadataEntry>,
    /// Where it ran: inline in the orchestrator (its host and process), or the host of an
    /// isolated step (a process, a Slurm job).
    runs_on: String,
    /// Why it was, or was not, taken from the cache.
    cache: String,
    /// Whether a log is stored (or, while it runs, being written).
    has_log: bool,
}

/// One step run by id.
#[utoipa::path(get, path = "/api/v1/step-runs/{id}", tag = "steps",
    params(("id" = String, Path, description = "a step run id")),
    responses((status = 200, body = StepRunDetail), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn one(state: Shared, Path(id): Path<String>) -> ApiResult<Json<StepRunDetail>> {
    let id: StepRunId = parse_id("step run", &id)?;
    let store = &state.metadata;
    let step_run = store.step_run(id).await?;
    let attempts = store
        .attempts(step_run.run_id, &step_run.invocation)
        .await?;
    let inputs = store.step_run_inputs(id).await?;
    let outputs = store.step_run_outputs(id).await?;
    let metadata = store.metadata(Resource::StepRun(id)).await?;
    let has_log = store.log(id).await?.is_some() || !step_run.status.is_finished();
    let run_facts = store.metadata(Resource::Run(step_run.run_id)).await?;
    let runs_on = runs_on(&metadata, &run_facts);
    Ok(Json(StepRunDetail {
        runs_on,
        group: super::runs::group_of(&step_run.invocation).map(str::to_owned),
        cache: cache_explanation(&step_run),
        step_run,
        attempts,
        inputs,
        outputs,
        metadata,
        has_log,
    }))
}

/// Says where a step run ran, from weft's facts about it and about its run.
fn runs_on(step_facts: &[MetadataEntry], run_facts: &[MetadataEntry]) -> String {
    let fact = |facts: &[MetadataEntry], key: &str| {
        facts
            .iter()
            .find(|entry| entry.key == key && entry.source == MetadataSource::System)
            .map(|entry| match &entry.value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
    };
    let orchestrator = match (fact(run_facts, "host"), fact(run_facts, "pid")) {
        (Some(host), Some(pid)) => format!("on {host} (process {pid})"),
        (Some(host), None) => format!("on {host}"),
        _ => String::new(),
    };
    match (
        fact(step_facts, "weft.operator"),
        fact(step_facts, "weft.host"),
    ) {
        (_, Some(host)) => format!("isolated: {host}, started by the orchestrator {orchestrator}"),
        (Some(operator), None) => format!("isolated ({operator}), never started"),
        (None, None) => format!("inline, in the orchestrator {orchestrator}"),
    }
    .trim_end()
    .to_owned()
}

/// Says in a sentence why a step run was or was not cached.
fn cache_explanation(step_run: &StepRun) -> String {
    match (&step_run.cache_key, step_run.original_step_run) {
        (_, Some(original)) if step_run.status == weft_core::Status::Cached => format!(
            "taken from the cache: it reuses the outputs of step run {original}, whose cache key is the same"
        ),
        (_, Some(original)) => format!("reused from step run {original} of the run it resumes"),
        (Some(key), None) => format!(
            "computed: no earlier step run with cache key {key} was usable (none recorded, expired, or its outputs failed their check)"
        ),
        (None, None) => "computed: caching was off for this step run".into(),
    }
}

/// The query of a log page (read by [`log_query`]; declared for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[allow(dead_code)]
pub(crate) struct LogParams {
    /// The first line (0-based; default 0).
    offset: Option<String>,
    /// Lines per page, 1 to 500 (default 200; larger is capped).
    limit: Option<String>,
    /// Only lines at this level or more severe: error, warn, info, debug, trace.
    level: Option<String>,
    /// Only lines containing this text (any case).
    q: Option<String>,
}

/// A page of a step run's log.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LogResponse {
    /// The lines: `{line, time, level, target, message, fields}`.
    #[schema(value_type = Vec<Object>)]
    lines: Vec<logs::LogLine>,
    /// Pass as `offset` for the next page; absent at the end of what is written so far.
    next_offset: Option<u64>,
    /// Whether the step is still running (its log may grow).
    live: bool,
}

/// A page of a step run's log: from a line, filtered by level and text. A running step's
/// log is read from its live copy (local artifact stores).
#[utoipa::path(get, path = "/api/v1/step-runs/{id}/logs", tag = "steps",
    params(("id" = String, Path, description = "a step run id"), LogParams),
    responses((status = 200, body = LogResponse), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn logs(
    state: Shared,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<LogResponse>> {
    let id: StepRunId = parse_id("step run", &id)?;
    let query = log_query(&params)?;
    let step_run = state.metadata.step_run(id).await?;
    let stored = state.metadata.log(id).await?;
    let live = stored.is_none() && !step_run.status.is_finished();
    let artifacts = state.artifacts.clone();
    let page = blocking(move || read_page(&artifacts, &step_run, stored, &query)).await?;
    Ok(Json(LogResponse {
        lines: page.lines,
        next_offset: page.next_offset,
        live,
    }))
}

pub(crate) fn log_query(params: &HashMap<String, String>) -> ApiResult<LogQuery> {
    let number = |name: &str| -> ApiResult<Option<u64>> {
        params
            .get(name)
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("`{name}` must be a whole number, not `{text}`"))
                })
            })
            .transpose()
    };
    let level = params
        .get("level")
        .map(|name| {
            logs::level_rank(name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{name}` is not a level: use error, warn, info, debug or trace"
                ))
            })
        })
        .transpose()?;
    Ok(LogQuery {
        offset: number("offset")?.unwrap_or(0),
        limit: number("limit")?
            .unwrap_or(200)
            .clamp(1, u64::from(MAX_PAGE)) as usize,
        level,
        text: params.get("q").filter(|q| !q.is_empty()).cloned(),
    })
}

/// Reads a page of the stored log, or of the live copy of a running step's log.
fn read_page(
    artifacts: &weft_artifacts::ArtifactStore,
    step_run: &StepRun,
    stored: Option<LogRef>,
    query: &LogQuery,
) -> ApiResult<LogPage> {
    let path = match &stored {
        Some(log) => log.uri.clone(),
        None => weft_engine::logs::live_path(step_run.run_id, step_run.id),
    };
    let empty = LogPage {
        lines: Vec::new(),
        next_offset: None,
    };
    let read_error = |error: std::io::Error| {
        ApiError::unavailable(format!("cannot read the log {path}: {error}"))
    };
    // Read as a stream, locally or in ranges from object storage: memory does not grow with
    // the log. A running step's live copy exists on local stores only.
    match artifacts.open_object(&path)? {
        Some(log) => logs::page(log, query).map_err(read_error),
        // A step that logged nothing has no log (live or stored).
        None if stored.is_none() => Ok(empty),
        None => Err(ApiError::not_found(format!(
            "the log of step run {} is recorded at {path} but is missing",
            step_run.id
        ))),
    }
}

/// Which cache entries to expire.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpireRequest {
    /// Every step run of this step (`module::path::name`, or a name it ends with).
    step: Option<String>,
    /// These step runs.
    step_runs: Option<Vec<String>>,
    /// Every cache entry.
    #[serde(default)]
    all: bool,
}

/// How many entries were expired.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Expired {
    expired: u64,
}

/// Expires cache entries: of one step, of some step runs, or all of them.
#[utoipa::path(post, path = "/api/v1/cache/expire", tag = "steps",
    request_body = ExpireRequest,
    responses((status = 200, body = Expired), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn expire_cache(
    state: Shared,
    body: Result<Json<ExpireRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Expired>> {
    let Json(request) = body.map_err(super::json_rejection)?;
    let which = match (request.step, request.step_runs, request.all) {
        (Some(step), None, false) if !step.is_empty() => CacheExpiry::Step(step),
        (None, Some(ids), false) if !ids.is_empty() => CacheExpiry::StepRuns(
            ids.iter()
                .map(|id| parse_id("step run", id))
                .collect::<ApiResult<_>>()?,
        ),
        (None, None, true) => CacheExpiry::All,
        _ => {
            return Err(ApiError::bad_request(
                "say exactly one of: `step` (a name), `step_runs` (ids), or `all: true`",
            ));
        }
    };
    let expired = state.metadata.expire_cache(which).await?;
    Ok(Json(Expired { expired }))
}

/// How often a followed log is looked at for new lines.
const TAIL_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The lines of a step run's log from `offset` on, as server-sent events (`lines`: a JSON
/// array of lines), followed while the step runs; an `end` event says the step finished and
/// everything was sent. Filters as for pages.
#[utoipa::path(get, path = "/api/v1/step-runs/{id}/logs/tail", tag = "steps",
    params(("id" = String, Path, description = "a step run id"), LogParams),
    responses((status = 200, description = "text/event-stream of `lines` events, then `end`"), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn tail(
    state: Shared,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let id: StepRunId = parse_id("step run", &id)?;
    let query = log_query(&params)?;
    state.metadata.step_run(id).await?;
    let state = state.0.clone();
    let stream = futures::stream::unfold(Some(query), move |query| {
        let state = state.clone();
        async move {
            let mut query = query?;
            loop {
                // Whether it had finished before this read: then the read saw the whole log.
                let step_run = state.metadata.step_run(id).await.ok()?;
                let finished = step_run.status.is_finished();
                let stored = state.metadata.log(id).await.ok()?;
                let artifacts = state.artifacts.clone();
                let reading = query.clone();
                let page = blocking(move || read_page(&artifacts, &step_run, stored, &reading))
                    .await
                    .ok()?;
                if let Some(last) = page.lines.last() {
                    query.offset = page.next_offset.unwrap_or(last.line + 1);
                    let data = serde_json::to_string(&page.lines).expect("plain data");
                    return Some((Ok(Event::default().event("lines").data(data)), Some(query)));
                }
                if let Some(next) = page.next_offset {
                    query.offset = next;
                    continue;
                }
                if finished {
                    return Some((Ok(Event::default().event("end").data("")), None));
                }
                tokio::time::sleep(TAIL_POLL).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
