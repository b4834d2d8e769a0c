//! The feed as stored: each conversion row is its `RECORDED` event and each
//! adjustment row a `RESTATED` one, numbered from the same
//! sequence, read merged in cursor order. On PostgreSQL a row is handed
//! out only below the commit horizon: every transaction whose id is
//! smaller than the row's has ended, so no row can still appear before it
//! (see [`HORIZON`]).

use entity::conversion;
use sea_orm::{ConnectionTrait, DatabaseBackend, FromQueryResult, QueryResult, Value};
use tokio::sync::watch;
use uuid::Uuid;

use super::hub::{Batch, FeedSource};
use super::{FeedEvent, FeedFilter, HORIZON};
use crate::domain::adjustment::{ConversionChange, ConversionStatus};
use crate::domain::cursor::FeedPosition;
use crate::error::{AppError, stored};
use crate::service::read_model::{Conversion, stored_value};
use crate::service::{Services, statement};

/// SQLite's horizon: none holds any row back (`i64::MAX`).
const NO_HORIZON: &str = "9223372036854775807";

/// Whether [`Services::newest`] also reads the horizon.
pub(super) enum Newest {
    BelowHorizon,
    WithHorizon,
}

impl Services {
    /// The newest event's position (of either table), below the horizon
    /// or with the horizon the same statement saw.
    pub(super) async fn newest(
        &self,
        tenant_id: Uuid,
        which: Newest,
    ) -> Result<Option<(FeedPosition, i64)>, AppError> {
        let backend = self.db.get_database_backend();
        let postgres = backend == DatabaseBackend::Postgres;
        let horizon = if postgres { HORIZON } else { NO_HORIZON };
        let below = match which {
            Newest::BelowHorizon if postgres => format!(" AND feed_xid < {HORIZON}"),
            _ => String::new(),
        };
        let newest_of = |table: &str| {
            format!(
                "SELECT * FROM (SELECT feed_xid, feed_seq FROM {table} WHERE tenant_id = ?{below} \
                 ORDER BY feed_xid DESC, feed_seq DESC LIMIT 1) AS {table}_newest"
            )
        };
        let sql = format!(
            "SELECT feed_xid, feed_seq, {horizon} AS horizon FROM ({} UNION ALL {}) AS newest",
            newest_of("conversion"),
            newest_of("conversion_adjustment"),
        );
        let rows = self
            .db
            .query_all_raw(statement(
                backend,
                &sql,
                vec![tenant_id.into(), tenant_id.into()],
            ))
            .await?;
        let mut newest: Option<(FeedPosition, i64)> = None;
        for row in rows {
            let position = FeedPosition {
                xid: row.try_get("", "feed_xid")?,
                seq: row.try_get("", "feed_seq")?,
            };
            let horizon: i64 = row.try_get("", "horizon")?;
            if newest.is_none_or(|(n, _)| position > n) {
                newest = Some((position, horizon));
            }
        }
        Ok(newest)
    }
}

impl FeedSource for Services {
    /// The newest event's position below the horizon (the start before the
    /// first).
    async fn latest(&self, tenant_id: Uuid) -> Result<FeedPosition, AppError> {
        Ok(self
            .newest(tenant_id, Newest::BelowHorizon)
            .await?
            .map(|(position, _)| position)
            .unwrap_or_default())
    }

    /// Up to `limit` events after `after`, oldest first: two statements.
    async fn after(
        &self,
        tenant_id: Uuid,
        after: FeedPosition,
        filter: &FeedFilter,
        limit: u64,
    ) -> Result<Batch, AppError> {
        let backend = self.db.get_database_backend();
        let (sql, values) = events_after(backend, tenant_id, after, filter, limit);
        let rows = self
            .db
            .query_all_raw(statement(backend, &sql, values))
            .await?;
        // Rows past the horizon are read too (the same snapshot decides
        // both), only to learn that something is held back.
        let mut held = false;
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = StoredEvent::from_query_result(row, "")?;
            if event.position.xid >= event.horizon {
                held = true;
                break;
            }
            stored.push(event);
        }
        let ids: Vec<Uuid> = stored
            .iter()
            .filter_map(|e| e.row.conversation_id)
            .collect();
        let conversations = if ids.is_empty() {
            Default::default()
        } else {
            self.conversations_by_ids(tenant_id, &ids).await?
        };
        let events = stored
            .into_iter()
            .map(|event| {
                let (change, position) = (event.change, event.position);
                let conversion = event.conversion()?;
                Ok(FeedEvent {
                    conversation: conversion
                        .conversation_id
                        .and_then(|id| conversations.get(&id).cloned()),
                    change,
                    position,
                    conversion,
                })
            })
            .collect::<Result<_, AppError>>()?;
        Ok(Batch { events, held })
    }

    fn wake_ups(&self, tenant_id: Uuid) -> watch::Receiver<u64> {
        self.events.watch(tenant_id)
    }
}

/// The statement reading up to `limit` events after `after`: each table's
/// first `limit` rows after the cursor that pass the filter (each read in
/// order from its feed-order index and cut there), then the merge of the
/// two with their conversions. Without the cut inside each branch,
/// PostgreSQL joined and sorted every row of the tenant after the cursor
/// before taking the first page.
fn events_after(
    backend: DatabaseBackend,
    tenant_id: Uuid,
    after: FeedPosition,
    filter: &FeedFilter,
    limit: u64,
) -> (String, Vec<Value>) {
    let horizon = match backend {
        DatabaseBackend::Postgres => HORIZON,
        _ => NO_HORIZON,
    };
    let limit = limit as i64;
    let mut values: Vec<Value> = Vec::new();
    // A RECORDED event shows the value the conversion was recorded with, a
    // RESTATED one the new value, a RETRACTED one the value withdrawn
    // (a retraction stores none as its new value).
    let recorded = format!(
        "SELECT * FROM (SELECT 'RECORDED' AS change, c.id AS conversion_id, c.feed_xid, c.feed_seq, \
         c.recorded_value_minor AS value_minor, \
         CASE WHEN c.recorded_value_minor IS NULL THEN NULL ELSE c.currency END AS currency \
         FROM conversion c WHERE {} ORDER BY c.feed_xid, c.feed_seq LIMIT ?) AS recorded",
        branch_conditions("c", "c", tenant_id, after, filter, &mut values)
    );
    values.push(limit.into());
    let adjusted = format!(
        "SELECT * FROM (SELECT a.change, a.conversion_id, a.feed_xid, a.feed_seq, \
         COALESCE(a.value_minor, a.previous_value_minor) AS value_minor, \
         COALESCE(a.currency, a.previous_currency) AS currency \
         FROM conversion_adjustment a{} WHERE {} \
         ORDER BY a.feed_xid, a.feed_seq LIMIT ?) AS adjusted",
        if filter.kinds.is_some() || filter.channels.is_some() {
            " JOIN conversion c ON c.id = a.conversion_id"
        } else {
            ""
        },
        branch_conditions("a", "c", tenant_id, after, filter, &mut values)
    );
    values.push(limit.into());
    values.push(limit.into());
    let sql = format!(
        "SELECT e.change AS event_change, e.feed_xid AS event_xid, e.feed_seq AS event_seq, \
         e.value_minor AS event_value_minor, e.currency AS event_currency, \
         {horizon} AS horizon, v.* \
         FROM ({recorded} UNION ALL {adjusted}) AS e \
         JOIN conversion v ON v.id = e.conversion_id \
         ORDER BY e.feed_xid, e.feed_seq LIMIT ?"
    );
    (sql, values)
}

/// One branch's conditions: rows of `row` (its table's alias) after the
/// cursor, whose conversion (alias `conversion`) passes the filter.
fn branch_conditions(
    row: &str,
    conversion: &str,
    tenant_id: Uuid,
    after: FeedPosition,
    filter: &FeedFilter,
    values: &mut Vec<Value>,
) -> String {
    let mut conditions = vec![format!(
        "{row}.tenant_id = ? AND ({row}.feed_xid, {row}.feed_seq) > (?, ?)"
    )];
    values.extend([tenant_id.into(), after.xid.into(), after.seq.into()]);
    if let Some(kinds) = &filter.kinds {
        conditions.push(format!("{conversion}.kind IN ({})", marks(kinds.len())));
        values.extend(kinds.iter().map(|k| Value::from(k.as_str())));
    }
    if let Some(channels) = &filter.channels {
        conditions.push(format!(
            "{conversion}.conversation_id IN \
             (SELECT id FROM conversation WHERE tenant_id = ? AND channel IN ({}))",
            marks(channels.len())
        ));
        values.push(tenant_id.into());
        values.extend(channels.iter().map(|c| Value::from(c.as_str())));
    }
    conditions.join(" AND ")
}

/// `n` placeholders.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// One event row: the change, its place, the value it reported, the
/// conversion, and the horizon the statement saw.
struct StoredEvent {
    change: ConversionChange,
    position: FeedPosition,
    value_minor: Option<i64>,
    currency: Option<String>,
    row: conversion::Model,
    horizon: i64,
}

impl StoredEvent {
    /// The conversion as the event reports it: its value and status right
    /// after this change, not as they are now (a retraction is final, so
    /// it was active before one).
    fn conversion(self) -> Result<Conversion, AppError> {
        let value = stored_value(self.value_minor, self.currency.as_deref())?;
        let mut conversion = Conversion::try_from(self.row)?;
        conversion.value = value;
        conversion.status = match self.change {
            ConversionChange::Retracted => ConversionStatus::Retracted,
            _ => ConversionStatus::Active,
        };
        // Credited by an operator later: it came in unattributed.
        if self.change == ConversionChange::Recorded
            && conversion.review == Some(ConversionChange::Attributed)
        {
            conversion.attributed = false;
        }
        Ok(conversion)
    }
}

impl FromQueryResult for StoredEvent {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, sea_orm::DbErr> {
        let change: String = res.try_get(pre, "event_change")?;
        Ok(Self {
            change: stored("feed event change", &change)
                .map_err(|e| sea_orm::DbErr::Type(e.to_string()))?,
            position: FeedPosition {
                xid: res.try_get(pre, "event_xid")?,
                seq: res.try_get(pre, "event_seq")?,
            },
            value_minor: res.try_get(pre, "event_value_minor")?,
            currency: res.try_get(pre, "event_currency")?,
            row: conversion::Model::from_query_result(res, pre)?,
            horizon: res.try_get(pre, "horizon")?,
        })
    }
}
