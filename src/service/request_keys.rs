//! Retry-safe `startSession` and `appendMessage`: an idempotency key binds
//! the first request's payload and answer, kept in the same transaction as
//! the answer itself. A retry with the same payload gets that answer; with
//! another payload, `IDEMPOTENCY_KEY_REUSED`. Two requests racing with one
//! key meet the table's primary key: the loser's transaction is undone and
//! made again ([`retry_raced`]), and then it finds the winner's answer.
//!
//! [`retry_raced`]: super::conversions::write::retry_raced

use chrono::TimeDelta;
use entity::request_key;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::Services;
use super::conversions::write::raced_or_failed;
use crate::domain::clock::to_micros;
use crate::domain::idempotency;
use crate::domain::text;
use crate::error::AppError;

/// How long a key is kept: a retry comes within minutes; two days leave
/// room for an agent runtime's queue that replays a day later.
pub const KEEP_KEYS: TimeDelta = TimeDelta::hours(48);

/// Keys deleted per statement.
const PRUNE_BATCH: u64 = 1_000;

/// The operations whose keys are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedOperation {
    StartSession,
    AppendMessage,
}

impl KeyedOperation {
    fn as_str(self) -> &'static str {
        match self {
            KeyedOperation::StartSession => "startSession",
            KeyedOperation::AppendMessage => "appendMessage",
        }
    }
}

/// A request's key with its payload's fingerprint.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub operation: KeyedOperation,
    pub key: String,
    pub fingerprint: String,
}

impl Keyed {
    /// The key of a request, if it has one (the same rules as
    /// `recordConversion`'s), bound to the payload `fields`.
    pub fn of(
        operation: KeyedOperation,
        key: Option<&str>,
        fields: &[Option<&str>],
    ) -> Result<Option<Keyed>, AppError> {
        let Some(key) = text::optional("idempotencyKey", key, idempotency::MAX_KEY_CHARS)? else {
            return Ok(None);
        };
        Ok(Some(Keyed {
            operation,
            key,
            fingerprint: idempotency::fingerprint(fields),
        }))
    }

    /// The answer bound to this key, if any; `IDEMPOTENCY_KEY_REUSED` when
    /// the key was first used for another payload.
    pub async fn bound<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
    ) -> Result<Option<request_key::Model>, AppError> {
        let found = request_key::Entity::find_by_id((
            tenant_id,
            self.operation.as_str().to_owned(),
            self.key.clone(),
        ))
        .one(db)
        .await?;
        match found {
            Some(row) if row.payload_fingerprint != self.fingerprint => {
                Err(AppError::IdempotencyKeyReused)
            }
            other => Ok(other),
        }
    }

    /// Binds the key to its answer, in the answer's transaction. A
    /// concurrent request that bound it first makes this one
    /// [`AppError::Raced`].
    pub async fn bind<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
        answer: Answer,
        now: i64,
    ) -> Result<(), AppError> {
        request_key::ActiveModel {
            tenant_id: Set(tenant_id),
            operation: Set(self.operation.as_str().to_owned()),
            key: Set(self.key.clone()),
            payload_fingerprint: Set(self.fingerprint.clone()),
            conversation_id: Set(answer.conversation_id),
            message_id: Set(answer.message_id),
            resumed: Set(answer.resumed),
            created_at: Set(now),
        }
        .insert(db)
        .await
        .map_err(raced_or_failed)?;
        Ok(())
    }
}

/// What a keyed request answered.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub conversation_id: Uuid,
    pub message_id: Option<Uuid>,
    pub resumed: bool,
}

impl Services {
    /// Deletes up to a batch of keys older than [`KEEP_KEYS`]; how many.
    pub async fn prune_request_keys(&self) -> Result<u64, AppError> {
        let cutoff = to_micros(self.clock.now() - KEEP_KEYS);
        let oldest = Query::select()
            .column(request_key::Column::CreatedAt)
            .from(request_key::Entity)
            .and_where(Expr::col(request_key::Column::CreatedAt).lt(cutoff))
            .order_by(request_key::Column::CreatedAt, sea_orm::Order::Asc)
            .limit(PRUNE_BATCH)
            .to_owned();
        // The batch's newest time bounds it: keys at that very instant
        // beyond the batch go with it, which only shortens the next one.
        let Some(bound) = self
            .db
            .query_all_raw(self.db.get_database_backend().build(&oldest))
            .await?
            .last()
            .map(|row| row.try_get_by_index::<i64>(0))
            .transpose()?
        else {
            return Ok(0);
        };
        let txn = self.begin_write().await?;
        let pruned = request_key::Entity::delete_many()
            .filter(request_key::Column::CreatedAt.lte(bound))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        metrics::counter!("convtrack_request_keys_pruned_total").increment(pruned.rows_affected);
        Ok(pruned.rows_affected)
    }
}
