//! Stats counters spread over several rows on PostgreSQL.
//!
//! Every recording of a tenant adds to the same few counter rows (today's
//! and this month's count of its kind), and PostgreSQL holds an updated
//! row's lock until the transaction commits: concurrent recordings of a
//! tenant queued there, one commit after another. Each counter now has up
//! to as many rows as the server spreads writes over (`shard` is part of
//! the key), and stats add them up, as they already sum per period.
//!
//! SQLite writes one transaction at a time and gains nothing: its rows keep
//! `shard = 0` and its primary key stays as it was.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StatsRollup {
    Table,
    Shard,
}

#[derive(DeriveIden)]
enum DelayRollup {
    Table,
    Shard,
}

/// Each table with its key columns before `shard`.
const KEYS: [(&str, &str); 2] = [
    (
        "stats_rollup",
        "tenant_id, span, period_start, channel, metric, key",
    ),
    (
        "delay_rollup",
        "tenant_id, span, period_start, channel, bucket",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let shard = |table: DynIden, column: DynIden| {
            Table::alter()
                .table(table)
                .add_column(ColumnDef::new(column).small_integer().not_null().default(0))
                .to_owned()
        };
        manager
            .alter_table(shard(
                StatsRollup::Table.into_iden(),
                StatsRollup::Shard.into_iden(),
            ))
            .await?;
        manager
            .alter_table(shard(
                DelayRollup::Table.into_iden(),
                DelayRollup::Shard.into_iden(),
            ))
            .await?;
        let db = manager.get_connection();
        if db.get_database_backend() == DatabaseBackend::Postgres {
            for (table, key) in KEYS {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, \
                     ADD PRIMARY KEY ({key}, shard)"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DatabaseBackend::Postgres {
            // Folds each counter's rows into one (shard -1 while both exist).
            for (table, key) in KEYS {
                db.execute_unprepared(&format!(
                    "INSERT INTO {table} ({key}, n, shard) \
                     SELECT {key}, SUM(n), -1 FROM {table} GROUP BY {key}; \
                     DELETE FROM {table} WHERE shard <> -1; \
                     ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, ADD PRIMARY KEY ({key})"
                ))
                .await?;
            }
        }
        let drop = |table: DynIden, column: DynIden| {
            Table::alter().table(table).drop_column(column).to_owned()
        };
        manager
            .alter_table(drop(
                StatsRollup::Table.into_iden(),
                StatsRollup::Shard.into_iden(),
            ))
            .await?;
        manager
            .alter_table(drop(
                DelayRollup::Table.into_iden(),
                DelayRollup::Shard.into_iden(),
            ))
            .await
    }
}
