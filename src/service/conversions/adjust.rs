//! `restateConversion` and `retractConversion`: a recorded sale changed
//! its value or was withdrawn. The change is kept in the conversion's
//! history, counted in the stats ([`super::recount`]) and is an event of
//! the tenant's feed, exactly once per idempotency key.

use entity::{conversion, conversion_adjustment, idempotency_key};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use super::recount;
use super::write::retry_raced;
use crate::domain::adjustment::{self, ConversionChange, ConversionStatus};
use crate::domain::idempotency::{self, fingerprint};
use crate::domain::money::Money;
use crate::domain::role::Operation;
use crate::domain::text;
use crate::error::AppError;
use crate::service::feed::FEED_XID;
use crate::service::read_model::{Adjustment, Conversion, read_all};
use crate::service::{Caller, Services, statement};

/// Longest reason kept with a change.
pub const MAX_REASON_CHARS: usize = 500;

/// A sale whose value changed after it was recorded.
#[derive(Debug, Clone)]
pub struct RestateConversion {
    /// None for an id that names no conversion (`NOT_FOUND`, once the
    /// caller may restate at all).
    pub conversion_id: Option<Uuid>,
    pub value: Money,
    pub reason: String,
    pub idempotency_key: String,
}

/// A sale withdrawn after it was recorded (cancelled, fully refunded).
#[derive(Debug, Clone)]
pub struct RetractConversion {
    /// None for an id that names no conversion.
    pub conversion_id: Option<Uuid>,
    pub reason: String,
    pub idempotency_key: String,
}

/// The conversion after a change, and whether this call made it.
#[derive(Debug, Clone)]
pub struct Adjusted {
    pub conversion: Conversion,
    /// False for a replay, or when the conversion already was so.
    pub created: bool,
}

impl Services {
    #[tracing::instrument(skip(self, caller, input), fields(tenant = %caller.tenant_id))]
    pub async fn restate_conversion(
        &self,
        caller: &Caller,
        input: RestateConversion,
    ) -> Result<Adjusted, AppError> {
        caller.require(Operation::AdjustConversions, "restate conversions")?;
        let value = input.value;
        let amount = format!("{} {}", value.amount(), value.currency);
        let change = Change::checked(
            ConversionChange::Restated,
            input.conversion_id,
            &input.reason,
            &input.idempotency_key,
            Some(&amount),
        )?;
        self.adjust(caller, Asked::Restate(value), change).await
    }

    #[tracing::instrument(skip(self, caller, input), fields(tenant = %caller.tenant_id))]
    pub async fn retract_conversion(
        &self,
        caller: &Caller,
        input: RetractConversion,
    ) -> Result<Adjusted, AppError> {
        caller.require(Operation::AdjustConversions, "retract conversions")?;
        let change = Change::checked(
            ConversionChange::Retracted,
            input.conversion_id,
            &input.reason,
            &input.idempotency_key,
            None,
        )?;
        self.adjust(caller, Asked::Retract, change).await
    }

    async fn adjust(
        &self,
        caller: &Caller,
        asked: Asked,
        change: Change,
    ) -> Result<Adjusted, AppError> {
        let adjusted = retry_raced(|| self.adjust_once(caller, asked, &change)).await?;
        if adjusted.created {
            self.events.moved(caller.tenant_id);
            tracing::info!(conversion = %change.conversion_id, change = change.change.as_str(), "conversion adjusted");
        }
        Ok(adjusted)
    }

    /// One attempt, in a write transaction that holds the conversion's
    /// lock, so that concurrent changes of one conversion follow one
    /// another and each starts from the value the one before left. On
    /// PostgreSQL the lock is an advisory one taken before anything is
    /// written: the transaction gets its id (its place in the feed) only
    /// once it holds the lock, so the feed orders a conversion's changes
    /// as they were made. (A row lock would give a waiting transaction its
    /// id before the wait, and the feed could then deliver a later change
    /// first.)
    async fn adjust_once(
        &self,
        caller: &Caller,
        asked: Asked,
        change: &Change,
    ) -> Result<Adjusted, AppError> {
        let txn = self.begin_write().await?;
        crate::service::lock_key(&txn, change.conversion_id.as_bytes()).await?;
        let tenant_id = caller.tenant_id;
        let bound = idempotency_key::Entity::find_by_id((tenant_id, change.key.clone()))
            .one(&*txn)
            .await?;
        if let Some(bound) = &bound
            && bound.payload_fingerprint != change.payload
        {
            return Err(AppError::IdempotencyKeyReused);
        }
        let row = conversion::Entity::find_by_id(change.conversion_id)
            .filter(conversion::Column::TenantId.eq(tenant_id))
            .one(&*txn)
            .await?
            .ok_or(AppError::NotFound("conversion"))?;
        if bound.is_some() {
            // A replay: the first call's change (if it made one) is already
            // in the row.
            return Ok(Adjusted {
                conversion: row.try_into()?,
                created: false,
            });
        }
        idempotency_key::ActiveModel {
            tenant_id: Set(tenant_id),
            key: Set(change.key.clone()),
            payload_fingerprint: Set(change.payload.clone()),
            created_at: Set(crate::domain::clock::to_micros(self.clock.now())),
        }
        .insert(&*txn)
        .await
        .map_err(super::write::raced_or_failed)?;
        let current: Conversion = row.clone().try_into()?;
        let changes = match asked {
            Asked::Restate(value) => adjustment::restates(current.status, current.value, value)
                .map_err(|e| AppError::Conflict(e.to_string()))?,
            Asked::Retract => adjustment::retracts(current.status),
        };
        if !changes {
            txn.commit().await?;
            return Ok(Adjusted {
                conversion: current,
                created: false,
            });
        }
        // Recordings of the conversation wait from here to the commit.
        let locked = match row.conversation_id {
            Some(id) => recount::lock_conversation(&*txn, id).await?,
            None => recount::Locked {
                first_converted_at: None,
                labels: Vec::new(),
            },
        };
        let conversion = self
            .write_change(&*txn, caller, row.clone(), asked, change)
            .await?;
        match asked {
            Asked::Restate(value) => recount::restated(&*txn, &row, value, locked).await?,
            Asked::Retract => recount::retracted(&*txn, &row, locked).await?,
        }
        txn.commit().await?;
        Ok(Adjusted {
            conversion,
            created: true,
        })
    }

    /// Writes `change` of `row`: its history row, placed in the feed, and
    /// the conversion as it is now.
    async fn write_change<C: ConnectionTrait>(
        &self,
        db: &C,
        caller: &Caller,
        mut row: conversion::Model,
        asked: Asked,
        change: &Change,
    ) -> Result<Conversion, AppError> {
        let now = crate::domain::clock::to_micros(self.clock.now());
        let (feed_seq, feed_xid) = self.next_feed_place(db, caller.tenant_id).await?;
        let new_value = match asked {
            Asked::Restate(value) => Some(value),
            Asked::Retract => None,
        };
        conversion_adjustment::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(caller.tenant_id),
            conversion_id: Set(row.id),
            change: Set(change.change.as_str().to_owned()),
            value_minor: Set(new_value.map(|v| v.minor)),
            previous_value_minor: Set(row.value_minor),
            currency: Set(new_value.map(|v| v.currency.code().to_owned())),
            previous_currency: Set(row.currency.clone()),
            reason: Set(change.reason.clone()),
            role: Set(caller.role.as_str().to_owned()),
            idempotency_key: Set(change.key.clone()),
            at: Set(now),
            feed_seq: Set(feed_seq),
            feed_xid: Set(feed_xid),
            key_prefix: Set(super::review::key_prefix(db, caller).await?),
        }
        .insert(db)
        .await
        .map_err(super::write::raced_or_failed)?;
        let update = conversion::Entity::update_many().filter(conversion::Column::Id.eq(row.id));
        match new_value {
            // A retraction keeps the value the sale had.
            None => {
                row.status = ConversionStatus::Retracted.as_str().to_owned();
                update
                    .col_expr(conversion::Column::Status, Expr::value(row.status.clone()))
                    .exec(db)
                    .await?;
                if let Some(conversation_id) = row.conversation_id {
                    // Tells recordings planned before it to plan again.
                    db.execute_raw(statement(
                        db.get_database_backend(),
                        "UPDATE conversation SET retractions = retractions + 1 WHERE id = ?",
                        vec![conversation_id.into()],
                    ))
                    .await?;
                }
            }
            Some(value) => {
                row.value_minor = Some(value.minor);
                row.currency = Some(value.currency.code().to_owned());
                update
                    .col_expr(conversion::Column::ValueMinor, Expr::value(row.value_minor))
                    .col_expr(
                        conversion::Column::Currency,
                        Expr::value(row.currency.clone()),
                    )
                    .exec(db)
                    .await?;
            }
        }
        row.try_into()
    }

    /// The next place in the tenant's feed, taken as a recording takes
    /// its places: the tenant's counter under SQLite's write lock; the
    /// shared sequence and this transaction's id on PostgreSQL.
    pub(super) async fn next_feed_place<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
    ) -> Result<(i64, i64), AppError> {
        if db.get_database_backend() != DatabaseBackend::Postgres {
            let seq = super::write::take_feed_numbers(db, tenant_id, 1).await?;
            return Ok((seq, 0));
        }
        let sql = format!("SELECT nextval('conversion_feed_seq') AS seq, {FEED_XID} AS xid");
        let row = db
            .query_one_raw(statement(DatabaseBackend::Postgres, &sql, vec![]))
            .await?
            .ok_or_else(|| AppError::internal("no feed place was handed out"))?;
        Ok((row.try_get("", "seq")?, row.try_get("", "xid")?))
    }

    /// The changes of each conversion in `ids` (of the caller's tenant),
    /// oldest first.
    pub async fn adjustments_of(
        &self,
        tenant_id: Uuid,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<Adjustment>>, AppError> {
        let rows = conversion_adjustment::Entity::find()
            .filter(conversion_adjustment::Column::TenantId.eq(tenant_id))
            .filter(conversion_adjustment::Column::ConversionId.is_in(ids.iter().copied()))
            .order_by_asc(conversion_adjustment::Column::FeedXid)
            .order_by_asc(conversion_adjustment::Column::FeedSeq)
            .all(&self.db)
            .await?;
        let mut by_conversion: std::collections::HashMap<Uuid, Vec<Adjustment>> =
            std::collections::HashMap::new();
        for adjustment in read_all::<_, Adjustment>(rows)? {
            by_conversion
                .entry(adjustment.conversion_id)
                .or_default()
                .push(adjustment);
        }
        Ok(by_conversion)
    }
}

/// What a change asks for.
#[derive(Debug, Clone, Copy)]
enum Asked {
    Restate(Money),
    Retract,
}

/// A change as one attempt writes it.
struct Change {
    change: ConversionChange,
    conversion_id: Uuid,
    reason: String,
    key: String,
    /// What the idempotency key is bound to.
    payload: String,
}

impl Change {
    /// Checks what every change takes; `amount` (a restatement's new
    /// value) joins the payload.
    fn checked(
        change: ConversionChange,
        conversion_id: Option<Uuid>,
        reason: &str,
        key: &str,
        amount: Option<&str>,
    ) -> Result<Self, AppError> {
        let conversion_id = conversion_id.ok_or(AppError::NotFound("conversion"))?;
        let reason = text::required("reason", reason, MAX_REASON_CHARS)?;
        let key = text::required("idempotencyKey", key, idempotency::MAX_KEY_CHARS)?;
        let id = conversion_id.to_string();
        let mut fields = vec![Some(change.as_str()), Some(id.as_str())];
        if let Some(amount) = amount {
            fields.push(Some(amount));
        }
        fields.push(Some(&reason));
        let payload = fingerprint(&fields);
        Ok(Change {
            change,
            conversion_id,
            reason,
            key,
            payload,
        })
    }
}
