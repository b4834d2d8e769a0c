//! Browser pages compiled into the binary (`/admin`, `/graphiql`), so a
//! fresh install serves them offline, each under a strict Content Security
//! Policy: only the page's own files, no inline script.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// A file of a page: its path, content type and body.
pub type File = (&'static str, &'static str, &'static str);

pub const HTML: &str = "text/html; charset=utf-8";
pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";

/// Routes serving `files`, each with `policy` as its Content Security Policy.
pub fn routes(files: &'static [File], policy: &'static str) -> Router<AppState> {
    files
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(
                path,
                get(move || async move { page(content_type, body, policy) }),
            )
        })
}

fn page(content_type: &'static str, body: &'static str, policy: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
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
