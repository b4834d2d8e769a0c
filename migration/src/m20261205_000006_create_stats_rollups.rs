//! Stats from rollups: counters per tenant × period (UTC day and UTC month)
//! × channel, kept exact by every write in its own transaction, so a stats
//! request reads a few rows per period instead of the conversations.
//!
//! - `stats_rollup`: counts by metric (`conversations`, `converted`, `kind`,
//!   `kind_conversations`, `issued`, `followed`, `link_converted`,
//!   `unattributed`) and key (the kind or the action, `''` for none);
//! - `delay_rollup`: how many conversations first converted after a delay
//!   in each `delay_bucket`, for the median;
//! - `delay_bucket`: the histogram's fixed buckets, stored with the data so
//!   that stored counts are always read with the bounds they were made with;
//! - `conversation_kind`: which kinds each conversation has converted to (a
//!   conversation counts once per kind even when two recordings race);
//! - `cta_link.first_converted_at`: when a link first led to a conversion.
//!
//! Existing rows are counted into the new tables by [`backfill`].

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StatsRollup {
    Table,
    TenantId,
    Span,
    PeriodStart,
    Channel,
    Metric,
    Key,
    N,
}

#[derive(DeriveIden)]
enum DelayRollup {
    Table,
    TenantId,
    Span,
    PeriodStart,
    Channel,
    Bucket,
    N,
}

#[derive(DeriveIden)]
enum DelayBucket {
    Table,
    Bucket,
    LowerMicros,
    RepresentativeMicros,
}

#[derive(DeriveIden)]
enum ConversationKind {
    Table,
    ConversationId,
    Kind,
}

#[derive(DeriveIden)]
enum CtaLink {
    Table,
    FirstConvertedAt,
}

/// Durations past this (about 317 years) share the last bucket.
const LONGEST_MICROS: i64 = 10_000_000_000_000_000;

/// The histogram's buckets as (lower bound, representative), in µs. Bucket
/// 0 holds zero and anything negative. Bucket `b ≥ 1` holds the integers
/// `L..U` with `U − 1 ≤ 1.04 L`; its representative `2 L (U−1) / (L + U − 1)`
/// is within `(U−1−L)/(U−1+L) ≤ 0.04/2.04 < 1.97%` of every value in it.
/// Below 25 µs each bucket is one integer, so exact.
pub fn delay_buckets() -> Vec<(i64, f64)> {
    let mut buckets = vec![(i64::MIN, 0.0)];
    let mut lower: i64 = 1;
    while lower <= LONGEST_MICROS {
        let next = lower + lower / 25 + 1;
        let (l, last) = (lower as f64, (next - 1) as f64);
        buckets.push((lower, 2.0 * l * last / (l + last)));
        lower = next;
    }
    buckets
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_tables(manager).await?;
        index_unattributed(manager).await?;
        fill_buckets(manager).await?;
        backfill(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX conversion_unattributed")
            .await?;
        let drop = |table| manager.drop_table(Table::drop().table(table).to_owned());
        drop(StatsRollup::Table.into_iden()).await?;
        drop(DelayRollup::Table.into_iden()).await?;
        drop(DelayBucket::Table.into_iden()).await?;
        drop(ConversationKind::Table.into_iden()).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(CtaLink::Table)
                    .drop_column(CtaLink::FirstConvertedAt)
                    .to_owned(),
            )
            .await
    }
}

async fn create_tables(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(StatsRollup::Table)
                .col(ColumnDef::new(StatsRollup::TenantId).uuid().not_null())
                .col(ColumnDef::new(StatsRollup::Span).string().not_null())
                .col(
                    ColumnDef::new(StatsRollup::PeriodStart)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(StatsRollup::Channel).string().not_null())
                .col(ColumnDef::new(StatsRollup::Metric).string().not_null())
                .col(ColumnDef::new(StatsRollup::Key).string().not_null())
                .col(ColumnDef::new(StatsRollup::N).big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(StatsRollup::TenantId)
                        .col(StatsRollup::Span)
                        .col(StatsRollup::PeriodStart)
                        .col(StatsRollup::Channel)
                        .col(StatsRollup::Metric)
                        .col(StatsRollup::Key),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table(DelayRollup::Table)
                .col(ColumnDef::new(DelayRollup::TenantId).uuid().not_null())
                .col(ColumnDef::new(DelayRollup::Span).string().not_null())
                .col(
                    ColumnDef::new(DelayRollup::PeriodStart)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(DelayRollup::Channel).string().not_null())
                .col(ColumnDef::new(DelayRollup::Bucket).integer().not_null())
                .col(ColumnDef::new(DelayRollup::N).big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(DelayRollup::TenantId)
                        .col(DelayRollup::Span)
                        .col(DelayRollup::PeriodStart)
                        .col(DelayRollup::Channel)
                        .col(DelayRollup::Bucket),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table(DelayBucket::Table)
                .col(
                    ColumnDef::new(DelayBucket::Bucket)
                        .integer()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(DelayBucket::LowerMicros)
                        .big_integer()
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(DelayBucket::RepresentativeMicros)
                        .double()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table(ConversationKind::Table)
                .col(
                    ColumnDef::new(ConversationKind::ConversationId)
                        .uuid()
                        .not_null(),
                )
                .col(ColumnDef::new(ConversationKind::Kind).string().not_null())
                .primary_key(
                    Index::create()
                        .col(ConversationKind::ConversationId)
                        .col(ConversationKind::Kind),
                )
                .to_owned(),
        )
        .await?;
    manager
        .alter_table(
            Table::alter()
                .table(CtaLink::Table)
                .add_column(
                    ColumnDef::new(CtaLink::FirstConvertedAt)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await
}

/// Unattributed conversions are counted by when they were recorded: the
/// parts of days at either end of a stats range read them through this.
async fn index_unattributed(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(
            "CREATE INDEX conversion_unattributed ON conversion (tenant_id, recorded_at) \
             WHERE NOT attributed",
        )
        .await?;
    Ok(())
}

async fn fill_buckets(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let buckets = delay_buckets();
    for (first, chunk) in (0..).step_by(200).zip(buckets.chunks(200)) {
        let mut insert = Query::insert()
            .into_table(DelayBucket::Table)
            .columns([
                DelayBucket::Bucket,
                DelayBucket::LowerMicros,
                DelayBucket::RepresentativeMicros,
            ])
            .to_owned();
        for (n, &(lower, representative)) in (first..).zip(chunk) {
            insert.values_panic([n.into(), lower.into(), representative.into()]);
        }
        manager.exec_stmt(insert).await?;
    }
    Ok(())
}

/// Counts every existing row into the rollups (which must be empty), the
/// kinds each conversation converted to, and when each link first
/// converted. Run by this migration; a bulk loader that writes rows
/// directly runs it after loading.
pub async fn backfill<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let run = |sql: String| db.execute_raw(Statement::from_string(backend, sql));
    run("INSERT INTO conversation_kind (conversation_id, kind) \
         SELECT DISTINCT conversation_id, kind FROM conversion \
         WHERE attributed AND conversation_id IS NOT NULL"
        .into())
    .await?;
    run("UPDATE cta_link SET first_converted_at = \
         (SELECT MIN(v.recorded_at) FROM conversion v WHERE v.link_id = cta_link.id)"
        .into())
    .await?;
    let spans: [(&str, PeriodOf); 2] = [("day", day_start), ("month", month_start)];
    for (span, period) in spans {
        for (metric, key, source) in counted_sources() {
            let at = period(backend, source.at);
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
        let at = period(backend, "c.started_at");
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
    Ok(())
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

fn counted_sources() -> [(&'static str, &'static str, Source); 8] {
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
        filter: "v.attributed AND v.conversation_id IS NOT NULL",
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
                filter: "NOT v.attributed",
            },
        ),
    ]
}

/// Writes the SQL for the start of a period of a µs column.
type PeriodOf = fn(DatabaseBackend, &str) -> String;

/// The start of the UTC day of `micros` (a column of µs since the epoch).
fn day_start(_: DatabaseBackend, micros: &str) -> String {
    format!("({micros} - {micros} % 86400000000)")
}

/// The start of the UTC month of `micros`, in µs.
fn month_start(backend: DatabaseBackend, micros: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => format!(
            "(CAST(EXTRACT(EPOCH FROM date_trunc('month', \
             to_timestamp({micros} / 1000000) AT TIME ZONE 'UTC')) AS BIGINT) * 1000000)"
        ),
        _ => format!(
            "(CAST(strftime('%s', {micros} / 1000000, 'unixepoch', 'start of month') \
             AS INTEGER) * 1000000)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_within_two_percent_of_its_buckets_representative() {
        let buckets = delay_buckets();
        assert!(buckets.len() < 1_000, "{} buckets", buckets.len());
        for pair in buckets[1..].windows(2) {
            let ((lower, representative), (next, _)) = (pair[0], pair[1]);
            for value in [lower, next - 1] {
                let error = (representative - value as f64).abs() / value as f64;
                assert!(error < 0.0197, "{value} in [{lower}, {next}): {error}");
            }
        }
        let (last, representative) = buckets[buckets.len() - 1];
        assert!(last <= LONGEST_MICROS && (representative - last as f64) / (last as f64) < 0.0197);
        assert_eq!(buckets[1], (1, 1.0));
        assert_eq!(buckets[24], (24, 24.0));
    }
}
