//! The dashboard: a page and its script and style, built into the binary (see
//! ARCHITECTURE.md for why plain modules and no build step). Every path outside `/api`
//! serves the page, which routes on its own path, so deep links survive a reload.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::AppState;
use crate::auth;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// The page may load only its own script and style, talk only to its own server, and show
/// visualizations only in sandboxed frames of its own origin; nothing may frame it.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

pub(crate) fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/assets/app.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/app.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
        .route("/signin", get(one_time_sign_in))
        .fallback(get(page))
        .with_state(state)
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn page() -> Response {
    let mut response = axum::response::Html(INDEX).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The one-time link of `weft ui`: opens an editor session and goes to the runs list. A
/// token used twice, or too late, leads to the sign-in form.
async fn one_time_sign_in(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let valid = query
        .get("token")
        .is_some_and(|token| state.auth.redeem_one_time(token));
    if !valid {
        return Redirect::to("/?signin=expired").into_response();
    }
    let (token, _) = state
        .auth
        .open_session(weft_store::model::Role::Editor, None);
    let mut response = Redirect::to("/").into_response();
    crate::api::set_cookie(
        &mut response,
        &auth::session_set_cookie(&token, state.auth.secure_cookies),
    );
    response
}
