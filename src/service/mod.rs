//! Transactions over the database, one file per capability. Functions take
//! the [`Caller`] (tenant + role) and return domain values or an
//! [`AppError`]; they know nothing of HTTP or GraphQL, so they are testable
//! without either.

pub mod auth;
pub mod confirmations;
pub mod conversions;
pub mod erasure;
pub mod export;
pub mod feed;
pub mod keys;
pub mod labels;
pub mod links;
pub mod listing;
pub mod messages;
mod people;
pub mod read_model;
pub mod request_keys;
pub mod retention;
pub(crate) mod rollups;
pub mod search;
pub mod sessions;
pub mod stats;
pub mod subject;
pub mod tenants;
pub mod webhook_deliveries;
pub mod webhooks;

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore};
use uuid::Uuid;

use crate::domain::clock::Clock;
use crate::domain::link::SigningKey;
use crate::domain::rate_limit::RateLimiter;
use crate::domain::role::{Operation, Role};
use crate::error::AppError;
use crate::events::activity::ActivityBus;
use crate::events::{EventBus, KeyNews};
use feed::hub::FeedHub;

/// Who is calling: resolved from the API key on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: Uuid,
    pub role: Role,
    pub key_id: Uuid,
}

impl Caller {
    /// Refuses the call unless the caller's role may perform `operation`.
    pub fn require(&self, operation: Operation, action: &'static str) -> Result<(), AppError> {
        if self.role.may(operation) {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                role: self.role.as_str(),
                action,
            })
        }
    }
}

/// One page of a keyset-paginated list.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched `first + 1` rows: the extra
    /// row only tells that there is a next page.
    pub fn from_overfetch(mut rows: Vec<T>, first: u64) -> Self {
        let has_next_page = rows.len() as u64 > first;
        rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
        Self {
            items: rows,
            has_next_page,
        }
    }
}

/// Everything a service call needs: the database, the clock, and the link
/// secrets the operator configured (if any).
#[derive(Clone)]
pub struct Services {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    /// From `CONVTRACK_LINK_SECRET`: the first signs, all verify. Empty when
    /// the keys live in the database.
    pub operator_link_keys: Arc<[SigningKey]>,
    /// Wakes this instance's subscribers when a tenant's feed moves.
    pub events: Arc<EventBus>,
    /// This instance's live readers, shared by all its subscribers.
    pub hub: Arc<FeedHub>,
    /// Conversations started, messaged, closed: to live lists here and
    /// (on PostgreSQL) on the other instances.
    pub activity: Arc<ActivityBus>,
    /// News from other instances that keys or tenant settings changed.
    pub key_news: Arc<KeyNews>,
    /// The keys this instance has verified.
    key_cache: Arc<auth::KeyCache>,
    /// SQLite only: this process's writers wait here for their turn.
    write_turn: Arc<Mutex<()>>,
    /// SQLite only: recordings waiting to share the next write transaction.
    group_commit: Arc<conversions::group::GroupCommit>,
    /// Conversion stats running at once. Each takes one connection for one
    /// statement; the rest wait here, so that stats requests never drain the
    /// pool that recordings and lists need.
    stats_slots: Arc<Semaphore>,
    /// One counted follow per link and client address a minute.
    recent_follows: Arc<RateLimiter<(Uuid, IpAddr)>>,
    /// How much a search reads in each step.
    search_steps: search::SearchSteps,
    /// Hosts webhook endpoints may use outside the public-HTTPS rule.
    webhook_allow_hosts: Arc<[String]>,
    /// How long finished webhook deliveries are kept.
    webhook_retention: chrono::TimeDelta,
    /// Multiplies every wait of the webhook retry schedule.
    webhook_retry_scale: f64,
}

/// Connections one conversion-stats request uses at once.
pub const STATS_CONNECTIONS: usize = 1;

impl Services {
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            operator_link_keys: Arc::from(Vec::new()),
            events: Arc::new(EventBus::default()),
            hub: Arc::new(FeedHub::default()),
            activity: Arc::new(ActivityBus::default()),
            key_news: Arc::new(KeyNews::default()),
            key_cache: Arc::new(auth::KeyCache::default()),
            write_turn: Arc::new(Mutex::new(())),
            group_commit: Arc::default(),
            stats_slots: Arc::new(Semaphore::new(1)),
            recent_follows: Arc::new(RateLimiter::new(links::FOLLOWS_COUNTED)),
            search_steps: search::SearchSteps::default(),
            webhook_allow_hosts: Arc::from(Vec::new()),
            webhook_retention: webhook_deliveries::DEFAULT_RETENTION,
            webhook_retry_scale: 1.0,
        }
    }

    /// Hosts webhook endpoints may use outside the public-HTTPS rule, how
    /// long finished deliveries are kept, and how the retry schedule is
    /// scaled.
    pub fn with_webhooks(
        mut self,
        allow_hosts: Vec<String>,
        retention: chrono::TimeDelta,
        retry_scale: f64,
    ) -> Self {
        self.webhook_allow_hosts = Arc::from(allow_hosts);
        self.webhook_retention = retention;
        self.webhook_retry_scale = retry_scale;
        self
    }

    /// How long finished webhook deliveries are kept.
    pub fn webhook_retention(&self) -> chrono::TimeDelta {
        self.webhook_retention
    }

    /// Hosts webhook endpoints may use outside the public-HTTPS rule.
    pub fn webhook_allow_hosts(&self) -> &[String] {
        &self.webhook_allow_hosts
    }

    pub fn with_search_steps(mut self, steps: search::SearchSteps) -> Self {
        self.search_steps = steps;
        self
    }

    /// Sizes the stats queue for a pool of `connections`: stats may use at
    /// most about half of it.
    pub fn with_pool_size(mut self, connections: u32) -> Self {
        let slots = (connections as usize / 2 / STATS_CONNECTIONS).max(1);
        self.stats_slots = Arc::new(Semaphore::new(slots));
        self
    }

    pub fn with_operator_link_keys(mut self, keys: Vec<SigningKey>) -> Self {
        self.operator_link_keys = Arc::from(keys);
        self
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock at `BEGIN` (IMMEDIATE): a deferred transaction that reads first
    /// and writes later fails with SQLITE_BUSY instead of waiting its turn.
    /// This process's SQLite writers also queue in memory first, in arrival
    /// order: SQLite's own busy handler polls with sleeps of up to 100 ms,
    /// which under many concurrent writers wastes most of the time asleep
    /// (other processes, such as the CLI, still meet the busy timeout).
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let turn = if self.db.get_database_backend() == DatabaseBackend::Sqlite {
            Some(self.write_turn().await)
        } else {
            None
        };
        self.begin_write_in_turn(turn).await
    }

    /// SQLite: waits for this process's write turn.
    async fn write_turn(&self) -> OwnedMutexGuard<()> {
        self.write_turn.clone().lock_owned().await
    }

    /// [`Self::begin_write`] for a caller that already holds the turn.
    async fn begin_write_in_turn(
        &self,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Result<WriteTxn, DbErr> {
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn { txn, _turn: turn })
    }
}

/// A write transaction from [`Services::begin_write`]. Rolled back when
/// dropped uncommitted.
pub struct WriteTxn {
    // Declared first so the transaction ends before the next writer's turn.
    txn: DatabaseTransaction,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// A statement written with `?` placeholders, numbered for PostgreSQL.
pub(crate) fn statement(
    backend: DatabaseBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Statement {
    let sql = if backend == DatabaseBackend::Postgres {
        let mut numbered = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                numbered.push('$');
                numbered.push_str(&n.to_string());
            } else {
                numbered.push(c);
            }
        }
        numbered
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Serialises transactions that work on the same logical key (on PostgreSQL;
/// SQLite write transactions are already serial). Held until commit.
pub async fn lock_key(txn: &DatabaseTransaction, key: &[u8]) -> Result<(), DbErr> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [i64::from_be_bytes(first).into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let pg = statement(
            DatabaseBackend::Postgres,
            "a = ? AND b = ?",
            vec![1.into(), 2.into()],
        );
        assert_eq!(pg.sql, "a = $1 AND b = $2");
        let lite = statement(
            DatabaseBackend::Sqlite,
            "a = ? AND b = ?",
            vec![1.into(), 2.into()],
        );
        assert_eq!(lite.sql, "a = ? AND b = ?");
    }
}
