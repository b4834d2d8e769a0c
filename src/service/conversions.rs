//! Recording conversions against conversations, and reading them back.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use entity::{conversation, conversion, idempotency_key};
use sea_orm::sea_query::{Condition, Expr, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};
use uuid::Uuid;

use super::sessions::find_by_session_id;
use super::{Caller, Page, Services, statement};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::conversion::{ConversionKind, ConversionSource, RecordType};
use crate::domain::idempotency::{self, fingerprint};
use crate::domain::link::{CtaAction, LinkClaims};
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
    /// The tenant's attribution window (from the settings read with the
    /// key): a recording by session ID after it is stored unattributed,
    /// like a link's.
    pub attribution_window: TimeDelta,
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

/// The reason stored on a conversion that arrived after its session's
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
        let key = idempotency_key.map(|k| (k, payload));
        retry_raced(|| {
            self.record_once(caller, &input, claims.as_ref(), &planned, key.clone(), now)
        })
        .await
    }

    /// One attempt of [`Self::record_conversion`]: the checks read without
    /// locks, then the rows are written at once (see [`write`]).
    async fn record_once(
        &self,
        caller: &Caller,
        input: &RecordConversion,
        claims: Option<&LinkClaims>,
        planned: &[Planned],
        idempotency: Option<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, AppError> {
        let (conversation, attribution) = match (&input.origin, claims) {
            (Origin::LinkToken(_), Some(claims)) => {
                let (conversation, link) = self
                    .resolve_link_claims(&self.db, caller.tenant_id, claims)
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
                let conversation = find_by_session_id(&self.db, caller.tenant_id, session_id)
                    .await?
                    .ok_or(AppError::NotFound("session"))?;
                let within = now <= from_micros(conversation.started_at) + input.attribution_window;
                let attribution = Attribution {
                    source: ConversionSource::Direct,
                    attributed: within,
                    unattributed_reason: (!within).then_some(ATTRIBUTION_EXPIRED),
                    link: None,
                };
                (conversation, attribution)
            }
            (Origin::LinkToken(_), None) => return Err(AppError::InvalidLinkToken),
        };
        let mut plan = plan(
            &self.db,
            caller.tenant_id,
            &conversation,
            planned,
            &attribution,
            idempotency,
            to_micros(now),
        )
        .await?;
        if plan.writes() {
            if self.db.get_database_backend() == DatabaseBackend::Postgres {
                write(&self.db, &mut plan).await?;
            } else {
                let txn = self.begin_write().await?;
                write(&*txn, &mut plan).await?;
                txn.commit().await?;
            }
            plan.committed(&self.events);
        }
        Ok(plan.into_recorded())
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
        // A record has a handful of conversions at most; the newest is
        // picked here rather than by ORDER BY feed_seq LIMIT 1, which can
        // lure PostgreSQL onto the tenant's whole feed index.
        let latest = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .filter(conversion::Column::RecordType.eq(record_type.as_str()))
            .filter(conversion::Column::RecordId.eq(record_id.trim()))
            .filter(conversion::Column::Attributed.eq(true))
            .all(&self.db)
            .await?
            .into_iter()
            .max_by_key(|c| c.feed_seq);
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

/// What a recording will do, decided by [`plan`] from reads alone.
pub(crate) struct Plan {
    tenant_id: Uuid,
    conversation_id: Uuid,
    /// The answer: the rows that already existed and the new ones, in the
    /// order requested. New rows get their feed cursor when written.
    result: Vec<conversion::Model>,
    /// Positions in `result` of the rows to insert.
    new_rows: Vec<usize>,
    /// An idempotency key used for the first time, with its payload.
    new_key: Option<(String, String)>,
    /// This recording is the conversation's first attributed conversion.
    first_conversion: bool,
    now: i64,
}

impl Plan {
    /// Whether anything is to be written: new rows, or only a first-seen
    /// idempotency key (a replay under a new key still binds the key).
    pub fn writes(&self) -> bool {
        !self.new_rows.is_empty() || self.new_key.is_some()
    }

    pub fn into_recorded(self) -> Recorded {
        Recorded {
            attributed: self.result.first().is_some_and(|c| c.attributed),
            created: !self.new_rows.is_empty(),
            conversions: self.result,
        }
    }

    /// The first row of the answer (the requested record's conversion).
    pub fn first_id(&self) -> Option<Uuid> {
        self.result.first().map(|c| c.id)
    }

    /// After the commit: wake this instance's subscribers, count and log.
    pub fn committed(&self, events: &EventBus) {
        if self.new_rows.is_empty() {
            return;
        }
        events.wake(self.tenant_id);
        for &at in &self.new_rows {
            metrics::counter!("convtrack_conversions_recorded_total", "kind" => self.result[at].kind.clone())
                .increment(1);
        }
        tracing::info!(
            inserted = self.new_rows.len(),
            conversation = %self.conversation_id,
            "conversion recorded"
        );
    }
}

/// Decides what recording `planned` against `conversation` means, with
/// every rule of "Conversions and badges": natural-key replays, one
/// conversation per record (Visitors excepted), idempotency keys. Reads
/// only, without locks: a concurrent request that passes the same checks
/// meets the unique indexes when writing, and is retried ([`Raced`]).
///
/// [`Raced`]: AppError::Raced
pub(crate) async fn plan<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    conversation: &conversation::Model,
    planned: &[Planned],
    attribution: &Attribution,
    idempotency: Option<(String, String)>,
    now: i64,
) -> Result<Plan, AppError> {
    // Stripe semantics: a key stands for the payload it was first used
    // with, whether that first use created anything or was a replay.
    let mut new_key = None;
    if let Some((key, payload)) = &idempotency {
        match idempotency_key::Entity::find_by_id((tenant_id, key.clone()))
            .one(db)
            .await?
        {
            Some(seen) if &seen.payload_fingerprint != payload => {
                return Err(AppError::IdempotencyKeyReused);
            }
            Some(_) => {}
            None => new_key = Some((key.clone(), payload.clone())),
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
    // Sorted here, not in SQL: an ORDER BY feed_seq invites PostgreSQL to
    // walk the tenant's feed index and filter, which its statistics can
    // make look cheap right after a tenant grew fast (seen: 78 ms instead
    // of 0.1 ms at 160,000 conversions).
    let mut existing = conversion::Entity::find()
        .filter(conversion::Column::TenantId.eq(tenant_id))
        .filter(related)
        .all(db)
        .await?;
    existing.sort_by_key(|c| c.feed_seq);

    let mut result = Vec::with_capacity(planned.len());
    let mut new_rows = Vec::new();
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
                "{} {} is already attributed to another conversation",
                p.kind.record_type().as_str(),
                crate::domain::text::quoted(&p.record_id)
            )));
        }
        new_rows.push(result.len());
        result.push(conversion::Model {
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
            // Numbered when written, under the tenant's lock.
            feed_seq: 0,
            recorded_at: now,
            link_id: attribution.link.map(|(id, _)| id),
            link_action: attribution.link.map(|(_, a)| a.as_str().to_owned()),
            conversation_started_at: Some(conversation.started_at),
            conversation_channel: Some(conversation.channel.clone()),
        });
    }
    let first_conversion =
        !new_rows.is_empty() && attribution.attributed && conversation.first_converted_at.is_none();
    Ok(Plan {
        tenant_id,
        conversation_id: conversation.id,
        result,
        new_rows,
        new_key,
        first_conversion,
        now,
    })
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
        .map_err(raced_on_unique)?;
    }
    if plan.new_rows.is_empty() {
        return Ok(());
    }
    // Before the tenant's lock: every path locks a conversation before its
    // tenant, never the reverse.
    if plan.first_conversion {
        // "Converted" and conversion stats read this column instead of
        // joining conversions. Once set, it never changes.
        conversation::Entity::update_many()
            .col_expr(
                conversation::Column::FirstConvertedAt,
                Func::coalesce([
                    Expr::col(conversation::Column::FirstConvertedAt),
                    Expr::value(plan.now),
                ])
                .into(),
            )
            .filter(conversation::Column::Id.eq(plan.conversation_id))
            .exec(txn)
            .await?;
    }
    // The tenant's row is locked last and held only for the insert and the
    // commit: it orders this tenant's feed cursors by commit, and it is the
    // one place all of a tenant's recordings queue.
    let count = plan.new_rows.len() as i64;
    let row = txn
        .query_one_raw(statement(
            DatabaseBackend::Sqlite,
            "UPDATE tenant SET conversion_seq = conversion_seq + ? WHERE id = ? \
             RETURNING conversion_seq",
            vec![count.into(), plan.tenant_id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::Internal("caller's tenant row is missing".into()))?;
    let last: i64 = row.try_get("", "conversion_seq")?;
    plan.number_rows(last - count + 1);
    let rows = plan.new_rows.iter().map(|&at| plan.result[at].clone());
    conversion::Entity::insert_many(rows.map(conversion::ActiveModel::from))
        .exec_without_returning(txn)
        .await
        .map_err(raced_on_unique)?;
    Ok(())
}

/// PostgreSQL: writes `plan` in one statement. On its own it is its own
/// transaction: one round trip instead of five (BEGIN, key, cursor, insert,
/// COMMIT), and the tenant's row is locked for that one statement only. The
/// notification is delivered at commit, and only if it commits.
async fn write_in_one_statement<C: ConnectionTrait>(
    db: &C,
    plan: &mut Plan,
) -> Result<(), AppError> {
    let count = plan.new_rows.len() as i64;
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    // Data-modifying CTEs all run, referenced or not. The conversation
    // row is updated first (the cursor CTE reads it) so that this
    // statement, too, locks the conversation before the tenant.
    let after_conversation = if plan.first_conversion {
        parts.push(
            "conv AS (UPDATE conversation SET first_converted_at = COALESCE(first_converted_at, ?) \
             WHERE id = ? RETURNING id)"
                .into(),
        );
        values.push(plan.now.into());
        values.push(plan.conversation_id.into());
        " AND EXISTS (SELECT 1 FROM conv)"
    } else {
        ""
    };
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
            "seq AS (UPDATE tenant SET conversion_seq = conversion_seq + ? WHERE id = ?{after_conversation} \
             RETURNING conversion_seq - ? AS base, pg_notify(?, ?)::text AS notified)"
        ));
        values.extend([
            count.into(),
            plan.tenant_id.into(),
            count.into(),
            NOTIFY_CHANNEL.into(),
            notify_payload(plan.tenant_id).into(),
        ]);
        let mut selects = Vec::new();
        for (n, &at) in plan.new_rows.iter().enumerate() {
            let c = &plan.result[at];
            selects.push(
                "SELECT ?::uuid, ?::uuid, ?::uuid, ?, ?, ?, ?, ?::boolean, ?, ?, ?, seq.base + ?, \
                 ?::bigint, ?::uuid, ?, ?::bigint, ? FROM seq"
                    .to_owned(),
            );
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
                (n as i64 + 1).into(),
                c.recorded_at.into(),
                c.link_id.into(),
                c.link_action.clone().into(),
                c.conversation_started_at.into(),
                c.conversation_channel.clone().into(),
            ]);
        }
        parts.push(format!(
            "ins AS (INSERT INTO conversion (id, tenant_id, conversation_id, kind, record_type, \
             record_id, source, attributed, unattributed_reason, idempotency_key, \
             payload_fingerprint, feed_seq, recorded_at, link_id, link_action, \
             conversation_started_at, conversation_channel) {})",
            selects.join(" UNION ALL ")
        ));
    }
    let main = if count > 0 {
        "SELECT base + 1 AS first_seq FROM seq"
    } else {
        "SELECT NULL::bigint AS first_seq"
    };
    let sql = format!("WITH {} {main}", parts.join(", "));
    let row = db
        .query_one_raw(statement(DatabaseBackend::Postgres, &sql, values))
        .await
        .map_err(raced_on_unique)?;
    if count > 0 {
        let first: i64 = row
            .ok_or_else(|| AppError::Internal("caller's tenant row is missing".into()))?
            .try_get("", "first_seq")?;
        plan.number_rows(first);
    }
    Ok(())
}

impl Plan {
    /// Gives the new rows consecutive feed cursors from `first`.
    fn number_rows(&mut self, first: i64) {
        for (seq, &at) in (first..).zip(&self.new_rows) {
            self.result[at].feed_seq = seq;
        }
    }
}

/// A unique index refused a row the checks had not seen: a concurrent
/// request wrote it first.
fn raced_on_unique(e: DbErr) -> AppError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::Raced,
        _ => AppError::from(e),
    }
}
