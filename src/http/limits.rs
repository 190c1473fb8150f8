//! The protections of the server itself and their settings ([`ServerLimits`]), and the
//! header size limit. (Connections are limited in [`super::server`]; the request time
//! limit is tower-http's `TimeoutLayer` and the body limit axum's `DefaultBodyLimit`,
//! both set in the router.)

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{invalid, ConfigError, Vars};

/// Protections of the server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `BODY_LIMIT_BYTES` (default 1 MiB, at least 1024): larger request bodies get 413.
    pub body_limit_bytes: usize,
    /// `REQUEST_TIMEOUT_SECS` (default 30): a request still running is answered 408.
    pub request_timeout: Duration,
    /// `MAX_CONNECTIONS` (default 1024): further connections wait to be accepted.
    pub max_connections: usize,
    /// `MAX_HEADER_BYTES` (default 16384): larger headers and URL get 431.
    pub max_header_bytes: usize,
    /// `HEADER_READ_TIMEOUT_SECS` (default 5): a connection that has not sent a whole
    /// request head this long after it opened, or after the next head began, is closed.
    pub header_read_timeout: Duration,
    /// `KEEP_ALIVE_TIMEOUT_SECS` (default 60): an idle keep-alive connection is closed
    /// after this long without a new request.
    pub keep_alive_timeout: Duration,
}

impl ServerLimits {
    pub fn from_vars(vars: &Vars) -> Result<ServerLimits, ConfigError> {
        let body_limit_bytes = match vars.get("BODY_LIMIT_BYTES") {
            None => 1024 * 1024,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1024)
                .ok_or_else(|| {
                    invalid("BODY_LIMIT_BYTES", v, "a number of bytes, at least 1024")
                })?,
        };
        Ok(ServerLimits {
            body_limit_bytes,
            request_timeout: vars.seconds("REQUEST_TIMEOUT_SECS", 30, 1)?,
            max_connections: vars.number("MAX_CONNECTIONS", 1024, 1)? as usize,
            max_header_bytes: vars.number("MAX_HEADER_BYTES", 16 * 1024, 1024)? as usize,
            header_read_timeout: vars.seconds("HEADER_READ_TIMEOUT_SECS", 5, 1)?,
            keep_alive_timeout: vars.seconds("KEEP_ALIVE_TIMEOUT_SECS", 60, 1)?,
        })
    }
}

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
            available: None,
            status: None,
        };
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            axum::Json(body),
        )
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars;

    fn limits(pairs: &[(&str, &str)]) -> Result<ServerLimits, ConfigError> {
        ServerLimits::from_vars(&Vars::new(&test_vars(pairs)))
    }

    #[test]
    fn limits_have_defaults_and_floors_and_name_themselves() {
        let l = limits(&[]).unwrap();
        assert_eq!(l.body_limit_bytes, 1024 * 1024);
        assert_eq!(l.request_timeout, Duration::from_secs(30));
        assert_eq!((l.max_connections, l.max_header_bytes), (1024, 16 * 1024));
        assert_eq!(l.header_read_timeout, Duration::from_secs(5));
        assert_eq!(l.keep_alive_timeout, Duration::from_secs(60));
        let l = limits(&[("BODY_LIMIT_BYTES", "1024"), ("MAX_CONNECTIONS", "1")]).unwrap();
        assert_eq!((l.body_limit_bytes, l.max_connections), (1024, 1));
        for (var, bad) in [
            ("BODY_LIMIT_BYTES", "1023"),
            ("BODY_LIMIT_BYTES", "1MB"),
            ("REQUEST_TIMEOUT_SECS", "0"),
            ("MAX_CONNECTIONS", "-1"),
            ("MAX_HEADER_BYTES", "1000"),
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("KEEP_ALIVE_TIMEOUT_SECS", "1.5"),
        ] {
            let e = limits(&[(var, bad)]).unwrap_err();
            assert_eq!(e.var, var, "{bad}");
        }
    }
}
