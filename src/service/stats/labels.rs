//! `byLabel`: the conversations of each value of one label key and how
//! they converted, read like the other stats — whole days and months from
//! the rollups' `label_*` counters, the parts of days at either end from
//! the conversations themselves.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::filtered::{self, StatsScope};
use super::{StatsRange, edge_filter};
use crate::domain::clock::to_micros;
use crate::domain::label::{Labels, valid_key};
use crate::domain::money::Money;
use crate::domain::role::Operation;
use crate::domain::rollup::{self, Interval, Metric, Span, split_revenue_key};
use crate::error::AppError;
use crate::service::listing::ConversationFilter;
use crate::service::{Caller, Services, statement};

/// One value of the key.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelCount {
    pub value: String,
    pub conversations: i64,
    pub converted: i64,
    /// Per currency it earned in, by code.
    pub revenue: Vec<Money>,
}

#[derive(Default)]
struct Sums {
    conversations: i64,
    converted: i64,
    revenue: BTreeMap<String, i64>,
}

impl Services {
    /// Every value of `key` among the conversations of `range` passing
    /// `filter` (the list's), by value.
    #[tracing::instrument(skip(self, caller), fields(tenant = %caller.tenant_id))]
    pub async fn label_stats(
        &self,
        caller: &Caller,
        range: &StatsRange,
        filter: &ConversationFilter,
        key: &str,
    ) -> Result<Vec<LabelCount>, AppError> {
        caller.require(Operation::BrowseConversations, "read conversion stats")?;
        if !valid_key(key) {
            return Err(AppError::BadInput(format!(
                "label key {key:?} must be 1 to 40 characters of a-z, 0-9, '_', '.' or '-'"
            )));
        }
        let _slot = self
            .stats_slots
            .acquire()
            .await
            .map_err(|_| AppError::internal("the stats queue is closed"))?;
        let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
        match StatsScope::new(range.clone(), filter)? {
            StatsScope::Nothing => {}
            StatsScope::Range(range) => {
                let cover = rollup::cover(range.from.map(to_micros), range.to.map(to_micros));
                let periods = super::whole_periods(&cover);
                if !periods.is_empty() {
                    let prefix = format!("{key}=");
                    self.add_rollups(caller, &range, &periods, &prefix, &mut sums)
                        .await?;
                }
                for &edge in &cover.edges {
                    self.add_edge(caller, &range, edge, key, &mut sums).await?;
                }
            }
            scope => {
                let Some(filter) = scope.rows_filter() else {
                    return Err(AppError::internal("a stats scope without its filter"));
                };
                let floor = self.search_floor_of(&filter).await?;
                let backend = self.db.get_database_backend();
                let query = filtered::labels_statement(backend, caller, &filter, floor)?;
                for row in self.cohort_rows(query).await? {
                    if let Some(entry) = value_sums(&row, key, &mut sums)? {
                        entry.conversations += row.try_get::<i64>("", "n")?;
                        entry.converted += row.try_get::<i64>("", "converted")?;
                        if let Some(currency) = row.try_get::<Option<String>>("", "currency")? {
                            *entry.revenue.entry(currency).or_default() +=
                                row.try_get::<i64>("", "minor")?;
                        }
                    }
                }
            }
        }
        sums.into_iter()
            .filter(|(_, s)| s.conversations > 0)
            .map(|(value, s)| {
                let revenue = s
                    .revenue
                    .into_iter()
                    .filter(|&(_, minor)| minor != 0)
                    .map(|(code, minor)| Money::from_stored(minor, &code))
                    .collect::<Result<_, _>>()
                    .map_err(|e| AppError::internal_from("stored label revenue", e))?;
                Ok(LabelCount {
                    value,
                    conversations: s.conversations,
                    converted: s.converted,
                    revenue,
                })
            })
            .collect()
    }

    /// Adds the `label_*` counters of the whole periods whose pair starts
    /// with `prefix` (`key=`).
    async fn add_rollups(
        &self,
        caller: &Caller,
        range: &StatsRange,
        periods: &[(Span, Interval)],
        prefix: &str,
        sums: &mut BTreeMap<String, Sums>,
    ) -> Result<(), AppError> {
        let mut values: Vec<Value> = Vec::new();
        let filter = super::rollup_filter(caller.tenant_id, range.channels(), periods, &mut values);
        let sql = format!(
            "SELECT r.metric, r.key, CAST(SUM(r.n) AS BIGINT) AS n FROM stats_rollup r \
             WHERE {filter} AND r.metric IN ({}) GROUP BY r.metric, r.key",
            super::label_metrics()
        );
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(statement(backend, &sql, values))
            .await?;
        for row in rows {
            let metric: String = row.try_get("", "metric")?;
            let key: String = row.try_get("", "key")?;
            let n: i64 = row.try_get("", "n")?;
            let metric = Metric::parse(&metric)
                .ok_or_else(|| AppError::internal(format!("stored stats metric {metric:?}")))?;
            let (currency, pair) = match metric {
                Metric::LabelRevenue => match split_revenue_key(&key) {
                    Some((currency, pair)) => (Some(currency), pair),
                    None => return Err(AppError::internal(format!("stored label key {key:?}"))),
                },
                _ => (None, key.as_str()),
            };
            let Some(value) = pair.strip_prefix(prefix) else {
                continue;
            };
            let entry = sums.entry(value.to_owned()).or_default();
            match (metric, currency) {
                (Metric::LabelConversations, _) => entry.conversations += n,
                (Metric::LabelConverted, _) => entry.converted += n,
                (_, Some(currency)) => *entry.revenue.entry(currency.to_owned()).or_default() += n,
                _ => {}
            }
        }
        Ok(())
    }

    /// Adds the conversations (and their revenue) started within `edge`,
    /// part of one day, counted from the rows.
    async fn add_edge(
        &self,
        caller: &Caller,
        range: &StatsRange,
        (from, to): Interval,
        key: &str,
        sums: &mut BTreeMap<String, Sums>,
    ) -> Result<(), AppError> {
        let backend = self.db.get_database_backend();
        // Conversions carry copies of their conversation's start and
        // channel: each statement seeks its own table's (tenant, start) index.
        let within = |columns| {
            let mut values = Vec::new();
            let filter = edge_filter(
                caller.tenant_id,
                range.channels(),
                (from, to),
                columns,
                &mut values,
            );
            (format!("{filter} AND c.labels <> ''"), values)
        };
        let (filter, values) = within(("c.started_at", "c.channel"));
        let sql = format!(
            "SELECT c.labels, CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(COUNT(c.first_converted_at) AS BIGINT) AS converted \
             FROM conversation c WHERE {filter} GROUP BY c.labels"
        );
        for row in self
            .db
            .query_all_raw(statement(backend, &sql, values))
            .await?
        {
            if let Some(entry) = value_sums(&row, key, sums)? {
                entry.conversations += row.try_get::<i64>("", "n")?;
                entry.converted += row.try_get::<i64>("", "converted")?;
            }
        }
        let (filter, values) = within(("v.conversation_started_at", "v.conversation_channel"));
        let sql = format!(
            "SELECT c.labels, v.currency, CAST(SUM(v.value_minor) AS BIGINT) AS minor \
             FROM conversion v JOIN conversation c ON c.id = v.conversation_id \
             WHERE {filter} AND v.attributed AND v.status = 'ACTIVE' \
             AND v.value_minor IS NOT NULL GROUP BY c.labels, v.currency"
        );
        for row in self
            .db
            .query_all_raw(statement(backend, &sql, values))
            .await?
        {
            if let Some(entry) = value_sums(&row, key, sums)? {
                let currency: String = row.try_get("", "currency")?;
                *entry.revenue.entry(currency).or_default() += row.try_get::<i64>("", "minor")?;
            }
        }
        Ok(())
    }
}

/// The sums of the value `key` has in a row's `labels`; none without it.
fn value_sums<'s>(
    row: &QueryResult,
    key: &str,
    sums: &'s mut BTreeMap<String, Sums>,
) -> Result<Option<&'s mut Sums>, AppError> {
    let labels = Labels::from_stored(&row.try_get::<String>("", "labels")?);
    Ok(labels
        .get(key)
        .map(|value| sums.entry(value.to_owned()).or_default()))
}
