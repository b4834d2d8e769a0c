//! Recording conversions against conversations, and reading them back.

use std::collections::HashMap;

use entity::{conversation, conversion, idempotency_key, tenant};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, SqlErr};
use uuid::Uuid;

use super::sessions::find_by_session_id;
use super::{Caller, Services, begin_write};
use crate::domain::clock::to_micros;
use crate::domain::conversion::{ConversionKind, ConversionSource, RecordType};
use crate::domain::idempotency::{self, fingerprint};
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::domain::text;
use crate::error::AppError;

pub const MAX_RECORD_ID_CHARS: usize = 200;

/// A checkout, form or agent reporting an outcome of a session.
#[derive(Debug, Clone)]
pub struct RecordConversion {
    pub session_id: SessionId,
    pub kind: ConversionKind,
    pub record_id: String,
    /// With `CONTRACT_CREATED`: the new customer the contract was signed by;
    /// records `CUSTOMER_CREATED` too, in the same transaction.
    pub new_customer_id: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    /// The requested conversion first, then the customer one if any.
    pub conversions: Vec<conversion::Model>,
    /// False when everything already existed (a replay).
    pub created: bool,
    pub attributed: bool,
}

/// One record the request wants credited.
struct Planned {
    kind: ConversionKind,
    record_id: String,
}

impl Services {
    #[tracing::instrument(skip(self, caller, input), fields(tenant = %caller.tenant_id, kind = %input.kind))]
    pub async fn record_conversion(
        &self,
        caller: &Caller,
        input: RecordConversion,
    ) -> Result<Recorded, AppError> {
        caller.require(Operation::RecordConversions, "record conversions")?;
        let record_id = text::required("recordId", &input.record_id, MAX_RECORD_ID_CHARS)?;
        let new_customer_id = text::optional(
            "newCustomerId",
            input.new_customer_id.as_deref(),
            MAX_RECORD_ID_CHARS,
        )?;
        if new_customer_id.is_some() && input.kind != ConversionKind::ContractCreated {
            return Err(AppError::BadInput(
                "newCustomerId goes with kind CONTRACT_CREATED (a membership sign-up by a new customer)"
                    .into(),
            ));
        }
        let idempotency_key = text::optional(
            "idempotencyKey",
            input.idempotency_key.as_deref(),
            idempotency::MAX_KEY_CHARS,
        )?;
        let payload = fingerprint(&[
            Some(input.session_id.as_str()),
            Some(input.kind.as_str()),
            Some(&record_id),
            new_customer_id.as_deref(),
        ]);
        let mut planned = vec![Planned {
            kind: input.kind,
            record_id,
        }];
        if let Some(customer) = new_customer_id {
            planned.push(Planned {
                kind: ConversionKind::CustomerCreated,
                record_id: customer,
            });
        }
        let now = to_micros(self.clock.now());

        let txn = begin_write(&self.db).await?;
        let conversation = find_by_session_id(&txn, caller.tenant_id, &input.session_id)
            .await?
            .ok_or(AppError::NotFound("session"))?;
        // Taking the tenant's cursor row first serialises this tenant's
        // recordings: the checks below cannot race, and cursors follow commit
        // order. Numbers a request does not use (a replay, a partial replay)
        // leave gaps, which is fine: cursors are ordered, not dense.
        let last_seq = tenant::Entity::update_many()
            .col_expr(
                tenant::Column::ConversionSeq,
                Expr::col(tenant::Column::ConversionSeq).add(planned.len() as i64),
            )
            .filter(tenant::Column::Id.eq(caller.tenant_id))
            .exec_with_returning(&txn)
            .await?
            .pop()
            .ok_or_else(|| AppError::Internal("caller's tenant row is missing".into()))?
            .conversion_seq;

        // Stripe semantics: a key stands for the payload it was first used
        // with, whether that first use created anything or was a replay.
        let mut new_key = false;
        if let Some(key) = &idempotency_key {
            match idempotency_key::Entity::find_by_id((caller.tenant_id, key.clone()))
                .one(&txn)
                .await?
            {
                Some(seen) if seen.payload_fingerprint != payload => {
                    return Err(AppError::IdempotencyKeyReused);
                }
                Some(_) => {}
                None => {
                    idempotency_key::ActiveModel {
                        tenant_id: Set(caller.tenant_id),
                        key: Set(key.clone()),
                        payload_fingerprint: Set(payload.clone()),
                        created_at: Set(now),
                    }
                    .insert(&txn)
                    .await?;
                    new_key = true;
                }
            }
        }

        // Everything that could make this request a replay or a conflict, in one query.
        let mut related = Condition::any();
        for p in &planned {
            related = related.add(
                Condition::all()
                    .add(conversion::Column::Kind.eq(p.kind.as_str()))
                    .add(conversion::Column::RecordId.eq(p.record_id.clone())),
            );
        }
        let existing = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .filter(related)
            .order_by_asc(conversion::Column::FeedSeq)
            .all(&txn)
            .await?;

        let mut result = Vec::with_capacity(planned.len());
        let mut to_insert = Vec::new();
        let mut next_seq = last_seq - planned.len() as i64;
        for p in &planned {
            let same_record =
                |c: &&conversion::Model| c.kind == p.kind.as_str() && c.record_id == p.record_id;
            if let Some(mine) = existing
                .iter()
                .filter(same_record)
                .find(|c| c.conversation_id == Some(conversation.id))
            {
                result.push(mine.clone());
                continue;
            }
            if !p.kind.record_reusable_across_conversations()
                && existing.iter().any(|c| same_record(&c))
            {
                return Err(AppError::Conflict(format!(
                    "{} {:?} is already attributed to another conversation",
                    p.kind.record_type().as_str(),
                    p.record_id
                )));
            }
            next_seq += 1;
            let row = conversion::Model {
                id: Uuid::now_v7(),
                tenant_id: caller.tenant_id,
                conversation_id: Some(conversation.id),
                kind: p.kind.as_str().to_owned(),
                record_type: p.kind.record_type().as_str().to_owned(),
                record_id: p.record_id.clone(),
                source: ConversionSource::Direct.as_str().to_owned(),
                attributed: true,
                unattributed_reason: None,
                idempotency_key: idempotency_key.clone(),
                payload_fingerprint: idempotency_key.as_ref().map(|_| payload.clone()),
                feed_seq: next_seq,
                recorded_at: now,
            };
            result.push(row.clone());
            to_insert.push(row);
        }

        if to_insert.is_empty() {
            // A replay: nothing new to record. Keep a first-seen idempotency
            // key; otherwise roll back, which also returns the cursor numbers.
            if new_key {
                txn.commit().await?;
            } else {
                txn.rollback().await?;
            }
            let attributed = result.first().is_some_and(|c| c.attributed);
            return Ok(Recorded {
                conversions: result,
                created: false,
                attributed,
            });
        }
        let inserted = to_insert.len();
        conversion::Entity::insert_many(
            to_insert.iter().cloned().map(conversion::ActiveModel::from),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            // Only reachable if the serialisation above were bypassed.
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict("this record was recorded concurrently; retry".into())
            }
            _ => AppError::from(e),
        })?;
        // "Converted" and conversion stats read this column instead of
        // joining conversions.
        conversation::Entity::update_many()
            .col_expr(
                conversation::Column::FirstConvertedAt,
                Func::coalesce([
                    Expr::col(conversation::Column::FirstConvertedAt),
                    Expr::value(now),
                ])
                .into(),
            )
            .filter(conversation::Column::Id.eq(conversation.id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        for row in &to_insert {
            metrics::counter!("convtrack_conversions_recorded_total", "kind" => row.kind.clone())
                .increment(1);
        }
        tracing::info!(inserted, conversation = %conversation.id, "conversion recorded");
        Ok(Recorded {
            conversions: result,
            created: true,
            attributed: true,
        })
    }

    /// The most recent conversation credited with a record: the "AI Agent
    /// Conversation" view of a Visitor, Coworker, contract, booking or product.
    pub async fn conversation_for_record(
        &self,
        caller: &Caller,
        record_type: RecordType,
        record_id: &str,
    ) -> Result<Option<conversation::Model>, AppError> {
        caller.require(
            Operation::BrowseConversations,
            "look up conversations by record",
        )?;
        let latest = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .filter(conversion::Column::RecordType.eq(record_type.as_str()))
            .filter(conversion::Column::RecordId.eq(record_id.trim()))
            .filter(conversion::Column::Attributed.eq(true))
            .order_by_desc(conversion::Column::FeedSeq)
            .one(&self.db)
            .await?;
        let Some(conversation_id) = latest.and_then(|c| c.conversation_id) else {
            return Ok(None);
        };
        Ok(conversation::Entity::find_by_id(conversation_id)
            .filter(conversation::Column::TenantId.eq(caller.tenant_id))
            .one(&self.db)
            .await?)
    }

    pub async fn conversion_by_id(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Option<conversion::Model>, AppError> {
        caller.require(Operation::ReadConversation, "read conversions")?;
        Ok(conversion::Entity::find_by_id(id)
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .one(&self.db)
            .await?)
    }

    /// Conversions of many conversations at once (the batch behind badges).
    /// One statement, whatever the number of conversations.
    pub async fn conversions_of(
        &self,
        tenant_id: Uuid,
        conversation_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<conversion::Model>>, AppError> {
        let rows = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(tenant_id))
            .filter(conversion::Column::ConversationId.is_in(conversation_ids.iter().copied()))
            .order_by_asc(conversion::Column::FeedSeq)
            .all(&self.db)
            .await?;
        let mut by_conversation: HashMap<Uuid, Vec<conversion::Model>> = HashMap::new();
        for row in rows {
            if let Some(id) = row.conversation_id {
                by_conversation.entry(id).or_default().push(row);
            }
        }
        Ok(by_conversation)
    }

    /// Conversations by id, for many ids at once.
    pub async fn conversations_by_ids(
        &self,
        tenant_id: Uuid,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, conversation::Model>, AppError> {
        let rows = conversation::Entity::find()
            .filter(conversation::Column::TenantId.eq(tenant_id))
            .filter(conversation::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|c| (c.id, c)).collect())
    }
}
