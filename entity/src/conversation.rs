//! One AI-assistant conversation (a session) on one channel.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversation")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(unique)]
    pub session_id: String,
    /// `CHAT`, `EMAIL`, `WHATSAPP` or `VOICE`.
    pub channel: String,
    pub thread_key: Option<String>,
    pub contact: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub started_at: i64,
    pub last_activity_at: i64,
    pub closed_at: Option<i64>,
    pub opening_message: Option<String>,
    pub message_count: i32,
    /// When the first attributed conversion was recorded; null until then.
    pub first_converted_at: Option<i64>,
    /// How many retractions have changed the conversation's outcomes: a
    /// recording planned before one is planned again.
    pub retractions: i64,
    /// When the person's data in it was erased (by request or by the
    /// tenant's retention period); null while it is held.
    pub erased_at: Option<i64>,
    /// Its labels, sorted by key, one `key=value` per line; empty for none.
    pub labels: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
