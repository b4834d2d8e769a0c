//! Finding a person by who they are: the list's search also matches a
//! signed-in name (any case) and a badge's record id exactly, each through
//! its own index (contacts and user ids have theirs since the erasure
//! migration).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX conversation_tenant_name ON conversation (tenant_id, lower(user_name)) \
             WHERE user_name IS NOT NULL",
            "CREATE INDEX conversion_tenant_record_id ON conversion (tenant_id, record_id)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "DROP INDEX conversation_tenant_name",
            "DROP INDEX conversion_tenant_record_id",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
