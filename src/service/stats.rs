//! Conversion stats over a date range, computed by the database (GROUP BY
//! and a median in SQL), never by loading rows into the server.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::{Caller, Services, statement};
use crate::domain::channel::Channel;
use crate::domain::clock::to_micros;
use crate::domain::conversion::ConversionKind;
use crate::domain::link::CtaAction;
use crate::domain::role::Operation;
use crate::error::{AppError, stored};

/// Which conversations the stats are about: those started in
/// `[from, to)`, on `channel` if given.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub channel: Option<Channel>,
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
}

impl Services {
    #[tracing::instrument(skip(self, caller), fields(tenant = %caller.tenant_id))]
    pub async fn conversion_stats(
        &self,
        caller: &Caller,
        range: StatsRange,
    ) -> Result<ConversionStats, AppError> {
        caller.require(Operation::BrowseConversations, "read conversion stats")?;
        if let (Some(from), Some(to)) = (range.from, range.to)
            && from >= to
        {
            return Err(AppError::BadInput("from must be before to".into()));
        }
        let sql = StatsSql::new(caller.tenant_id, range);
        let backend = self.db.get_database_backend();
        let query = |text: &str| {
            self.db
                .query_all_raw(statement(backend, text, sql.values.clone()))
        };
        let _slot = self
            .stats_slots
            .acquire()
            .await
            .map_err(|_| AppError::internal("the stats queue is closed"))?;
        // Five independent statements, run at once on separate connections.
        let (channel_rows, kind_rows, median_rows, unattributed_rows, funnel_rows) = tokio::try_join!(
            query(&sql.by_channel),
            query(&sql.by_kind),
            query(&sql.median),
            query(&sql.unattributed),
            query(&sql.funnel),
        )?;
        let by_channel = channel_counts(channel_rows)?;
        Ok(ConversionStats {
            conversations: by_channel.iter().map(|c| c.conversations).sum(),
            converted: by_channel.iter().map(|c| c.converted).sum(),
            by_kind: kind_counts(kind_rows)?,
            by_channel,
            median_seconds_to_convert: median_seconds(&median_rows)?,
            unattributed: match unattributed_rows.first() {
                Some(row) => row.try_get::<i64>("", "n")?,
                None => 0,
            },
            funnel: funnel(funnel_rows)?,
        })
    }
}

/// The statements of one stats request, all bound to the same values.
struct StatsSql {
    values: Vec<Value>,
    by_channel: String,
    by_kind: String,
    median: String,
    unattributed: String,
    funnel: String,
}

impl StatsSql {
    fn new(tenant_id: uuid::Uuid, range: StatsRange) -> Self {
        let from = range.from.map_or(i64::MIN, to_micros);
        let to = range.to.map_or(i64::MAX, to_micros);
        // The cohort: conversations of the tenant started in range. Conversions
        // carry copies of their conversation's start and channel, so the same
        // cohort needs no join there.
        let mut cohort = "c.tenant_id = ? AND c.started_at >= ? AND c.started_at < ?".to_owned();
        let mut cohort_of_conversions = "v.tenant_id = ? AND v.conversation_started_at >= ? \
             AND v.conversation_started_at < ?"
            .to_owned();
        let mut unattributed = "SELECT COUNT(*) AS n FROM conversion v \
             WHERE v.tenant_id = ? AND NOT v.attributed AND v.recorded_at >= ? AND v.recorded_at < ?"
            .to_owned();
        let mut values: Vec<Value> = vec![tenant_id.into(), from.into(), to.into()];
        if let Some(channel) = range.channel {
            cohort.push_str(" AND c.channel = ?");
            cohort_of_conversions.push_str(" AND v.conversation_channel = ?");
            unattributed.push_str(" AND v.conversation_channel = ?");
            values.push(channel.as_str().into());
        }
        Self {
            values,
            by_channel: format!(
                "SELECT c.channel AS channel, COUNT(*) AS conversations, \
                 COUNT(c.first_converted_at) AS converted \
                 FROM conversation c WHERE {cohort} GROUP BY c.channel"
            ),
            by_kind: format!(
                "SELECT v.kind AS kind, COUNT(*) AS count, \
                 COUNT(DISTINCT v.conversation_id) AS conversations \
                 FROM conversion v WHERE {cohort_of_conversions} AND v.attributed GROUP BY v.kind"
            ),
            // The median of (first conversion − start): the middle one or the
            // mean of the middle two, picked by LIMIT/OFFSET so it runs the
            // same on both databases.
            median: format!(
                "WITH d AS (SELECT c.first_converted_at - c.started_at AS s FROM conversation c \
                 WHERE {cohort} AND c.first_converted_at IS NOT NULL) \
                 SELECT CAST(AVG(s) AS DOUBLE PRECISION) AS median FROM \
                 (SELECT s FROM d ORDER BY s \
                  LIMIT 2 - (SELECT COUNT(*) FROM d) % 2 \
                  OFFSET ((SELECT COUNT(*) FROM d) - 1) / 2) m"
            ),
            unattributed,
            funnel: format!(
                "SELECT l.action AS action, COUNT(*) AS issued, \
                 COUNT(l.first_followed_at) AS followed, \
                 SUM(CASE WHEN EXISTS (SELECT 1 FROM conversion v WHERE v.link_id = l.id) \
                     THEN 1 ELSE 0 END) AS converted \
                 FROM cta_link l JOIN conversation c ON c.id = l.conversation_id \
                 WHERE {cohort} GROUP BY l.action"
            ),
        }
    }
}

/// Every channel with conversations in range, in the product's order.
fn channel_counts(rows: Vec<QueryResult>) -> Result<Vec<ChannelCount>, AppError> {
    let mut by_channel = Vec::new();
    for row in rows {
        by_channel.push(ChannelCount {
            channel: stored(
                "conversation.channel",
                &row.try_get::<String>("", "channel")?,
            )?,
            conversations: row.try_get("", "conversations")?,
            converted: row.try_get("", "converted")?,
        });
    }
    by_channel.sort_by_key(|c| Channel::ALL.iter().position(|x| *x == c.channel));
    Ok(by_channel)
}

/// Every kind, zeros included, in the product's order.
fn kind_counts(rows: Vec<QueryResult>) -> Result<Vec<KindCount>, AppError> {
    let mut by_kind: Vec<KindCount> = ConversionKind::ALL
        .into_iter()
        .map(|kind| KindCount {
            kind,
            count: 0,
            conversations: 0,
        })
        .collect();
    for row in rows {
        let kind: ConversionKind = stored("conversion.kind", &row.try_get::<String>("", "kind")?)?;
        if let Some(entry) = by_kind.iter_mut().find(|k| k.kind == kind) {
            entry.count = row.try_get("", "count")?;
            entry.conversations = row.try_get("", "conversations")?;
        }
    }
    Ok(by_kind)
}

/// The median in seconds; none without a converted conversation.
fn median_seconds(rows: &[QueryResult]) -> Result<Option<f64>, AppError> {
    let micros = match rows.first() {
        Some(row) => row.try_get::<Option<f64>>("", "median")?,
        None => None,
    };
    Ok(micros.map(|micros| micros / 1_000_000.0))
}

/// Every call to action, zeros included.
fn funnel(rows: Vec<QueryResult>) -> Result<Vec<FunnelStep>, AppError> {
    let mut funnel: Vec<FunnelStep> = CtaAction::ALL
        .into_iter()
        .map(|action| FunnelStep {
            action,
            issued: 0,
            followed: 0,
            converted: 0,
        })
        .collect();
    for row in rows {
        let action: CtaAction = stored("cta_link.action", &row.try_get::<String>("", "action")?)?;
        if let Some(step) = funnel.iter_mut().find(|f| f.action == action) {
            step.issued = row.try_get("", "issued")?;
            step.followed = row.try_get("", "followed")?;
            step.converted = row.try_get("", "converted")?;
        }
    }
    Ok(funnel)
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
}
