//! Revenue in the stats, and retractions that take an outcome back.
//!
//! - `stats_rollup` gains two metrics: `revenue` (key `KIND CURRENCY`, `n`
//!   in the currency's minor units: what the active attributed conversions
//!   of a kind are worth now) and `revenue_conversations` (key the
//!   currency: conversations with at least one of them);
//! - `conversation_currency`: which currencies each conversation earned in
//!   (it counts once per currency even when two recordings race);
//! - `conversation.retractions`: how many retractions changed the
//!   conversation. A recording on PostgreSQL reads it when it plans, and
//!   its one statement calls `convtrack_unchanged`, which reads it again
//!   under a key-share lock (waiting for a retraction under way) and
//!   refuses the statement (SQLSTATE 40001, planned and tried again) when
//!   a retraction committed in between: the plan's "is this the first?"
//!   was decided on what the retraction undid.
//!
//! [`backfill`] counts every stored row into the rollups, retractions and
//! revenue included; it replaces the earlier migration's for bulk loads.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversation {
    Table,
    Retractions,
}

#[derive(DeriveIden)]
enum ConversationCurrency {
    Table,
    ConversationId,
    Currency,
}

const UNCHANGED: &str = "CREATE FUNCTION convtrack_unchanged(conversation UUID, seen BIGINT) \
     RETURNS BOOLEAN LANGUAGE plpgsql AS $$ DECLARE now BIGINT; BEGIN \
     SELECT c.retractions INTO now FROM conversation c WHERE c.id = conversation FOR KEY SHARE; \
     IF now IS DISTINCT FROM seen THEN \
     RAISE EXCEPTION 'a retraction changed the conversation meanwhile' \
     USING ERRCODE = 'serialization_failure'; \
     END IF; RETURN TRUE; END $$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .add_column(
                        ColumnDef::new(Conversation::Retractions)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConversationCurrency::Table)
                    .col(
                        ColumnDef::new(ConversationCurrency::ConversationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversationCurrency::Currency)
                            .string_len(3)
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ConversationCurrency::ConversationId)
                            .col(ConversationCurrency::Currency),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if db.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared(UNCHANGED).await?;
        }
        // Values exist since the migration before the last; retractions
        // did not, so every stored conversion is active.
        count_revenue(db).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION convtrack_unchanged(UUID, BIGINT)")
                .await?;
        }
        db.execute_unprepared(
            "DELETE FROM stats_rollup WHERE metric IN ('revenue', 'revenue_conversations')",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(ConversationCurrency::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .drop_column(Conversation::Retractions)
                    .to_owned(),
            )
            .await
    }
}

/// Active attributed conversions with a value.
const VALUED: &str = "v.attributed AND v.status = 'ACTIVE' AND v.value_minor IS NOT NULL \
     AND v.conversation_id IS NOT NULL";

/// Counts the revenue of the stored rows (whose revenue rows must not
/// exist yet) and which currencies each conversation earned in.
async fn count_revenue<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let run = |sql: String| db.execute_raw(Statement::from_string(backend, sql));
    run(format!(
        "INSERT INTO conversation_currency (conversation_id, currency) \
         SELECT DISTINCT v.conversation_id, v.currency FROM conversion v WHERE {VALUED}"
    ))
    .await?;
    for (span, at) in periods(backend, "v.conversation_started_at") {
        run(format!(
            "INSERT INTO stats_rollup (tenant_id, span, period_start, channel, metric, key, n) \
             SELECT v.tenant_id, '{span}', {at}, v.conversation_channel, 'revenue', \
             v.kind || ' ' || v.currency, SUM(v.value_minor) \
             FROM conversion v WHERE {VALUED} GROUP BY 1, 2, 3, 4, 5, 6"
        ))
        .await?;
        run(format!(
            "INSERT INTO stats_rollup (tenant_id, span, period_start, channel, metric, key, n) \
             SELECT v.tenant_id, '{span}', {at}, v.conversation_channel, \
             'revenue_conversations', v.currency, COUNT(DISTINCT v.conversation_id) \
             FROM conversion v WHERE {VALUED} GROUP BY 1, 2, 3, 4, 5, 6"
        ))
        .await?;
    }
    Ok(())
}

/// Each span with the SQL for the start of its period of `micros` (a
/// column of µs since the epoch).
pub(crate) fn periods(backend: DatabaseBackend, micros: &str) -> [(&'static str, String); 2] {
    let month = match backend {
        DatabaseBackend::Postgres => format!(
            "(CAST(EXTRACT(EPOCH FROM date_trunc('month', \
             to_timestamp({micros} / 1000000) AT TIME ZONE 'UTC')) AS BIGINT) * 1000000)"
        ),
        _ => format!(
            "(CAST(strftime('%s', {micros} / 1000000, 'unixepoch', 'start of month') \
             AS INTEGER) * 1000000)"
        ),
    };
    [
        ("day", format!("({micros} - {micros} % 86400000000)")),
        ("month", month),
    ]
}

/// Counts every stored row into the stats rollups, which must be empty
/// (with `conversation_kind` and `conversation_currency`), and sets when
/// each link first converted. Run after a bulk load that writes rows
/// directly. Retracted conversions count nowhere, as when they were
/// retracted.
pub async fn backfill<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let run = |sql: String| db.execute_raw(Statement::from_string(backend, sql));
    run("INSERT INTO conversation_kind (conversation_id, kind) \
         SELECT DISTINCT conversation_id, kind FROM conversion \
         WHERE attributed AND status = 'ACTIVE' AND conversation_id IS NOT NULL"
        .into())
    .await?;
    run("UPDATE cta_link SET first_converted_at = \
         (SELECT MIN(v.recorded_at) FROM conversion v \
          WHERE v.link_id = cta_link.id AND v.status = 'ACTIVE')"
        .into())
    .await?;
    // A link that converted was followed, redirect or not (see the
    // migration that counts conversion sources).
    run(
        "UPDATE cta_link SET first_followed_at = first_converted_at \
         WHERE first_followed_at IS NULL AND first_converted_at IS NOT NULL"
            .into(),
    )
    .await?;
    for (metric, key, source) in sources() {
        for (span, at) in periods(backend, source.at) {
            run(format!(
                "INSERT INTO stats_rollup (tenant_id, span, period_start, channel, metric, key, n) \
                 SELECT {tenant}, '{span}', {at}, {channel}, '{metric}', {key}, {count} \
                 FROM {from} WHERE {filter} GROUP BY 1, 2, 3, 4, 5, 6",
                tenant = source.tenant,
                channel = source.channel,
                count = source.count,
                from = source.from,
                filter = source.filter,
            ))
            .await?;
        }
    }
    for (span, at) in periods(backend, "c.started_at") {
        run(format!(
            "INSERT INTO delay_rollup (tenant_id, span, period_start, channel, bucket, n) \
             SELECT c.tenant_id, '{span}', {at}, c.channel, \
             (SELECT b.bucket FROM delay_bucket b \
              WHERE b.lower_micros <= c.first_converted_at - c.started_at \
              ORDER BY b.lower_micros DESC LIMIT 1), COUNT(*) \
             FROM conversation c WHERE c.first_converted_at IS NOT NULL \
             GROUP BY 1, 2, 3, 4, 5"
        ))
        .await?;
    }
    count_revenue(db).await?;
    crate::m20261207_000020_count_conversion_sources::count_sources(db).await?;
    crate::m20261207_000018_add_conversation_labels::count_labels(db).await?;
    crate::m20261207_000023_count_by_label::count_by_label(db).await
}

/// Where one metric's rows come from: `at` is the moment that picks the
/// period, `count` what is added up.
struct Source {
    tenant: &'static str,
    at: &'static str,
    channel: &'static str,
    count: &'static str,
    from: &'static str,
    filter: &'static str,
}

/// Every metric but revenue's. `conversation.first_converted_at` is kept
/// by the writes (a retraction moves it to the next active conversion),
/// so "converted" reads it as it is.
fn sources() -> [(&'static str, &'static str, Source); 8] {
    let conversations = |filter| Source {
        tenant: "c.tenant_id",
        at: "c.started_at",
        channel: "c.channel",
        count: "COUNT(*)",
        from: "conversation c",
        filter,
    };
    let attributed = |count| Source {
        tenant: "v.tenant_id",
        at: "v.conversation_started_at",
        channel: "v.conversation_channel",
        count,
        from: "conversion v",
        filter: "v.attributed AND v.status = 'ACTIVE' AND v.conversation_id IS NOT NULL",
    };
    let links = |filter| Source {
        tenant: "l.tenant_id",
        at: "c.started_at",
        channel: "c.channel",
        count: "COUNT(*)",
        from: "cta_link l JOIN conversation c ON c.id = l.conversation_id",
        filter,
    };
    [
        ("conversations", "''", conversations("1 = 1")),
        (
            "converted",
            "''",
            conversations("c.first_converted_at IS NOT NULL"),
        ),
        ("kind", "v.kind", attributed("COUNT(*)")),
        (
            "kind_conversations",
            "v.kind",
            attributed("COUNT(DISTINCT v.conversation_id)"),
        ),
        ("issued", "l.action", links("1 = 1")),
        (
            "followed",
            "l.action",
            links("l.first_followed_at IS NOT NULL"),
        ),
        (
            "link_converted",
            "l.action",
            links("l.first_converted_at IS NOT NULL"),
        ),
        (
            "unattributed",
            "''",
            Source {
                tenant: "v.tenant_id",
                at: "v.recorded_at",
                channel: "COALESCE(v.conversation_channel, '')",
                count: "COUNT(*)",
                from: "conversion v",
                filter: "NOT v.attributed AND v.status = 'ACTIVE'",
            },
        ),
    ]
}
