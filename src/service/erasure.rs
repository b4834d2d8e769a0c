//! Erasing a person's data: the conversations an erasure request or the
//! tenant's retention period names lose what the person said and who they
//! are, in bounded batches, each its own transaction; what the operator's
//! own records need (conversions, badges, kinds, times, record ids, the
//! counts behind the stats) stays. Every erasure leaves an audit entry
//! with who asked, when, the kind of identifier and how much was erased,
//! never the values.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{api_key, conversation, erasure};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, Value,
};
use uuid::Uuid;

use super::{Caller, Page, Services, statement};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::erasure::{ErasureScope, Person};
use crate::domain::role::Operation;
use crate::error::{AppError, is_serialization_failure, stored};

/// Conversations erased in one transaction: a batch holds their rows
/// locked only briefly, and SQLite's single writer is never kept long.
pub const BATCH: u64 = 200;

/// One erasure, as the audit log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The first characters of the API key that asked; none for the
    /// retention job.
    pub key_prefix: Option<String>,
    pub scope: ErasureScope,
    pub reason: String,
    pub conversations: i64,
    pub messages: i64,
}

/// Which conversations an erasure takes, and what it writes in the log.
pub(crate) struct Request {
    pub tenant_id: Uuid,
    pub key_id: Option<Uuid>,
    pub scope: ErasureScope,
    pub reason: String,
    /// Conversations (of the tenant, not yet erased) it takes.
    pub matching: Condition,
    /// Whether an erasure that finds nothing is logged too (a person's
    /// request is; a retention run with nothing to do is not).
    pub log_when_empty: bool,
    /// PostgreSQL: a batch runs only while no other instance's batch of
    /// this kind does; otherwise the erasure stops where it is.
    pub one_instance_at_a_time: bool,
    /// Batches taken oldest activity first (the retention index's order,
    /// so each batch reads only its own rows) rather than by id.
    pub by_last_activity: bool,
}

/// Times a batch that lost a deadlock (PostgreSQL ends one of two
/// transactions locking the same rows in opposite orders) is tried again.
const DEADLOCK_RETRIES: u32 = 3;

/// The advisory lock retention batches hold on PostgreSQL.
const RETENTION_LOCK: i64 = 7_253_068_114;

impl Services {
    /// Erases the conversations of the person named (ADMIN only).
    #[tracing::instrument(skip_all, fields(tenant = %caller.tenant_id, scope = %person.scope()))]
    pub async fn erase_person(
        &self,
        caller: &Caller,
        person: Person,
        reason: String,
    ) -> Result<Erasure, AppError> {
        caller.require(Operation::ManagePersonalData, "erase personal data")?;
        let scope = person.scope();
        let named = match person {
            Person::Contact(forms) => Condition::all()
                .add(conversation::Column::Contact.is_not_null())
                .add(stored_contact_lowered().is_in(forms))
                .into(),
            Person::UserId(id) => conversation::Column::UserId.eq(id),
            Person::SessionId(id) => conversation::Column::SessionId.eq(id.as_str()),
        };
        let logged = self
            .erase(Request {
                tenant_id: caller.tenant_id,
                key_id: Some(caller.key_id),
                scope,
                reason,
                matching: Condition::all().add(named),
                log_when_empty: true,
                one_instance_at_a_time: false,
                by_last_activity: false,
            })
            .await?;
        with_key_prefixes(&self.db, vec![logged])
            .await?
            .pop()
            .ok_or_else(|| AppError::internal("an erasure went missing"))
    }

    /// Erases every conversation `request` names, a batch at a time, and
    /// logs it. On SQLite the write-ahead log is then emptied into the main
    /// file, so the erased text is left in neither.
    pub(crate) async fn erase(&self, request: Request) -> Result<erasure::Model, AppError> {
        let now = self.clock.now();
        let mut log = erasure::Model {
            id: Uuid::now_v7(),
            tenant_id: request.tenant_id,
            at: to_micros(now),
            key_id: request.key_id,
            scope: request.scope.as_str().to_owned(),
            reason: request.reason.clone(),
            conversations: 0,
            messages: 0,
        };
        let matching = request
            .matching
            .clone()
            .add(conversation::Column::TenantId.eq(request.tenant_id))
            .add(conversation::Column::ErasedAt.is_null());
        let mut logged = false;
        let mut retries = 0;
        loop {
            let batch = self
                .erase_batch(&request, &matching, &mut log, logged, now)
                .await;
            let erased = match batch {
                Err(AppError::Unavailable(e))
                    if is_serialization_failure(&e) && retries < DEADLOCK_RETRIES =>
                {
                    retries += 1;
                    continue;
                }
                other => other?,
            };
            let Some((conversations, messages)) = erased else {
                break;
            };
            logged |= conversations > 0 || request.log_when_empty;
            let scope = request.scope.as_str();
            metrics::counter!("convtrack_erased_conversations_total", "scope" => scope)
                .increment(conversations);
            metrics::counter!("convtrack_erased_messages_total", "scope" => scope)
                .increment(messages);
            // A batch shorter than asked is not the end: on PostgreSQL rows
            // a concurrent erasure changed while this one waited drop out
            // of it. Only an empty batch is.
            if conversations == 0 {
                break;
            }
        }
        if log.conversations > 0 {
            self.forget_sampled_values().await;
            self.empty_sqlite_journal().await;
        }
        Ok(log)
    }

    /// Erases the next batch in a transaction of its own, counting it into
    /// `log` (written in the same transaction); none when another
    /// instance's batch is under way.
    async fn erase_batch(
        &self,
        request: &Request,
        matching: &Condition,
        log: &mut erasure::Model,
        logged: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<(u64, u64)>, AppError> {
        let txn = self.begin_write().await?;
        if request.one_instance_at_a_time && !first_in_line(&txn).await? {
            return Ok(None);
        }
        let mut batch = conversation::Entity::find()
            .select_only()
            .column(conversation::Column::Id)
            .filter(matching.clone());
        if request.by_last_activity {
            batch = batch.order_by_asc(conversation::Column::LastActivityAt);
        }
        let ids: Vec<Uuid> = batch
            .order_by_asc(conversation::Column::Id)
            .limit(BATCH)
            .lock_exclusive()
            .into_tuple()
            .all(&*txn)
            .await?;
        let messages = erase_conversations(&*txn, &ids, now).await?;
        let mut counted = log.clone();
        counted.conversations += ids.len() as i64;
        counted.messages += messages as i64;
        if logged {
            let mut counts: erasure::ActiveModel = counted.clone().into();
            counts.conversations = Set(counted.conversations);
            counts.messages = Set(counted.messages);
            counts.update(&*txn).await?;
        } else if !ids.is_empty() || request.log_when_empty {
            erasure::ActiveModel::from(counted.clone())
                .insert(&*txn)
                .await?;
        }
        txn.commit().await?;
        *log = counted;
        Ok(Some((ids.len() as u64, messages)))
    }

    /// The tenant's erasures, newest first (ADMIN only).
    pub async fn erasure_page(
        &self,
        caller: &Caller,
        first: u64,
        after: Option<Uuid>,
    ) -> Result<Page<Erasure>, AppError> {
        caller.require(Operation::ManagePersonalData, "read the erasure log")?;
        let mut query =
            erasure::Entity::find().filter(erasure::Column::TenantId.eq(caller.tenant_id));
        if let Some(after) = after {
            query = query.filter(erasure::Column::Id.lt(after));
        }
        let rows = query
            .order_by_desc(erasure::Column::Id)
            .limit(first + 1)
            .all(&self.db)
            .await?;
        let items = with_key_prefixes(&self.db, rows).await?;
        Ok(Page::from_overfetch(items, first))
    }

    /// The planner's statistics keep sample values of columns and indexes
    /// (PostgreSQL's `pg_statistic`, SQLite's `sqlite_stat4`): erased
    /// contacts and texts among them. PostgreSQL samples the tables again;
    /// SQLite drops its samples (row counts stay, in `sqlite_stat1`, until
    /// its next analysis). The erasure has committed by then: a failure here
    /// is logged, and the next erasure or the database's own analysis
    /// replaces the samples.
    async fn forget_sampled_values(&self) {
        let done = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => self.analyze_erased_tables().await,
            _ => self.drop_sqlite_samples().await,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "the planner's samples of erased values could not be replaced yet");
        }
    }

    async fn analyze_erased_tables(&self) -> Result<(), AppError> {
        let txn = self.db.begin().await?;
        // The serving pool cuts statements at the request timeout; a large
        // table may take longer to sample.
        txn.execute_unprepared("SET LOCAL statement_timeout = 0")
            .await?;
        txn.execute_unprepared("ANALYZE conversation, message, confirmation, cta_link")
            .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn drop_sqlite_samples(&self) -> Result<(), AppError> {
        let sampled = self
            .db
            .query_one_raw(statement(
                DatabaseBackend::Sqlite,
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat4'",
                vec![],
            ))
            .await?;
        if sampled.is_some() {
            // Every table's: the text index's own tables sample fragments
            // of messages too.
            let txn = self.begin_write().await?;
            txn.execute_unprepared("DELETE FROM sqlite_stat4").await?;
            txn.commit().await?;
        }
        Ok(())
    }

    /// SQLite keeps changed pages in its write-ahead log until a
    /// checkpoint copies them into the main file; the erased text stays in
    /// the log's older frames until then. A checkpoint that truncates the
    /// log leaves it in neither. It waits for readers still on an older
    /// snapshot (up to the busy timeout); if some remain, the next erasure
    /// or SQLite's own checkpoints finish the work.
    async fn empty_sqlite_journal(&self) {
        if self.db.get_database_backend() != DatabaseBackend::Sqlite {
            return;
        }
        let _turn = self.write_turn().await;
        let done = self
            .db
            .query_one_raw(statement(
                DatabaseBackend::Sqlite,
                "PRAGMA wal_checkpoint(TRUNCATE)",
                vec![],
            ))
            .await;
        match done {
            Ok(Some(row)) if row.try_get_by_index::<i32>(0).ok() == Some(0) => {}
            Ok(_) => {
                tracing::warn!("the write-ahead log could not be emptied yet: readers hold it")
            }
            Err(e) => tracing::warn!(error = %e, "the write-ahead log could not be emptied"),
        }
    }
}

/// The stored contact as contacts are compared, written as the
/// `conversation_tenant_contact` index has it so that both databases use it.
pub(crate) fn stored_contact_lowered() -> Expr {
    Expr::cust("lower(contact)")
}

/// Whether this transaction is the only one of its kind under way across
/// instances (always on SQLite, whose writers take turns anyway).
async fn first_in_line(txn: &DatabaseTransaction) -> Result<bool, AppError> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(true);
    }
    let row = txn
        .query_one_raw(statement(
            DatabaseBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock(?)",
            vec![RETENTION_LOCK.into()],
        ))
        .await?
        .ok_or_else(|| AppError::internal("pg_try_advisory_xact_lock answered nothing"))?;
    Ok(row.try_get_by_index::<bool>(0)?)
}

/// Erases the personal data of the conversations `ids` (locked by the
/// caller's transaction): message texts, the opening message, contact,
/// user name and id, thread key, confirmation summaries and link targets
/// (a target may carry the person's details in its query). Returns how
/// many messages lost their text.
pub(crate) async fn erase_conversations<C: ConnectionTrait>(
    txn: &C,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let backend = txn.get_database_backend();
    let list = vec!["?"; ids.len()].join(", ");
    let values = || ids.iter().map(|id| Value::from(*id)).collect::<Vec<_>>();
    let run = |sql: String| statement(backend, &sql, values());
    if backend == DatabaseBackend::Sqlite {
        // The text index reads a row's text from `message` to know which
        // entries to remove, so it goes first.
        txn.execute_raw(run(format!(
            "INSERT INTO message_search (message_search, rowid, content, conversation_id) \
             SELECT 'delete', rowid, content, conversation_id FROM message \
             WHERE conversation_id IN ({list}) AND role <> 'TOOL' AND content <> ''"
        )))
        .await?;
        txn.execute_raw(run(format!(
            "DELETE FROM message_grams WHERE rowid IN (SELECT rowid FROM message \
             WHERE conversation_id IN ({list}) AND role <> 'TOOL' AND content <> '')"
        )))
        .await?;
    }
    let messages = txn
        .execute_raw(run(format!(
            "UPDATE message SET content = '' WHERE conversation_id IN ({list}) AND content <> ''"
        )))
        .await?
        .rows_affected();
    txn.execute_raw(run(format!(
        "UPDATE confirmation SET summary = '', cancel_reason = NULL WHERE conversation_id IN ({list})"
    )))
    .await?;
    txn.execute_raw(run(format!(
        "UPDATE cta_link SET target_url = '' WHERE conversation_id IN ({list})"
    )))
    .await?;
    conversation::Entity::update_many()
        .col_expr(conversation::Column::Contact, Expr::value(None::<String>))
        .col_expr(conversation::Column::UserId, Expr::value(None::<String>))
        .col_expr(conversation::Column::UserName, Expr::value(None::<String>))
        .col_expr(conversation::Column::ThreadKey, Expr::value(None::<String>))
        .col_expr(
            conversation::Column::OpeningMessage,
            Expr::value(None::<String>),
        )
        .col_expr(conversation::Column::ErasedAt, Expr::value(to_micros(now)))
        .filter(conversation::Column::Id.is_in(ids.iter().copied()))
        .exec(txn)
        .await?;
    Ok(messages)
}

/// The erasures with the prefix of the key that asked each.
async fn with_key_prefixes<C: ConnectionTrait>(
    db: &C,
    rows: Vec<erasure::Model>,
) -> Result<Vec<Erasure>, AppError> {
    let key_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.key_id).collect();
    let prefixes: HashMap<Uuid, String> = if key_ids.is_empty() {
        HashMap::new()
    } else {
        api_key::Entity::find()
            .select_only()
            .column(api_key::Column::Id)
            .column(api_key::Column::KeyPrefix)
            .filter(api_key::Column::Id.is_in(key_ids))
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    rows.into_iter()
        .map(|r| {
            let prefix = r.key_id.and_then(|k| prefixes.get(&k).cloned());
            Erasure::try_from((r, prefix))
        })
        .collect()
}

impl TryFrom<(erasure::Model, Option<String>)> for Erasure {
    type Error = AppError;

    fn try_from((row, key_prefix): (erasure::Model, Option<String>)) -> Result<Self, AppError> {
        Ok(Erasure {
            id: row.id,
            at: from_micros(row.at),
            key_prefix,
            scope: stored("erasure.scope", &row.scope)?,
            reason: row.reason,
            conversations: row.conversations,
            messages: row.messages,
        })
    }
}
