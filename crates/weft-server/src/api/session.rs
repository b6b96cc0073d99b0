//! Browser sessions: sign in with a key, read the current session, sign out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Shared;
use crate::auth;
use crate::error::ApiResult;

/// Signing in: the API key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    key: String,
}

/// The signed-in session.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionInfo {
    /// `viewer` or `editor`.
    #[schema(value_type = String)]
    role: weft_store::model::Role,
    /// The key's id (absent after a one-time sign-in).
    key: Option<String>,
    /// Send it as `X-Weft-Csrf` with every request that changes something.
    csrf: Option<String>,
}

/// Signs in with an API key: sets the session cookie (HttpOnly, SameSite=Strict).
#[utoipa::path(post, path = "/api/v1/session", tag = "session",
    request_body = SignIn,
    responses((status = 200, body = SessionInfo), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn sign_in(
    State(state): Shared,
    body: Result<Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = body.map_err(super::json_rejection)?;
    let record = state.auth.check_key(request.key.trim()).await?;
    let (token, csrf) = state
        .auth
        .open_session(record.role, Some(record.id.clone()));
    let mut response = Json(SessionInfo {
        role: record.role,
        key: Some(record.id),
        csrf: Some(csrf),
    })
    .into_response();
    set_cookie(
        &mut response,
        &auth::session_set_cookie(&token, state.auth.secure_cookies),
    );
    Ok(response)
}

/// The current session (or key), with its anti-forgery token.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = SessionInfo), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn current(
    State(state): Shared,
    headers: HeaderMap,
) -> ApiResult<Json<SessionInfo>> {
    let principal = state.auth.principal(&headers).await?;
    Ok(Json(SessionInfo {
        role: principal.role,
        key: principal.key,
        csrf: principal.csrf,
    }))
}

/// Signs out: ends the session and clears its cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "signed out")))]
pub(crate) async fn sign_out(State(state): Shared, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = auth::session_cookie(&headers) {
        // Only the page that holds the session's token may end it.
        let principal = state.auth.principal(&headers).await?;
        auth::check_csrf(&principal, &headers)?;
        state.auth.close_session(token);
    }
    let mut response = axum::http::StatusCode::NO_CONTENT.into_response();
    set_cookie(
        &mut response,
        &auth::cleared_cookie(state.auth.secure_cookies),
    );
    Ok(response)
}

pub(crate) fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}
