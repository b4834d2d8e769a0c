//! Stats that reconcile with the badges.
//!
//! - `stats_rollup` gains the metric `source` (key `LINK`, `DIRECT` or
//!   `CONFIRMATION`): attributed active conversions by how they reached
//!   convtrack, by their conversation's start. With `unattributed`, every
//!   conversion counts once.
//! - A link that converted counts as followed even when no follow came
//!   through the redirect (the destination was opened directly): its
//!   `first_followed_at` becomes its first conversion's time, and the
//!   funnel's `followed` counters take it in, so no step is larger than the
//!   one before it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::m20261207_000012_count_revenue_and_retractions::periods;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        count_sources(db).await?;
        let backend = db.get_database_backend();
        let conflict = match backend {
            DatabaseBackend::Postgres => {
                "tenant_id, span, period_start, channel, metric, key, shard"
            }
            _ => "tenant_id, span, period_start, channel, metric, key",
        };
        for (span, at) in periods(backend, "c.started_at") {
            // `WHERE true` tells SQLite that ON CONFLICT is the upsert.
            db.execute_unprepared(&format!(
                "INSERT INTO stats_rollup (tenant_id, span, period_start, channel, metric, key, n) \
                 SELECT l.tenant_id, '{span}', {at}, c.channel, 'followed', l.action, COUNT(*) \
                 FROM cta_link l JOIN conversation c ON c.id = l.conversation_id \
                 WHERE true AND {UNFOLLOWED} GROUP BY 1, 2, 3, 4, 5, 6 \
                 ON CONFLICT ({conflict}) DO UPDATE SET n = stats_rollup.n + excluded.n"
            ))
            .await?;
        }
        db.execute_unprepared(&format!(
            "UPDATE cta_link SET first_followed_at = first_converted_at WHERE {}",
            UNFOLLOWED.replace("l.", "")
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The links marked followed stay so: nothing tells them from
        // links followed through the redirect at that moment.
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM stats_rollup WHERE metric = 'source'")
            .await?;
        Ok(())
    }
}

/// Links that converted without a follow being counted.
const UNFOLLOWED: &str = "l.first_converted_at IS NOT NULL AND l.first_followed_at IS NULL";

/// Counts the stored attributed active conversions into the `source`
/// counters, which must not exist yet (also part of the bulk-load
/// backfill).
pub async fn count_sources<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for (span, at) in periods(backend, "v.conversation_started_at") {
        db.execute_raw(Statement::from_string(
            backend,
            format!(
                "INSERT INTO stats_rollup (tenant_id, span, period_start, channel, metric, key, n) \
                 SELECT v.tenant_id, '{span}', {at}, v.conversation_channel, 'source', v.source, \
                 COUNT(*) FROM conversion v \
                 WHERE v.attributed AND v.status = 'ACTIVE' AND v.conversation_id IS NOT NULL \
                 GROUP BY 1, 2, 3, 4, 5, 6"
            ),
        ))
        .await?;
    }
    Ok(())
}
