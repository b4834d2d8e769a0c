//! Keeping the stats rollups exact: every write that changes what the stats
//! count adds to the rollups in its own transaction ([`crate::domain::rollup`]
//! says what is kept).

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, Value};
use uuid::Uuid;

use super::statement;
use crate::domain::rollup::{Metric, Span};
use crate::error::AppError;

/// What one write adds to one tenant's counters on one channel.
pub(crate) struct Counted {
    tenant_id: Uuid,
    channel: String,
    /// (span, period start, metric, key) → how much to add.
    rows: BTreeMap<(Span, i64, Metric, String), i64>,
}

impl Counted {
    pub fn new(tenant_id: Uuid, channel: &str) -> Self {
        Self {
            tenant_id,
            channel: channel.to_owned(),
            rows: BTreeMap::new(),
        }
    }

    /// Counts one more `metric` (of `key`) in the day and the month of `at`.
    pub fn add(&mut self, at: i64, metric: Metric, key: &str) {
        for span in Span::ALL {
            *self
                .rows
                .entry((span, span.start_of(at), metric, key.to_owned()))
                .or_default() += 1;
        }
    }

    /// Adds the counts inside the caller's transaction (or as one
    /// statement). Rows are upserted in key order, so concurrent writers on
    /// PostgreSQL take their row locks in the same order.
    pub async fn save<C: ConnectionTrait>(&self, db: &C) -> Result<(), AppError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut values: Vec<Value> = Vec::with_capacity(self.rows.len() * 7);
        let mut rows = Vec::with_capacity(self.rows.len());
        for ((span, period_start, metric, key), n) in &self.rows {
            rows.push("(?, ?, ?, ?, ?, ?, ?)");
            values.extend([
                self.tenant_id.into(),
                span.as_str().into(),
                (*period_start).into(),
                self.channel.clone().into(),
                metric.as_str().into(),
                key.clone().into(),
                (*n).into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO stats_rollup (tenant_id, span, period_start, channel, metric, key, n) \
             VALUES {} ON CONFLICT (tenant_id, span, period_start, channel, metric, key) \
             DO UPDATE SET n = stats_rollup.n + excluded.n",
            rows.join(", ")
        );
        db.execute_raw(statement(db.get_database_backend(), &sql, values))
            .await?;
        Ok(())
    }
}

/// The upsert counting one conversation that first converted `delay` µs
/// after it started, in the day and month of `started_at`, as
/// `INSERT … SELECT … FROM (VALUES …) p{from} WHERE true …`: `from` adds
/// tables (on PostgreSQL, the CTEs that decide whether it counts). Its
/// values go to `values`.
pub(crate) fn delay_upsert(
    tenant_id: Uuid,
    channel: &str,
    started_at: i64,
    delay: i64,
    from: &str,
    values: &mut Vec<Value>,
) -> String {
    values.extend([tenant_id.into(), channel.to_owned().into(), delay.into()]);
    for span in Span::ALL {
        values.extend([span.as_str().into(), span.start_of(started_at).into()]);
    }
    // `WHERE true` tells SQLite that ON CONFLICT is the upsert, not a join.
    format!(
        "INSERT INTO delay_rollup (tenant_id, span, period_start, channel, bucket, n) \
         SELECT ?, p.column1, p.column2, ?, \
         (SELECT b.bucket FROM delay_bucket b WHERE b.lower_micros <= ? \
          ORDER BY b.lower_micros DESC LIMIT 1), 1 \
         FROM (VALUES (CAST(? AS TEXT), CAST(? AS BIGINT)), (?, ?)) p{from} WHERE true \
         ON CONFLICT (tenant_id, span, period_start, channel, bucket) \
         DO UPDATE SET n = delay_rollup.n + excluded.n"
    )
}

/// Counts one first conversion into the histogram, inside the caller's
/// transaction.
pub(crate) async fn save_delay<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    channel: &str,
    started_at: i64,
    delay: i64,
) -> Result<(), AppError> {
    let mut values = Vec::new();
    let sql = delay_upsert(tenant_id, channel, started_at, delay, "", &mut values);
    let backend: DatabaseBackend = db.get_database_backend();
    db.execute_raw(statement(backend, &sql, values)).await?;
    Ok(())
}

impl Counted {
    /// PostgreSQL: the counts as rows `SELECT span, period_start, metric,
    /// key, n` for [`upsert_selected`]; their values go to `values`.
    pub fn selected(&self, values: &mut Vec<Value>) -> Vec<String> {
        let mut selects = Vec::with_capacity(self.rows.len());
        for ((span, period_start, metric, key), n) in &self.rows {
            selects.push(
                "SELECT CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), \
                 CAST(? AS BIGINT)"
                    .to_owned(),
            );
            values.extend([
                span.as_str().into(),
                (*period_start).into(),
                metric.as_str().into(),
                key.clone().into(),
                (*n).into(),
            ]);
        }
        selects
    }
}

/// The key of counts made per row of a CTE.
pub(crate) enum RowKey<'a> {
    /// A column of the CTE.
    Column(&'a str),
    Text(&'a str),
}

/// PostgreSQL: one more `metric` in the day and the month of `at` for each
/// row of `cte`.
pub(crate) fn selected_per_row(
    cte: &str,
    at: i64,
    metric: Metric,
    key: RowKey,
    values: &mut Vec<Value>,
) -> Vec<String> {
    Span::ALL
        .into_iter()
        .map(|span| {
            values.extend([
                span.as_str().into(),
                span.start_of(at).into(),
                metric.as_str().into(),
            ]);
            let key = match key {
                RowKey::Column(column) => column,
                RowKey::Text(text) => {
                    values.push(text.to_owned().into());
                    "?"
                }
            };
            format!("SELECT ?, ?, ?, {key}, 1 FROM {cte}")
        })
        .collect()
}

/// PostgreSQL: the upsert of the counter rows `selects` (see
/// [`Counted::selected`], [`selected_per_row`]), whose values are
/// `selected_values`, joined with `from` (CTEs that must run first).
/// Summed per row and written in key order.
pub(crate) fn upsert_selected(
    tenant_id: Uuid,
    channel: &str,
    selects: &[String],
    selected_values: Vec<Value>,
    from: &str,
    values: &mut Vec<Value>,
) -> String {
    values.extend([tenant_id.into(), channel.to_owned().into()]);
    values.extend(selected_values);
    format!(
        "INSERT INTO stats_rollup (tenant_id, span, period_start, channel, metric, key, n) \
         SELECT ?, d.span, d.period_start, ?, d.metric, d.key, SUM(d.n) \
         FROM ({}) d (span, period_start, metric, key, n){from} \
         GROUP BY d.span, d.period_start, d.metric, d.key \
         ORDER BY d.span, d.period_start, d.metric, d.key \
         ON CONFLICT (tenant_id, span, period_start, channel, metric, key) \
         DO UPDATE SET n = stats_rollup.n + excluded.n",
        selects.join(" UNION ALL ")
    )
}
