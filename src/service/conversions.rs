//! Recording conversions against conversations, and reading them back.

use std::collections::HashMap;

use entity::{conversation, conversion, idempotency_key, tenant};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, Statement,
};
use uuid::Uuid;

use super::sessions::find_by_session_id;
use super::{Caller, Page, Services, begin_write};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::conversion::{ConversionKind, ConversionSource, RecordType};
use crate::domain::idempotency::{self, fingerprint};
use crate::domain::link::CtaAction;
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::domain::text;
use crate::error::{AppError, stored};
use crate::events::{EventBus, NOTIFY_CHANNEL, notify_payload};

pub const MAX_RECORD_ID_CHARS: usize = 200;

/// Where the checkout learned which conversation the outcome came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The session ID itself (the agent, or a backend that holds it).
    Session(SessionId),
    /// The token of a call-to-action link (`ai_session`).
    LinkToken(String),
}

/// A checkout, form or agent reporting an outcome.
#[derive(Debug, Clone)]
pub struct RecordConversion {
    pub origin: Origin,
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
pub(crate) struct Planned {
    pub kind: ConversionKind,
    pub record_id: String,
}

/// How the new rows are credited.
pub(crate) struct Attribution {
    pub source: ConversionSource,
    pub attributed: bool,
    pub unattributed_reason: Option<&'static str>,
    pub link: Option<(Uuid, CtaAction)>,
}

impl Attribution {
    pub fn credited(source: ConversionSource) -> Self {
        Self {
            source,
            attributed: true,
            unattributed_reason: None,
            link: None,
        }
    }
}

/// What [`record_in`] did; the caller commits only when it wrote.
pub(crate) struct Outcome {
    pub recorded: Recorded,
    pub wrote: bool,
    pub inserted: Vec<conversion::Model>,
}

/// The reason stored on a link conversion that arrived after its session's
/// attribution window.
pub const ATTRIBUTION_EXPIRED: &str = "ATTRIBUTION_EXPIRED";

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
        let origin_text = match &input.origin {
            Origin::Session(id) => format!("session:{id}"),
            Origin::LinkToken(token) => format!("link:{token}"),
        };
        let payload = fingerprint(&[
            Some(&origin_text),
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
        let now = self.clock.now();

        // A token's signature is checked before the write transaction: a
        // forged token must not hold the write lock, even briefly.
        let claims = match &input.origin {
            Origin::LinkToken(token) => Some(self.verify_token(&self.db, token).await?),
            Origin::Session(_) => None,
        };
        let txn = begin_write(&self.db).await?;
        let (conversation, attribution) = match (&input.origin, claims) {
            (Origin::LinkToken(_), Some(claims)) => {
                let (conversation, link) = self
                    .resolve_link_claims(&txn, caller.tenant_id, &claims)
                    .await?;
                // The expiry the link was issued with, whatever the window is now.
                let within = now <= from_micros(link.expires_at);
                let action: CtaAction = stored("cta_link.action", &link.action)?;
                let attribution = Attribution {
                    source: ConversionSource::Link,
                    attributed: within,
                    unattributed_reason: (!within).then_some(ATTRIBUTION_EXPIRED),
                    link: Some((link.id, action)),
                };
                (conversation, attribution)
            }
            (Origin::Session(session_id), _) => {
                let conversation = find_by_session_id(&txn, caller.tenant_id, session_id)
                    .await?
                    .ok_or(AppError::NotFound("session"))?;
                (
                    conversation,
                    Attribution::credited(ConversionSource::Direct),
                )
            }
            (Origin::LinkToken(_), None) => return Err(AppError::InvalidLinkToken),
        };
        let key = idempotency_key.map(|k| (k, payload));
        let outcome = record_in(
            &txn,
            caller.tenant_id,
            &conversation,
            &planned,
            &attribution,
            key,
            to_micros(now),
        )
        .await?;
        finish(txn, outcome, &conversation, &self.events).await
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

    /// Unattributed conversions, newest first, for review (ADMIN).
    pub async fn unattributed_page(
        &self,
        caller: &Caller,
        first: u64,
        after_seq: Option<i64>,
    ) -> Result<Page<conversion::Model>, AppError> {
        caller.require(
            Operation::ReviewUnattributed,
            "review unattributed conversions",
        )?;
        let mut query = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .filter(conversion::Column::Attributed.eq(false));
        if let Some(after) = after_seq {
            query = query.filter(conversion::Column::FeedSeq.lt(after));
        }
        let rows = query
            .order_by_desc(conversion::Column::FeedSeq)
            .limit(first + 1)
            .all(&self.db)
            .await?;
        Ok(Page::from_overfetch(rows, first))
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

/// Commits what [`record_in`] wrote (or rolls back a pure replay) and counts it.
pub(crate) async fn finish(
    txn: DatabaseTransaction,
    outcome: Outcome,
    conversation: &conversation::Model,
    events: &EventBus,
) -> Result<Recorded, AppError> {
    if !outcome.wrote {
        // A replay: roll back, which also returns the cursor numbers.
        txn.rollback().await?;
        return Ok(outcome.recorded);
    }
    let feed_moved = !outcome.inserted.is_empty();
    if feed_moved && txn.get_database_backend() == DatabaseBackend::Postgres {
        // Delivered to other instances at commit, and only if it commits.
        txn.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [
                NOTIFY_CHANNEL.into(),
                notify_payload(conversation.tenant_id).into(),
            ],
        ))
        .await?;
    }
    txn.commit().await?;
    if feed_moved {
        events.wake(conversation.tenant_id);
    }
    for row in &outcome.inserted {
        metrics::counter!("convtrack_conversions_recorded_total", "kind" => row.kind.clone())
            .increment(1);
    }
    if !outcome.inserted.is_empty() {
        tracing::info!(
            inserted = outcome.inserted.len(),
            conversation = %conversation.id,
            "conversion recorded"
        );
    }
    Ok(outcome.recorded)
}

/// Records `planned` against `conversation` inside `txn`, with every rule of
/// "Conversions and badges": natural-key replays, one conversation per
/// record (Visitors excepted), idempotency keys, and cursors in commit order.
pub(crate) async fn record_in(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    conversation: &conversation::Model,
    planned: &[Planned],
    attribution: &Attribution,
    idempotency: Option<(String, String)>,
    now: i64,
) -> Result<Outcome, AppError> {
    // Taking the tenant's cursor row first serialises this tenant's
    // recordings: the checks below cannot race, and cursors follow commit
    // order. Numbers a request does not use (a replay, a partial replay)
    // leave gaps, which is fine: cursors are ordered, not dense.
    let last_seq = tenant::Entity::update_many()
        .col_expr(
            tenant::Column::ConversionSeq,
            Expr::col(tenant::Column::ConversionSeq).add(planned.len() as i64),
        )
        .filter(tenant::Column::Id.eq(tenant_id))
        .exec_with_returning(txn)
        .await?
        .pop()
        .ok_or_else(|| AppError::Internal("caller's tenant row is missing".into()))?
        .conversion_seq;

    // Stripe semantics: a key stands for the payload it was first used
    // with, whether that first use created anything or was a replay.
    let mut new_key = false;
    if let Some((key, payload)) = &idempotency {
        match idempotency_key::Entity::find_by_id((tenant_id, key.clone()))
            .one(txn)
            .await?
        {
            Some(seen) if &seen.payload_fingerprint != payload => {
                return Err(AppError::IdempotencyKeyReused);
            }
            Some(_) => {}
            None => {
                idempotency_key::ActiveModel {
                    tenant_id: Set(tenant_id),
                    key: Set(key.clone()),
                    payload_fingerprint: Set(payload.clone()),
                    created_at: Set(now),
                }
                .insert(txn)
                .await?;
                new_key = true;
            }
        }
    }

    // Everything that could make this request a replay or a conflict, in one query.
    let mut related = Condition::any();
    for p in planned {
        related = related.add(
            // The record type is implied by the kind; naming it lets the
            // (tenant, record type, record id) index serve even a generic
            // prepared plan.
            Condition::all()
                .add(conversion::Column::RecordType.eq(p.kind.record_type().as_str()))
                .add(conversion::Column::RecordId.eq(p.record_id.clone()))
                .add(conversion::Column::Kind.eq(p.kind.as_str())),
        );
    }
    let existing = conversion::Entity::find()
        .filter(conversion::Column::TenantId.eq(tenant_id))
        .filter(related)
        .order_by_asc(conversion::Column::FeedSeq)
        .all(txn)
        .await?;

    let mut result = Vec::with_capacity(planned.len());
    let mut to_insert = Vec::new();
    let mut next_seq = last_seq - planned.len() as i64;
    for p in planned {
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
            tenant_id,
            conversation_id: Some(conversation.id),
            kind: p.kind.as_str().to_owned(),
            record_type: p.kind.record_type().as_str().to_owned(),
            record_id: p.record_id.clone(),
            source: attribution.source.as_str().to_owned(),
            attributed: attribution.attributed,
            unattributed_reason: attribution.unattributed_reason.map(str::to_owned),
            idempotency_key: idempotency.as_ref().map(|(k, _)| k.clone()),
            payload_fingerprint: idempotency.as_ref().map(|(_, p)| p.clone()),
            feed_seq: next_seq,
            recorded_at: now,
            link_id: attribution.link.map(|(id, _)| id),
            link_action: attribution.link.map(|(_, a)| a.as_str().to_owned()),
            conversation_started_at: Some(conversation.started_at),
            conversation_channel: Some(conversation.channel.clone()),
        };
        result.push(row.clone());
        to_insert.push(row);
    }

    let attributed = result.first().is_some_and(|c| c.attributed);
    if to_insert.is_empty() {
        return Ok(Outcome {
            recorded: Recorded {
                conversions: result,
                created: false,
                attributed,
            },
            // Keep a first-seen idempotency key even when nothing else is new.
            wrote: new_key,
            inserted: Vec::new(),
        });
    }
    conversion::Entity::insert_many(to_insert.iter().cloned().map(conversion::ActiveModel::from))
        .exec_without_returning(txn)
        .await
        .map_err(|e| match e.sql_err() {
            // Only reachable if the serialisation above were bypassed.
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict("this record was recorded concurrently; retry".into())
            }
            _ => AppError::from(e),
        })?;
    // Once set, the first conversion time never changes: only a conversation
    // without one needs the update.
    if attribution.attributed && conversation.first_converted_at.is_none() {
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
            .exec(txn)
            .await?;
    }
    Ok(Outcome {
        recorded: Recorded {
            conversions: result,
            created: true,
            attributed,
        },
        wrote: true,
        inserted: to_insert,
    })
}
