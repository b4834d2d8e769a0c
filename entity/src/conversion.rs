//! A business outcome (tour, customer, contract, booking, day pass) recorded
//! against a conversation, or stored unattributed for review.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversion")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Option<Uuid>,
    /// `TOUR_BOOKED`, `CUSTOMER_CREATED`, `CONTRACT_CREATED`, `BOOKING_CREATED`
    /// or `DAY_PASS_PURCHASED`.
    pub kind: String,
    /// `VISITOR`, `COWORKER`, `COWORKER_CONTRACT`, `BOOKING` or `COWORKER_PRODUCT`.
    pub record_type: String,
    pub record_id: String,
    /// `DIRECT`, `LINK` or `CONFIRMATION`.
    pub source: String,
    /// False when the outcome is kept for review rather than credited to a
    /// conversation (a badge is shown only for attributed ones).
    pub attributed: bool,
    pub unattributed_reason: Option<String>,
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request that used `idempotency_key`, to detect reuse
    /// of a key with a different payload.
    pub payload_fingerprint: Option<String>,
    /// Per-tenant event-feed cursor, monotonic in commit order.
    pub feed_seq: i64,
    pub recorded_at: i64,
    /// The call-to-action link that led to it, for `LINK` conversions.
    pub link_id: Option<Uuid>,
    /// That link's action (`DAY_PASS`, `MEMBERSHIP_SIGNUP`, `TOUR_REQUEST`,
    /// `BOOKING_CONFIRMATION`).
    pub link_action: Option<String>,
    /// The conversation's start, copied (it never changes) so stats over a
    /// range of conversations read this table alone.
    pub conversation_started_at: Option<i64>,
    /// The conversation's channel, copied for the same reason.
    pub conversation_channel: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
