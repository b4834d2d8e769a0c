//! The one place where failures become client-facing GraphQL errors: each
//! [`AppError`] gets its `extensions.code` and a message that says what to
//! change. Internal details are logged, never sent.

use async_graphql::{ErrorExtensions, Response, Value};

use crate::error::AppError;

pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";

/// The `extensions.code` of an error.
pub fn code(e: &AppError) -> &'static str {
    match e {
        AppError::BadInput(_) => BAD_USER_INPUT,
        AppError::Forbidden { .. } => "FORBIDDEN",
        AppError::NotFound(_) => "NOT_FOUND",
        AppError::SessionExpired(_) => "SESSION_EXPIRED",
        AppError::SessionClosed => "SESSION_CLOSED",
        AppError::Conflict(_) => "CONFLICT",
        AppError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
        AppError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
        AppError::Unavailable(_) => "SERVICE_UNAVAILABLE",
        AppError::Internal(_) => INTERNAL_SERVER_ERROR,
    }
}

/// The message a client sees. Internal errors say nothing of their cause.
pub fn public_message(e: &AppError) -> String {
    match e {
        AppError::Internal(_) => {
            "internal server error; quote the requestId when reporting it".to_owned()
        }
        other => other.to_string(),
    }
}

/// Logs what the client will not see. Runs inside the request's span, so
/// the log line carries the same request id as the response.
pub fn log(e: &AppError) {
    match e {
        AppError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
        AppError::Unavailable(source) => tracing::warn!(error = %source, "database unavailable"),
        _ => {}
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        Self::from(&e)
    }
}

impl From<&AppError> for async_graphql::Error {
    fn from(e: &AppError) -> Self {
        log(e);
        let code = code(e);
        async_graphql::Error::new(public_message(e)).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Gives every error of a response a code (parse and validation errors from
/// the GraphQL engine come without one: they are the caller's to fix) and
/// tags internal errors with the request id.
pub fn finish_response(response: &mut Response, request_id: &str) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        let code = match extensions.get("code") {
            Some(Value::String(code)) => code.clone(),
            _ => {
                extensions.set("code", BAD_USER_INPUT);
                BAD_USER_INPUT.to_owned()
            }
        };
        if code == INTERNAL_SERVER_ERROR {
            extensions.set("requestId", request_id);
        }
    }
}
