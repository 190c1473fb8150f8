//! Extractors that turn malformed input into our error format instead of axum's
//! plain-text rejections.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use crate::domain::event::{check_id, MAX_USER_ID_CHARS};
use crate::domain::time::parse_query_time;

/// A JSON body; parsing failures become 400/413/415 in our error format.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            _ => ApiError::BadRequest(format!("Malformed JSON body: {}", rejection.body_text())),
        }
    }
}

/// An optional JSON object body, as `Option<Json<T>>`: no body (or an empty one) and a
/// JSON `null` are `None`, "the defaults". Anything else is read as `Json` reads a body
/// (a Content-Type other than JSON is a 415, malformed JSON a 400, too large a 413)
/// and must be a JSON object; a field `T` refuses is a 400 naming it (`T`'s
/// deserializer words the message). So a body of only white space is malformed JSON,
/// not an absent body. Without a body no Content-Type is needed: `curl -X POST` sends
/// none.
impl<T, S> OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let (parts, body) = req.into_parts();
        let read = Request::from_parts(parts.clone(), body);
        let bytes = Bytes::from_request(read, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("Malformed JSON body: {}", e.body_text()))
            }
        })?;
        if bytes.is_empty() {
            return Ok(None);
        }
        // The same request again (headers, and extensions such as the body limit), for
        // the required extractor: its Content-Type rule and its answers to malformed
        // JSON, exactly.
        let again = Request::from_parts(parts, Body::from(bytes));
        let Json(value) = <Json<Value> as FromRequest<S>>::from_request(again, state).await?;
        match value {
            Value::Null => Ok(None),
            // A derived `Deserialize` would also take an array, field by field in order.
            Value::Object(_) => typed(value).map(|t| Some(Json(t))),
            _ => Err(ApiError::BadRequest(
                "body must be a JSON object (or null)".into(),
            )),
        }
    }
}

/// `value` as a `T`; what `T` refuses in a field is a 400 naming the field by its path
/// (`delivery_ids`, `rank.top`), anything else a malformed body.
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        // From a `Value` the message carries no line and column.
        let message = e.inner().to_string();
        match e.path().to_string() {
            root if root == "." => ApiError::BadRequest(format!("Malformed JSON body: {message}")),
            field => ApiError::field(field, message),
        }
    })
}

/// Path parameters; one that cannot be read (invalid UTF-8 once percent-decoded) is a
/// 400 in our format naming the parameter.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.into_kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ApiError::field(key, "must be valid UTF-8 once percent-decoded")
                }
                ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::DeserializeError { key, .. } => {
                    ApiError::field(key, "is not valid here")
                }
                other => ApiError::BadRequest(format!("Malformed path: {other}")),
            },
            other => ApiError::BadRequest(format!("Malformed path: {}", other.body_text())),
        }
    }
}

/// Query-string parameters, read by name so that each bad one is reported by name.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e: QueryRejection| {
                ApiError::BadRequest(format!("Malformed query string: {}", e.body_text()))
            })?;
        Ok(Params(map))
    }
}

impl Params {
    /// A present, non-empty parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn number(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::field(name, format!("must be an integer from {min} to {max}"))
                }),
        }
    }

    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| parse_query_time(v).map_err(|m| ApiError::field(name, m)))
            .transpose()
    }

    pub fn user_id(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.get(name)
            .map(|v| {
                check_id(v, MAX_USER_ID_CHARS)
                    .map(|()| v.to_string())
                    .map_err(|m| ApiError::field(name, m))
            })
            .transpose()
    }
}

/// Validates a `{user_id}` path segment.
pub fn path_user_id(user_id: &str) -> Result<(), ApiError> {
    check_id(user_id, MAX_USER_ID_CHARS).map_err(|m| ApiError::field("user_id", m))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{header, Request};
    use axum::routing::post;
    use axum::Router;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Options {
        #[serde(default)]
        n: Option<u32>,
    }

    /// Answers what the extractor made of the body: `none`, or `n=<value>`.
    async fn answer(content_type: Option<&str>, body: &'static str) -> (StatusCode, Value) {
        answer_within(64, content_type, body.into()).await
    }

    async fn answer_within(
        limit: usize,
        content_type: Option<&str>,
        body: String,
    ) -> (StatusCode, Value) {
        let app = Router::new()
            .route(
                "/",
                post(|body: Option<Json<Options>>| async move {
                    match body {
                        None => "none".to_string(),
                        Some(Json(o)) => format!("n={:?}", o.n),
                    }
                }),
            )
            .layer(DefaultBodyLimit::max(limit));
        let mut req = Request::post("/");
        if let Some(t) = content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        let response = app
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }

    const JSON: Option<&str> = Some("application/json");

    #[tokio::test]
    async fn no_body_an_empty_one_and_null_are_the_defaults() {
        for (content_type, body) in [(None, ""), (JSON, ""), (JSON, "null"), (JSON, " null ")] {
            assert_eq!(
                answer(content_type, body).await,
                (StatusCode::OK, Value::from("none")),
                "{content_type:?} {body:?}"
            );
        }
        assert_eq!(
            answer(JSON, r#"{"n": 3, "other": [1]}"#).await,
            (StatusCode::OK, Value::from("n=Some(3)"))
        );
        assert_eq!(
            answer(Some("application/vnd.x+json"), "{}").await,
            (StatusCode::OK, Value::from("n=None"))
        );
    }

    #[tokio::test]
    async fn a_malformed_body_is_an_error_in_our_format() {
        let bad_request = |message: &str| serde_json::json!({"message": message});
        for body in ["  \n", "{", "{\"n\": 1,}", "nul"] {
            let (status, answer) = answer(JSON, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
            let message = answer["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("Malformed JSON body: "),
                "{body:?}: {answer}"
            );
            assert!(answer.get("errors").is_none(), "{body:?}: {answer}");
        }
        for body in ["[1]", "[]", "3", "\"{}\"", "true"] {
            assert_eq!(
                answer(JSON, body).await,
                (
                    StatusCode::BAD_REQUEST,
                    bad_request("body must be a JSON object (or null)")
                ),
                "{body:?}"
            );
        }
        let (status, answer) = answer(JSON, r#"{"n": "three"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["errors"][0]["field"], "n", "{answer}");
        assert_eq!(
            answer["errors"].as_array().map(Vec::len),
            Some(1),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_body_needs_a_json_content_type_and_a_bounded_size() {
        let unsupported = (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            serde_json::json!({"message": "Content-Type must be application/json"}),
        );
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert_eq!(
                answer(content_type, "{}").await,
                unsupported,
                "{content_type:?}"
            );
        }
        let (status, answer) = answer(JSON, r#"{"n": 1, "padding": "0123456789012345678901234567890123456789012345678901234567890123456789"}"#).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
        assert_eq!(answer["message"], "Request body is too large");
        // The limit is the router's, also above axum's default of 2 MB.
        let big = format!(r#"{{"n": 1, "padding": "{}"}}"#, "x".repeat(3 << 20));
        assert_eq!(
            answer_within(4 << 20, JSON, big).await,
            (StatusCode::OK, Value::from("n=Some(1)"))
        );
    }
}
