//! Writing a [`Plan`]: one statement on PostgreSQL, a few inside the
//! caller's transaction on SQLite; a write that lost a race is retried.

use std::future::Future;

use entity::{conversation, conversion, idempotency_key};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, Set, SqlErr,
};
use uuid::Uuid;

use super::counts;
use super::plan::Plan;
use crate::domain::cursor::FeedPosition;
use crate::error::AppError;
use crate::service::feed::FEED_XID;
use crate::service::statement;

/// How often a recording lost to a concurrent identical one is retried.
/// The retry sees the winner's rows, so one retry normally settles it.
const RACE_RETRIES: usize = 3;

/// Runs a recording transaction again when a concurrent one wrote the same
/// row first: the next attempt answers as a replay or a conflict.
pub(crate) async fn retry_raced<T, F, Fut>(mut attempt: F) -> Result<T, AppError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    for _ in 0..RACE_RETRIES {
        match attempt().await {
            Err(AppError::Raced) => tracing::debug!("recording raced a concurrent one; retrying"),
            other => return other,
        }
    }
    attempt().await
}

/// Writes `plan`. On PostgreSQL it is one statement, atomic by itself, so
/// `db` may be the pool or a transaction the caller holds. On SQLite it is
/// several statements: `db` must be a write transaction ([`Services::begin_write`]).
pub(crate) async fn write<C: ConnectionTrait>(db: &C, plan: &mut Plan) -> Result<(), AppError> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        write_in_one_statement(db, plan).await
    } else {
        write_statement_by_statement(db, plan).await
    }
}

/// SQLite: the statements of [`write_in_one_statement`], one at a time,
/// inside the caller's transaction.
async fn write_statement_by_statement<C: ConnectionTrait>(
    txn: &C,
    plan: &mut Plan,
) -> Result<(), AppError> {
    if let Some((key, payload)) = &plan.new_key {
        idempotency_key::ActiveModel {
            tenant_id: Set(plan.tenant_id),
            key: Set(key.clone()),
            payload_fingerprint: Set(payload.clone()),
            created_at: Set(plan.now),
        }
        .insert(txn)
        .await
        .map_err(raced_or_failed)?;
    }
    if plan.new_rows.is_empty() {
        return Ok(());
    }
    // "Converted" and conversion stats read this column instead of joining
    // conversions. A recording that finds it set counts no first
    // conversion; a retraction may set it again (to the next one) or clear it.
    let first_conversion = plan.first_conversion
        && conversation::Entity::update_many()
            .col_expr(
                conversation::Column::FirstConvertedAt,
                Expr::value(plan.now),
            )
            .filter(conversation::Column::Id.eq(plan.conversation_id))
            .filter(conversation::Column::FirstConvertedAt.is_null())
            .exec(txn)
            .await?
            .rows_affected
            == 1;
    let first = take_feed_numbers(txn, plan.tenant_id, plan.new_rows.len() as i64).await?;
    plan.number_rows(first);
    let rows = plan.new_rows.iter().map(|&at| plan.result[at].clone());
    conversion::Entity::insert_many(rows.map(conversion::ActiveModel::from))
        .exec_without_returning(txn)
        .await
        .map_err(raced_or_failed)?;
    counts::count_in_transaction(txn, plan, first_conversion).await
}

/// SQLite: `count` consecutive places in the tenant's feed (the first is
/// returned). SQLite writes one transaction at a time, so the tenant's
/// counter numbers the feed in commit order; `txn` must be a write
/// transaction.
pub(crate) async fn take_feed_numbers<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    count: i64,
) -> Result<i64, AppError> {
    let row = txn
        .query_one_raw(statement(
            DatabaseBackend::Sqlite,
            "UPDATE tenant SET conversion_seq = conversion_seq + ? WHERE id = ? \
             RETURNING conversion_seq",
            vec![count.into(), tenant_id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::internal("caller's tenant row is missing"))?;
    let last: i64 = row.try_get("", "conversion_seq")?;
    Ok(last - count + 1)
}

/// PostgreSQL: writes `plan` in one statement. On its own it is its own
/// transaction: one round trip instead of four (BEGIN, key, insert,
/// COMMIT). No row is shared by all of a tenant's recordings: each new
/// row's feed position is its transaction's id and a number from a
/// sequence (see [`FEED_XID`]), so concurrent recordings do not queue on
/// one another. Other instances hear of it after the commit (see
/// [`crate::events::postgres`]).
async fn write_in_one_statement<C: ConnectionTrait>(
    db: &C,
    plan: &mut Plan,
) -> Result<(), AppError> {
    let count = plan.new_rows.len();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    // Data-modifying CTEs all run, referenced or not. The rows that mark
    // firsts (the conversation's first conversion, its first of a kind, the
    // link's first) are read by the counts, so they are written first.
    if plan.first_conversion {
        parts.push(
            "conv AS (UPDATE conversation SET first_converted_at = ? \
             WHERE id = ? AND first_converted_at IS NULL RETURNING id)"
                .into(),
        );
        values.push(plan.now.into());
        values.push(plan.conversation_id.into());
    }
    if count > 0 {
        parts.extend(counts::marking_ctes(plan, &mut values));
    }
    if let Some((key, payload)) = &plan.new_key {
        parts.push(
            "idem AS (INSERT INTO idempotency_key (tenant_id, key, payload_fingerprint, created_at) \
             VALUES (?, ?, ?, ?))"
                .into(),
        );
        values.extend([
            plan.tenant_id.into(),
            key.clone().into(),
            payload.clone().into(),
            plan.now.into(),
        ]);
    }
    if count > 0 {
        parts.push(format!(
            "ins AS (INSERT INTO conversion (id, tenant_id, conversation_id, kind, record_type, \
             record_id, source, attributed, unattributed_reason, idempotency_key, \
             payload_fingerprint, feed_seq, recorded_at, link_id, link_action, \
             conversation_started_at, conversation_channel, feed_xid, value_minor, currency, status, \
             recorded_value_minor) {} \
             RETURNING id, feed_seq, feed_xid)",
            new_rows_selected(plan, &mut values)
        ));
        let first = plan.first_conversion.then_some("conv");
        parts.extend(counts::counting_ctes(plan, first, &mut values));
        parts.push(RETRACTION_GUARD.into());
        values.extend([plan.conversation_id.into(), plan.retractions_seen.into()]);
    }
    let main = if count > 0 {
        "SELECT id, feed_seq, feed_xid FROM ins, guard"
    } else {
        "SELECT NULL::uuid AS id"
    };
    let sql = format!("WITH {} {main}", parts.join(", "));
    let rows = db
        .query_all_raw(statement(DatabaseBackend::Postgres, &sql, values))
        .await
        .map_err(raced_or_failed)?;
    if count > 0 {
        let mut placed = Vec::with_capacity(rows.len());
        for row in rows {
            let position = FeedPosition {
                xid: row.try_get("", "feed_xid")?,
                seq: row.try_get("", "feed_seq")?,
            };
            placed.push((row.try_get::<Uuid>("", "id")?, position));
        }
        plan.place_rows(&placed)?;
    }
    Ok(())
}

/// PostgreSQL: refuses the recording (SQLSTATE 40001, so it is planned
/// and tried again) when a retraction of one of the conversation's
/// conversions committed after the plan read the conversation: the plan's
/// firsts were decided on what the retraction may have undone.
/// `convtrack_unchanged` takes a key-share lock on the conversation, which
/// waits for a retraction under way (it holds the row) and reads the row
/// as it is now; a retraction that starts later waits for this recording,
/// and sees it.
const RETRACTION_GUARD: &str = "guard AS (SELECT convtrack_unchanged(?, ?) AS unchanged)";

/// The plan's new rows as `SELECT … UNION ALL …`, each numbered from the
/// feed's sequence; their values go to `values`.
fn new_rows_selected(plan: &Plan, values: &mut Vec<sea_orm::Value>) -> String {
    let mut selects = Vec::with_capacity(plan.new_rows.len());
    for &at in &plan.new_rows {
        let c = &plan.result[at];
        selects.push(format!(
            "SELECT ?::uuid, ?::uuid, ?::uuid, ?, ?, ?, ?, ?::boolean, ?, ?, ?, \
             nextval('conversion_feed_seq'), ?::bigint, ?::uuid, ?, ?::bigint, ?, {FEED_XID}, \
             ?::bigint, ?, ?, ?::bigint"
        ));
        values.extend([
            c.id.into(),
            c.tenant_id.into(),
            c.conversation_id.into(),
            c.kind.clone().into(),
            c.record_type.clone().into(),
            c.record_id.clone().into(),
            c.source.clone().into(),
            c.attributed.into(),
            c.unattributed_reason.clone().into(),
            c.idempotency_key.clone().into(),
            c.payload_fingerprint.clone().into(),
            c.recorded_at.into(),
            c.link_id.into(),
            c.link_action.clone().into(),
            c.conversation_started_at.into(),
            c.conversation_channel.clone().into(),
            c.value_minor.into(),
            c.currency.clone().into(),
            c.status.clone().into(),
            c.recorded_value_minor.into(),
        ]);
    }
    selects.join(" UNION ALL ")
}

/// [`AppError::Raced`] when a concurrent request got in the way — a
/// unique index refused a row the checks had not seen, PostgreSQL found a
/// serialization failure (a retraction changed the conversation under a
/// recording) or a deadlock — so the attempt is made again; otherwise the
/// error as it is.
pub(crate) fn raced_or_failed(e: DbErr) -> AppError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
        return AppError::Raced;
    }
    if crate::error::is_serialization_failure(&e) {
        return AppError::Raced;
    }
    AppError::from(e)
}
