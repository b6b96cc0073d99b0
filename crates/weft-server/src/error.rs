//! Errors of the API: a status and a JSON body that says what was wrong.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a request: `{"error": {"status", "code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// The HTTP status.
    status: u16,
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `too_large`, `unavailable`, `internal`.
    code: &'static str,
    /// What a person should read.
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(target: "weft::server", "{self}");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<weft_store::Error> for ApiError {
    fn from(error: weft_store::Error) -> Self {
        use weft_store::Error as E;
        let message = error.to_string();
        match error {
            E::NotFound { .. } => Self::not_found(message),
            E::Ambiguous { .. } | E::InvalidUrl { .. } => Self::bad_request(message),
            E::Conflict(_) | E::Transition { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            E::Corrupt { .. } => Self::internal(message),
            // The database is unreachable, locked, full or failing: try again later.
            _ => Self::unavailable(message),
        }
    }
}

impl From<weft_artifacts::Error> for ApiError {
    fn from(error: weft_artifacts::Error) -> Self {
        use weft_artifacts::Error as E;
        let message = error.to_string();
        match error {
            E::Missing { .. } | E::UnknownFile { .. } => Self::not_found(message),
            E::BadFileName { .. } => Self::bad_request(message),
            E::Corrupt { .. } | E::TypeMismatch { .. } | E::NewerFormat { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            _ => Self::unavailable(format!("artifact store: {message}")),
        }
    }
}

/// A task the API waited for did not finish (it panicked).
impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::internal(format!("the request's work failed: {error}"))
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
