//! What a recording will do, decided from reads alone.

use entity::{conversation, conversion, idempotency_key};
use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic, Iterable, Value};
use uuid::Uuid;

use super::Recorded;
use crate::domain::adjustment::ConversionStatus;
use crate::domain::conversion::{ConversionKind, ConversionSource};
use crate::domain::cursor::FeedPosition;
use crate::domain::label::Labels;
use crate::domain::link::CtaAction;
use crate::domain::money::Money;
use crate::error::AppError;
use crate::events::EventBus;
use crate::service::read_model::read_all;
use crate::service::statement;

/// One record the request wants credited.
#[derive(Clone)]
pub(crate) struct Planned {
    pub kind: ConversionKind,
    pub record_id: String,
    /// What it earned, when the request says.
    pub value: Option<Money>,
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

/// What a recording will do, decided by [`plan`] from reads alone.
pub(crate) struct Plan {
    pub(super) tenant_id: Uuid,
    pub(super) conversation_id: Uuid,
    /// The answer: the rows that already existed and the new ones, in the
    /// order requested. New rows get their feed cursor when written.
    pub(super) result: Vec<conversion::Model>,
    /// Positions in `result` of the rows to insert.
    pub(super) new_rows: Vec<usize>,
    /// An idempotency key used for the first time, with its payload.
    pub(super) new_key: Option<(String, String)>,
    /// This recording is the conversation's first attributed conversion
    /// (unless a concurrent one is first: the write decides).
    pub(super) first_conversion: bool,
    /// The conversation's labels as `key=value`, as the plan read them;
    /// a change of labels since makes the write plan again (see
    /// `RETRACTION_GUARD`).
    pub(super) labels: Vec<String>,
    /// The conversation's retraction count this plan was made with (see
    /// `write::RETRACTION_GUARD`).
    pub(super) retractions_seen: i64,
    pub(super) now: i64,
}

impl Plan {
    /// Whether anything is to be written: new rows, or only a first-seen
    /// idempotency key (a replay under a new key still binds the key).
    pub fn writes(&self) -> bool {
        !self.new_rows.is_empty() || self.new_key.is_some()
    }

    pub fn into_recorded(self) -> Result<Recorded, AppError> {
        Ok(Recorded {
            attributed: self.result.first().is_some_and(|c| c.attributed),
            created: !self.new_rows.is_empty(),
            conversions: read_all(self.result)?,
        })
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
        events.moved(self.tenant_id);
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
///
/// `related` is what [`session_and_related`] read with the conversation,
/// if it was read that way; otherwise it is read here.
pub(crate) async fn plan<C: ConnectionTrait>(
    db: &C,
    conversation: &conversation::Model,
    related: Option<Vec<conversion::Model>>,
    planned: &[Planned],
    attribution: &Attribution,
    idempotency: Option<(String, String)>,
    now: i64,
) -> Result<Plan, AppError> {
    let tenant_id = conversation.tenant_id;
    let new_key = first_use_of_key(db, tenant_id, idempotency.as_ref()).await?;
    let existing = match related {
        Some(related) => related,
        None => related_conversions(db, tenant_id, planned).await?,
    };
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
            refuse_another_value(mine, p)?;
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
        let row = NewRow {
            tenant_id,
            conversation,
            attribution,
            idempotency: idempotency.as_ref(),
            now,
        };
        result.push(row.of(p));
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
        retractions_seen: conversation.retractions,
        labels: Labels::from_stored(&conversation.labels).pairs().collect(),
        now,
    })
}

/// A replay that states a value other than the recorded one is a change to
/// the sale, which a restatement makes, not a recording. One that states
/// no value replays whatever was recorded.
fn refuse_another_value(recorded: &conversion::Model, p: &Planned) -> Result<(), AppError> {
    let Some(value) = p.value else {
        return Ok(());
    };
    let stored = (recorded.value_minor, recorded.currency.as_deref());
    if stored == (Some(value.minor), Some(value.currency.code())) {
        return Ok(());
    }
    let was = match stored {
        (Some(minor), Some(code)) => Money::from_stored(minor, code)
            .map(|m| format!("{} {code}", m.amount()))
            .unwrap_or_else(|_| "another value".to_owned()),
        _ => "no value".to_owned(),
    };
    Err(AppError::Conflict(format!(
        "{} {} was recorded with {was}, not {} {}: a changed sale is a restatement, not a new recording",
        p.kind.as_str(),
        crate::domain::text::quoted(&p.record_id),
        value.amount(),
        value.currency
    )))
}

/// The idempotency key and payload to bind, when the key is new. Stripe
/// semantics: a key stands for the payload it was first used with,
/// whether that first use created anything or was a replay.
async fn first_use_of_key<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    idempotency: Option<&(String, String)>,
) -> Result<Option<(String, String)>, AppError> {
    let Some((key, payload)) = idempotency else {
        return Ok(None);
    };
    match idempotency_key::Entity::find_by_id((tenant_id, key.clone()))
        .one(db)
        .await?
    {
        Some(seen) if &seen.payload_fingerprint != payload => Err(AppError::IdempotencyKeyReused),
        Some(_) => Ok(None),
        None => Ok(Some((key.clone(), payload.clone()))),
    }
}

/// Every conversion that could make this request a replay or a conflict,
/// oldest first, in one query.
async fn related_conversions<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    planned: &[Planned],
) -> Result<Vec<conversion::Model>, AppError> {
    let mut values: Vec<Value> = vec![tenant_id.into()];
    let sql = format!(
        "SELECT v.* FROM conversion v WHERE v.tenant_id = ? AND ({})",
        related_to(planned, &mut values)
    );
    let mut existing = conversion::Entity::find()
        .from_raw_sql(statement(db.get_database_backend(), &sql, values))
        .all(db)
        .await?;
    oldest_first(&mut existing);
    Ok(existing)
}

/// The conversation `session_id` names in the tenant, with every
/// conversion that could make `planned` a replay or a conflict (what
/// [`related_conversions`] reads), in one statement: a recording by session
/// is then two statements and its write. `None` when no such session.
pub(crate) async fn session_and_related<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    session_id: &str,
    planned: &[Planned],
) -> Result<Option<(conversation::Model, Vec<conversion::Model>)>, AppError> {
    let mut values: Vec<Value> = Vec::with_capacity(2 + planned.len() * 3);
    let related = related_to(planned, &mut values);
    values.extend([tenant_id.into(), session_id.to_owned().into()]);
    let sql = format!(
        "SELECT {}, {} FROM conversation c \
         LEFT JOIN conversion v ON v.tenant_id = c.tenant_id AND ({related}) \
         WHERE c.tenant_id = ? AND c.session_id = ?",
        aliased::<conversation::Entity>("c", CONVERSATION),
        aliased::<conversion::Entity>("v", CONVERSION),
    );
    let rows = db
        .query_all_raw(statement(db.get_database_backend(), &sql, values))
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let conversation = conversation::Model::from_query_result(first, CONVERSATION)?;
    let mut existing = Vec::with_capacity(rows.len());
    for row in &rows {
        // A conversation without any related conversion comes back once,
        // with the conversion's columns all NULL.
        if row.try_get::<Option<Uuid>>(CONVERSION, "id")?.is_some() {
            existing.push(conversion::Model::from_query_result(row, CONVERSION)?);
        }
    }
    oldest_first(&mut existing);
    Ok(Some((conversation, existing)))
}

/// The condition on conversion `v` that makes it related to `planned`:
/// the same kind and record. Its values go to `values`.
fn related_to(planned: &[Planned], values: &mut Vec<Value>) -> String {
    if planned.is_empty() {
        return "false".to_owned();
    }
    let mut any_record = Vec::with_capacity(planned.len());
    for p in planned {
        // The record type is implied by the kind; naming it lets the
        // (tenant, record type, record id) index serve even a generic
        // prepared plan.
        any_record.push("(v.record_type = ? AND v.record_id = ? AND v.kind = ?)");
        values.extend([
            p.kind.record_type().as_str().into(),
            p.record_id.clone().into(),
            p.kind.as_str().into(),
        ]);
    }
    any_record.join(" OR ")
}

/// Sorted here, not in SQL: an ORDER BY on the feed invites PostgreSQL to
/// walk the tenant's feed index and filter, which its statistics can make
/// look cheap right after a tenant grew fast (seen: 78 ms instead of 0.1 ms
/// at 160,000 conversions).
fn oldest_first(conversions: &mut [conversion::Model]) {
    conversions.sort_by_key(|c| (c.feed_xid, c.feed_seq));
}

/// Column prefixes of [`session_and_related`]'s two tables.
const CONVERSATION: &str = "a_";
const CONVERSION: &str = "b_";

/// Every column of `E` read from `table` as `prefix` + its name.
fn aliased<E: EntityTrait>(table: &str, prefix: &str) -> String {
    E::Column::iter()
        .map(|c| format!("{table}.\"{0}\" AS \"{prefix}{0}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What every new row of one recording shares.
struct NewRow<'a> {
    tenant_id: Uuid,
    conversation: &'a conversation::Model,
    attribution: &'a Attribution,
    idempotency: Option<&'a (String, String)>,
    now: i64,
}

impl NewRow<'_> {
    fn of(&self, p: &Planned) -> conversion::Model {
        let (conversation, attribution) = (self.conversation, self.attribution);
        conversion::Model {
            id: Uuid::now_v7(),
            tenant_id: self.tenant_id,
            conversation_id: Some(conversation.id),
            kind: p.kind.as_str().to_owned(),
            record_type: p.kind.record_type().as_str().to_owned(),
            record_id: p.record_id.clone(),
            source: attribution.source.as_str().to_owned(),
            attributed: attribution.attributed,
            unattributed_reason: attribution.unattributed_reason.map(str::to_owned),
            idempotency_key: self.idempotency.map(|(k, _)| k.clone()),
            payload_fingerprint: self.idempotency.map(|(_, p)| p.clone()),
            // Placed in the feed when written.
            feed_seq: 0,
            recorded_at: self.now,
            link_id: attribution.link.map(|(id, _)| id),
            link_action: attribution.link.map(|(_, a)| a.as_str().to_owned()),
            conversation_started_at: Some(conversation.started_at),
            conversation_channel: Some(conversation.channel.clone()),
            feed_xid: 0,
            value_minor: p.value.map(|v| v.minor),
            currency: p.value.map(|v| v.currency.code().to_owned()),
            status: ConversionStatus::Active.as_str().to_owned(),
            recorded_value_minor: p.value.map(|v| v.minor),
            review: None,
        }
    }
}

impl Plan {
    /// Gives the new rows consecutive feed numbers from `first` (SQLite).
    pub(super) fn number_rows(&mut self, first: i64) {
        for (seq, &at) in (first..).zip(&self.new_rows) {
            self.result[at].feed_seq = seq;
        }
    }

    /// Gives each new row the feed position the database chose for it
    /// (PostgreSQL), by the row's id.
    pub(super) fn place_rows(&mut self, placed: &[(Uuid, FeedPosition)]) -> Result<(), AppError> {
        for &at in &self.new_rows {
            let row = &mut self.result[at];
            let (_, position) = placed.iter().find(|(id, _)| *id == row.id).ok_or_else(|| {
                AppError::internal("a new conversion came back without its place")
            })?;
            row.feed_xid = position.xid;
            row.feed_seq = position.seq;
        }
        Ok(())
    }
}
