//! One message of a conversation, numbered in the order it was appended.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// 1-based position in the conversation; unique per conversation.
    pub seq: i32,
    /// `VISITOR`, `AI_AGENT` or `TOOL`.
    pub role: String,
    pub content: String,
    pub created_at: i64,
    /// The content was longer than a message holds and is stored cut.
    pub truncated: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
