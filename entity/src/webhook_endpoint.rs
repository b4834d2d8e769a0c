//! Where a tenant's feed events are POSTed (webhooks).

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoint")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    /// Comma-separated kinds; null for every kind.
    pub kinds: Option<String>,
    /// Comma-separated channels; null for every channel.
    pub channels: Option<String>,
    pub description: String,
    pub enabled: bool,
    /// Why the server disabled it (a 410 Gone), if it did.
    pub disabled_reason: Option<String>,
    /// Stop delivering after a dead letter instead of going on.
    pub pause_on_dead: bool,
    /// `whsec_…`.
    pub secret: String,
    /// The secret before the last rotation, which signs too until
    /// `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub created_at: i64,
    pub last_success_at: Option<i64>,
    pub consecutive_failures: i32,
    /// The last feed event handed to it (acknowledged or given up).
    pub feed_xid: i64,
    pub feed_seq: i64,
    /// The instance delivering to it, until `lease_until` (µs).
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<i64>,
}

// The secrets forge this endpoint's deliveries; `{:?}` of a row (a log
// line, a test failure) shows which endpoint it is, not them.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("enabled", &self.enabled)
            .field("secret", &format_args!("[redacted]"))
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
