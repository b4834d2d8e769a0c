//! Answers for requests refused outside the GraphQL engine (before it runs,
//! or when a handler panics), shaped like GraphQL errors so that clients
//! read one format. Depends on nothing else in `web/`.

use std::any::Any;

use axum::http::StatusCode;
use axum::http::header::WWW_AUTHENTICATE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{AppError, ErrorCode, INTERNAL_MESSAGE};

pub fn error_body(message: &str, code: ErrorCode, request_id: Option<&str>) -> Value {
    let mut extensions = json!({ "code": code.as_str() });
    if let Some(id) = request_id {
        extensions["requestId"] = json!(id);
    }
    json!({ "errors": [{ "message": message, "extensions": extensions }] })
}

/// A refusal with the status its code stands for.
pub fn error_response(code: ErrorCode, message: &str) -> Response {
    refusal(code.http_status(), code, message)
}

/// A refusal whose status is the HTTP protocol's own answer (405, 415)
/// rather than its code's.
pub fn refusal(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (status, axum::Json(error_body(message, code, None))).into_response()
}

/// An [`AppError`] raised before the GraphQL engine ran, logged here.
pub fn app_error_response(e: &AppError, request_id: &str) -> Response {
    e.log();
    let code = e.code();
    let id = (code == ErrorCode::InternalServerError).then_some(request_id);
    let body = error_body(&e.public_message(), code, id);
    (code.http_status(), axum::Json(body)).into_response()
}

/// A request body over `max_bytes`.
pub fn too_large(max_bytes: usize) -> Response {
    let message = format!("the request body is larger than {max_bytes} bytes");
    error_response(ErrorCode::PayloadTooLarge, &message)
}

/// No key, or one that is unknown or revoked.
pub fn unauthenticated(message: &str) -> Response {
    let code = ErrorCode::Unauthenticated;
    let body = error_body(message, code, None);
    (
        code.http_status(),
        [(WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

/// A panic in a request: logged with its message, answered without it.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>, request_id: &str) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-text panic");
    tracing::error!(panic = %detail, "request handler panicked");
    let code = ErrorCode::InternalServerError;
    let body = error_body(INTERNAL_MESSAGE, code, Some(request_id));
    (code.http_status(), axum::Json(body)).into_response()
}
