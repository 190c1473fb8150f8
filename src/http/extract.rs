//! Extractors that turn malformed input into our error format instead of axum's
//! plain-text rejections.

use std::collections::HashMap;

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;

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
