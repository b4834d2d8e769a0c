//! API keys. Only a SHA-256 hash of the secret is stored.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `ADMIN`, `AGENT`, `CHECKOUT` or `INTEGRATOR`.
    pub role: String,
    #[sea_orm(unique)]
    pub key_hash: String,
    /// The first characters of the key, so an operator can tell keys apart.
    pub key_prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
