//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(title = "weft server API", description = "Runs, step runs, logs, artifacts and lineage recorded by weft pipelines."),
    paths(
        api::health,
        api::runs::list, api::runs::one, api::runs::steps, api::runs::events, api::runs::stop,
        api::runs::add_tags, api::runs::remove_tags,
        api::steps::one, api::steps::logs, api::steps::tail, api::steps::expire_cache,
        api::artifacts::list, api::artifacts::versions, api::artifacts::one, api::artifacts::file,
        api::artifacts::lineage, api::artifacts::add_tags, api::artifacts::remove_tags,
        api::session::sign_in, api::session::current, api::session::sign_out,
    ),
    modifiers(&Security),
    tags(
        (name = "runs", description = "Pipeline runs"),
        (name = "steps", description = "Step runs, their logs, and the cache"),
        (name = "artifacts", description = "Artifacts, versions, files and lineage"),
        (name = "session", description = "Signing in from a browser"),
        (name = "server", description = "The server itself"),
    )
)]
pub(crate) struct Document;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API key: `weft server keys create --role viewer|editor`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The OpenAPI document of this API.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(Document::openapi())
}
