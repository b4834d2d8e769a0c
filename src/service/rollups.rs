//! Keeping the stats rollups exact: every write that changes what the stats
//! count adds to the rollups in its own transaction ([`crate::domain::rollup`]
//! says what is kept).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, DatabaseBackend, Value};
use uuid::Uuid;

use super::statement;
use crate::domain::rollup::{Metric, Span, label_counterpart};
use crate::error::AppError;

/// PostgreSQL keeps each counter in up to this many rows (`shard`), and
/// each write adds to the next one in turn: an updated row stays locked
/// until its transaction commits, so with one row per counter every
/// recording of a tenant waited for the one before it to commit. Stats add
/// the rows up.
const SHARDS: u64 = 16;

static NEXT_SHARD: AtomicU64 = AtomicU64::new(0);

/// The row of each counter that the next write adds to. SQLite writes one
/// transaction at a time, so it keeps one row (shard 0).
fn next_shard(backend: DatabaseBackend) -> i64 {
    match backend {
        DatabaseBackend::Postgres => (NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS) as i64,
        _ => 0,
    }
}

/// The unique key an upsert names: on SQLite `shard` is not part of it
/// (always 0 there, and its primary key was never rebuilt).
fn rollup_key(backend: DatabaseBackend, columns: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("{columns}, shard"),
        _ => columns.to_owned(),
    }
}

const STATS_KEY: &str = "tenant_id, span, period_start, channel, metric, key";
const DELAY_KEY: &str = "tenant_id, span, period_start, channel, bucket";

/// What one write adds to one tenant's counters on one channel.
pub(crate) struct Counted {
    tenant_id: Uuid,
    channel: String,
    /// (span, period start, metric, key) → how much to add.
    rows: BTreeMap<(Span, i64, Metric, String), i64>,
    /// The conversation's labels as `key=value`: what it counts for again
    /// (see [`label_counterpart`]).
    labels: Vec<String>,
}

impl Counted {
    pub fn new(tenant_id: Uuid, channel: &str) -> Self {
        Self {
            tenant_id,
            channel: channel.to_owned(),
            rows: BTreeMap::new(),
            labels: Vec::new(),
        }
    }

    /// Counts for the conversation's labels (`key=value` pairs) too.
    pub fn with_labels(mut self, labels: impl IntoIterator<Item = String>) -> Self {
        self.labels = labels.into_iter().collect();
        self
    }

    /// Counts one more `metric` (of `key`) in the day and the month of `at`.
    pub fn add(&mut self, at: i64, metric: Metric, key: &str) {
        self.add_n(at, metric, key, 1);
    }

    /// Adds `n` (negative to take back) to `metric` (of `key`) in the day
    /// and the month of `at`.
    pub fn add_n(&mut self, at: i64, metric: Metric, key: &str, n: i64) {
        let labelled = self
            .labels
            .iter()
            .filter_map(|pair| label_counterpart(metric, key, pair));
        let counts: Vec<(Metric, String)> = std::iter::once((metric, key.to_owned()))
            .chain(labelled)
            .collect();
        for (metric, key) in counts {
            for span in Span::ALL {
                *self
                    .rows
                    .entry((span, span.start_of(at), metric, key.clone()))
                    .or_default() += n;
            }
        }
    }

    /// Adds the counts inside the caller's transaction (or as one
    /// statement). Rows are upserted in key order, so concurrent writers on
    /// PostgreSQL take their row locks in the same order.
    pub async fn save<C: ConnectionTrait>(&self, db: &C) -> Result<(), AppError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let backend = db.get_database_backend();
        let shard = next_shard(backend);
        let mut values: Vec<Value> = Vec::with_capacity(self.rows.len() * 8);
        let mut rows = Vec::with_capacity(self.rows.len());
        for ((span, period_start, metric, key), n) in &self.rows {
            rows.push("(?, ?, ?, ?, ?, ?, ?, ?)");
            values.extend([
                self.tenant_id.into(),
                span.as_str().into(),
                (*period_start).into(),
                self.channel.clone().into(),
                metric.as_str().into(),
                key.clone().into(),
                (*n).into(),
                shard.into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO stats_rollup ({STATS_KEY}, n, shard) \
             VALUES {} ON CONFLICT ({}) \
             DO UPDATE SET n = stats_rollup.n + excluded.n",
            rows.join(", "),
            rollup_key(backend, STATS_KEY),
        );
        db.execute_raw(statement(backend, &sql, values)).await?;
        Ok(())
    }
}

/// The upsert counting `n` (1, or -1 to take it back) conversations that
/// first converted `delay` µs after they started, in the day and month of
/// `started_at`, as
/// `INSERT … SELECT … FROM (VALUES …) p{from} WHERE true …`: `from` adds
/// tables (on PostgreSQL, the CTEs that decide whether it counts). Its
/// values go to `values`.
pub(crate) fn delay_upsert(
    backend: DatabaseBackend,
    tenant_id: Uuid,
    channel: &str,
    started_at: i64,
    (delay, n): (i64, i64),
    from: &str,
    values: &mut Vec<Value>,
) -> String {
    values.extend([tenant_id.into(), channel.to_owned().into(), delay.into()]);
    values.extend([n.into(), next_shard(backend).into()]);
    for span in Span::ALL {
        values.extend([span.as_str().into(), span.start_of(started_at).into()]);
    }
    // `WHERE true` tells SQLite that ON CONFLICT is the upsert, not a join.
    format!(
        "INSERT INTO delay_rollup ({DELAY_KEY}, n, shard) \
         SELECT ?, p.column1, p.column2, ?, \
         (SELECT b.bucket FROM delay_bucket b WHERE b.lower_micros <= ? \
          ORDER BY b.lower_micros DESC LIMIT 1), CAST(? AS BIGINT), ? \
         FROM (VALUES (CAST(? AS TEXT), CAST(? AS BIGINT)), (?, ?)) p{from} WHERE true \
         ON CONFLICT ({}) DO UPDATE SET n = delay_rollup.n + excluded.n",
        rollup_key(backend, DELAY_KEY)
    )
}

/// Counts `n` first conversions (-1 takes one back) into the histogram,
/// inside the caller's transaction.
pub(crate) async fn save_delay<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    channel: &str,
    started_at: i64,
    delay: (i64, i64),
) -> Result<(), AppError> {
    let mut values = Vec::new();
    let backend: DatabaseBackend = db.get_database_backend();
    let sql = delay_upsert(
        backend,
        tenant_id,
        channel,
        started_at,
        delay,
        "",
        &mut values,
    );
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
    let shard = next_shard(DatabaseBackend::Postgres);
    values.extend([tenant_id.into(), channel.to_owned().into(), shard.into()]);
    values.extend(selected_values);
    format!(
        "INSERT INTO stats_rollup ({STATS_KEY}, n, shard) \
         SELECT ?, d.span, d.period_start, ?, d.metric, d.key, SUM(d.n), ? \
         FROM ({}) d (span, period_start, metric, key, n){from} \
         GROUP BY d.span, d.period_start, d.metric, d.key \
         ORDER BY d.span, d.period_start, d.metric, d.key \
         ON CONFLICT ({STATS_KEY}, shard) DO UPDATE SET n = stats_rollup.n + excluded.n",
        selects.join(" UNION ALL ")
    )
}
