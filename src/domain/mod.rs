//! Pure rules of the product: no database, no GraphQL, no I/O. Each module
//! answers one question a newcomer might ask ("how long does a WhatsApp
//! session last?" → `channel`) and carries its own unit tests.

pub mod activity;
pub mod adjustment;
pub mod api_key;
pub mod channel;
pub mod clock;
pub mod confirmation;
pub mod contact;
pub mod conversion;
pub mod csv;
pub mod cursor;
pub mod erasure;
pub mod idempotency;
pub mod label;
pub mod link;
pub mod message;
pub mod money;
pub mod opening;
pub mod public_url;
pub mod query_text;
pub mod rate_limit;
pub mod redact;
pub mod role;
pub mod rollup;
pub mod session_id;
pub mod settings;
pub mod text;
pub mod thread_key;
pub mod webhook;

/// A rule broken by input. The message tells the caller what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

impl InvalidInput {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Locks a mutex whose holder may have panicked. Every mutex here guards
/// state that stays consistent between statements (counters, maps, a
/// clock), so what a panicking holder left is still good to use.
pub fn locked<T: ?Sized>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
