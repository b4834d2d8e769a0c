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
    /// Orders the tenant's event feed after `feed_xid`: on SQLite a
    /// per-tenant counter taken under the write lock; on PostgreSQL a
    /// sequence shared by all tenants. Unique per tenant.
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
    /// PostgreSQL: the id of the transaction that wrote it (plus the
    /// cluster's offset, see the `feed_clock` table); the feed is ordered by
    /// it first, and hands out a row only once every transaction with a
    /// smaller id has ended. 0 on SQLite and for rows written before.
    pub feed_xid: i64,
    /// What it earned, in the currency's minor units (cents for EUR);
    /// empty when recorded without a value.
    pub value_minor: Option<i64>,
    /// The ISO 4217 code of `value_minor`.
    pub currency: Option<String>,
    /// `ACTIVE`, or `RETRACTED` once withdrawn.
    pub status: String,
    /// The value it was recorded with (`value_minor` is its value now).
    pub recorded_value_minor: Option<i64>,
    /// An operator's review of it while unattributed: `ATTRIBUTED`
    /// (credited anyway; `attributed` is then true) or `DISMISSED` (out of
    /// the review queue).
    pub review: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
