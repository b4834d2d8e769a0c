//! Table models for convtrack, one module per table.
//!
//! Timestamps are stored as microseconds since the Unix epoch (UTC) in
//! BIGINT columns: the same exact integer on SQLite and PostgreSQL, so keyset
//! cursors, range filters and durations compare identically on both backends.
//! These models carry no GraphQL types; the API shapes live in the server crate.

pub mod api_key;
pub mod confirmation;
pub mod conversation;
pub mod conversion;
pub mod conversion_adjustment;
pub mod cta_link;
pub mod erasure;
pub mod idempotency_key;
pub mod link_signing_key;
pub mod message;
pub mod request_key;
pub mod tenant;
pub mod webhook_delivery;
pub mod webhook_endpoint;
