//! Labels on a conversation, set when it starts or later: the counters of
//! its old pairs move to the new ones, with whatever it has converted to
//! and earned, so `byLabel` always counts a conversation under the labels
//! it has now.

use entity::conversation;
use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Value};

use super::read_model::Conversation;
use super::rollups::{Counted, Delayed, delay_upserts};
use super::sessions::lock_by_session_id;
use super::{Caller, Services, statement};
use crate::domain::label::{Label, Labels};
use crate::domain::role::Operation;
use crate::domain::rollup::{Metric, label_revenue_key, revenue_key};
use crate::domain::session_id::SessionId;
use crate::error::AppError;

impl Services {
    /// Adds `labels` to the session's, replacing the values of keys it
    /// already has. Setting what is already set changes nothing.
    #[tracing::instrument(skip(self, caller, labels), fields(tenant = %caller.tenant_id))]
    pub async fn set_session_labels(
        &self,
        caller: &Caller,
        session_id: &SessionId,
        labels: Vec<Label>,
    ) -> Result<Conversation, AppError> {
        caller.require(Operation::ManageSessions, "set session labels")?;
        let changes = Labels::given(labels).map_err(|e| AppError::BadInput(e.to_string()))?;
        let txn = self.begin_write().await?;
        let conversation = lock_by_session_id(&*txn, caller.tenant_id, session_id)
            .await?
            .ok_or(AppError::NotFound("session"))?;
        let conversation = relabel(&*txn, conversation, &changes).await?;
        txn.commit().await?;
        conversation.try_into()
    }
}

/// Gives `conversation` (its row locked by the caller's transaction) the
/// labels `changes` add or replace, and moves its counters: conversations,
/// converted and revenue leave each replaced pair for its new one.
/// Returns the row as it is now.
pub(crate) async fn relabel<C: ConnectionTrait>(
    txn: &C,
    mut conversation: conversation::Model,
    changes: &Labels,
) -> Result<conversation::Model, AppError> {
    let now = Labels::from_stored(&conversation.labels);
    let next = now
        .merged(changes)
        .map_err(|e| AppError::BadInput(e.to_string()))?;
    let (gone, added) = now.moved_to(&next);
    if gone.is_empty() && added.is_empty() {
        return Ok(conversation);
    }
    let backend = txn.get_database_backend();
    let revenue = if conversation.first_converted_at.is_some() {
        revenue_of(txn, &conversation).await?
    } else {
        Vec::new()
    };
    let mut counted = Counted::new(conversation.tenant_id, &conversation.channel);
    let moves = gone
        .iter()
        .map(|p| (p, -1))
        .chain(added.iter().map(|p| (p, 1)));
    for (pair, n) in moves {
        let at = conversation.started_at;
        counted.add_n(at, Metric::LabelConversations, pair, n);
        if conversation.first_converted_at.is_some() {
            counted.add_n(at, Metric::LabelConverted, pair, n);
        }
        for (currency, minor) in &revenue {
            let key = label_revenue_key(currency, pair);
            counted.add_n(at, Metric::LabelRevenue, &key, n * minor);
        }
    }
    counted.save(txn).await?;
    move_labelled(txn, &conversation, (&gone, &added)).await?;
    // `retractions` counts every change a recording's plan must not miss:
    // a recording planned on the old labels is planned again.
    let stored = next.to_stored();
    let values: Vec<Value> = vec![stored.clone().into(), conversation.id.into()];
    txn.execute_raw(statement(
        backend,
        "UPDATE conversation SET labels = ?, retractions = retractions + 1 WHERE id = ?",
        values,
    ))
    .await?;
    conversation.labels = stored;
    conversation.retractions += 1;
    Ok(conversation)
}

/// What the conversation's active attributed conversions are worth now,
/// per currency (what its `revenue` counters hold).
async fn revenue_of<C: ConnectionTrait>(
    txn: &C,
    conversation: &conversation::Model,
) -> Result<Vec<(String, i64)>, AppError> {
    let backend: DatabaseBackend = txn.get_database_backend();
    let rows = txn
        .query_all_raw(statement(
            backend,
            "SELECT currency, CAST(SUM(value_minor) AS BIGINT) AS minor FROM conversion \
             WHERE conversation_id = ? AND attributed AND status = 'ACTIVE' \
             AND value_minor IS NOT NULL GROUP BY currency",
            vec![conversation.id.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("", "currency")?, row.try_get("", "minor")?)))
        .collect()
}

/// Moves everything `conversation` counts for in `label_rollup` and
/// `label_delay_rollup` — its start, first conversion, active conversions
/// and links, as they are under its lock — from the pairs it lost (`gone`)
/// to those it gained (`added`).
async fn move_labelled<C: ConnectionTrait>(
    txn: &C,
    conversation: &conversation::Model,
    (gone, added): (&[String], &[String]),
) -> Result<(), AppError> {
    let backend = txn.get_database_backend();
    let id: Vec<Value> = vec![conversation.id.into()];
    let conversions = txn
        .query_all_raw(statement(
            backend,
            "SELECT kind, source, attributed, value_minor, currency FROM conversion \
             WHERE conversation_id = ? AND status = 'ACTIVE'",
            id.clone(),
        ))
        .await?;
    let links = txn
        .query_all_raw(statement(
            backend,
            "SELECT action, first_followed_at IS NOT NULL AS followed, \
             first_converted_at IS NOT NULL AS converted FROM cta_link WHERE conversation_id = ?",
            id,
        ))
        .await?;
    // One pair at a time in key order, counters before histograms, as a
    // recording takes these rows' locks: no two writers wait on each other.
    let mut moves: Vec<(&String, i64)> = gone.iter().map(|p| (p, -1)).collect();
    moves.extend(added.iter().map(|p| (p, 1)));
    moves.sort();
    let at = conversation.started_at;
    for &(pair, n) in &moves {
        let mut counted = Counted::per_label(
            conversation.tenant_id,
            &conversation.channel,
            vec![pair.clone()],
        );
        count_rows(&mut counted, (at, n), &conversions, &links)?;
        if conversation.first_converted_at.is_some() {
            counted.add_n(at, Metric::Converted, "", n);
        }
        counted.save(txn).await?;
    }
    let Some(first) = conversation.first_converted_at else {
        return Ok(());
    };
    for &(pair, n) in &moves {
        let labels = [pair.clone()];
        let delayed = Delayed {
            tenant_id: conversation.tenant_id,
            channel: &conversation.channel,
            started_at: at,
            labels: &labels,
        };
        // The first upsert is the overall histogram's, which a move leaves
        // as it is.
        for (sql, values) in delay_upserts(backend, &delayed, (first - at, n), "")
            .into_iter()
            .skip(1)
        {
            txn.execute_raw(statement(backend, &sql, values)).await?;
        }
    }
    Ok(())
}

/// Adds `n` times what a conversation started at `at` counts for with
/// these active `conversions` and `links` (as [`move_labelled`] reads
/// them), besides its start and first conversion.
fn count_rows(
    counted: &mut Counted,
    (at, n): (i64, i64),
    conversions: &[QueryResult],
    links: &[QueryResult],
) -> Result<(), AppError> {
    counted.add_n(at, Metric::Conversations, "", n);
    let mut kinds = BTreeSet::new();
    let mut currencies = BTreeSet::new();
    for row in conversions {
        let kind: String = row.try_get("", "kind")?;
        if !row.try_get::<bool>("", "attributed")? {
            counted.add_unattributed(at, at, n);
            continue;
        }
        counted.add_n(at, Metric::Kind, &kind, n);
        counted.add_n(at, Metric::Source, &row.try_get::<String>("", "source")?, n);
        let minor: Option<i64> = row.try_get("", "value_minor")?;
        let currency: Option<String> = row.try_get("", "currency")?;
        if let (Some(minor), Some(currency)) = (minor, currency) {
            let key = revenue_key(&kind, &currency);
            counted.add_n(at, Metric::Revenue, &key, n * minor);
            currencies.insert(currency);
        }
        kinds.insert(kind);
    }
    for kind in &kinds {
        counted.add_n(at, Metric::KindConversations, kind, n);
    }
    for currency in &currencies {
        counted.add_n(at, Metric::RevenueConversations, currency, n);
    }
    for row in links {
        let action: String = row.try_get("", "action")?;
        counted.add_n(at, Metric::Issued, &action, n);
        if row.try_get::<bool>("", "followed")? {
            counted.add_n(at, Metric::Followed, &action, n);
        }
        if row.try_get::<bool>("", "converted")? {
            counted.add_n(at, Metric::LinkConverted, &action, n);
        }
    }
    Ok(())
}
