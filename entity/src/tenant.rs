//! An operator sharing the deployment. Everything else hangs off a tenant.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    /// SQLite: the last feed number handed to a conversion of this tenant,
    /// incremented inside the (single) writer's transaction. Unused on
    /// PostgreSQL, where feed numbers come from a sequence.
    pub conversion_seq: i64,
    pub created_at: i64,
    /// JSON: record URL templates, attribution window, channel overrides.
    pub settings: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
