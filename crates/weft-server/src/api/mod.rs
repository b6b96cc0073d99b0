//! The REST API, `/api/v1/...`: read runs, step runs, logs, artifacts and lineage; stop runs,
//! tag versions, expire cache entries. Every route but `/health` and signing in needs a key
//! (or a session); actions need the editor role.

pub(crate) mod artifacts;
pub(crate) mod runs;
pub(crate) mod session;
pub(crate) use session::set_cookie;
pub(crate) mod steps;
pub(crate) mod streamed;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use serde::Serialize;
use weft_artifacts::ArtifactStore;
use weft_core::SnapshotId;
use weft_store::MetadataStore;

use crate::auth::{self, Auth};
use crate::error::{ApiError, ApiResult};

/// What every handler reads: the stores and the authenticator.
pub(crate) struct AppState {
    pub(crate) metadata: Arc<dyn MetadataStore>,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) auth: Arc<Auth>,
    /// The parameters of snapshots read so far: a snapshot never changes, and a list of runs
    /// would otherwise decode a whole plan per run.
    pub(crate) parameters: std::sync::Mutex<HashMap<SnapshotId, Arc<serde_json::Value>>>,
    /// The one watcher of each run some client follows (`GET /runs/{run}/events`).
    pub(crate) watchers:
        std::sync::Mutex<HashMap<weft_core::RunId, tokio::sync::broadcast::Sender<runs::Change>>>,
}

/// How many snapshots' parameters are kept.
const PARAMETERS_KEPT: usize = 4096;

impl AppState {
    /// The parameters a run was started with (from its snapshot; empty if it has none).
    pub(crate) async fn parameters(&self, snapshot: Option<&SnapshotId>) -> Arc<serde_json::Value> {
        let Some(id) = snapshot else {
            return Arc::new(serde_json::Value::Object(Default::default()));
        };
        if let Some(found) = self.parameters.lock().expect("not poisoned").get(id) {
            return found.clone();
        }
        let parameters = match self.metadata.snapshot(id).await {
            Ok(snapshot) => serde_json::to_value(&snapshot.parameters).unwrap_or_default(),
            Err(_) => serde_json::Value::Object(Default::default()),
        };
        let parameters = Arc::new(parameters);
        let mut kept = self.parameters.lock().expect("not poisoned");
        if kept.len() >= PARAMETERS_KEPT {
            kept.clear();
        }
        kept.insert(id.clone(), parameters.clone());
        parameters
    }
}

pub(crate) type Shared = State<Arc<AppState>>;

/// Request bodies are small JSON documents: anything larger is refused (413).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// Page sizes are capped here; a larger one is served at this size.
pub(crate) const MAX_PAGE: u32 = 500;

/// The routes of `/api/v1`.
pub(crate) fn routes(state: Arc<AppState>) -> Router {
    let editor = Router::new()
        .route("/runs/{run}/stop", post(runs::stop))
        .route(
            "/runs/{run}/tags",
            post(runs::add_tags).delete(runs::remove_tags),
        )
        .route(
            "/artifact-versions/{id}/tags",
            post(artifacts::add_tags).delete(artifacts::remove_tags),
        )
        .route("/cache/expire", post(steps::expire_cache))
        .route_layer(middleware::from_fn(auth::require_editor));
    let viewer = Router::new()
        .route("/runs", get(runs::list))
        .route("/runs/{run}", get(runs::one))
        .route("/runs/{run}/steps", get(runs::steps))
        .route("/runs/{run}/events", get(runs::events))
        .route("/step-runs/{id}", get(steps::one))
        .route("/step-runs/{id}/logs", get(steps::logs))
        .route("/step-runs/{id}/logs/tail", get(steps::tail))
        .route("/artifacts", get(artifacts::list))
        .route("/artifacts/{name}/versions", get(artifacts::versions))
        .route("/artifact-versions/{id}", get(artifacts::one))
        .route("/artifact-versions/{id}/files/{name}", get(artifacts::file))
        .route("/artifact-versions/{id}/lineage", get(artifacts::lineage))
        .merge(editor)
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(crate::openapi::document))
        .route(
            "/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .merge(viewer)
        .fallback(unknown_route)
        .layer(middleware::from_fn(refuse_announced_large_bodies))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Whether the server is up and its metadata store answers.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `unavailable` when the metadata store does not answer.
    status: &'static str,
    /// The server's version.
    version: &'static str,
}

/// Whether the server and its metadata store are up (no key needed).
#[utoipa::path(get, path = "/api/v1/health", tag = "server",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(crate) async fn health(State(state): Shared) -> (StatusCode, axum::Json<Health>) {
    let answers = state
        .metadata
        .runs(&weft_store::model::RunFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .is_ok();
    let version = env!("CARGO_PKG_VERSION");
    if answers {
        (
            StatusCode::OK,
            axum::Json(Health {
                status: "ok",
                version,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health {
                status: "unavailable",
                version,
            }),
        )
    }
}

/// Refuses a body announced larger than the limit before reading any of it (a body sent
/// without a length is cut off at the limit by the extractors).
async fn refuse_announced_large_bodies(
    request: axum::extract::Request,
    next: middleware::Next,
) -> Result<axum::response::Response, ApiError> {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    Ok(next.run(request).await)
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is larger than {BODY_LIMIT} bytes"),
    )
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such API route; see /api/v1/openapi.json")
}

/// Parses an id of the path (a UUID), or says it is malformed (400).
pub(crate) fn parse_id<T: std::str::FromStr>(kind: &str, text: &str) -> ApiResult<T> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("`{text}` is not the id of a {kind} (a UUID)")))
}

/// A query parameter that is one of two words: false for `off` (or when absent), true for
/// `on`, anything else refused (400) with both named.
pub(crate) fn switch(
    query: &HashMap<String, String>,
    name: &str,
    [off, on]: [&str; 2],
) -> ApiResult<bool> {
    match query.get(name).map(String::as_str) {
        None => Ok(false),
        Some(word) if word == off => Ok(false),
        Some(word) if word == on => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "`{name}` is `{off}` or `{on}`, not `{other}`"
        ))),
    }
}

/// Runs blocking work (the artifact store's reads) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work).await?
}

/// A JSON body that cannot be read: 413 if too large, else 400, always with a JSON error.
pub(crate) fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large();
    }
    ApiError::bad_request(format!(
        "the request body is not what this route takes: {}",
        rejection.body_text()
    ))
}
