//! What a change to a recorded sale adds to or takes from the stats
//! rollups, inside the change's transaction. A restatement moves revenue;
//! a retraction takes back everything the recording counted, and where the
//! conversion was a first — the conversation's first conversion, its first
//! of a kind or in a currency, its link's first — hands that to the next
//! active one, or takes the first back if there is none.
//!
//! The caller holds the conversation's row lock ([`lock_conversation`]):
//! recordings of the conversation wait for it (see
//! `write::RETRACTION_GUARD`), so the reads here see every conversion that
//! will count.

use entity::conversion;
use sea_orm::{ConnectionTrait, DatabaseBackend, Value};
use uuid::Uuid;

use crate::domain::label::Labels;
use crate::domain::money::Money;
use crate::domain::rollup::{Metric, revenue_key};
use crate::error::AppError;
use crate::service::rollups::{Counted, Delayed, save_delay};
use crate::service::statement;

/// A conversation as read under its row lock.
pub(super) struct Locked {
    pub first_converted_at: Option<i64>,
    /// Its labels as `key=value`: what its counts move in too.
    pub labels: Vec<String>,
}

/// Locks the conversation's row until the transaction ends (PostgreSQL;
/// SQLite's write transaction is alone) and returns when it first
/// converted and its labels.
pub(super) async fn lock_conversation<C: ConnectionTrait>(
    db: &C,
    conversation_id: Uuid,
) -> Result<Locked, AppError> {
    let backend = db.get_database_backend();
    let lock = match backend {
        DatabaseBackend::Postgres => " FOR UPDATE",
        _ => "",
    };
    let sql = format!("SELECT first_converted_at, labels FROM conversation WHERE id = ?{lock}");
    let row = db
        .query_one_raw(statement(backend, &sql, vec![conversation_id.into()]))
        .await?
        .ok_or_else(|| AppError::internal("a conversion's conversation is missing"))?;
    let labels: String = row.try_get("", "labels")?;
    Ok(Locked {
        first_converted_at: row.try_get("", "first_converted_at")?,
        labels: Labels::from_stored(&labels).pairs().collect(),
    })
}

/// The conversation a stored conversion counts in: (start, channel).
fn cohort(row: &conversion::Model) -> Option<(i64, &str)> {
    Some((
        row.conversation_started_at?,
        row.conversation_channel.as_deref()?,
    ))
}

/// `row` (as it was) is now worth `new`: its revenue moves by the
/// difference, and a first value may add a currency to its conversation.
pub(super) async fn restated<C: ConnectionTrait>(
    db: &C,
    row: &conversion::Model,
    new: Money,
    locked: Locked,
) -> Result<(), AppError> {
    let (Some((started_at, channel)), Some(conversation_id)) = (cohort(row), row.conversation_id)
    else {
        return Ok(());
    };
    if !row.attributed {
        return Ok(());
    }
    let currency = new.currency.code();
    let mut counted = Counted::new(row.tenant_id, channel).with_labels(locked.labels);
    let key = revenue_key(&row.kind, currency);
    counted.add_n(
        started_at,
        Metric::Revenue,
        &key,
        new.minor - row.value_minor.unwrap_or(0),
    );
    if row.value_minor.is_none() {
        let added = db
            .execute_raw(statement(
                db.get_database_backend(),
                "INSERT INTO conversation_currency (conversation_id, currency) VALUES (?, ?) \
                 ON CONFLICT DO NOTHING",
                vec![conversation_id.into(), currency.into()],
            ))
            .await?;
        if added.rows_affected() == 1 {
            counted.add(started_at, Metric::RevenueConversations, currency);
        }
    }
    counted.save(db).await
}

/// `row` (as it was: active) is now retracted, and stored so.
/// `locked` is its conversation, read under the lock.
pub(super) async fn retracted<C: ConnectionTrait>(
    db: &C,
    row: &conversion::Model,
    locked: Locked,
) -> Result<(), AppError> {
    let Some((started_at, channel)) = cohort(row) else {
        return Ok(());
    };
    let first_converted_at = locked.first_converted_at;
    let mut counted = Counted::new(row.tenant_id, channel).with_labels(locked.labels.clone());
    if let Some(conversation_id) = row.conversation_id {
        let conversation = Conversation {
            id: conversation_id,
            started_at,
            channel,
            labels: &locked.labels,
        };
        if row.attributed {
            conversation
                .take_back_outcome(db, row, first_converted_at, &mut counted)
                .await?;
        } else {
            counted.add_unattributed(row.recorded_at, started_at, -1);
        }
        if let (Some(link_id), Some(action)) = (row.link_id, row.link_action.as_deref()) {
            let link = (link_id, action);
            conversation.hand_on_link(db, link, &mut counted).await?;
        }
    }
    counted.save(db).await
}

/// `row` (as it was: active, unattributed) is now attributed, and stored
/// so: it leaves "unattributed" and counts as a recording of an attributed
/// conversion would have — its kind, source and revenue, the kinds and
/// currencies its conversation has, and the conversation's first
/// conversion if it is earlier. Its link counted when it was recorded.
pub(super) async fn credited<C: ConnectionTrait>(
    db: &C,
    row: &conversion::Model,
    locked: Locked,
) -> Result<(), AppError> {
    let (Some((started_at, channel)), Some(conversation_id)) = (cohort(row), row.conversation_id)
    else {
        return Ok(());
    };
    let mut counted = Counted::new(row.tenant_id, channel).with_labels(locked.labels.clone());
    counted.add_unattributed(row.recorded_at, started_at, -1);
    counted.add(started_at, Metric::Kind, &row.kind);
    counted.add(started_at, Metric::Source, &row.source);
    let conversation = Conversation {
        id: conversation_id,
        started_at,
        channel,
        labels: &locked.labels,
    };
    if conversation
        .mark(db, "conversation_kind", "kind", &row.kind)
        .await?
    {
        counted.add(started_at, Metric::KindConversations, &row.kind);
    }
    if let (Some(minor), Some(currency)) = (row.value_minor, row.currency.as_deref()) {
        counted.add_n(
            started_at,
            Metric::Revenue,
            &revenue_key(&row.kind, currency),
            minor,
        );
        if conversation
            .mark(db, "conversation_currency", "currency", currency)
            .await?
        {
            counted.add(started_at, Metric::RevenueConversations, currency);
        }
    }
    conversation
        .hand_on_first(db, row.tenant_id, locked.first_converted_at, &mut counted)
        .await?;
    counted.save(db).await
}

/// The conversation a retracted conversion belonged to.
struct Conversation<'a> {
    id: Uuid,
    started_at: i64,
    channel: &'a str,
    /// As `key=value`: its histogram rows are kept per label too.
    labels: &'a [String],
}

impl Conversation<'_> {
    /// Takes back an attributed conversion: its kind, its revenue, and the
    /// firsts it held.
    async fn take_back_outcome<C: ConnectionTrait>(
        &self,
        db: &C,
        row: &conversion::Model,
        first_converted_at: Option<i64>,
        counted: &mut Counted,
    ) -> Result<(), AppError> {
        counted.add_n(self.started_at, Metric::Kind, &row.kind, -1);
        counted.add_n(self.started_at, Metric::Source, &row.source, -1);
        if !self.still_has(db, "kind = ?", row.kind.clone()).await? {
            self.forget(db, "conversation_kind", "kind", &row.kind)
                .await?;
            counted.add_n(self.started_at, Metric::KindConversations, &row.kind, -1);
        }
        if let (Some(minor), Some(currency)) = (row.value_minor, row.currency.as_deref()) {
            let key = revenue_key(&row.kind, currency);
            counted.add_n(self.started_at, Metric::Revenue, &key, -minor);
            let valued = "currency = ? AND value_minor IS NOT NULL";
            if !self.still_has(db, valued, currency.to_owned()).await? {
                self.forget(db, "conversation_currency", "currency", currency)
                    .await?;
                counted.add_n(self.started_at, Metric::RevenueConversations, currency, -1);
            }
        }
        self.hand_on_first(db, row.tenant_id, first_converted_at, counted)
            .await
    }

    /// Whether another active attributed conversion of the conversation
    /// matches `condition` (one placeholder, `value`).
    async fn still_has<C: ConnectionTrait>(
        &self,
        db: &C,
        condition: &str,
        value: String,
    ) -> Result<bool, AppError> {
        let sql = format!(
            "SELECT 1 AS found FROM conversion WHERE conversation_id = ? AND attributed \
             AND status = 'ACTIVE' AND {condition} LIMIT 1"
        );
        let backend = db.get_database_backend();
        let found = db
            .query_one_raw(statement(backend, &sql, vec![self.id.into(), value.into()]))
            .await?;
        Ok(found.is_some())
    }

    /// Adds the conversation's row of `table` whose `column` is `value`;
    /// whether it is new.
    async fn mark<C: ConnectionTrait>(
        &self,
        db: &C,
        table: &str,
        column: &str,
        value: &str,
    ) -> Result<bool, AppError> {
        let sql = format!(
            "INSERT INTO {table} (conversation_id, {column}) VALUES (?, ?) ON CONFLICT DO NOTHING"
        );
        let values: Vec<Value> = vec![self.id.into(), value.into()];
        let added = db
            .execute_raw(statement(db.get_database_backend(), &sql, values))
            .await?;
        Ok(added.rows_affected() == 1)
    }

    /// Deletes the conversation's row of `table` whose `column` is `value`.
    async fn forget<C: ConnectionTrait>(
        &self,
        db: &C,
        table: &str,
        column: &str,
        value: &str,
    ) -> Result<(), AppError> {
        let sql = format!("DELETE FROM {table} WHERE conversation_id = ? AND {column} = ?");
        let values: Vec<Value> = vec![self.id.into(), value.into()];
        db.execute_raw(statement(db.get_database_backend(), &sql, values))
            .await?;
        Ok(())
    }

    /// Moves the conversation's first conversion to its earliest active
    /// one (or clears it): the histogram of delays follows, and
    /// "converted" loses it if none is left or gains it if it had none.
    async fn hand_on_first<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
        was: Option<i64>,
        counted: &mut Counted,
    ) -> Result<(), AppError> {
        let now = self.first_active(db, "attributed", Vec::new()).await?;
        if now == was {
            return Ok(());
        }
        let backend = db.get_database_backend();
        db.execute_raw(statement(
            backend,
            "UPDATE conversation SET first_converted_at = ? WHERE id = ?",
            vec![now.into(), self.id.into()],
        ))
        .await?;
        let delayed = Delayed {
            tenant_id,
            channel: self.channel,
            started_at: self.started_at,
            labels: self.labels,
        };
        if let Some(was) = was {
            save_delay(db, &delayed, (was - self.started_at, -1)).await?;
        }
        match now {
            Some(now) => {
                save_delay(db, &delayed, (now - self.started_at, 1)).await?;
                if was.is_none() {
                    counted.add(self.started_at, Metric::Converted, "");
                }
            }
            None => counted.add_n(self.started_at, Metric::Converted, "", -1),
        }
        Ok(())
    }

    /// Moves the link's first conversion to its next active one, or takes
    /// back "converted" from its funnel step.
    async fn hand_on_link<C: ConnectionTrait>(
        &self,
        db: &C,
        (link_id, action): (Uuid, &str),
        counted: &mut Counted,
    ) -> Result<(), AppError> {
        let now = self
            .first_active(db, "link_id = ?", vec![link_id.into()])
            .await?;
        let backend = db.get_database_backend();
        let cleared = db
            .execute_raw(statement(
                backend,
                "UPDATE cta_link SET first_converted_at = ? \
                 WHERE id = ? AND first_converted_at IS NOT NULL",
                vec![now.into(), link_id.into()],
            ))
            .await?;
        if now.is_none() && cleared.rows_affected() == 1 {
            counted.add_n(self.started_at, Metric::LinkConverted, action, -1);
        }
        Ok(())
    }

    /// When the first active conversion of the conversation matching
    /// `condition` (whose placeholders take `condition_values`) was
    /// recorded.
    async fn first_active<C: ConnectionTrait>(
        &self,
        db: &C,
        condition: &str,
        condition_values: Vec<Value>,
    ) -> Result<Option<i64>, AppError> {
        let mut values: Vec<Value> = vec![self.id.into()];
        values.extend(condition_values);
        let sql = format!(
            "SELECT MIN(recorded_at) AS first FROM conversion \
             WHERE conversation_id = ? AND status = 'ACTIVE' AND {condition}"
        );
        let backend = db.get_database_backend();
        let row = db
            .query_one_raw(statement(backend, &sql, values))
            .await?
            .ok_or_else(|| AppError::internal("MIN returned no row"))?;
        Ok(row.try_get("", "first")?)
    }
}
