//! Recording conversions against conversations, and reading them back:
//! [`record`] takes a request through [`plan`] (what it means, from reads
//! alone) and [`write`] (the rows, at once); [`read`] answers the lists and
//! lookups.

mod adjust;
mod counts;
pub(crate) mod group;
pub(crate) mod plan;
mod read;
mod record;
mod recount;
mod review;
pub(crate) mod write;

use chrono::TimeDelta;

pub use adjust::{Adjusted, MAX_REASON_CHARS, RestateConversion, RetractConversion};
pub use review::Review;

use super::read_model::Conversion;
use crate::domain::conversion::ConversionKind;
use crate::domain::money::Money;
use crate::domain::session_id::SessionId;

pub const MAX_RECORD_ID_CHARS: usize = 200;

/// Where the checkout learned which conversation the outcome came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The session ID itself (the agent, or a backend that holds it).
    Session(SessionId),
    /// The token of a call-to-action link (`ai_session`).
    LinkToken(String),
}

/// A checkout, form or agent reporting an outcome.
#[derive(Debug, Clone)]
pub struct RecordConversion {
    pub origin: Origin,
    pub kind: ConversionKind,
    pub record_id: String,
    /// With `CONTRACT_CREATED`: the new customer the contract was signed by;
    /// records `CUSTOMER_CREATED` too, in the same transaction.
    pub new_customer_id: Option<String>,
    /// What the requested outcome earned (not given to the customer one).
    pub value: Option<Money>,
    pub idempotency_key: Option<String>,
    /// The tenant's attribution window (from the settings read with the
    /// key): a recording by session ID after it is stored unattributed,
    /// like a link's.
    pub attribution_window: TimeDelta,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    /// The requested conversion first, then the customer one if any.
    pub conversions: Vec<Conversion>,
    /// False when everything already existed (a replay).
    pub created: bool,
    pub attributed: bool,
}

/// The reason stored on a conversion that arrived after its session's
/// attribution window.
pub const ATTRIBUTION_EXPIRED: &str = "ATTRIBUTION_EXPIRED";
