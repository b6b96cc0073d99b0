//! Runs: the list (paged by cursor, filtered), one run with its steps and edges, live status
//! events, and stopping a run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Serialize;
use weft_core::{RunId, Status, StepRunId};
use weft_store::model::{Run, RunFilter, RunOverview, StepRunSummary};

use super::{MAX_PAGE, Shared};
use crate::error::{ApiError, ApiResult};

/// How many runs a page has unless asked.
const DEFAULT_PAGE: u32 = 50;

/// One page of runs.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunPage {
    /// The runs, newest first (or oldest first with `order=oldest`).
    #[schema(value_type = Vec<Object>)]
    pub(crate) runs: Vec<RunItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// A run as lists show it.
#[derive(Serialize)]
pub(crate) struct RunItem {
    #[serde(flatten)]
    run: Run,
    /// From its creation to its end (or to now while it runs), in milliseconds.
    duration_ms: i64,
    /// The pipeline's parameters in this run.
    parameters: serde_json::Value,
}

impl RunItem {
    async fn of(state: &super::AppState, run: Run, now: DateTime<Utc>) -> Self {
        let end = run.ended_at.unwrap_or(now);
        let duration_ms = (end - run.created_at).num_milliseconds().max(0);
        let parameters = (*state.parameters(run.snapshot_id.as_ref()).await).clone();
        Self {
            run,
            duration_ms,
            parameters,
        }
    }
}

/// Runs, newest first, `limit` per page (at most 500), filtered.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs",
    params(
        ("pipeline" = Option<String>, Query, description = "only runs of this pipeline"),
        ("status" = Option<String>, Query, description = "only runs with this status: initializing, running, completed, failed, stopped, ..."),
        ("from" = Option<String>, Query, description = "only runs created at or after this time (RFC 3339)"),
        ("before" = Option<String>, Query, description = "only runs created before this time (RFC 3339)"),
        ("order" = Option<String>, Query, description = "`newest` (default) or `oldest` first"),
        ("limit" = Option<u32>, Query, description = "runs per page, 1 to 500 (default 50; larger is capped)"),
        ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page"),
    ),
    responses((status = 200, body = RunPage), (status = 400, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn list(
    state: Shared,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<RunPage>> {
    let filter = run_filter(&query)?;
    let limit = filter.limit.unwrap_or(DEFAULT_PAGE);
    let mut runs = state
        .metadata
        .runs(&RunFilter {
            limit: Some(limit + 1),
            ..filter
        })
        .await?;
    let next_cursor = if runs.len() > limit as usize {
        runs.truncate(limit as usize);
        runs.last().map(|run| run.id.to_string())
    } else {
        None
    };
    let now = Utc::now();
    let mut items = Vec::with_capacity(runs.len());
    for run in runs {
        items.push(RunItem::of(&state, run, now).await);
    }
    Ok(Json(RunPage {
        runs: items,
        next_cursor,
    }))
}

/// Reads the query of the runs list; anything malformed is a 400 that says what.
pub(crate) fn run_filter(query: &HashMap<String, String>) -> ApiResult<RunFilter> {
    let time = |name: &str| -> ApiResult<Option<DateTime<Utc>>> {
        query
            .get(name)
            .map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|time| time.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "`{name}` must be a time in RFC 3339 form (2026-12-01T09:30:00Z), not `{text}`"
                        ))
                    })
            })
            .transpose()
    };
    let status = query
        .get("status")
        .map(|text| {
            text.parse::<Status>().map_err(|_| {
                ApiError::bad_request(format!(
                    "`{text}` is not a status: use one of {}",
                    Status::ALL.map(Status::as_str).join(", ")
                ))
            })
        })
        .transpose()?;
    let limit = query
        .get("limit")
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("`limit` must be a whole number, not `{text}`"))
            })
        })
        .transpose()?
        .map(|limit| limit.clamp(1, u64::from(MAX_PAGE)) as u32);
    let oldest_first = match query.get("order").map(String::as_str) {
        None | Some("newest") => false,
        Some("oldest") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`order` is `newest` or `oldest`, not `{other}`"
            )));
        }
    };
    let after = query
        .get("cursor")
        .map(|text| {
            text.parse::<RunId>().map_err(|_| {
                ApiError::bad_request(format!("`{text}` is not a cursor of this list"))
            })
        })
        .transpose()?;
    Ok(RunFilter {
        pipeline: query.get("pipeline").cloned(),
        status,
        limit,
        created_from: time("from")?,
        created_before: time("before")?,
        after,
        oldest_first,
    })
}

/// One run with its step runs and how they connect.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunDetail {
    /// The run.
    #[schema(value_type = Object)]
    run: RunItem,
    /// Its step runs, in creation order; items of a map carry the map's `group`.
    #[schema(value_type = Vec<Object>)]
    steps: Vec<StepItem>,
    /// `[parent, child]` step run ids.
    #[schema(value_type = Vec<Vec<String>>)]
    edges: Vec<(StepRunId, StepRunId)>,
    /// What each step run read: `{step_run, name, position, artifact_version}`.
    #[schema(value_type = Vec<Object>)]
    inputs: Vec<weft_store::model::InputLink>,
    /// What each step run wrote: `{step_run, name, artifact_version, artifact, version}`.
    #[schema(value_type = Vec<Object>)]
    outputs: Vec<weft_store::model::OutputLink>,
}

#[derive(Serialize)]
struct StepItem {
    #[serde(flatten)]
    step: StepRunSummary,
    /// The map it is an item of (`group:index` invocation ids).
    group: Option<String>,
}

/// The map a step run is an item of: its invocation id is `<group>:<index>`.
pub(crate) fn group_of(invocation: &str) -> Option<String> {
    let (group, index) = invocation.rsplit_once(':')?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then(|| group.to_owned())
}

/// One run (by id, id prefix, name or `latest`) with its step runs and edges.
#[utoipa::path(get, path = "/api/v1/runs/{run}", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`")),
    responses((status = 200, body = RunDetail), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn one(
    state: Shared,
    Path(reference): Path<String>,
) -> ApiResult<Json<RunDetail>> {
    let run = state.metadata.find_run(&reference).await?;
    let RunOverview {
        step_runs,
        parents,
        inputs,
        outputs,
    } = state.metadata.run_overview(run.id).await?;
    Ok(Json(RunDetail {
        run: RunItem::of(&state, run, Utc::now()).await,
        steps: step_runs
            .into_iter()
            .map(|step| StepItem {
                group: group_of(&step.invocation),
                step,
            })
            .collect(),
        edges: parents,
        inputs,
        outputs,
    }))
}

/// Asks a run to stop (as `weft runs stop`): nothing new starts and it ends `stopped`.
#[utoipa::path(post, path = "/api/v1/runs/{run}/stop", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`")),
    responses((status = 200, description = "the run as recorded"), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn stop(state: Shared, Path(reference): Path<String>) -> ApiResult<Json<RunItem>> {
    let run = state.metadata.find_run(&reference).await?;
    let run = state.metadata.request_stop(run.id).await?;
    Ok(Json(RunItem::of(&state, run, Utc::now()).await))
}

/// How often the events of a run are looked for.
const EVENTS_POLL: Duration = Duration::from_millis(100);

/// A change of status of the run or one of its step runs.
#[derive(Serialize)]
struct StatusEvent {
    /// `run` or `step_run`.
    kind: &'static str,
    id: String,
    invocation: Option<String>,
    status: Status,
    status_reason: Option<String>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

/// Status changes of a run and its step runs, as server-sent events (`status`), from the
/// moment of the request; ends with an `end` event once the run finished.
#[utoipa::path(get, path = "/api/v1/runs/{run}/events", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`")),
    responses((status = 200, description = "text/event-stream of `status` events, then `end`")),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn events(
    state: Shared,
    Path(reference): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = state.metadata.find_run(&reference).await?;
    let state = state.0.clone();
    let stream = async_stream(state, run);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Polls the store and yields what changed since the last look. The first look only learns
/// the current state: a client reads that from `GET /runs/{run}`.
fn async_stream(
    state: std::sync::Arc<super::AppState>,
    run: Run,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Watch {
        state: std::sync::Arc<super::AppState>,
        run: Run,
        steps: HashMap<StepRunId, Status>,
        first: bool,
        ended: bool,
        pending: std::collections::VecDeque<Event>,
    }
    let watch = Watch {
        state,
        steps: HashMap::new(),
        first: true,
        ended: false,
        pending: Default::default(),
        run,
    };
    futures::stream::unfold(watch, |mut watch| async move {
        loop {
            if let Some(event) = watch.pending.pop_front() {
                return Some((Ok(event), watch));
            }
            if watch.ended {
                return None;
            }
            if !watch.first {
                tokio::time::sleep(EVENTS_POLL).await;
            }
            let Ok(run) = watch.state.metadata.run(watch.run.id).await else {
                continue;
            };
            let Ok(overview) = watch.state.metadata.run_overview(run.id).await else {
                continue;
            };
            for step in overview.step_runs {
                let known = watch.steps.insert(step.id, step.status);
                if !watch.first && known != Some(step.status) {
                    watch.pending.push_back(json_event(
                        "status",
                        &StatusEvent {
                            kind: "step_run",
                            id: step.id.to_string(),
                            invocation: Some(step.invocation.clone()),
                            status: step.status,
                            status_reason: step.status_reason.clone(),
                            started_at: step.started_at,
                            ended_at: step.ended_at,
                        },
                    ));
                }
            }
            if !watch.first && run.status != watch.run.status {
                watch.pending.push_back(json_event(
                    "status",
                    &StatusEvent {
                        kind: "run",
                        id: run.id.to_string(),
                        invocation: None,
                        status: run.status,
                        status_reason: run.status_reason.clone(),
                        started_at: run.started_at,
                        ended_at: run.ended_at,
                    },
                ));
            }
            if run.status.is_finished() {
                watch
                    .pending
                    .push_back(Event::default().event("end").data(run.status.as_str()));
                watch.ended = true;
            }
            watch.first = false;
            watch.run = run;
        }
    })
}

fn json_event(name: &str, value: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).expect("plain data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_items_name_their_group() {
        assert_eq!(group_of("train:12").as_deref(), Some("train"));
        assert_eq!(group_of("a:b:3").as_deref(), Some("a:b"));
        assert_eq!(group_of("train"), None);
        assert_eq!(group_of("train:"), None);
        assert_eq!(group_of("train:x1"), None);
    }
}
