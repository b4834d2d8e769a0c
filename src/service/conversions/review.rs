//! `attributeConversion` and `dismissConversion`: an operator reviews a
//! conversion kept unattributed. Attributing credits it to its
//! conversation anyway — a badge, "converted", the stats — as a change in
//! its history (who, when, why) and an event of the feed. Dismissing takes
//! it out of the review queue and keeps it, unattributed, for audit.

use entity::{api_key, conversion, conversion_adjustment};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::adjust::{Adjusted, MAX_REASON_CHARS};
use super::recount;
use super::write::retry_raced;
use crate::domain::adjustment::{ConversionChange, ConversionStatus};
use crate::domain::role::Operation;
use crate::domain::text;
use crate::error::AppError;
use crate::service::read_model::Conversion;
use crate::service::{Caller, Services, statement};

/// What the operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// Credit it to its conversation anyway.
    Attribute,
    /// Take it out of the queue; it stays unattributed.
    Dismiss,
}

impl Review {
    fn change(self) -> ConversionChange {
        match self {
            Review::Attribute => ConversionChange::Attributed,
            Review::Dismiss => ConversionChange::Dismissed,
        }
    }
}

impl Services {
    /// Reviews the unattributed conversion `conversion_id` (None: an id
    /// that names no conversion) for `reason`. A conversion already so
    /// answers with `created: false`; a dismissed one may still be
    /// attributed, an attributed one is not in the queue to dismiss.
    #[tracing::instrument(skip(self, caller, reason), fields(tenant = %caller.tenant_id))]
    pub async fn review_conversion(
        &self,
        caller: &Caller,
        conversion_id: Option<Uuid>,
        review: Review,
        reason: &str,
    ) -> Result<Adjusted, AppError> {
        caller.require(
            Operation::ReviewUnattributed,
            "review unattributed conversions",
        )?;
        let reason = text::required("reason", reason, MAX_REASON_CHARS)?;
        let conversion_id = conversion_id.ok_or(AppError::NotFound("conversion"))?;
        let reviewed =
            retry_raced(|| self.review_once(caller, conversion_id, review, &reason)).await?;
        if reviewed.created {
            self.events.moved(caller.tenant_id);
            tracing::info!(conversion = %conversion_id, change = review.change().as_str(), "conversion reviewed");
        }
        Ok(reviewed)
    }

    /// One attempt, holding the conversion's lock (as a restatement does)
    /// and, to attribute, its conversation's.
    async fn review_once(
        &self,
        caller: &Caller,
        conversion_id: Uuid,
        review: Review,
        reason: &str,
    ) -> Result<Adjusted, AppError> {
        let txn = self.begin_write().await?;
        crate::service::lock_key(&txn, conversion_id.as_bytes()).await?;
        let row = conversion::Entity::find_by_id(conversion_id)
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .one(&*txn)
            .await?
            .ok_or(AppError::NotFound("conversion"))?;
        if row.status != ConversionStatus::Active.as_str() {
            return Err(AppError::Conflict(
                "the conversion was retracted: there is nothing to review".into(),
            ));
        }
        let done = match review {
            Review::Attribute => row.attributed,
            Review::Dismiss if row.attributed => {
                return Err(AppError::Conflict(
                    "the conversion is attributed: it is not in the review queue".into(),
                ));
            }
            Review::Dismiss => row.review.as_deref() == Some(ConversionChange::Dismissed.as_str()),
        };
        if done {
            txn.commit().await?;
            return Ok(Adjusted {
                conversion: row.try_into()?,
                created: false,
            });
        }
        let locked = match (review, row.conversation_id) {
            (Review::Dismiss, _) => None,
            (Review::Attribute, Some(id)) => Some(recount::lock_conversation(&*txn, id).await?),
            (Review::Attribute, None) => {
                return Err(AppError::Conflict(
                    "the conversion has no conversation to credit it to".into(),
                ));
            }
        };
        self.write_review(&*txn, caller, &row, review, reason)
            .await?;
        if let Some(locked) = locked {
            recount::credited(&*txn, &row, locked).await?;
        }
        let mut now = row;
        now.review = Some(review.change().as_str().to_owned());
        now.attributed |= review == Review::Attribute;
        txn.commit().await?;
        Ok(Adjusted {
            conversion: Conversion::try_from(now)?,
            created: true,
        })
    }

    /// The history row of `review` (placed in the feed) and the
    /// conversion's new state.
    async fn write_review<C: ConnectionTrait>(
        &self,
        db: &C,
        caller: &Caller,
        row: &conversion::Model,
        review: Review,
        reason: &str,
    ) -> Result<(), AppError> {
        let now = crate::domain::clock::to_micros(self.clock.now());
        let key_prefix = key_prefix(db, caller).await?;
        let (feed_seq, feed_xid) = self.next_feed_place(db, caller.tenant_id).await?;
        conversion_adjustment::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(caller.tenant_id),
            conversion_id: Set(row.id),
            change: Set(review.change().as_str().to_owned()),
            value_minor: Set(row.value_minor),
            previous_value_minor: Set(row.value_minor),
            currency: Set(row.currency.clone()),
            previous_currency: Set(row.currency.clone()),
            reason: Set(reason.to_owned()),
            role: Set(caller.role.as_str().to_owned()),
            // Reviews take no idempotency key (the state decides what a
            // repeat does); the column is unique per tenant, so each gets
            // its own.
            idempotency_key: Set(format!("review:{}", Uuid::now_v7())),
            at: Set(now),
            feed_seq: Set(feed_seq),
            feed_xid: Set(feed_xid),
            key_prefix: Set(key_prefix),
        }
        .insert(db)
        .await
        .map_err(super::write::raced_or_failed)?;
        conversion::Entity::update_many()
            .filter(conversion::Column::Id.eq(row.id))
            .col_expr(
                conversion::Column::Review,
                Expr::value(review.change().as_str()),
            )
            .col_expr(
                conversion::Column::Attributed,
                Expr::value(row.attributed || review == Review::Attribute),
            )
            .exec(db)
            .await?;
        if let (Review::Attribute, Some(conversation_id)) = (review, row.conversation_id) {
            // Tells recordings planned before it to plan again: their
            // "is this the first?" was decided without this conversion.
            db.execute_raw(statement(
                db.get_database_backend(),
                "UPDATE conversation SET retractions = retractions + 1 WHERE id = ?",
                vec![conversation_id.into()],
            ))
            .await?;
        }
        Ok(())
    }
}

/// Who is calling, as a change's history shows it: the first characters of
/// the caller's API key.
pub(super) async fn key_prefix<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
) -> Result<Option<String>, AppError> {
    Ok(api_key::Entity::find_by_id(caller.key_id)
        .one(db)
        .await?
        .map(|key| key.key_prefix))
}
