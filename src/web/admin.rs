//! The admin page at `/admin`: the AI Conversations list, detail, stats
//! and live badges, as a browser client of the GraphQL API.

use axum::Router;

use super::AppState;
use super::pages::{self, CSS, File, HTML, JAVASCRIPT};

const INDEX_HTML: &str = include_str!("admin/index.html");

const FILES: &[File] = &[
    ("/admin", HTML, INDEX_HTML),
    ("/admin/", HTML, INDEX_HTML),
    (
        "/admin/admin.js",
        JAVASCRIPT,
        include_str!("admin/admin.js"),
    ),
    (
        "/admin/export.js",
        JAVASCRIPT,
        include_str!("admin/export.js"),
    ),
    (
        "/admin/connectivity.js",
        JAVASCRIPT,
        include_str!("admin/connectivity.js"),
    ),
    (
        "/admin/url-state.js",
        JAVASCRIPT,
        include_str!("admin/url-state.js"),
    ),
    ("/admin/time.js", JAVASCRIPT, include_str!("admin/time.js")),
    (
        "/admin/scope.js",
        JAVASCRIPT,
        include_str!("admin/scope.js"),
    ),
    (
        "/admin/review.js",
        JAVASCRIPT,
        include_str!("admin/review.js"),
    ),
    (
        "/admin/labels.js",
        JAVASCRIPT,
        include_str!("admin/labels.js"),
    ),
    ("/admin/admin.css", CSS, include_str!("admin/admin.css")),
];

/// Only the page's own script, stylesheet and API: no inline script or
/// style, so a message that smuggled markup into the page could still not
/// run anything; no framing, no form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    pages::routes(FILES, CONTENT_SECURITY_POLICY)
}
