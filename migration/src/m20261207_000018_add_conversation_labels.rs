//! Labels on conversations (`key=value` per line, sorted by key; empty for
//! none). They live on the conversation's row so that a recording, which
//! reads the row, and a change of labels, which locks it, agree on which
//! labels an outcome counts for. Their counters are `stats_rollup` rows
//! with the `label_*` metrics, keyed by the pair.

use std::collections::BTreeMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::Uuid;
use sea_orm_migration::sea_orm::{ConnectionTrait, QueryResult, Statement, Value};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversation {
    Table,
    Labels,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .add_column(
                        ColumnDef::new(Conversation::Labels)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .drop_column(Conversation::Labels)
                    .to_owned(),
            )
            .await
    }
}

/// A grouped row's tenant, period start, channel and labels.
fn cohort(row: &QueryResult) -> Result<(Uuid, i64, String, String), DbErr> {
    Ok((
        row.try_get("", "tenant_id")?,
        row.try_get("", "period_start")?,
        row.try_get("", "channel")?,
        row.try_get("", "labels")?,
    ))
}

/// Counts the labels of stored conversations into the rollups' `label_*`
/// counters (which must not exist yet): part of the bulk-load backfill.
/// Conversations are read grouped by their whole set of labels, so the
/// rows read follow the distinct sets, not the conversations.
pub async fn count_labels<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let mut counts: BTreeMap<(Uuid, &'static str, i64, String, &'static str, String), i64> =
        BTreeMap::new();
    for (span, at) in
        crate::m20261207_000012_count_revenue_and_retractions::periods(backend, "c.started_at")
    {
        let sql = format!(
            "SELECT c.tenant_id, {at} AS period_start, c.channel, c.labels, \
             CAST(COUNT(*) AS BIGINT) AS n, CAST(COUNT(c.first_converted_at) AS BIGINT) AS converted \
             FROM conversation c WHERE c.labels <> '' GROUP BY 1, 2, 3, 4"
        );
        for row in db
            .query_all_raw(Statement::from_string(backend, sql))
            .await?
        {
            let (tenant, start, channel, labels) = cohort(&row)?;
            let n: i64 = row.try_get("", "n")?;
            let converted: i64 = row.try_get("", "converted")?;
            for pair in labels.lines() {
                let mut add = |metric, key: String, by| {
                    *counts
                        .entry((tenant, span, start, channel.clone(), metric, key))
                        .or_default() += by;
                };
                add("label_conversations", pair.to_owned(), n);
                add("label_converted", pair.to_owned(), converted);
            }
        }
        let sql = format!(
            "SELECT c.tenant_id, {at} AS period_start, c.channel, c.labels, v.currency, \
             CAST(SUM(v.value_minor) AS BIGINT) AS minor \
             FROM conversion v JOIN conversation c ON c.id = v.conversation_id \
             WHERE c.labels <> '' AND v.attributed AND v.status = 'ACTIVE' \
             AND v.value_minor IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
        );
        for row in db
            .query_all_raw(Statement::from_string(backend, sql))
            .await?
        {
            let (tenant, start, channel, labels) = cohort(&row)?;
            let currency: String = row.try_get("", "currency")?;
            let minor: i64 = row.try_get("", "minor")?;
            for pair in labels.lines() {
                let key = format!("{currency} {pair}");
                *counts
                    .entry((tenant, span, start, channel.clone(), "label_revenue", key))
                    .or_default() += minor;
            }
        }
    }
    let rows = counts
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|((tenant, span, start, channel, metric, key), n)| {
            vec![
                Value::from(tenant),
                span.into(),
                start.into(),
                channel.into(),
                metric.into(),
                key.into(),
                n.into(),
            ]
        })
        .collect();
    crate::m20261207_000023_count_by_label::insert_rows(
        db,
        "stats_rollup (tenant_id, span, period_start, channel, metric, key, n)",
        rows,
    )
    .await?;
    Ok(())
}
