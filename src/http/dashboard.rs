//! The operators' dashboard: a static page that reads the public JSON API from the
//! browser. Its files are compiled into the binary, so it needs no network, no build
//! step and cannot drift from the server it ships with. The page holds no data, so it
//! is served without a key; the API calls it makes carry the key the operator enters.

use super::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Scripts, styles and API calls only from this origin: the page keeps an API key in
/// localStorage, so nothing foreign may run in it or frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../dashboard/index.html");

/// `(name, bytes)` of everything under `/dashboard/assets/`.
const ASSETS: &[(&str, &str)] = &[
    ("style.css", include_str!("../../dashboard/style.css")),
    ("icon.svg", include_str!("../../dashboard/icon.svg")),
    ("main.js", include_str!("../../dashboard/main.js")),
    ("api.js", include_str!("../../dashboard/api.js")),
    ("dom.js", include_str!("../../dashboard/dom.js")),
    ("chart.js", include_str!("../../dashboard/chart.js")),
    (
        "leaderboard.js",
        include_str!("../../dashboard/leaderboard.js"),
    ),
    ("trends.js", include_str!("../../dashboard/trends.js")),
    ("user.js", include_str!("../../dashboard/user.js")),
    ("types.js", include_str!("../../dashboard/types.js")),
    ("progress.js", include_str!("../../dashboard/progress.js")),
    (
        "achievements.js",
        include_str!("../../dashboard/achievements.js"),
    ),
    ("wallet.js", include_str!("../../dashboard/wallet.js")),
];

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn respond(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidate on every load, so a new binary's page is used at once.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

pub async fn page() -> Response {
    respond("text/html; charset=utf-8", INDEX)
}

pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, body)| respond(content_type(n), body))
        .ok_or(ApiError::NotFound)
}
