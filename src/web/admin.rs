//! The admin page at `/admin`: the AI Conversations list, detail, stats
//! and live badges, as a browser client of the GraphQL API. Its files are
//! compiled into the binary, so a fresh install serves it offline.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

const INDEX_HTML: &str = include_str!("admin/index.html");
const ADMIN_JS: &str = include_str!("admin/admin.js");
const ADMIN_CSS: &str = include_str!("admin/admin.css");

/// Only the page's own script, stylesheet and API: no inline script or
/// style, so a message that smuggled markup into the page could still not
/// run anything; no framing, no form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    const HTML: &str = "text/html; charset=utf-8";
    [
        ("/admin", HTML, INDEX_HTML),
        ("/admin/", HTML, INDEX_HTML),
        (
            "/admin/admin.js",
            "text/javascript; charset=utf-8",
            ADMIN_JS,
        ),
        ("/admin/admin.css", "text/css; charset=utf-8", ADMIN_CSS),
    ]
    .into_iter()
    .fold(Router::new(), |router, (path, content_type, body)| {
        router.route(path, get(move || async move { page(content_type, body) }))
    })
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // The files change with the binary: revalidate rather than keep a
        // page that no longer matches the API after an upgrade.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}
