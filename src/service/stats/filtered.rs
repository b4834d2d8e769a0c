//! Stats that follow the list's filter. Dates and channels are what the
//! rollups count by, so they stay there; a filter on anything else (a
//! search, badges, converted or not, a session, labels) counts the rows of
//! the conversations it matches — the same conversations the list shows —
//! in one statement.

use entity::conversation;
use sea_orm::sea_query::{Expr, ExprTrait, SelectStatement, UnionType};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, QueryFilter, QueryResult, QuerySelect, QueryTrait, Select,
    Statement, TransactionTrait,
};

use super::StatsRange;
use crate::domain::channel::Channel;
use crate::domain::clock::to_micros;
use crate::domain::label::Label;
use crate::error::AppError;
use crate::service::listing::{ConversationFilter, check_search, list_query};
use crate::service::people::people_matches;
use crate::service::search::message_matches;
use crate::service::{Caller, Services};

/// What a stats request counts.
#[derive(Debug)]
pub(super) enum StatsScope {
    /// No conversation can match (disjoint dates or channels).
    Nothing,
    /// The conversations of a range: the rollups answer.
    Range(StatsRange),
    /// The conversations of a range that are (or are not) converted: the
    /// rollups and a few rows answer (see `super::converted`).
    Converted { range: StatsRange, converted: bool },
    /// The conversations of a range with one label: the label's rollups
    /// answer (see `super::labelled`).
    Labelled { range: StatsRange, label: Label },
    /// The conversations passing a filter (dates and channels included).
    Filtered(ConversationFilter),
}

impl StatsScope {
    /// The list's filter for the same conversations, when rows answer.
    pub(super) fn rows_filter(self) -> Option<ConversationFilter> {
        match self {
            StatsScope::Converted { range, converted } => Some(ConversationFilter {
                started_after: range.from,
                started_before: range.to,
                channels: range.channels,
                converted: Some(converted),
                ..ConversationFilter::default()
            }),
            StatsScope::Labelled { range, label } => Some(ConversationFilter {
                started_after: range.from,
                started_before: range.to,
                channels: range.channels,
                labels: vec![label],
                ..ConversationFilter::default()
            }),
            StatsScope::Filtered(filter) => Some(filter),
            StatsScope::Nothing | StatsScope::Range(_) => None,
        }
    }

    /// `range` and `filter` together: the later start, the earlier end and
    /// the channels both allow.
    pub(super) fn new(range: StatsRange, filter: &ConversationFilter) -> Result<Self, AppError> {
        check_search(filter)?;
        let from = Ord::max(range.from, filter.started_after);
        let to = match (range.to, filter.started_before) {
            (Some(a), Some(b)) => Some(Ord::min(a, b)),
            (a, b) => a.or(b),
        };
        let mut channels: Option<Vec<Channel>> = match (range.channels, &filter.channels) {
            (Some(a), Some(b)) => Some(a.into_iter().filter(|c| b.contains(c)).collect()),
            (a, b) => a.or_else(|| b.clone()),
        };
        if let Some(channels) = &mut channels {
            channels.sort_by_key(|c| Channel::ALL.iter().position(|x| x == c));
            channels.dedup();
        }
        let empty_dates = matches!((from, to), (Some(from), Some(to)) if from >= to);
        if empty_dates || channels.as_ref().is_some_and(Vec::is_empty) {
            return Ok(StatsScope::Nothing);
        }
        let by_rows =
            search_text(filter).is_some() || filter.badges.is_some() || filter.session_id.is_some();
        let mut labels = filter.labels.clone();
        labels.sort();
        labels.dedup();
        let range = StatsRange { from, to, channels };
        match (by_rows, filter.converted, labels.len()) {
            (false, Some(converted), 0) => return Ok(StatsScope::Converted { range, converted }),
            (false, None, 1) => {
                let label = labels.remove(0);
                return Ok(StatsScope::Labelled { range, label });
            }
            _ => {}
        }
        Ok(
            if by_rows || filter.converted.is_some() || !labels.is_empty() {
                StatsScope::Filtered(ConversationFilter {
                    started_after: range.from,
                    started_before: range.to,
                    channels: range.channels,
                    ..filter.clone()
                })
            } else {
                StatsScope::Range(range)
            },
        )
    }
}

/// The search text, when there is one to match.
fn search_text(filter: &ConversationFilter) -> Option<&str> {
    filter.search.as_deref().filter(|s| !s.is_empty())
}

/// PostgreSQL's memory for each hash and sort of a cohort's statement: at
/// the default 4 MB, the text index's matches for a common word over all
/// time (400 k messages) made a lossy bitmap — 1.3 M rows read again to
/// recheck, 2.8 s of 5 — and the cohort's hashes spilled to disk.
/// Bounded: stats run a few at a time (`stats_slots`).
const COHORT_WORK_MEM: &str = "SET LOCAL work_mem = '32MB'";

/// A large cohort's statement looks dear enough for PostgreSQL to compile
/// its ~260 expressions to machine code first: 160 ms for a common word
/// over all time, more than the compiled code saves over one pass.
const COHORT_NO_JIT: &str = "SET LOCAL jit = off";

impl Services {
    /// The rows of a cohort's `query` ([`stats_statement`],
    /// [`labels_statement`]), on PostgreSQL with [`COHORT_WORK_MEM`] and
    /// [`COHORT_NO_JIT`].
    pub(super) async fn cohort_rows(&self, query: Statement) -> Result<Vec<QueryResult>, AppError> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(self.db.query_all_raw(query).await?);
        }
        let txn = self.db.begin().await?;
        txn.execute_unprepared(COHORT_WORK_MEM).await?;
        txn.execute_unprepared(COHORT_NO_JIT).await?;
        let rows = txn.query_all_raw(query).await?;
        txn.commit().await?;
        Ok(rows)
    }

    /// Where a search of `filter` starts reading the text index's matches:
    /// only a search with a start date skips any.
    pub(super) async fn search_floor_of(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Option<i64>, AppError> {
        match (search_text(filter), filter.started_after) {
            (Some(_), Some(after)) => Ok(Some(self.search_floor(to_micros(after)).await?)),
            _ => Ok(None),
        }
    }
}

/// The stats of the conversations passing `filter`, as the rollup rows
/// (channel, metric, key, n, representative) [`super::Tally`] adds up. The
/// matching conversations are read once (`s`), with their active
/// conversions (`cv`, counted once more by kind, source and attribution in
/// `cvn`) and their links counted by action (`cl`), and every figure
/// counted from those: each pass over a cohort's rows is a sort on SQLite,
/// so rows are grouped once and the figures added up from the groups.
pub(super) fn stats_statement(
    backend: DatabaseBackend,
    caller: &Caller,
    filter: &ConversationFilter,
    floor: Option<i64>,
) -> Result<Statement, AppError> {
    let cohort = cohort(backend, caller, filter, floor, Columns::Stats)?;
    let mut values = cohort.values.map(|v| v.0).unwrap_or_default();
    let conversions = conversions_of_range(backend, caller, filter, &mut values);
    let sql = format!(
        "WITH s AS MATERIALIZED ({cohort}), \
         cv AS MATERIALIZED (SELECT s.channel, v.conversation_id, v.kind, v.source, v.attributed, \
           v.value_minor, v.currency FROM s JOIN conversion v ON v.conversation_id = s.id \
           WHERE v.status = 'ACTIVE' AND {conversions}), \
         cvn AS MATERIALIZED (SELECT cv.channel, cv.kind, cv.source, cv.attributed, COUNT(*) AS n \
           FROM cv GROUP BY cv.channel, cv.kind, cv.source, cv.attributed), \
         cl AS MATERIALIZED (SELECT s.channel, l.action, COUNT(*) AS issued, \
           COUNT(l.first_followed_at) AS followed, COUNT(l.first_converted_at) AS converted \
           FROM s JOIN cta_link l ON l.conversation_id = s.id GROUP BY s.channel, l.action) \
         {selects}",
        cohort = cohort.sql,
        selects = cohort_selects().join(" UNION ALL "),
    );
    Ok(Statement::from_sql_and_values(backend, sql, values))
}

/// With dates, the condition on conversions `v` of the tenant's
/// conversations started within them (conversions carry their
/// conversation's start): the planners then read the range's conversions
/// by their (tenant, start) index instead of hashing all of them (50 of
/// 390 ms for a search over 30 days). Placeholders continue `values`.
fn conversions_of_range(
    backend: DatabaseBackend,
    caller: &Caller,
    filter: &ConversationFilter,
    values: &mut Vec<sea_orm::Value>,
) -> String {
    let mut bind = |value: sea_orm::Value| {
        values.push(value);
        match backend {
            DatabaseBackend::Postgres => format!("${}", values.len()),
            _ => "?".to_owned(),
        }
    };
    if filter.started_after.is_none() && filter.started_before.is_none() {
        // Over all time the cohort's own conversions are fewer than the
        // tenant's: SQLite would scan these and probe the cohort.
        return "1 = 1".to_owned();
    }
    let mut condition = format!("v.tenant_id = {}", bind(caller.tenant_id.into()));
    if let Some(after) = filter.started_after {
        let mark = bind(to_micros(after).into());
        condition.push_str(&format!(" AND v.conversation_started_at >= {mark}"));
    }
    if let Some(before) = filter.started_before {
        let mark = bind(to_micros(before).into());
        condition.push_str(&format!(" AND v.conversation_started_at < {mark}"));
    }
    condition
}

/// `byLabel` of the conversations passing `filter`: per distinct set of
/// labels, the conversations (`n`), the converted ones, and per currency
/// (`currency`, `minor`) what they earned.
pub(super) fn labels_statement(
    backend: DatabaseBackend,
    caller: &Caller,
    filter: &ConversationFilter,
    floor: Option<i64>,
) -> Result<Statement, AppError> {
    let cohort = cohort(backend, caller, filter, floor, Columns::Labels)?;
    let sql = format!(
        "WITH s AS MATERIALIZED ({cohort}) \
         SELECT s.labels, CAST(COUNT(*) AS BIGINT) AS n, \
           CAST(COUNT(s.first_converted_at) AS BIGINT) AS converted, \
           CAST(NULL AS TEXT) AS currency, CAST(0 AS BIGINT) AS minor \
         FROM s WHERE s.labels <> '' GROUP BY s.labels \
         UNION ALL SELECT s.labels, CAST(0 AS BIGINT), CAST(0 AS BIGINT), v.currency, \
           CAST(SUM(v.value_minor) AS BIGINT) \
         FROM s JOIN conversion v ON v.conversation_id = s.id \
         WHERE s.labels <> '' AND v.attributed AND v.status = 'ACTIVE' \
           AND v.value_minor IS NOT NULL GROUP BY s.labels, v.currency",
        cohort = cohort.sql,
    );
    Ok(Statement::from_sql_and_values(
        backend,
        sql,
        cohort.values.map(|v| v.0).unwrap_or_default(),
    ))
}

/// What a cohort reads of each conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Columns {
    /// What `conversation_stats` holds (id, channel, start, first
    /// conversion): no conversation row is read unless a filter needs it.
    Stats,
    /// Those and the labels.
    Labels,
}

/// The conversations passing `filter`, as the list finds them, with the
/// columns the stats read; a search reads the text index's matches from
/// `floor` on ([`search_floor`]). Built for its database with values bound:
/// the search text is written into it as a literal (see the search), so no
/// placeholder may be rewritten afterwards.
fn cohort(
    backend: DatabaseBackend,
    caller: &Caller,
    filter: &ConversationFilter,
    floor: Option<i64>,
    columns: Columns,
) -> Result<Statement, AppError> {
    let mut cohort = list_query(caller, None, filter)?
        .select_only()
        .column(conversation::Column::Id)
        .column(conversation::Column::Channel)
        .column(conversation::Column::StartedAt)
        .column(conversation::Column::FirstConvertedAt);
    if columns == Columns::Labels {
        cohort = cohort.column(conversation::Column::Labels);
    }
    if let Some(text) = search_text(filter) {
        let matches = [
            message_matches(backend, text, floor),
            people_matches(caller, text),
        ];
        return Ok(union_of_matches(backend, cohort, matches));
    }
    Ok(cohort.build(backend))
}

/// The conversations of `cohort` among each kind of match, each in its own
/// half of a UNION. PostgreSQL's planner then knows how many conversations
/// the text's matches hold and hashes them against the tenant's
/// conversations when they are many, instead of looking 330 k up one by
/// one (one IN over both kinds was planned as a couple of hundred:
/// "parking" over all time 4.6 → 3.1 s, over 30 days 340 → 280 ms); SQLite
/// takes the same time either way.
fn union_of_matches(
    backend: DatabaseBackend,
    cohort: Select<conversation::Entity>,
    matches: [Option<SelectStatement>; 2],
) -> Statement {
    let id = Expr::col((conversation::Entity, conversation::Column::Id));
    let union = matches
        .into_iter()
        .flatten()
        .map(|ids| {
            cohort
                .clone()
                .filter(id.clone().in_subquery(ids))
                .into_query()
        })
        .reduce(|mut all, half| all.union(UnionType::Distinct, half).to_owned());
    match union {
        Some(union) => backend.build(&union),
        None => cohort.filter(Expr::cust("1 = 0")).build(backend),
    }
}

/// Every figure of the cohort `s`, its conversions `cv` (and their counts
/// `cvn`) and its links' counts `cl`. The conversions come first: SQLite
/// read the conversions' rows instead of their index when `s` was first
/// read by an earlier part (25 of 160 ms for a badge over all time).
fn cohort_selects() -> Vec<String> {
    let counted = |select: &str, from: &str, group: &str| {
        format!("SELECT {select}, CAST(NULL AS DOUBLE PRECISION) FROM {from} GROUP BY {group}")
    };
    let mut parts = Vec::new();
    const VALUED: &str = "attributed AND value_minor IS NOT NULL";
    // (metric, key, count, rows, condition, grouped by besides the channel)
    for (metric, key, count, rows, condition, group) in [
        ("kind", "kind", "SUM(n)", "cvn", "attributed", ", kind"),
        (
            "source",
            "source",
            "SUM(n)",
            "cvn",
            "attributed",
            ", source",
        ),
        ("unattributed", "''", "SUM(n)", "cvn", "NOT attributed", ""),
        (
            "kind_conversations",
            "kind",
            "COUNT(DISTINCT conversation_id)",
            "cv",
            "attributed",
            ", kind",
        ),
        (
            "revenue",
            "kind || ' ' || currency",
            "SUM(value_minor)",
            "cv",
            VALUED,
            ", kind, currency",
        ),
        (
            "revenue_conversations",
            "currency",
            "COUNT(DISTINCT conversation_id)",
            "cv",
            VALUED,
            ", currency",
        ),
    ] {
        parts.push(counted(
            &format!("channel, '{metric}', {key}, CAST({count} AS BIGINT)"),
            &format!("{rows} WHERE {condition}"),
            &format!("channel{group}"),
        ));
    }
    for (column, metric) in [
        ("issued", "issued"),
        ("followed", "followed"),
        ("converted", "link_converted"),
    ] {
        parts.push(counted(
            &format!("cl.channel, '{metric}', cl.action, CAST(SUM(cl.{column}) AS BIGINT)"),
            "cl",
            "cl.channel, cl.action",
        ));
    }
    parts.push(counted(
        "s.channel, 'conversations', '', COUNT(*)",
        "s",
        "s.channel",
    ));
    parts.push(counted(
        "s.channel, 'converted', '', COUNT(*)",
        "s WHERE s.first_converted_at IS NOT NULL",
        "s.channel",
    ));
    parts.push(super::delay_select(
        "s c WHERE c.first_converted_at IS NOT NULL",
    ));
    parts
}
