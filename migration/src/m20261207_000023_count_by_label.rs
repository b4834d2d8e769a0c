//! Stats for one label read like stats for a channel: every counter of the
//! rollups is kept once more per label a conversation has (`label_rollup`,
//! `label_delay_rollup`, keyed first by the `key=value` pair), so the
//! header for "prompt=v7" over any range reads a few rows per period
//! instead of half the conversations.
//!
//! Everything there counts by the conversation's start, unattributed
//! conversions included (the overall rollups count those by when they were
//! recorded, with or without a conversation): what a label filter selects
//! is conversations. A change of labels moves a conversation's counters
//! from the pairs it lost to those it gained.
//!
//! Existing rows are counted in by [`count_by_label`], which the bulk-load
//! backfill runs too.

use std::collections::BTreeMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::Uuid;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};

use crate::m20261207_000012_count_revenue_and_retractions::periods;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LabelRollup {
    Table,
    TenantId,
    Label,
    Span,
    PeriodStart,
    Channel,
    Metric,
    Key,
    N,
    Shard,
}

#[derive(DeriveIden)]
enum LabelDelayRollup {
    Table,
    TenantId,
    Label,
    Span,
    PeriodStart,
    Channel,
    Bucket,
    N,
    Shard,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // As the overall rollups: PostgreSQL spreads each counter over
        // shards (part of the key); SQLite keeps shard 0.
        let sharded = manager.get_database_backend() == DatabaseBackend::Postgres;
        let mut key = Index::create();
        key.col(LabelRollup::TenantId)
            .col(LabelRollup::Label)
            .col(LabelRollup::Span)
            .col(LabelRollup::PeriodStart)
            .col(LabelRollup::Channel)
            .col(LabelRollup::Metric)
            .col(LabelRollup::Key);
        if sharded {
            key.col(LabelRollup::Shard);
        }
        manager
            .create_table(
                Table::create()
                    .table(LabelRollup::Table)
                    .col(ColumnDef::new(LabelRollup::TenantId).uuid().not_null())
                    .col(ColumnDef::new(LabelRollup::Label).string().not_null())
                    .col(ColumnDef::new(LabelRollup::Span).string().not_null())
                    .col(
                        ColumnDef::new(LabelRollup::PeriodStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LabelRollup::Channel).string().not_null())
                    .col(ColumnDef::new(LabelRollup::Metric).string().not_null())
                    .col(ColumnDef::new(LabelRollup::Key).string().not_null())
                    .col(ColumnDef::new(LabelRollup::N).big_integer().not_null())
                    .col(
                        ColumnDef::new(LabelRollup::Shard)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .primary_key(&mut key)
                    .to_owned(),
            )
            .await?;
        let mut key = Index::create();
        key.col(LabelDelayRollup::TenantId)
            .col(LabelDelayRollup::Label)
            .col(LabelDelayRollup::Span)
            .col(LabelDelayRollup::PeriodStart)
            .col(LabelDelayRollup::Channel)
            .col(LabelDelayRollup::Bucket);
        if sharded {
            key.col(LabelDelayRollup::Shard);
        }
        manager
            .create_table(
                Table::create()
                    .table(LabelDelayRollup::Table)
                    .col(ColumnDef::new(LabelDelayRollup::TenantId).uuid().not_null())
                    .col(ColumnDef::new(LabelDelayRollup::Label).string().not_null())
                    .col(ColumnDef::new(LabelDelayRollup::Span).string().not_null())
                    .col(
                        ColumnDef::new(LabelDelayRollup::PeriodStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LabelDelayRollup::Channel)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LabelDelayRollup::Bucket)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LabelDelayRollup::N).big_integer().not_null())
                    .col(
                        ColumnDef::new(LabelDelayRollup::Shard)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .primary_key(&mut key)
                    .to_owned(),
            )
            .await?;
        count_by_label(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LabelDelayRollup::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(LabelRollup::Table).to_owned())
            .await
    }
}

/// Where one metric's counts come from, per conversation start: the key,
/// what is added up, the rows (with the conversation as `c`) and which.
type LabelledSource = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const CONVERSIONS: &str = "conversion v JOIN conversation c ON c.id = v.conversation_id";
const LINKS: &str = "cta_link l JOIN conversation c ON c.id = l.conversation_id";
const ATTRIBUTED: &str = "v.attributed AND v.status = 'ACTIVE'";
const VALUED: &str = "v.attributed AND v.status = 'ACTIVE' AND v.value_minor IS NOT NULL";

fn labelled_sources() -> [LabelledSource; 11] {
    [
        ("conversations", "''", "COUNT(*)", "conversation c", "1 = 1"),
        (
            "converted",
            "''",
            "COUNT(*)",
            "conversation c",
            "c.first_converted_at IS NOT NULL",
        ),
        ("kind", "v.kind", "COUNT(*)", CONVERSIONS, ATTRIBUTED),
        (
            "kind_conversations",
            "v.kind",
            "COUNT(DISTINCT v.conversation_id)",
            CONVERSIONS,
            ATTRIBUTED,
        ),
        ("source", "v.source", "COUNT(*)", CONVERSIONS, ATTRIBUTED),
        (
            "revenue",
            "v.kind || ' ' || v.currency",
            "SUM(v.value_minor)",
            CONVERSIONS,
            VALUED,
        ),
        (
            "revenue_conversations",
            "v.currency",
            "COUNT(DISTINCT v.conversation_id)",
            CONVERSIONS,
            VALUED,
        ),
        (
            "unattributed",
            "''",
            "COUNT(*)",
            CONVERSIONS,
            "NOT v.attributed AND v.status = 'ACTIVE'",
        ),
        ("issued", "l.action", "COUNT(*)", LINKS, "1 = 1"),
        (
            "followed",
            "l.action",
            "COUNT(*)",
            LINKS,
            "l.first_followed_at IS NOT NULL",
        ),
        (
            "link_converted",
            "l.action",
            "COUNT(*)",
            LINKS,
            "l.first_converted_at IS NOT NULL",
        ),
    ]
}

/// A counter of one label: tenant, pair, span, period start, channel,
/// metric (`delay` for the histogram) and key (the bucket for `delay`).
type LabelCounter = (
    Uuid,
    String,
    &'static str,
    i64,
    String,
    &'static str,
    String,
);

/// Counts the stored rows of labelled conversations into `label_rollup`
/// and `label_delay_rollup` (which must be empty). Rows are read grouped
/// by each conversation's whole set of labels, so what is read follows the
/// distinct sets, not the conversations.
pub async fn count_by_label<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let mut counts: BTreeMap<LabelCounter, i64> = BTreeMap::new();
    for (span, at) in periods(backend, "c.started_at") {
        let mut selects: Vec<(&'static str, String)> = labelled_sources()
            .into_iter()
            .map(|(metric, key, count, from, filter)| {
                let sql = format!(
                    "SELECT c.tenant_id, {at} AS period_start, c.channel, c.labels, \
                     CAST({key} AS TEXT) AS key, CAST({count} AS BIGINT) AS n \
                     FROM {from} WHERE c.labels <> '' AND {filter} GROUP BY 1, 2, 3, 4, 5"
                );
                (metric, sql)
            })
            .collect();
        selects.push((
            "delay",
            format!(
                "SELECT c.tenant_id, {at} AS period_start, c.channel, c.labels, \
                 CAST((SELECT b.bucket FROM delay_bucket b \
                  WHERE b.lower_micros <= c.first_converted_at - c.started_at \
                  ORDER BY b.lower_micros DESC LIMIT 1) AS TEXT) AS key, \
                 CAST(COUNT(*) AS BIGINT) AS n \
                 FROM conversation c WHERE c.labels <> '' \
                 AND c.first_converted_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
            ),
        ));
        for (metric, sql) in selects {
            for row in db
                .query_all_raw(Statement::from_string(backend, sql))
                .await?
            {
                let tenant: Uuid = row.try_get("", "tenant_id")?;
                let start: i64 = row.try_get("", "period_start")?;
                let channel: String = row.try_get("", "channel")?;
                let labels: String = row.try_get("", "labels")?;
                let key: String = row.try_get("", "key")?;
                let n: i64 = row.try_get("", "n")?;
                for pair in labels.lines() {
                    let counter = (
                        tenant,
                        pair.to_owned(),
                        span,
                        start,
                        channel.clone(),
                        metric,
                        key.clone(),
                    );
                    *counts.entry(counter).or_default() += n;
                }
            }
        }
    }
    let (delays, counters): (Vec<_>, Vec<_>) = counts
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .partition(|((_, _, _, _, _, metric, _), _)| *metric == "delay");
    let counters = counters
        .into_iter()
        .map(|((tenant, label, span, start, channel, metric, key), n)| {
            vec![
                Value::from(tenant),
                label.into(),
                span.into(),
                start.into(),
                channel.into(),
                metric.into(),
                key.into(),
                n.into(),
            ]
        })
        .collect();
    insert_rows(
        db,
        "label_rollup (tenant_id, label, span, period_start, channel, metric, key, n)",
        counters,
    )
    .await?;
    let mut histograms = Vec::with_capacity(delays.len());
    for ((tenant, label, span, start, channel, _, bucket), n) in delays {
        let bucket: i32 = bucket
            .parse()
            .map_err(|_| DbErr::Custom(format!("delay bucket {bucket:?}")))?;
        histograms.push(vec![
            Value::from(tenant),
            label.into(),
            span.into(),
            start.into(),
            channel.into(),
            bucket.into(),
            n.into(),
        ]);
    }
    insert_rows(
        db,
        "label_delay_rollup (tenant_id, label, span, period_start, channel, bucket, n)",
        histograms,
    )
    .await
}

/// `INSERT INTO {into} VALUES …` of `rows` (each one tuple's values), 500
/// rows to a statement.
pub(crate) async fn insert_rows<C: ConnectionTrait>(
    db: &C,
    into: &str,
    rows: Vec<Vec<Value>>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for batch in rows.chunks(500) {
        let mut values: Vec<Value> = Vec::new();
        let mut tuples = Vec::with_capacity(batch.len());
        for row in batch {
            let marks: Vec<String> = (1..=row.len())
                .map(|i| match backend {
                    DatabaseBackend::Postgres => format!("${}", values.len() + i),
                    _ => "?".to_owned(),
                })
                .collect();
            tuples.push(format!("({})", marks.join(", ")));
            values.extend(row.iter().cloned());
        }
        let sql = format!("INSERT INTO {into} VALUES {}", tuples.join(", "));
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}
