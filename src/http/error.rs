//! The one error type of the API and its mapping to HTTP, in one place.
//! Internal causes are logged with their chain and never sent to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::event::FieldError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Validation {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key is known but lacks this role.
    #[error("API key lacks the {0} role")]
    Forbidden(&'static str),
    #[error("rate limit exceeded")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("duplicate event")]
    Duplicate { id: String },
    /// The request cannot run now because of something in progress (409).
    #[error("{0}")]
    Conflict(String),
    /// A dependency other than the store cannot serve the request now (503, Retry-After).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The error body every endpoint uses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Only on 409: the id of the event already stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::fields(vec![FieldError::new(field, message)])
    }

    pub fn fields(errors: Vec<FieldError>) -> ApiError {
        let message = match errors.as_slice() {
            [one] => format!("{} {}", one.field, one.message),
            _ => "Request has invalid fields".to_string(),
        };
        ApiError::Validation { message, errors }
    }
}

impl ApiError {
    /// The human-readable message of a validation error (used inside batch results).
    pub fn to_message(&self) -> String {
        match self {
            ApiError::Validation { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Seconds a client should wait before retrying when the store is unavailable.
const RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, errors, id) = match self {
            ApiError::Validation { message, errors } => {
                (StatusCode::BAD_REQUEST, message, Some(errors), None)
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m, None, None),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json".into(),
                None,
                None,
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is too large".into(),
                None,
                None,
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "Not Found".into(), None, None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed".into(),
                None,
                None,
            ),
            ApiError::Unauthorized(m) => {
                let body = ErrorBody {
                    message: m.to_string(),
                    errors: None,
                    id: None,
                };
                let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return resp;
            }
            e @ ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, e.to_string(), None, None),
            ApiError::TooManyRequests { retry_after_secs } => {
                let body = ErrorBody {
                    message: "Rate limit exceeded, retry later".into(),
                    errors: None,
                    id: None,
                };
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return resp;
            }
            ApiError::Duplicate { id } => (
                StatusCode::CONFLICT,
                "User event already exists".into(),
                None,
                Some(id),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m, None, None),
            ApiError::Unavailable(message) => return unavailable(message),
            ApiError::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(error = format!("{cause:#}"), "store unavailable");
                return unavailable("Service temporarily unavailable, retry later".into());
            }
            // A limit of the deployment (e.g. no transactions), not of the request.
            ApiError::Store(StoreError::Unsupported(message)) => {
                (StatusCode::NOT_IMPLEMENTED, message, None, None)
            }
            ApiError::Store(StoreError::Internal(cause)) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error".into(),
                    None,
                    None,
                )
            }
        };
        (
            status,
            axum::Json(ErrorBody {
                message,
                errors,
                id,
            }),
        )
            .into_response()
    }
}

/// 503 with `Retry-After`: the client should come back, the request was fine.
fn unavailable(message: String) -> Response {
    let body = ErrorBody {
        message,
        errors: None,
        id: None,
    };
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    resp
}
