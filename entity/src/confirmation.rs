//! A confirmation the agent asked the person for, before recording an
//! outcome it completes itself (a booking).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "confirmation")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub action: String,
    pub summary: String,
    pub requested_at: i64,
    pub expires_at: i64,
    pub confirmed_at: Option<i64>,
    /// The conversion the confirmation recorded.
    pub conversion_id: Option<Uuid>,
    /// When the person declined (`cancelConfirmation`); a cancelled
    /// confirmation can no longer be confirmed.
    pub cancelled_at: Option<i64>,
    /// Why, as the agent put it.
    pub cancel_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
