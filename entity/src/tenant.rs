//! An operator sharing the deployment. Everything else hangs off a tenant.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    /// Last cursor handed to a conversion of this tenant. Incremented inside the
    /// recording transaction, so the row lock orders cursors by commit.
    pub conversion_seq: i64,
    pub created_at: i64,
    /// JSON: record URL templates, attribution window, channel overrides.
    pub settings: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
