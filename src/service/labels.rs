//! Labels on a conversation, set when it starts or later: the counters of
//! its old pairs move to the new ones, with whatever it has converted to
//! and earned, so `byLabel` always counts a conversation under the labels
//! it has now.

use entity::conversation;
use sea_orm::{ConnectionTrait, DatabaseBackend, Value};

use super::read_model::Conversation;
use super::rollups::Counted;
use super::sessions::lock_by_session_id;
use super::{Caller, Services, statement};
use crate::domain::label::{Label, Labels};
use crate::domain::role::Operation;
use crate::domain::rollup::{Metric, label_revenue_key};
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
