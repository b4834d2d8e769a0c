//! The confirmation flow: the agent asks the person to confirm an outcome it
//! completes itself (a booking); confirming in time records it.

use chrono::{DateTime, Utc};
use entity::{confirmation, conversation, conversion};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::conversions::plan::{Attribution, Planned, plan};
use super::conversions::write::{retry_raced, write};
use super::conversions::{MAX_RECORD_ID_CHARS, Recorded};
use super::sessions::{OpenSession, lock_open_session};
use super::{Caller, Services};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::confirmation::ConfirmationState;
use crate::domain::conversion::ConversionSource;
use crate::domain::link::CtaAction;
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::domain::text::{self, quoted};
use crate::error::{AppError, stored};

pub const MAX_SUMMARY_CHARS: usize = 2_000;

impl Services {
    /// Opens a confirmation that expires after the channel's confirmation
    /// window (roles AGENT, ADMIN).
    #[tracing::instrument(skip(self, caller, session_id, summary), fields(tenant = %caller.tenant_id, %action))]
    pub async fn request_confirmation(
        &self,
        caller: &Caller,
        session_id: &SessionId,
        action: CtaAction,
        summary: &str,
    ) -> Result<confirmation::Model, AppError> {
        caller.require(Operation::ManageSessions, "request confirmations")?;
        let summary = text::multiline("summary", summary, MAX_SUMMARY_CHARS)?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let OpenSession {
            conversation,
            policy,
            ..
        } = lock_open_session(&txn, caller.tenant_id, session_id, now).await?;
        let opened = confirmation::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(caller.tenant_id),
            conversation_id: Set(conversation.id),
            action: Set(action.as_str().to_owned()),
            // A person erased stays erased: what the agent writes about
            // them afterwards is not kept either.
            summary: Set(if conversation.erased_at.is_some() {
                String::new()
            } else {
                summary
            }),
            requested_at: Set(to_micros(now)),
            expires_at: Set(to_micros(now + policy.confirmation_window)),
            confirmed_at: Set(None),
            conversion_id: Set(None),
            cancelled_at: Set(None),
            cancel_reason: Set(None),
        }
        .insert(&*txn)
        .await?;
        txn.commit().await?;
        Ok(opened)
    }

    /// Confirms: records the action's outcome against the session with
    /// source CONFIRMATION. Confirming again returns the first result;
    /// after the window nothing is recorded (`CONFIRMATION_EXPIRED`).
    #[tracing::instrument(skip(self, caller, record_id), fields(tenant = %caller.tenant_id))]
    pub async fn confirm(
        &self,
        caller: &Caller,
        confirmation_id: Uuid,
        record_id: &str,
    ) -> Result<Recorded, AppError> {
        caller.require(Operation::RecordConversions, "confirm")?;
        let record_id = text::required("recordId", record_id, MAX_RECORD_ID_CHARS)?;
        let now = self.clock.now();
        retry_raced(|| self.confirm_once(caller, confirmation_id, &record_id, now)).await
    }

    /// One attempt of [`Self::confirm`], in one transaction.
    async fn confirm_once(
        &self,
        caller: &Caller,
        confirmation_id: Uuid,
        record_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Recorded, AppError> {
        let txn = self.begin_write().await?;
        let found = lock_confirmation(&*txn, caller.tenant_id, confirmation_id).await?;
        if let Some(first) = found.conversion_id {
            let conversion = confirmed_conversion(&*txn, first).await?;
            if conversion.record_id != record_id {
                return Err(AppError::Conflict(format!(
                    "this confirmation was already confirmed with recordId {}",
                    quoted(&conversion.record_id)
                )));
            }
            return Ok(Recorded {
                attributed: conversion.attributed,
                conversions: vec![conversion.try_into()?],
                created: false,
            });
        }
        if found.cancelled_at.is_some() {
            return Err(AppError::Conflict(
                "the person declined this confirmation (cancelConfirmation); it cannot be confirmed"
                    .into(),
            ));
        }
        if now > from_micros(found.expires_at) {
            return Err(AppError::ConfirmationExpired(
                from_micros(found.expires_at).to_rfc3339(),
            ));
        }
        let conversation = conversation::Entity::find_by_id(found.conversation_id)
            .one(&*txn)
            .await?
            .ok_or(AppError::NotFound("confirmation"))?;
        let action: CtaAction = stored("confirmation.action", &found.action)?;
        let planned = [Planned {
            kind: action.outcome(),
            record_id: record_id.to_owned(),
            value: None,
        }];
        let attribution = Attribution::credited(ConversionSource::Confirmation);
        let mut plan = plan(
            &*txn,
            &conversation,
            None,
            &planned,
            &attribution,
            None,
            to_micros(now),
        )
        .await?;
        write(&*txn, &mut plan).await?;
        let conversion_id = plan
            .first_id()
            .ok_or_else(|| AppError::internal("confirming recorded nothing"))?;
        let mut confirmed: confirmation::ActiveModel = found.into();
        confirmed.confirmed_at = Set(Some(to_micros(now)));
        confirmed.conversion_id = Set(Some(conversion_id));
        confirmed.update(&*txn).await?;
        txn.commit().await?;
        plan.committed(&self.events);
        plan.into_recorded()
    }

    /// Records that the person declined (roles AGENT, ADMIN): a later
    /// `confirm` is `CONFLICT`. True when this call cancelled it, false when
    /// it already was; a confirmed one is `CONFLICT`.
    #[tracing::instrument(skip(self, caller, reason), fields(tenant = %caller.tenant_id))]
    pub async fn cancel_confirmation(
        &self,
        caller: &Caller,
        confirmation_id: Uuid,
        reason: Option<&str>,
    ) -> Result<bool, AppError> {
        caller.require(Operation::ManageSessions, "cancel confirmations")?;
        let reason = text::optional("reason", reason, MAX_CANCEL_REASON_CHARS)?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let found = lock_confirmation(&*txn, caller.tenant_id, confirmation_id).await?;
        if let Some(first) = found.conversion_id {
            let conversion = confirmed_conversion(&*txn, first).await?;
            return Err(AppError::Conflict(format!(
                "this confirmation was confirmed (recordId {}); it cannot be cancelled",
                quoted(&conversion.record_id)
            )));
        }
        if found.cancelled_at.is_some() {
            return Ok(false);
        }
        let erased = conversation::Entity::find_by_id(found.conversation_id)
            .one(&*txn)
            .await?
            .is_some_and(|c| c.erased_at.is_some());
        let mut cancelled: confirmation::ActiveModel = found.into();
        cancelled.cancelled_at = Set(Some(to_micros(now)));
        // An erased person's reasons are not kept either.
        cancelled.cancel_reason = Set(reason.filter(|_| !erased));
        cancelled.update(&*txn).await?;
        txn.commit().await?;
        Ok(true)
    }
}

/// A confirmation as the admin detail shows it.
#[derive(Debug, Clone)]
pub struct ConfirmationView {
    pub id: Uuid,
    pub action: CtaAction,
    pub summary: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub state: ConfirmationState,
}

impl Services {
    /// The confirmations of a conversation the caller may see, oldest
    /// first, each in its state now.
    pub async fn confirmations_of(
        &self,
        caller: &Caller,
        conversation_id: Uuid,
    ) -> Result<Vec<ConfirmationView>, AppError> {
        caller.require(Operation::ReadConversation, "read conversations")?;
        let now = self.clock.now();
        let rows = confirmation::Entity::find()
            .filter(confirmation::Column::TenantId.eq(caller.tenant_id))
            .filter(confirmation::Column::ConversationId.eq(conversation_id))
            .order_by_asc(confirmation::Column::RequestedAt)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let expires_at = from_micros(row.expires_at);
                Ok(ConfirmationView {
                    id: row.id,
                    action: stored("confirmation.action", &row.action)?,
                    state: ConfirmationState::at(
                        row.conversion_id.is_some(),
                        row.cancelled_at.is_some(),
                        expires_at,
                        now,
                    ),
                    summary: row.summary,
                    requested_at: from_micros(row.requested_at),
                    expires_at,
                    confirmed_at: row.confirmed_at.map(from_micros),
                    cancelled_at: row.cancelled_at.map(from_micros),
                    cancel_reason: row.cancel_reason,
                })
            })
            .collect()
    }
}

/// Longest reason a cancellation keeps.
pub const MAX_CANCEL_REASON_CHARS: usize = 500;

/// The tenant's confirmation `id`, locked for the caller's transaction.
async fn lock_confirmation<C: sea_orm::ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<confirmation::Model, AppError> {
    confirmation::Entity::find_by_id(id)
        .filter(confirmation::Column::TenantId.eq(tenant_id))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("confirmation"))
}

/// The conversion a confirmed confirmation recorded.
async fn confirmed_conversion<C: sea_orm::ConnectionTrait>(
    txn: &C,
    id: Uuid,
) -> Result<conversion::Model, AppError> {
    conversion::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or_else(|| AppError::internal("a confirmed confirmation lost its conversion"))
}
