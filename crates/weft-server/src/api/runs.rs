//! Runs: the list (paged by cursor, filtered), one run with its steps and edges, live status
//! events, and stopping a run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Serialize;
use weft_core::{RunId, Status, StepRunId};
use weft_store::model::{Run, RunFilter, RunOverview, StepRunSummary};

use super::artifacts::{TagsRequest, TagsResponse, check_tags};
use super::streamed::StreamedJson;
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
        ("tag" = Option<String>, Query, description = "only runs with this tag"),
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
    let status = status_of(query)?;
    let limit = limit_of(query, MAX_PAGE)?;
    let oldest_first = super::switch(query, "order", ["newest", "oldest"])?;
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
        tag: query.get("tag").filter(|tag| !tag.is_empty()).cloned(),
    })
}

/// The `status` a list is filtered by, if any.
fn status_of(query: &HashMap<String, String>) -> ApiResult<Option<Status>> {
    query
        .get("status")
        .map(|text| {
            text.parse::<Status>().map_err(|_| {
                ApiError::bad_request(format!(
                    "`{text}` is not a status: use one of {}",
                    Status::ALL.map(Status::as_str).join(", ")
                ))
            })
        })
        .transpose()
}

/// The `limit` of a page, if asked, brought within 1 to `max`.
fn limit_of(query: &HashMap<String, String>, max: u32) -> ApiResult<Option<u32>> {
    query
        .get("limit")
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("`limit` must be a whole number, not `{text}`"))
            })
        })
        .transpose()
        .map(|limit| limit.map(|limit| limit.clamp(1, u64::from(max)) as u32))
}

/// One run with its step runs and how they connect.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunDetail {
    /// The run.
    #[schema(value_type = Object)]
    run: RunItem,
    /// Its step runs, in creation order, and what links them.
    #[serde(flatten)]
    linked: LinkedSteps,
}

/// Step runs and what links them, as a run and a page of its steps give them.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LinkedSteps {
    /// The step runs; items of a map carry the map's `group`. With `steps=brief`, each has
    /// only `id`, `invocation`, `attempt`, `status`, `status_reason`, `started_at`,
    /// `ended_at` and `group`.
    #[schema(value_type = Vec<Object>)]
    steps: Steps,
    /// `[parent, child]` step run ids, for the children among the step runs.
    #[schema(value_type = Vec<Vec<String>>)]
    edges: Vec<(StepRunId, StepRunId)>,
    /// What each step run read: `{step_run, name, position, artifact_version}` (left out
    /// with `steps=brief`).
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    inputs: Option<Vec<weft_store::model::InputLink>>,
    /// What each step run wrote: `{step_run, name, artifact_version, artifact, version}` (left
    /// out with `steps=brief`).
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<Vec<weft_store::model::OutputLink>>,
}

impl LinkedSteps {
    fn new(overview: RunOverview, brief: bool) -> Self {
        Self {
            steps: Steps {
                list: overview.step_runs,
                brief,
            },
            edges: overview.parents,
            inputs: (!brief).then_some(overview.inputs),
            outputs: (!brief).then_some(overview.outputs),
        }
    }
}

/// A run's step runs, whole or brief, each with its group, made as it is written: a run of
/// 100,000 steps is not copied into a second list to add them.
struct Steps {
    list: Vec<StepRunSummary>,
    brief: bool,
}

#[derive(Serialize)]
struct StepItem<'a> {
    #[serde(flatten)]
    step: &'a StepRunSummary,
    /// The map it is an item of (`group:index` invocation ids).
    group: Option<&'a str>,
}

/// What a picture of the run needs of a step run.
#[derive(Serialize)]
struct BriefStep<'a> {
    id: StepRunId,
    invocation: &'a str,
    attempt: u32,
    status: Status,
    status_reason: Option<&'a str>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    group: Option<&'a str>,
}

impl Serialize for Steps {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.brief {
            return serializer.collect_seq(self.list.iter().map(|step| BriefStep {
                id: step.id,
                invocation: &step.invocation,
                attempt: step.attempt,
                status: step.status,
                status_reason: step.status_reason.as_deref(),
                started_at: step.started_at,
                ended_at: step.ended_at,
                group: group_of(&step.invocation),
            }));
        }
        serializer.collect_seq(self.list.iter().map(|step| StepItem {
            group: group_of(&step.invocation),
            step,
        }))
    }
}

/// The map a step run is an item of: its invocation id is `<group>:<index>`.
pub(crate) fn group_of(invocation: &str) -> Option<&str> {
    let (group, index) = invocation.rsplit_once(':')?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then_some(group)
}

/// One run (by id, id prefix, name or `latest`) with its step runs and edges; with
/// `steps=brief`, only what a picture of it needs (a run of 100,000 steps: 80 MB whole).
#[utoipa::path(get, path = "/api/v1/runs/{run}", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`"),
        ("steps" = Option<String>, Query, description = "`brief`: each step's status and times only, without inputs and outputs")),
    responses((status = 200, body = RunDetail), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn one(
    state: Shared,
    Path(reference): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<StreamedJson<RunDetail>> {
    let brief = super::switch(&query, "steps", ["whole", "brief"])?;
    let run = state.metadata.find_run(&reference).await?;
    let overview = state.metadata.run_overview(run.id, !brief).await?;
    Ok(StreamedJson(RunDetail {
        run: RunItem::of(&state, run, Utc::now()).await,
        linked: LinkedSteps::new(overview, brief),
    }))
}

/// How many step runs a page of `GET /runs/{run}/steps` has unless asked, and at most.
const DEFAULT_STEP_PAGE: u32 = 200;
const MAX_STEP_PAGE: u32 = 2000;

/// One page of a run's step runs.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StepPage {
    /// The step runs, in creation order (as in the whole run), and what links them.
    #[serde(flatten)]
    linked: LinkedSteps,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// A run's step runs a page at a time, optionally only those with one status (the failed
/// step runs of a run of 100,000): each page costs its own size, not the run's.
#[utoipa::path(get, path = "/api/v1/runs/{run}/steps", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`"),
        ("status" = Option<String>, Query, description = "only step runs with this status: running, completed, failed, cached, ..."),
        ("limit" = Option<u32>, Query, description = "step runs per page, 1 to 2000 (default 200; larger is capped)"),
        ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page"),
        ("steps" = Option<String>, Query, description = "`brief`: each step's status and times only, without inputs and outputs")),
    responses((status = 200, body = StepPage), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn steps(
    state: Shared,
    Path(reference): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<StreamedJson<StepPage>> {
    let brief = super::switch(&query, "steps", ["whole", "brief"])?;
    let status = status_of(&query)?;
    let limit = limit_of(&query, MAX_STEP_PAGE)?.unwrap_or(DEFAULT_STEP_PAGE);
    let cursor = query.get("cursor");
    let after = cursor
        .map(|text| {
            text.parse::<StepRunId>().map_err(|_| {
                ApiError::bad_request(format!("`{text}` is not a cursor of this list"))
            })
        })
        .transpose()?;
    let run = state.metadata.find_run(&reference).await?;
    let page = weft_store::model::StepRunPage {
        after,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
        status,
        links: !brief,
    };
    let mut overview = match state.metadata.step_run_page(run.id, &page).await {
        Err(weft_store::Error::NotFound { .. }) => {
            let text = cursor.map_or("", String::as_str);
            return Err(ApiError::bad_request(format!(
                "`{text}` is not a cursor of this list: it is no step run of run {}",
                run.id
            )));
        }
        read => read?,
    };
    let next_cursor = if overview.step_runs.len() > limit as usize {
        let extra = overview.step_runs.pop().map(|step| step.id);
        overview.parents.retain(|&(_, child)| Some(child) != extra);
        overview.inputs.retain(|link| Some(link.step_run) != extra);
        overview.outputs.retain(|link| Some(link.step_run) != extra);
        overview.step_runs.last().map(|step| step.id.to_string())
    } else {
        None
    };
    Ok(StreamedJson(StepPage {
        linked: LinkedSteps::new(overview, brief),
        next_cursor,
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

/// Tags a run.
#[utoipa::path(post, path = "/api/v1/runs/{run}/tags", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`")),
    request_body = TagsRequest,
    responses((status = 200, body = TagsResponse), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn add_tags(
    state: Shared,
    Path(reference): Path<String>,
    body: Result<Json<TagsRequest>, JsonRejection>,
) -> ApiResult<Json<TagsResponse>> {
    change_tags(state, &reference, body, true).await
}

/// Removes tags from a run.
#[utoipa::path(delete, path = "/api/v1/runs/{run}/tags", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`")),
    request_body = TagsRequest,
    responses((status = 200, body = TagsResponse), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn remove_tags(
    state: Shared,
    Path(reference): Path<String>,
    body: Result<Json<TagsRequest>, JsonRejection>,
) -> ApiResult<Json<TagsResponse>> {
    change_tags(state, &reference, body, false).await
}

async fn change_tags(
    state: Shared,
    reference: &str,
    body: Result<Json<TagsRequest>, JsonRejection>,
    add: bool,
) -> ApiResult<Json<TagsResponse>> {
    let Json(request) = body.map_err(super::json_rejection)?;
    check_tags(&request.tags)?;
    let run = state.metadata.find_run(reference).await?;
    let run = if add {
        state.metadata.tag_run(run.id, &request.tags).await?
    } else {
        state.metadata.untag_run(run.id, &request.tags).await?
    };
    Ok(Json(TagsResponse { tags: run.tags }))
}

/// How far before the newest recorded time a watcher looks again: the clocks of the
/// processes that write one run (an orchestrator, its step hosts) may differ this much.
const CLOCK_OVERLAP: chrono::Duration = chrono::Duration::seconds(5);

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
/// moment of the request; ends with an `end` event once the run finished. A client that
/// falls behind gets a `reload` event (read the run again). Every client of a run shares one
/// watcher, which polls the store every 100 ms while anyone listens.
#[utoipa::path(get, path = "/api/v1/runs/{run}/events", tag = "runs",
    params(("run" = String, Path, description = "a run id, id prefix, name, or `latest`")),
    responses((status = 200, description = "text/event-stream of `status` events, then `end`")),
    security(("key" = []), ("session" = [])))]
pub(crate) async fn events(
    state: Shared,
    Path(reference): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = state.metadata.find_run(&reference).await?;
    let changes = if run.status.is_finished() {
        None
    } else {
        Some(watch(&state.0, run.clone()))
    };
    let stream =
        futures::stream::unfold((changes, Some(run.status)), |(changes, ended)| async move {
            let Some(mut changes) = changes else {
                // Finished: say so once, then end the stream.
                let status = ended?;
                let end = Event::default().event("end").data(status.as_str());
                return Some((Ok(end), (None, None)));
            };
            match changes.recv().await {
                Ok(Change::Status(event)) => Some((Ok(event), (Some(changes), ended))),
                Ok(Change::End(status)) => {
                    let end = Event::default().event("end").data(status.as_str());
                    Some((Ok(end), (None, None)))
                }
                // A client too slow for the changes misses some: it is told to reload.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let reload = Event::default().event("reload").data("");
                    Some((Ok(reload), (Some(changes), ended)))
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// What the watcher of a run tells its clients.
#[derive(Clone)]
pub(crate) enum Change {
    /// A `status` event, ready to send.
    Status(Event),
    /// The run finished with this status.
    End(Status),
}

/// The changes of a running run, from one watcher per run however many clients follow it:
/// the store is polled once per interval for a run, not once per client.
fn watch(state: &Arc<super::AppState>, run: Run) -> tokio::sync::broadcast::Receiver<Change> {
    let mut watchers = state.watchers.lock().expect("not poisoned");
    if let Some(sender) = watchers.get(&run.id) {
        return sender.subscribe();
    }
    let (sender, receiver) = tokio::sync::broadcast::channel(1024);
    watchers.insert(run.id, sender.clone());
    tokio::spawn(poll_run(state.clone(), run, sender));
    receiver
}

/// Polls the store for a run's status changes while anyone listens. The first look only
/// learns the current state: a client reads that from `GET /runs/{run}`.
async fn poll_run(
    state: Arc<super::AppState>,
    mut run: Run,
    sender: tokio::sync::broadcast::Sender<Change>,
) {
    let mut steps: HashMap<StepRunId, Status> = HashMap::new();
    // Only step runs that changed since (a little before) the newest time seen are read
    // again: a poll of a large run reads what moves, not the whole run.
    let mut since: Option<DateTime<Utc>> = None;
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(EVENTS_POLL).await;
        }
        {
            // Nobody listens any more: stop (under the lock, so no one subscribes meanwhile).
            let mut watchers = state.watchers.lock().expect("not poisoned");
            if sender.receiver_count() == 0 {
                watchers.remove(&run.id);
                return;
            }
        }
        let (Ok(now), Ok(changed)) = (
            state.metadata.run(run.id).await,
            state.metadata.step_run_summaries(run.id, since).await,
        ) else {
            first = false;
            continue;
        };
        let newest = changed
            .iter()
            .flat_map(|step| [step.started_at, step.ended_at])
            .flatten()
            .max();
        if let Some(newest) = newest {
            let overlap = newest - CLOCK_OVERLAP;
            since = Some(since.map_or(overlap, |since| since.max(overlap)));
        }
        for step in changed {
            let known = steps.insert(step.id, step.status);
            if !first && known != Some(step.status) {
                let _ = sender.send(Change::Status(json_event(
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
                )));
            }
        }
        if !first && now.status != run.status {
            let _ = sender.send(Change::Status(json_event(
                "status",
                &StatusEvent {
                    kind: "run",
                    id: now.id.to_string(),
                    invocation: None,
                    status: now.status,
                    status_reason: now.status_reason.clone(),
                    started_at: now.started_at,
                    ended_at: now.ended_at,
                },
            )));
        }
        first = false;
        run = now;
        if run.status.is_finished() {
            let _ = sender.send(Change::End(run.status));
            state.watchers.lock().expect("not poisoned").remove(&run.id);
            return;
        }
    }
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
        assert_eq!(group_of("train:12"), Some("train"));
        assert_eq!(group_of("a:b:3"), Some("a:b"));
        assert_eq!(group_of("train"), None);
        assert_eq!(group_of("train:"), None);
        assert_eq!(group_of("train:x1"), None);
    }
}
