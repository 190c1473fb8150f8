//! The one error type of the API and its mapping to HTTP, in one place.
//! Internal causes are logged with their chain and never sent to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::access::Refusal;
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
    #[error("{message}")]
    Unavailable {
        message: String,
        cause: anyhow::Error,
    },
    /// A spend or hold id already used (409): `id` is the stored entry.
    #[error("{message}")]
    Exists { message: &'static str, id: String },
    /// More than the user can spend (422).
    #[error("Insufficient points")]
    Insufficient { available: i64 },
    /// A hold that is no longer open (409), with its state.
    #[error("the hold is {0}")]
    HoldNotOpen(&'static str),
    /// A resource the configuration does not enable (404 saying so).
    #[error("{0}")]
    NotConfigured(&'static str),
    /// Something named in the path that does not exist (404 saying what).
    #[error("{0}")]
    NotFoundMessage(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The error body every endpoint uses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Only on 409: the id of the event, spend or hold already stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Only on 422 (a spend or hold over the balance): what the user can spend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// Only on 409 for a hold that is no longer open: `captured`, `voided` or `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
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
const RETRY_AFTER_SECS: u64 = 1;

/// The cause of an error answer, kept on the response for [`log_errors`] to log once:
/// never sent to the client.
#[derive(Debug, Clone)]
pub struct ErrorCause {
    pub level: tracing::Level,
    pub what: &'static str,
    /// The cause with its whole chain (`{:#}`).
    pub chain: String,
}

/// One error answer: status, body and the header that goes with it, if any.
struct Answer {
    status: StatusCode,
    body: ErrorBody,
    header: Option<(header::HeaderName, HeaderValue)>,
    cause: Option<ErrorCause>,
}

impl Answer {
    fn new(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer {
            status,
            body: ErrorBody {
                message: message.into(),
                errors: None,
                id: None,
                available: None,
                status: None,
            },
            header: None,
            cause: None,
        }
    }

    fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Answer {
        self.header = Some((name, value));
        self
    }

    /// 503 with `Retry-After`: the client should come back, the request was fine.
    fn unavailable(message: impl Into<String>) -> Answer {
        Answer::new(StatusCode::SERVICE_UNAVAILABLE, message)
            .with_header(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS))
    }

    fn caused_by(
        mut self,
        level: tracing::Level,
        what: &'static str,
        cause: &anyhow::Error,
    ) -> Answer {
        self.cause = Some(ErrorCause {
            level,
            what,
            chain: format!("{cause:#}"),
        });
        self
    }

    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some((name, value)) = self.header {
            resp.headers_mut().insert(name, value);
        }
        if let Some(cause) = self.cause {
            resp.extensions_mut().insert(cause);
        }
        resp
    }
}

/// The answers of access control: 401 without a key or with an unknown one, 403 for a
/// key without the route's role, 429 over the key's rate limit.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::MissingKey => ApiError::Unauthorized("Missing API key"),
            Refusal::UnknownKey => ApiError::Unauthorized("Unknown API key"),
            Refusal::LacksRole(role) => ApiError::Forbidden(role.as_str()),
            Refusal::RateLimited { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
        }
    }
}

/// What the guard middleware ([`crate::access::require`]) answers.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let answer = match self {
            ApiError::Validation { message, errors } => {
                let mut a = Answer::new(StatusCode::BAD_REQUEST, message);
                a.body.errors = Some(errors);
                a
            }
            ApiError::BadRequest(m) => Answer::new(StatusCode::BAD_REQUEST, m),
            ApiError::UnsupportedMediaType => Answer::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ),
            ApiError::PayloadTooLarge => {
                Answer::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large")
            }
            ApiError::NotFound => Answer::new(StatusCode::NOT_FOUND, "Not Found"),
            ApiError::MethodNotAllowed => {
                Answer::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            }
            ApiError::Unauthorized(m) => Answer::new(StatusCode::UNAUTHORIZED, m)
                .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            e @ ApiError::Forbidden(_) => Answer::new(StatusCode::FORBIDDEN, e.to_string()),
            ApiError::TooManyRequests { retry_after_secs } => Answer::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded, retry later",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
            ApiError::Duplicate { id } => {
                let mut a = Answer::new(StatusCode::CONFLICT, "User event already exists");
                a.body.id = Some(id);
                a
            }
            ApiError::Conflict(m) => Answer::new(StatusCode::CONFLICT, m),
            ApiError::Exists { message, id } => {
                let mut a = Answer::new(StatusCode::CONFLICT, message);
                a.body.id = Some(id);
                a
            }
            ApiError::Insufficient { available } => {
                let mut a = Answer::new(StatusCode::UNPROCESSABLE_ENTITY, "Insufficient points");
                a.body.available = Some(available);
                a
            }
            ApiError::HoldNotOpen(status) => {
                let mut a =
                    Answer::new(StatusCode::CONFLICT, format!("Hold is {status}, not open"));
                a.body.status = Some(status.to_owned());
                a
            }
            ApiError::NotConfigured(m) | ApiError::NotFoundMessage(m) => {
                Answer::new(StatusCode::NOT_FOUND, m)
            }
            ApiError::Unavailable { message, cause } => Answer::unavailable(message).caused_by(
                tracing::Level::WARN,
                "dependency unavailable",
                &cause,
            ),
            ApiError::Store(StoreError::Unavailable(cause)) => Answer::unavailable(
                "Service temporarily unavailable, retry later",
            )
            .caused_by(tracing::Level::WARN, "store unavailable", &cause),
            // A limit of the deployment (e.g. no transactions), not of the request.
            ApiError::Store(StoreError::Unsupported(message)) => {
                Answer::new(StatusCode::NOT_IMPLEMENTED, message)
            }
            ApiError::Store(StoreError::Internal(cause)) => Answer::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            )
            .caused_by(tracing::Level::ERROR, "internal error", &cause),
        };
        answer.into_response()
    }
}

/// Middleware, inside the request's span: logs the cause of an error answer, once, with
/// its chain. Handlers and `IntoResponse` only build answers.
pub async fn log_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    if let Some(cause) = response.extensions().get::<ErrorCause>() {
        let status = response.status().as_u16();
        if cause.level == tracing::Level::ERROR {
            tracing::error!(status, error = %cause.chain, "{}", cause.what);
        } else {
            tracing::warn!(status, error = %cause.chain, "{}", cause.what);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;
    use tracing::instrument::WithSubscriber;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_internal_error_is_logged_once_with_its_chain_and_never_sent() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    let cause = anyhow::anyhow!("disk I/O error").context("writing the ledger");
                    Err::<(), _>(ApiError::Store(StoreError::Internal(cause)))
                }),
            )
            .layer(axum::middleware::from_fn(log_errors));
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .with_subscriber(subscriber)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("disk"), "internal text sent: {body}");
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("internal error").count(), 1, "{logs}");
        assert!(
            logs.contains("writing the ledger: disk I/O error"),
            "{logs}"
        );
    }
}
