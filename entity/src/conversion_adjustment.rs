//! A change to a recorded sale: a restatement (new value) or a retraction
//! (withdrawn), with its own place in the tenant's event feed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversion_adjustment")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversion_id: Uuid,
    /// `RESTATED`, `RETRACTED`, `ATTRIBUTED` or `DISMISSED`.
    pub change: String,
    /// The value after the change, in minor units (none after a retraction).
    pub value_minor: Option<i64>,
    /// The value before it.
    pub previous_value_minor: Option<i64>,
    /// The ISO 4217 code of `value_minor`.
    pub currency: Option<String>,
    /// The ISO 4217 code of `previous_value_minor`.
    pub previous_currency: Option<String>,
    pub reason: String,
    /// The role of the key that made the change.
    pub role: String,
    /// Unique per tenant: a retry with it replays this change.
    pub idempotency_key: String,
    pub at: i64,
    /// Its place in the feed, numbered as conversions are (see
    /// `conversion.feed_seq` and `conversion.feed_xid`).
    pub feed_seq: i64,
    pub feed_xid: i64,
    /// The first characters of the API key that made it (none for changes
    /// made before this was kept).
    pub key_prefix: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
