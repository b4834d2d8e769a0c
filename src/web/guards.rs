//! The HTTP rules a GraphQL POST must meet before it is read: JSON only
//! (form, multipart and text/plain are what a browser sends cross-site
//! without a preflight) and at most 64 KiB.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::Limited;

use super::error::{refusal, too_large};
use crate::error::ErrorCode;

/// Largest GraphQL request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/graphql-response+json")
}

pub async fn json_only(request: Request, next: Next) -> Response {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "send GraphQL requests as POST with Content-Type: application/json",
        );
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large(MAX_BODY_BYTES);
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
