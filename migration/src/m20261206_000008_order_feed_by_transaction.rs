//! The feed without a per-tenant lock on PostgreSQL.
//!
//! Until now every recording took its feed number from its tenant's row,
//! so a tenant's recordings queued on that row for the whole write. Now
//! each row keeps the id of the transaction that wrote it (`feed_xid`) and
//! takes its number from a sequence shared by all tenants; the feed is
//! ordered by (`feed_xid`, `feed_seq`), and readers hand out a row only once
//! every transaction with a smaller id has ended, so a row that commits
//! late can never land behind a cursor already handed out.
//!
//! `feed_clock.xid_offset` is added to transaction ids: a database restored
//! into a new cluster starts its transaction ids again from a small
//! number, and the server raises the offset at startup so that new rows
//! still come after every stored one.
//!
//! Existing rows keep `feed_xid = 0`: they stay in their order, before
//! every new row, and cursors handed out before still name them. SQLite
//! writes one transaction at a time and keeps numbering rows from the
//! tenant's counter, with `feed_xid = 0`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversion {
    Table,
    TenantId,
    FeedXid,
    FeedSeq,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(
                        ColumnDef::new(Conversion::FeedXid)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("conversion_feed_order")
                    .table(Conversion::Table)
                    .col(Conversion::TenantId)
                    .col(Conversion::FeedXid)
                    .col(Conversion::FeedSeq)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if db.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared(
                "CREATE SEQUENCE conversion_feed_seq; \
                 SELECT setval('conversion_feed_seq', \
                   COALESCE((SELECT MAX(feed_seq) FROM conversion), 0) + 1, false); \
                 CREATE TABLE feed_clock (id INTEGER PRIMARY KEY, xid_offset BIGINT NOT NULL); \
                 INSERT INTO feed_clock (id, xid_offset) VALUES (1, 0)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DatabaseBackend::Postgres {
            // Rows written since carry numbers from the shared sequence;
            // each tenant's counter resumes after its highest.
            db.execute_unprepared(
                "UPDATE tenant t SET conversion_seq = GREATEST(t.conversion_seq, \
                   (SELECT COALESCE(MAX(c.feed_seq), 0) FROM conversion c WHERE c.tenant_id = t.id)); \
                 DROP TABLE feed_clock; DROP SEQUENCE conversion_feed_seq",
            )
            .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("conversion_feed_order")
                    .table(Conversion::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .drop_column(Conversion::FeedXid)
                    .to_owned(),
            )
            .await
    }
}

/// PostgreSQL: sets the feed's sequence past every stored feed number and
/// raises the transaction-id offset past every stored transaction id, so
/// that rows written from now on come after all of them: after a bulk
/// load that wrote feed numbers itself, and at every startup (a database
/// restored into a new cluster starts its transaction ids again).
/// Does nothing on SQLite. The offset only rises when stored ids are ahead
/// of the cluster's, that is before the first recording on a new cluster,
/// and servers run this before they serve: it never rises under an open
/// recording, which would lift readers' horizon past it.
pub async fn resync_feed<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    // Per tenant, each from its index's end: a startup does not scan the table.
    db.execute_unprepared(
        "WITH newest AS (SELECT \
           (SELECT feed_seq FROM conversion c WHERE c.tenant_id = t.id \
            ORDER BY feed_seq DESC LIMIT 1) AS seq, \
           (SELECT feed_xid FROM conversion c WHERE c.tenant_id = t.id \
            ORDER BY feed_xid DESC, feed_seq DESC LIMIT 1) AS xid FROM tenant t), \
         moved AS (SELECT setval('conversion_feed_seq', GREATEST( \
           (SELECT last_value FROM conversion_feed_seq), \
           (SELECT COALESCE(MAX(seq), 1) FROM newest)))) \
         UPDATE feed_clock SET xid_offset = GREATEST(xid_offset, \
           (SELECT COALESCE(MAX(xid), 0) FROM newest) \
           - pg_current_xact_id()::text::bigint + 1) \
         WHERE id = 1 AND EXISTS (SELECT 1 FROM moved)",
    )
    .await?;
    Ok(())
}
