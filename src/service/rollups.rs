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
const LABEL_KEY: &str = "tenant_id, label, span, period_start, channel, metric, key";
const LABEL_DELAY_KEY: &str = "tenant_id, label, span, period_start, channel, bucket";

/// (span, period start, metric, key) → how much to add.
type Counts = BTreeMap<(Span, i64, Metric, String), i64>;

/// What one write adds to one tenant's counters on one channel: the
/// overall rollups', and the same once more for each of the conversation's
/// labels (`label_rollup`).
pub(crate) struct Counted {
    tenant_id: Uuid,
    channel: String,
    rows: Counts,
    /// The conversation's labels as `key=value`: what it counts for again
    /// (see [`label_counterpart`]), and under which `labelled` is kept.
    labels: Vec<String>,
    /// What each of `labels` gains in `label_rollup`.
    labelled: Counts,
    /// Whether the overall rollups count too (not when a conversation's
    /// counts move between labels).
    overall: bool,
}

impl Counted {
    pub fn new(tenant_id: Uuid, channel: &str) -> Self {
        Self {
            tenant_id,
            channel: channel.to_owned(),
            rows: BTreeMap::new(),
            labels: Vec::new(),
            labelled: BTreeMap::new(),
            overall: true,
        }
    }

    /// Counts only under `labels`, in `label_rollup`: what a conversation
    /// takes to the labels it gains or from those it loses.
    pub fn per_label(tenant_id: Uuid, channel: &str, labels: Vec<String>) -> Self {
        Self {
            overall: false,
            ..Self::new(tenant_id, channel).with_labels(labels)
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
        if self.overall {
            for (metric, key) in counts {
                add_to(&mut self.rows, at, metric, &key, n);
            }
        }
        if !self.labels.is_empty() && !Metric::OF_LABELS.contains(&metric) {
            add_to(&mut self.labelled, at, metric, key, n);
        }
    }

    /// Adds `n` unattributed conversions of a conversation started at
    /// `started_at`: overall by when they were recorded, per label by the
    /// conversation's start (see the migration that counts by label).
    pub fn add_unattributed(&mut self, recorded_at: i64, started_at: i64, n: i64) {
        if self.overall {
            add_to(&mut self.rows, recorded_at, Metric::Unattributed, "", n);
        }
        if !self.labels.is_empty() {
            add_to(&mut self.labelled, started_at, Metric::Unattributed, "", n);
        }
    }

    /// Adds the counts inside the caller's transaction (or as one
    /// statement each). Rows are upserted in key order, so concurrent
    /// writers on PostgreSQL take their row locks in the same order.
    pub async fn save<C: ConnectionTrait>(&self, db: &C) -> Result<(), AppError> {
        let shard = next_shard(db.get_database_backend());
        if !self.rows.is_empty() {
            let rows = self.rows.iter().map(|(counter, n)| {
                let mut row = vec![self.tenant_id.into()];
                row.extend(self.columns(counter, *n, shard));
                row
            });
            upsert(db, ("stats_rollup", STATS_KEY), rows.collect()).await?;
        }
        if self.labelled.is_empty() {
            return Ok(());
        }
        let mut labels = self.labels.clone();
        labels.sort_unstable();
        let rows = labels.iter().flat_map(|label| {
            self.labelled.iter().map(move |(counter, n)| {
                let mut row = vec![self.tenant_id.into(), label.clone().into()];
                row.extend(self.columns(counter, *n, shard));
                row
            })
        });
        upsert(db, ("label_rollup", LABEL_KEY), rows.collect()).await
    }

    /// A counter's columns after the tenant (and label): span, period
    /// start, channel, metric, key, n, shard.
    fn columns(
        &self,
        (span, period_start, metric, key): &(Span, i64, Metric, String),
        n: i64,
        shard: i64,
    ) -> [Value; 7] {
        [
            span.as_str().into(),
            (*period_start).into(),
            self.channel.clone().into(),
            metric.as_str().into(),
            key.clone().into(),
            n.into(),
            shard.into(),
        ]
    }
}

/// Adds `rows` (each the values of `key`'s columns, then n and shard) to
/// `table`'s counters, as one statement.
async fn upsert<C: ConnectionTrait>(
    db: &C,
    (table, key): (&str, &str),
    rows: Vec<Vec<Value>>,
) -> Result<(), AppError> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = Vec::new();
    let mut tuples = Vec::new();
    for row in rows {
        tuples.push(format!("({})", vec!["?"; row.len()].join(", ")));
        values.extend(row);
    }
    let sql = format!(
        "INSERT INTO {table} ({key}, n, shard) VALUES {} ON CONFLICT ({}) \
         DO UPDATE SET n = {table}.n + excluded.n",
        tuples.join(", "),
        rollup_key(backend, key),
    );
    db.execute_raw(statement(backend, &sql, values)).await?;
    Ok(())
}

/// Adds `n` to `metric` (of `key`) in the day and the month of `at`.
fn add_to(counts: &mut Counts, at: i64, metric: Metric, key: &str, n: i64) {
    for span in Span::ALL {
        *counts
            .entry((span, span.start_of(at), metric, key.to_owned()))
            .or_default() += n;
    }
}

/// A conversation whose first conversion a delay upsert counts.
pub(crate) struct Delayed<'a> {
    pub tenant_id: Uuid,
    pub channel: &'a str,
    pub started_at: i64,
    /// Its labels as `key=value`: it counts under each of them again.
    pub labels: &'a [String],
}

/// The upserts counting `n` (1, or -1 to take it back) conversations that
/// first converted `delay` µs after they started, in the day and month of
/// `started_at`: overall, then (if it has labels) per label, each with its
/// values, as `INSERT … SELECT … FROM (VALUES …) p{from} WHERE true …`:
/// `from` adds tables (on PostgreSQL, the CTEs that decide whether it
/// counts).
pub(crate) fn delay_upserts(
    backend: DatabaseBackend,
    of: &Delayed,
    (delay, n): (i64, i64),
    from: &str,
) -> Vec<(String, Vec<Value>)> {
    let common = |values: &mut Vec<Value>| {
        values.extend([of.tenant_id.into(), of.channel.to_owned().into()]);
        values.extend([delay.into(), n.into(), next_shard(backend).into()]);
        for span in Span::ALL {
            values.extend([span.as_str().into(), span.start_of(of.started_at).into()]);
        }
    };
    const BUCKET: &str = "(SELECT b.bucket FROM delay_bucket b WHERE b.lower_micros <= ? \
         ORDER BY b.lower_micros DESC LIMIT 1), CAST(? AS BIGINT), ? \
         FROM (VALUES (CAST(? AS TEXT), CAST(? AS BIGINT)), (?, ?)) p";
    let mut values = Vec::new();
    common(&mut values);
    // `WHERE true` tells SQLite that ON CONFLICT is the upsert, not a join.
    let overall = format!(
        "INSERT INTO delay_rollup ({DELAY_KEY}, n, shard) \
         SELECT ?, p.column1, p.column2, ?, {BUCKET}{from} WHERE true \
         ON CONFLICT ({}) DO UPDATE SET n = delay_rollup.n + excluded.n",
        rollup_key(backend, DELAY_KEY)
    );
    let mut upserts = vec![(overall, values)];
    if !of.labels.is_empty() {
        let mut values = Vec::new();
        common(&mut values);
        let mut labels = of.labels.to_vec();
        labels.sort_unstable();
        let marks = vec!["(CAST(? AS TEXT))"; labels.len()].join(", ");
        values.extend(labels.into_iter().map(Value::from));
        let labelled = format!(
            "INSERT INTO label_delay_rollup ({LABEL_DELAY_KEY}, n, shard) \
             SELECT ?, lab.column1, p.column1, p.column2, ?, {BUCKET} \
             CROSS JOIN (VALUES {marks}) lab{from} WHERE true ORDER BY 2, 3 \
             ON CONFLICT ({}) DO UPDATE SET n = label_delay_rollup.n + excluded.n",
            rollup_key(backend, LABEL_DELAY_KEY)
        );
        upserts.push((labelled, values));
    }
    upserts
}

/// Counts `n` first conversions (-1 takes one back) into the histograms,
/// inside the caller's transaction.
pub(crate) async fn save_delay<C: ConnectionTrait>(
    db: &C,
    of: &Delayed<'_>,
    delay: (i64, i64),
) -> Result<(), AppError> {
    let backend: DatabaseBackend = db.get_database_backend();
    for (sql, values) in delay_upserts(backend, of, delay, "") {
        db.execute_raw(statement(backend, &sql, values)).await?;
    }
    Ok(())
}

impl Counted {
    /// PostgreSQL: the overall counts as rows `SELECT span, period_start,
    /// metric, key, n` for [`upsert_selected`]; their values go to
    /// `values`.
    pub fn selected(&self, values: &mut Vec<Value>) -> Vec<String> {
        selects_of(&self.rows, values)
    }

    /// PostgreSQL: the same of what each label gains, for
    /// [`upsert_labelled`].
    pub fn labelled_selected(&self, values: &mut Vec<Value>) -> Vec<String> {
        selects_of(&self.labelled, values)
    }
}

/// `counts` as rows `SELECT span, period_start, metric, key, n`.
fn selects_of(counts: &Counts, values: &mut Vec<Value>) -> Vec<String> {
    let mut selects = Vec::with_capacity(counts.len());
    for ((span, period_start, metric, key), n) in counts {
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

/// The key of counts made per row of a CTE.
#[derive(Clone, Copy)]
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
/// `selected_values`, joined with `from` (CTEs that must run first):
/// into the overall rollups, or with `labels` into `label_rollup` once for
/// each of them. Summed per row and written in key order.
pub(crate) fn upsert_selected(
    tenant_id: Uuid,
    (channel, labels): (&str, Option<&[String]>),
    selects: &[String],
    selected_values: Vec<Value>,
    from: &str,
    values: &mut Vec<Value>,
) -> String {
    let shard = next_shard(DatabaseBackend::Postgres);
    values.extend([tenant_id.into(), channel.to_owned().into(), shard.into()]);
    values.extend(selected_values);
    let selects = selects.join(" UNION ALL ");
    let Some(labels) = labels else {
        return format!(
            "INSERT INTO stats_rollup ({STATS_KEY}, n, shard) \
             SELECT ?, d.span, d.period_start, ?, d.metric, d.key, SUM(d.n), ? \
             FROM ({selects}) d (span, period_start, metric, key, n){from} \
             GROUP BY d.span, d.period_start, d.metric, d.key \
             ORDER BY d.span, d.period_start, d.metric, d.key \
             ON CONFLICT ({STATS_KEY}, shard) DO UPDATE SET n = stats_rollup.n + excluded.n"
        );
    };
    let mut labels = labels.to_vec();
    labels.sort_unstable();
    let marks = vec!["(CAST(? AS TEXT))"; labels.len()].join(", ");
    values.extend(labels.into_iter().map(Value::from));
    format!(
        "INSERT INTO label_rollup ({LABEL_KEY}, n, shard) \
         SELECT ?, lab.column1, d.span, d.period_start, ?, d.metric, d.key, SUM(d.n), ? \
         FROM ({selects}) d (span, period_start, metric, key, n) \
         CROSS JOIN (VALUES {marks}) lab{from} \
         GROUP BY lab.column1, d.span, d.period_start, d.metric, d.key \
         ORDER BY lab.column1, d.span, d.period_start, d.metric, d.key \
         ON CONFLICT ({LABEL_KEY}, shard) DO UPDATE SET n = label_rollup.n + excluded.n"
    )
}
