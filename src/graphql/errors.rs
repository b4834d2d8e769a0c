//! The one place where failures become client-facing GraphQL errors: each
//! [`AppError`] gets its `extensions.code` and a message that says what to
//! change. Internal details are logged, never sent.

use std::sync::Arc;

use async_graphql::{ErrorExtensions, Response, Value};

use crate::error::{AppError, ErrorCode};

/// An error with its code, refused by the GraphQL layer itself.
pub fn refusal(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code.as_str()))
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        let mut error = refusal(e.code(), e.public_message());
        // Kept (never sent) for the log line written when the response is done.
        error.source = Some(Arc::new(e));
        error
    }
}

/// Logs the causes of a finished response's errors, once each.
pub fn log_causes(response: &Response) {
    for error in &response.errors {
        if let Some(cause) = error.source::<AppError>() {
            cause.log();
        }
    }
}

/// Longest error message sent: the engine's parse and validation messages
/// quote the document (a 60 KB field name would come back whole).
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `message` cut to [`MAX_MESSAGE_CHARS`] characters, at a character.
fn shortened(message: &mut String) {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
}

/// Gives every error of a response a code (parse and validation errors from
/// the GraphQL engine come without one: they are the caller's to fix),
/// keeps its message short, and tags internal errors with the request id.
pub fn finish_response(response: &mut Response, request_id: &str) {
    for error in &mut response.errors {
        shortened(&mut error.message);
        let refusal = super::limits::engine_refusal(&error.message);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        let internal = match (extensions.get("code"), refusal) {
            (Some(Value::String(code)), _) => code == ErrorCode::InternalServerError.as_str(),
            (_, Some(message)) => {
                extensions.set("code", ErrorCode::QueryTooComplex.as_str());
                error.message = message;
                false
            }
            _ => {
                extensions.set("code", ErrorCode::BadUserInput.as_str());
                false
            }
        };
        if internal {
            extensions.set("requestId", request_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{Response, ServerError};

    use super::*;

    fn error_of(e: AppError) -> ServerError {
        async_graphql::Error::from(e).into_server_error(Default::default())
    }

    fn code_of(error: &ServerError) -> Option<Value> {
        error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code").cloned())
    }

    #[test]
    fn internal_errors_say_nothing_of_their_cause_and_carry_the_request_id() {
        let mut response = Response::from_errors(vec![error_of(AppError::internal(
            "database: relation \"conversion\" does not exist",
        ))]);
        finish_response(&mut response, "req-42");
        let error = &response.errors[0];
        assert!(!error.message.contains("relation"));
        assert_eq!(code_of(error), Some(Value::from("INTERNAL_SERVER_ERROR")));
        let extensions = error.extensions.as_ref().expect("extensions");
        assert_eq!(extensions.get("requestId"), Some(&Value::from("req-42")));
    }

    #[test]
    fn long_messages_are_cut_at_a_character() {
        let long = format!("Unknown field \"{}\"", "é".repeat(30_000));
        let mut response = Response::from_errors(vec![ServerError::new(long, None)]);
        finish_response(&mut response, "req-1");
        let message = &response.errors[0].message;
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn engine_errors_without_a_code_are_the_callers_to_fix() {
        let mut response = Response::from_errors(vec![ServerError::new("Unknown field", None)]);
        finish_response(&mut response, "req-1");
        assert_eq!(
            code_of(&response.errors[0]),
            Some(Value::from("BAD_USER_INPUT"))
        );
        assert!(
            response.errors[0]
                .extensions
                .as_ref()
                .and_then(|e| e.get("requestId"))
                .is_none()
        );
    }

    #[test]
    fn every_error_has_its_contract_code() {
        let cases = [
            (AppError::BadInput("x".into()), "BAD_USER_INPUT"),
            (
                AppError::Forbidden {
                    role: "CHECKOUT",
                    action: "list",
                },
                "FORBIDDEN",
            ),
            (AppError::NotFound("session"), "NOT_FOUND"),
            (
                AppError::SessionExpired("24 hours".into()),
                "SESSION_EXPIRED",
            ),
            (AppError::SessionClosed, "SESSION_CLOSED"),
            (AppError::Conflict("x".into()), "CONFLICT"),
            (AppError::InvalidLinkToken, "INVALID_LINK_TOKEN"),
            (
                AppError::ConfirmationExpired("then".into()),
                "CONFIRMATION_EXPIRED",
            ),
            (AppError::IdempotencyKeyReused, "IDEMPOTENCY_KEY_REUSED"),
            (AppError::PayloadTooLarge("x".into()), "PAYLOAD_TOO_LARGE"),
            (AppError::RateLimited("x".into()), "RATE_LIMITED"),
            (
                AppError::Unavailable(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
                    "down".into(),
                ))),
                "SERVICE_UNAVAILABLE",
            ),
            (AppError::Raced, "SERVICE_UNAVAILABLE"),
        ];
        for (error, expected) in cases {
            assert_eq!(error.code().as_str(), expected);
            assert_eq!(code_of(&error_of(error)), Some(Value::from(expected)));
        }
    }
}
