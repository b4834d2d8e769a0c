//! `GET /l/{token}`: count the click, then send the person on. Only ever to
//! the target stored when the link was issued, never to a URL taken from
//! the request. HEAD (link previews, crawlers checking a URL) redirects
//! the same way without counting.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, REFERRER_POLICY};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Link not found</title>\
<p>This link is not valid. Please ask for a new one.</p>";

pub async fn follow(
    State(state): State<AppState>,
    method: Method,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let count = method == Method::GET;
    match state.services.follow_link(&token, client.ip(), count).await {
        // The target was normalised when stored and checked again on the way
        // out, so it is ASCII; a value a header cannot carry is not a link.
        Ok(Some(url)) => match HeaderValue::from_str(&url) {
            Ok(location) => (
                StatusCode::FOUND,
                [
                    (LOCATION, location),
                    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
                ],
            )
                .into_response(),
            Err(_) => not_found(),
        },
        Ok(None) => not_found(),
        Err(e) => {
            e.log();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The link service is unavailable; please try again in a moment.",
            )
                .into_response()
        }
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        NOT_FOUND_PAGE,
    )
        .into_response()
}
