//! Searching within a date range reads only the matches that can fall in
//! it (the stats of a filtered list count every match, not a page):
//!
//! - PostgreSQL: searchable messages by time, so the text index's matches
//!   are narrowed to those written since the range starts (a message is
//!   never older than its conversation);
//! - SQLite: the search watermark by conversation start, so the first
//!   message rowid that can belong to a conversation started since then is
//!   one index seek (the watermark never decreases).
//!
//! And the stats of a filtered list read the matching conversations from
//! one index, without their rows: `conversation_stats` gains `id` (it was
//! tenant, start, channel, first conversion), so counting a cohort by
//! dates, channels and converted-or-not reads no conversation row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let sql = match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                "CREATE INDEX message_searchable_created ON message (created_at) \
                 WHERE role <> 'TOOL'"
            }
            _ => "CREATE INDEX search_watermark_started ON search_watermark (started_at, block)",
        };
        db.execute_unprepared(sql).await?;
        for sql in [
            "DROP INDEX conversation_stats",
            "CREATE INDEX conversation_stats ON conversation \
             (tenant_id, started_at, channel, first_converted_at, id)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let sql = match db.get_database_backend() {
            DatabaseBackend::Postgres => "DROP INDEX message_searchable_created",
            _ => "DROP INDEX search_watermark_started",
        };
        db.execute_unprepared(sql).await?;
        for sql in [
            "DROP INDEX conversation_stats",
            "CREATE INDEX conversation_stats ON conversation \
             (tenant_id, started_at, channel, first_converted_at)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
