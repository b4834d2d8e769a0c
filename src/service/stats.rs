//! Conversion stats over a date range, read from the rollups (whole days
//! and months) and, for the parts of days at either end, from the rows.
//! The median comes from a histogram whose buckets are within 2% of every
//! value in them.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Value};

mod converted;
mod filtered;
mod labelled;
pub mod labels;
mod revenue;

pub use revenue::CurrencyRevenue;

use super::listing::ConversationFilter;
use super::{Caller, Services, statement};
use crate::domain::channel::Channel;
use crate::domain::clock::to_micros;
use crate::domain::conversion::{ConversionKind, ConversionSource};
use crate::domain::link::CtaAction;
use crate::domain::role::Operation;
use crate::domain::rollup::{self, Cover, Interval, Metric, Span};
use crate::error::{AppError, stored};
use filtered::StatsScope;

/// Which conversations the stats are about: those started in
/// `[from, to)`, on one of `channels` if given.
#[derive(Debug, Clone, Default)]
pub struct StatsRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub channels: Option<Vec<Channel>>,
}

impl StatsRange {
    fn channels(&self) -> Option<&[Channel]> {
        self.channels.as_deref()
    }
}

/// Attributed conversions that reached convtrack one way.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceCount {
    pub source: ConversionSource,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KindCount {
    pub kind: ConversionKind,
    /// Attributed conversions of this kind.
    pub count: i64,
    /// Conversations with at least one of them.
    pub conversations: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelCount {
    pub channel: Channel,
    pub conversations: i64,
    pub converted: i64,
}

/// Links of one call to action: session → link issued → followed → converted.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelStep {
    pub action: CtaAction,
    pub issued: i64,
    /// Links followed at least once.
    pub followed: i64,
    /// Links that led to at least one conversion.
    pub converted: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversionStats {
    pub conversations: i64,
    pub converted: i64,
    /// Every kind, zeros included, in the product's order.
    pub by_kind: Vec<KindCount>,
    /// Every channel in range (only the filtered one with a channel filter).
    pub by_channel: Vec<ChannelCount>,
    pub median_seconds_to_convert: Option<f64>,
    pub unattributed: i64,
    /// Every action, zeros included.
    pub funnel: Vec<FunnelStep>,
    /// Per currency earned in, by code.
    pub revenue: Vec<CurrencyRevenue>,
    /// Every source, zeros included; they add up to the kinds' counts.
    pub by_source: Vec<SourceCount>,
}

impl Services {
    /// The stats of the conversations started in `range` that pass
    /// `filter` (the list's). Dates and channels alone are answered by the
    /// rollups (whole days and months) and the rows of the partial days at
    /// either end, in one statement; converted-or-not by the rollups and a
    /// few rows (`converted`), one label by its own rollups (`labelled`);
    /// any other filter counts the matching conversations' rows.
    #[tracing::instrument(skip(self, caller, filter), fields(tenant = %caller.tenant_id))]
    pub async fn conversion_stats(
        &self,
        caller: &Caller,
        range: StatsRange,
        filter: &ConversationFilter,
    ) -> Result<ConversionStats, AppError> {
        caller.require(Operation::BrowseConversations, "read conversion stats")?;
        if let (Some(from), Some(to)) = (range.from, range.to)
            && from >= to
        {
            return Err(AppError::BadInput("from must be before to".into()));
        }
        let scope = StatsScope::new(range, filter)?;
        let backend = self.db.get_database_backend();
        let range_statement = |range: &StatsRange| {
            let cover = rollup::cover(range.from.map(to_micros), range.to.map(to_micros));
            let (sql, values) = stats_statement(caller.tenant_id, range.channels(), &cover);
            statement(backend, &sql, values)
        };
        let _slot = self
            .stats_slots
            .acquire()
            .await
            .map_err(|_| AppError::internal("the stats queue is closed"))?;
        let query = match &scope {
            StatsScope::Nothing => return Tally::of(Vec::new()),
            StatsScope::Range(range) => range_statement(range),
            StatsScope::Converted { range, converted } => {
                let all = Tally::of(self.db.query_all_raw(range_statement(range)).await?)?;
                let (sql, values) = converted::rows_statement(caller.tenant_id, range, *converted);
                let rows = self
                    .db
                    .query_all_raw(statement(backend, &sql, values))
                    .await?;
                return Ok(converted::narrowed(all, Tally::of(rows)?, *converted));
            }
            StatsScope::Labelled { range, label } => {
                return Tally::of(self.labelled_rows(caller, range, label).await?);
            }
            StatsScope::Filtered(filter) => {
                let floor = self.search_floor_of(filter).await?;
                filtered::stats_statement(backend, caller, filter, floor)?
            }
        };
        let rows = match scope {
            StatsScope::Filtered(_) => self.cohort_rows(query).await?,
            _ => self.db.query_all_raw(query).await?,
        };
        Tally::of(rows)
    }
}

/// One statement for the stats of `cover`, returning rows (channel, metric,
/// key, n, representative): counters, and for metric `delay` the
/// conversations whose first conversion came after about `representative`
/// µs.
fn stats_statement(
    tenant_id: uuid::Uuid,
    channel: Option<&[Channel]>,
    cover: &Cover,
) -> (String, Vec<Value>) {
    let mut parts = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let periods = whole_periods(cover);
    if !periods.is_empty() {
        for table in ["stats_rollup", "delay_rollup"] {
            let filter = rollup_filter(tenant_id, channel, &periods, &mut values);
            parts.push(if table == "stats_rollup" {
                // Label counters are byLabel's; they would count each
                // conversation again here.
                let filter = format!("{filter} AND r.metric NOT IN ({})", label_metrics());
                format!(
                    "SELECT r.channel, r.metric, r.key, CAST(SUM(r.n) AS BIGINT) AS n, \
                     CAST(NULL AS DOUBLE PRECISION) AS representative \
                     FROM stats_rollup r WHERE {filter} GROUP BY r.channel, r.metric, r.key"
                )
            } else {
                format!(
                    "SELECT '', 'delay', '', CAST(SUM(r.n) AS BIGINT), b.representative_micros \
                     FROM delay_rollup r JOIN delay_bucket b ON b.bucket = r.bucket \
                     WHERE {filter} GROUP BY b.bucket, b.representative_micros"
                )
            });
        }
    }
    for &edge in &cover.edges {
        parts.extend(edge_selects(tenant_id, channel, edge, &mut values));
    }
    if parts.is_empty() {
        // An empty range: still a statement, so the answer has its shape.
        parts.push(
            "SELECT '' AS channel, '' AS metric, '' AS key, CAST(0 AS BIGINT) AS n, \
             CAST(NULL AS DOUBLE PRECISION) AS representative WHERE 1 = 0"
                .into(),
        );
    }
    (parts.join(" UNION ALL "), values)
}

/// The whole months and days of `cover`, which the rollups answer.
pub(crate) fn whole_periods(cover: &Cover) -> Vec<(Span, Interval)> {
    let mut periods: Vec<(Span, Interval)> =
        cover.months.map(|m| (Span::Month, m)).into_iter().collect();
    periods.extend(cover.days.iter().map(|&d| (Span::Day, d)));
    periods
}

/// The condition on rollup rows `r` of the tenant (and channel) in any of
/// `periods`; its values go to `values`.
pub(crate) fn rollup_filter(
    tenant_id: uuid::Uuid,
    channels: Option<&[Channel]>,
    periods: &[(Span, Interval)],
    values: &mut Vec<Value>,
) -> String {
    let mut filter = "r.tenant_id = ?".to_owned();
    values.push(tenant_id.into());
    if let Some(channels) = channels {
        filter.push_str(&format!(" AND r.channel IN ({})", marks(channels, values)));
    }
    let any_period: Vec<&str> = periods
        .iter()
        .map(|&(span, (from, to))| {
            values.extend([span.as_str().into(), from.into(), to.into()]);
            "(r.span = ? AND r.period_start >= ? AND r.period_start < ?)"
        })
        .collect();
    format!("{filter} AND ({})", any_period.join(" OR "))
}

/// The condition on rows whose `column` (a start, `c.…` or `v.…`) falls
/// in `[from, to)`, of the tenant and, if given, on `channel` (in
/// `channel_column`); its values go to `values`. A plain range, so both
/// planners seek the (tenant, start) index of the row's table.
pub(crate) fn edge_filter(
    tenant_id: uuid::Uuid,
    channels: Option<&[Channel]>,
    (from, to): Interval,
    (column, channel_column): (&str, &str),
    values: &mut Vec<Value>,
) -> String {
    let alias = &column[..1];
    let mut filter = format!("{alias}.tenant_id = ?");
    values.push(tenant_id.into());
    if let Some(channels) = channels {
        filter.push_str(&format!(
            " AND {channel_column} IN ({})",
            marks(channels, values)
        ));
    }
    values.extend([from.into(), to.into()]);
    format!("{filter} AND {column} >= ? AND {column} < ?")
}

/// The same rows as the rollups', counted from the rows of conversations
/// (and their conversions and links) that started within `edge` (at most
/// two partial days). One set of selects per edge: a plain range lets both
/// planners seek the (tenant, start) indexes, which an OR of ranges inside
/// a join does not on SQLite.
fn edge_selects(
    tenant_id: uuid::Uuid,
    channel: Option<&[Channel]>,
    (from, to): Interval,
    values: &mut Vec<Value>,
) -> Vec<String> {
    // Conversions carry copies of their conversation's start and channel,
    // so the cohort needs no join there.
    let within = |column: &str, channel_column: &str, values: &mut Vec<Value>| {
        edge_filter(
            tenant_id,
            channel,
            (from, to),
            (column, channel_column),
            values,
        )
    };
    let counted = |select: &str, from: &str, filter: String, group: &str| {
        format!(
            "SELECT {select}, CAST(NULL AS DOUBLE PRECISION) FROM {from} WHERE {filter} GROUP BY {group}"
        )
    };
    let mut parts = Vec::new();
    let started = within("c.started_at", "c.channel", values);
    parts.push(counted(
        "c.channel, 'conversations', '', COUNT(*)",
        "conversation c",
        started,
        "c.channel",
    ));
    let started = within("c.started_at", "c.channel", values);
    parts.push(counted(
        "c.channel, 'converted', '', COUNT(*)",
        "conversation c",
        format!("{started} AND c.first_converted_at IS NOT NULL"),
        "c.channel",
    ));
    const ACTIVE: &str = "v.status = 'ACTIVE'";
    const VALUED: &str = "v.attributed AND v.status = 'ACTIVE' AND v.value_minor IS NOT NULL";
    for (metric, key, count, filter, group) in [
        ("kind", "v.kind", "COUNT(*)", "v.attributed", "v.kind"),
        (
            "kind_conversations",
            "v.kind",
            "COUNT(DISTINCT v.conversation_id)",
            "v.attributed",
            "v.kind",
        ),
        (
            "revenue",
            "v.kind || ' ' || v.currency",
            "CAST(SUM(v.value_minor) AS BIGINT)",
            VALUED,
            "v.kind, v.currency",
        ),
        (
            "revenue_conversations",
            "v.currency",
            "COUNT(DISTINCT v.conversation_id)",
            VALUED,
            "v.currency",
        ),
        ("source", "v.source", "COUNT(*)", "v.attributed", "v.source"),
    ] {
        let started = within(
            "v.conversation_started_at",
            "v.conversation_channel",
            values,
        );
        parts.push(counted(
            &format!("v.conversation_channel, '{metric}', {key}, {count}"),
            "conversion v",
            format!("{started} AND {filter} AND {ACTIVE}"),
            &format!("v.conversation_channel, {group}"),
        ));
    }
    let recorded = within("v.recorded_at", "v.conversation_channel", values);
    parts.push(counted(
        "COALESCE(v.conversation_channel, ''), 'unattributed', '', COUNT(*)",
        "conversion v",
        format!("{recorded} AND NOT v.attributed AND {ACTIVE}"),
        "v.conversation_channel",
    ));
    for (metric, filter) in [
        ("issued", "1 = 1"),
        ("followed", "l.first_followed_at IS NOT NULL"),
        ("link_converted", "l.first_converted_at IS NOT NULL"),
    ] {
        let started = within("c.started_at", "c.channel", values);
        parts.push(counted(
            &format!("c.channel, '{metric}', l.action, COUNT(*)"),
            "cta_link l JOIN conversation c ON c.id = l.conversation_id",
            format!("{started} AND {filter}"),
            "c.channel, l.action",
        ));
    }
    let started = within("c.started_at", "c.channel", values);
    parts.push(delay_select(&format!(
        "conversation c WHERE {started} AND c.first_converted_at IS NOT NULL"
    )));
    parts
}

/// The `delay_micros` rows of the converted conversations `c` that
/// `from_where` (a FROM clause and its condition) reads: how many converted
/// after each delay. [`Tally`] puts them in the histogram's buckets: a
/// bucket looked up per conversation in SQL was 43 of PostgreSQL's 240 ms
/// for a badge over all time.
fn delay_select(from_where: &str) -> String {
    format!(
        "SELECT '', 'delay_micros', '', COUNT(*), \
           CAST(c.first_converted_at - c.started_at AS DOUBLE PRECISION) \
         FROM {from_where} GROUP BY c.first_converted_at - c.started_at"
    )
}

/// The representative delay of the histogram bucket holding `micros`, as
/// the rollups count it.
fn bucket_representative(micros: f64) -> f64 {
    static BUCKETS: OnceLock<Vec<(i64, f64)>> = OnceLock::new();
    let buckets = BUCKETS.get_or_init(migration::delay_buckets);
    // Delays are whole µs, and a double holds them exactly below 285 years.
    let micros = micros as i64;
    let above = buckets.partition_point(|&(lower, _)| lower <= micros);
    buckets[above.saturating_sub(1)].1
}

/// The answer, added up from counter rows.
struct Tally {
    by_channel: Vec<ChannelCount>,
    by_kind: Vec<KindCount>,
    funnel: Vec<FunnelStep>,
    unattributed: i64,
    by_source: Vec<SourceCount>,
    /// (representative µs, conversations), one entry per row read.
    delays: Vec<(f64, i64)>,
    revenue: revenue::RevenueTally,
}

impl Tally {
    fn of(rows: Vec<QueryResult>) -> Result<ConversionStats, AppError> {
        let mut tally = Tally {
            by_channel: Vec::new(),
            by_kind: ConversionKind::ALL
                .into_iter()
                .map(|kind| KindCount {
                    kind,
                    count: 0,
                    conversations: 0,
                })
                .collect(),
            funnel: CtaAction::ALL
                .into_iter()
                .map(|action| FunnelStep {
                    action,
                    issued: 0,
                    followed: 0,
                    converted: 0,
                })
                .collect(),
            unattributed: 0,
            by_source: ConversionSource::ALL
                .into_iter()
                .map(|source| SourceCount { source, count: 0 })
                .collect(),
            delays: Vec::new(),
            revenue: revenue::RevenueTally::default(),
        };
        for row in rows {
            tally.add(&row)?;
        }
        tally.finish()
    }

    fn add(&mut self, row: &QueryResult) -> Result<(), AppError> {
        let metric: String = row.try_get_by_index(1)?;
        let key: String = row.try_get_by_index(2)?;
        let n: i64 = row.try_get_by_index(3)?;
        if metric == "delay" {
            let representative: f64 = row.try_get_by_index(4)?;
            self.delays.push((representative, n));
            return Ok(());
        }
        if metric == "delay_micros" {
            let micros: f64 = row.try_get_by_index(4)?;
            self.delays.push((bucket_representative(micros), n));
            return Ok(());
        }
        let metric = Metric::parse(&metric)
            .ok_or_else(|| AppError::internal(format!("stored stats metric {metric:?}")))?;
        match metric {
            Metric::Conversations | Metric::Converted => {
                let channel: Channel =
                    stored("stats_rollup.channel", &row.try_get_by_index::<String>(0)?)?;
                let at = match self.by_channel.iter().position(|c| c.channel == channel) {
                    Some(at) => at,
                    None => {
                        self.by_channel.push(ChannelCount {
                            channel,
                            conversations: 0,
                            converted: 0,
                        });
                        self.by_channel.len() - 1
                    }
                };
                let count = &mut self.by_channel[at];
                if metric == Metric::Conversations {
                    count.conversations += n;
                } else {
                    count.converted += n;
                }
            }
            Metric::Kind | Metric::KindConversations => {
                let kind: ConversionKind = stored("stats_rollup.key", &key)?;
                if let Some(count) = self.by_kind.iter_mut().find(|k| k.kind == kind) {
                    if metric == Metric::Kind {
                        count.count += n;
                    } else {
                        count.conversations += n;
                    }
                }
            }
            Metric::Issued | Metric::Followed | Metric::LinkConverted => {
                let action: CtaAction = stored("stats_rollup.key", &key)?;
                if let Some(step) = self.funnel.iter_mut().find(|f| f.action == action) {
                    match metric {
                        Metric::Issued => step.issued += n,
                        Metric::Followed => step.followed += n,
                        _ => step.converted += n,
                    }
                }
            }
            Metric::Unattributed => self.unattributed += n,
            Metric::Source => {
                let source: ConversionSource = stored("stats_rollup.key", &key)?;
                if let Some(count) = self.by_source.iter_mut().find(|s| s.source == source) {
                    count.count += n;
                }
            }
            Metric::Revenue | Metric::RevenueConversations => {
                let channel: String = row.try_get_by_index(0)?;
                self.revenue.add(channel, metric, &key, n)?;
            }
            Metric::LabelConversations | Metric::LabelConverted | Metric::LabelRevenue => {
                return Err(AppError::internal(
                    "label counters read into the overall stats",
                ));
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ConversionStats, AppError> {
        self.by_channel.retain(|c| c.conversations > 0);
        self.by_channel
            .sort_by_key(|c| Channel::ALL.iter().position(|x| *x == c.channel));
        self.delays.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(ConversionStats {
            revenue: self.revenue.finish()?,
            conversations: self.by_channel.iter().map(|c| c.conversations).sum(),
            converted: self.by_channel.iter().map(|c| c.converted).sum(),
            by_kind: self.by_kind,
            by_channel: self.by_channel,
            median_seconds_to_convert: rollup::median(&self.delays)
                .map(|micros| micros / 1_000_000.0),
            unattributed: self.unattributed,
            funnel: self.funnel,
            by_source: self.by_source,
        })
    }
}

/// One placeholder per channel, comma-separated; the channels go to
/// `values`.
fn marks(channels: &[Channel], values: &mut Vec<Value>) -> String {
    values.extend(channels.iter().map(|c| Value::from(c.as_str())));
    vec!["?"; channels.len()].join(", ")
}

/// The label metrics as an SQL list of literals.
pub(crate) fn label_metrics() -> String {
    Metric::OF_LABELS
        .map(|m| format!("'{}'", m.as_str()))
        .join(", ")
}

/// `part / whole`, 0 when there is no whole.
pub fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(rate(1, 4), 0.25);
        assert_eq!(rate(0, 0), 0.0);
    }

    #[test]
    fn a_delay_is_counted_at_its_buckets_representative() {
        let buckets = migration::delay_buckets();
        let by_scan = |micros: i64| {
            buckets
                .iter()
                .rev()
                .find(|&&(lower, _)| lower <= micros)
                .map(|&(_, representative)| representative)
        };
        for micros in [0, 1, 24, 25, 26, 1_000, 86_399_999_999, 86_400_000_000] {
            assert_eq!(Some(bucket_representative(micros as f64)), by_scan(micros));
        }
        assert_eq!(bucket_representative(-5.0), 0.0);
        for pair in buckets[1..].windows(2) {
            let (lower, next) = (pair[0].0, pair[1].0);
            assert_eq!(bucket_representative(lower as f64), pair[0].1);
            assert_eq!(bucket_representative((next - 1) as f64), pair[0].1);
            if next > 1 << 52 {
                break;
            }
        }
    }
}
