//! The HTTP rules a GraphQL POST must meet before it is read: JSON only
//! (form, multipart and text/plain are what a browser sends cross-site
//! without a preflight) and at most 64 KiB.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;

use super::graphql::error_body;
use crate::graphql::errors::BAD_USER_INPUT;

/// Largest GraphQL request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/graphql-response+json")
}

pub fn too_large() -> Response {
    let message = format!("the request body is larger than {MAX_BODY_BYTES} bytes");
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        axum::Json(error_body(&message, PAYLOAD_TOO_LARGE, None)),
    )
        .into_response()
}

pub async fn json_only(request: Request, next: Next) -> Response {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        let body = error_body(
            "send GraphQL requests as POST with Content-Type: application/json",
            BAD_USER_INPUT,
            None,
        );
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, axum::Json(body)).into_response();
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    // A body without a Content-Length (chunked) is cut off at the limit
    // while it is read; the handler answers 413 then.
    let (parts, body) = request.into_parts();
    let limited = Body::new(Limited::new(body, MAX_BODY_BYTES));
    next.run(Request::from_parts(parts, limited)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/graphql-response+json"));
        for other in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }
}
