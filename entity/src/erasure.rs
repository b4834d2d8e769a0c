//! One erasure of personal data: who asked, when, which kind of identifier
//! it matched and how much it erased. Never the erased values.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erasure")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub at: i64,
    /// The API key that asked; null for the retention job.
    pub key_id: Option<Uuid>,
    /// `CONTACT`, `USER_ID`, `SESSION_ID` or `RETENTION`.
    pub scope: String,
    pub reason: String,
    pub conversations: i64,
    pub messages: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
