//! The header size limit. (Connections are limited in [`super::server`]; the request
//! time limit is tower-http's `TimeoutLayer`, set in the router.)

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Middleware: 431 when the request's headers add up to more than `max` bytes.
pub async fn header_limit(
    axum::extract::State(max): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri().to_string().len();
    if size > max {
        let body = super::error::ErrorBody {
            message: format!("Request headers and URL exceed {max} bytes"),
            errors: None,
            id: None,
        };
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            axum::Json(body),
        )
            .into_response();
    }
    next.run(req).await
}
