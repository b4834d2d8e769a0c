//! Idempotency keys of `startSession` and `appendMessage`, with the payload
//! each was first used for and the answer it got.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "request_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// `startSession` or `appendMessage`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub operation: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// SHA-256 of the request that first used the key.
    pub payload_fingerprint: String,
    /// The conversation started, continued or appended to.
    pub conversation_id: Uuid,
    /// The message appended (`appendMessage`).
    pub message_id: Option<Uuid>,
    /// Whether `startSession` continued an open conversation.
    pub resumed: bool,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
