//! Connecting to the database and bringing its schema up to date.

use std::time::Duration;

mod url;

use url::effective;
pub use url::{describe, plaintext_risk};

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    TransactionTrait,
};

/// How long a SQLite writer waits for the write lock before giving up with a
/// retryable error.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a pool. SQLite gets WAL (readers never wait for the writer),
/// `synchronous=FULL` (a commit survives power loss), a busy timeout and
/// foreign keys; PostgreSQL is used as configured.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, max_connections, None).await
}

/// How long a pooled connection may sit idle before it is pinged on checkout.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);

/// As [`connect`]; on PostgreSQL every statement is also cut off after
/// `statement_timeout`, so a runaway query cannot hold a connection.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    statement_timeout: Option<Duration>,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(effective(url).into_owned());
    if let Some(timeout) = statement_timeout
        && url.starts_with("postgres")
    {
        options.statement_timeout(timeout);
    }
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // A ping on every checkout is a round trip per request; only a
        // connection idle long enough to have been dropped on the way (a
        // proxy, a firewall, a restart) is pinged first. One that broke
        // while in use fails its statement and is closed, not reused.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .create_if_missing(true)
                // Deleted and overwritten text is zeroed in the file, not
                // left in free space: an erased person stays erased.
                .pragma("secure_delete", "ON")
        });
    Database::connect(options).await
}

/// Applies pending migrations. On PostgreSQL several instances may start at
/// once: the migrations run in one transaction holding an advisory lock, so
/// exactly one applies them and the others find nothing left to do. The
/// feed's numbering is then moved past every stored row (see
/// [`migration::resync_feed`]): a restored database needs it before its
/// first new recording.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7253068101)")
            .await?;
        Migrator::up(&txn, None).await?;
        migration::resync_feed(&txn).await?;
        txn.commit().await
    } else {
        Migrator::up(db, None).await
    }
}

/// How the connection pool is used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open.
    pub open: u32,
    /// Open connections no request holds.
    pub idle: u32,
    /// The most the pool may open.
    pub max: u32,
}

/// The pool's usage, for `/metrics`: a pool near `max` in use is where
/// requests start waiting for a connection.
pub fn pool_usage(db: &DatabaseConnection) -> Option<PoolUsage> {
    fn usage<D: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<D>) -> PoolUsage {
        PoolUsage {
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
    match db.get_database_backend() {
        DatabaseBackend::Postgres => Some(usage(db.get_postgres_connection_pool())),
        DatabaseBackend::Sqlite => Some(usage(db.get_sqlite_connection_pool())),
        _ => None,
    }
}

/// Gives the query planner statistics where they are missing or stale.
///
/// SQLite: without them it may pick a poor index on a large file. Bounded:
/// an approximate analysis, at most a few seconds on a million
/// conversations.
///
/// PostgreSQL: autovacuum keeps statistics, and each automatic ANALYZE
/// makes every connection plan its prepared statements afresh. With
/// autovacuum off that never happens, and a statement first planned while
/// a table was nearly empty keeps a plan that walks the whole tenant (seen:
/// recordings slowed from 240/s to 150/s within three minutes as the
/// tenant grew). So when autovacuum is off, the tables that changed by
/// autovacuum's own default measure (50 rows plus 10%) are analyzed here.
/// Returns the tables analyzed.
pub async fn refresh_statistics(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => {
            db.execute_unprepared("PRAGMA analysis_limit = 1000")
                .await?;
            db.execute_unprepared("PRAGMA optimize = 0x10002").await?;
            Ok(Vec::new())
        }
        DatabaseBackend::Postgres => analyze_changed_postgres_tables(db).await,
        _ => Ok(Vec::new()),
    }
}

/// How often a PostgreSQL server without autovacuum looks for tables to
/// analyze.
pub const STATISTICS_EVERY: Duration = Duration::from_secs(30);

/// Runs [`refresh_statistics`] every [`STATISTICS_EVERY`] until `shutdown`
/// turns true (PostgreSQL servers; it does nothing where autovacuum is on).
pub async fn keep_statistics(
    db: DatabaseConnection,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(STATISTICS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        match refresh_statistics(&db).await {
            Ok(tables) if !tables.is_empty() => {
                tracing::debug!(?tables, "analyzed tables (autovacuum is off)");
            }
            Ok(_) => {}
            // A database that is down now is retried next round.
            Err(e) => tracing::warn!(error = %e, "could not refresh planner statistics"),
        }
    }
}

/// convtrack's own tables: the only ones it analyzes, whatever else shares
/// the schema.
fn own_tables() -> Vec<&'static str> {
    use sea_orm::EntityName;
    vec![
        entity::api_key::Entity.table_name(),
        entity::confirmation::Entity.table_name(),
        entity::conversation::Entity.table_name(),
        entity::conversion::Entity.table_name(),
        entity::cta_link::Entity.table_name(),
        entity::idempotency_key::Entity.table_name(),
        entity::link_signing_key::Entity.table_name(),
        entity::message::Entity.table_name(),
        entity::request_key::Entity.table_name(),
        entity::tenant::Entity.table_name(),
    ]
}

async fn analyze_changed_postgres_tables(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let setting = db
        .query_one_raw(sea_orm::Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT current_setting('autovacuum')::boolean AS autovacuum",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no answer to the autovacuum check".into()))?;
    if setting.try_get::<bool>("", "autovacuum")? {
        return Ok(Vec::new());
    }
    analyze_grown_tables(db).await
}

/// Analyzes each of convtrack's tables that changed by autovacuum's default
/// measure (50 rows plus 10%) since it was last analyzed; returns them.
pub async fn analyze_grown_tables(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let names = own_tables()
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let grown = db
        .query_all_raw(sea_orm::Statement::from_string(
            DatabaseBackend::Postgres,
            format!(
                "SELECT relname::text AS name FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() AND relname IN ({names}) \
                 AND n_mod_since_analyze > 50 + 0.1 * n_live_tup ORDER BY relname"
            ),
        ))
        .await?;
    let mut analyzed = Vec::with_capacity(grown.len());
    for row in grown {
        let name: String = row.try_get("", "name")?;
        // A transaction per table, so one slow table holds no other's lock;
        // one instance analyzes a table at a time, the others skip it this
        // round rather than queue behind it.
        let txn = db.begin().await?;
        let lock = txn
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock(72530681, hashtext($1)) AS mine",
                [name.clone().into()],
            ))
            .await?
            .ok_or_else(|| DbErr::Custom("no answer to the advisory lock".into()))?;
        if lock.try_get::<bool>("", "mine")? {
            // The serving pool cuts statements at the request timeout; a
            // large table may take longer to sample.
            txn.execute_unprepared("SET LOCAL statement_timeout = 0")
                .await?;
            txn.execute_unprepared(&format!("ANALYZE \"{name}\""))
                .await?;
            analyzed.push(name);
        }
        txn.commit().await?;
    }
    Ok(analyzed)
}

/// The file behind a SQLite URL (`sqlite://FILE?mode=rwc`, `sqlite:FILE`);
/// none for PostgreSQL and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, options) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || options.split('&').any(|o| o == "mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// Proof that this process is the one server of a SQLite file: an
/// exclusive lock on `FILE.lock` beside it, released when the process ends
/// (even by `kill -9`). SQLite mode is single-instance: the write queue and
/// the live feed's wake-ups live in the server's memory.
#[derive(Debug)]
pub struct InstanceLock {
    _file: std::fs::File,
}

/// Why [`InstanceLock::acquire`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InstanceLockError {
    #[error(
        "another convtrack server is already serving {0}; SQLite mode runs one server per database file (use PostgreSQL to run several)"
    )]
    InUse(String),
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl InstanceLock {
    pub fn acquire(database: &std::path::Path) -> Result<Self, InstanceLockError> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = std::path::PathBuf::from(name);
        let io = |source| InstanceLockError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(InstanceLockError::InUse(database.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

/// A cheap round trip, for `/readyz`.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        let file = |url| sqlite_file(url).map(|p| p.display().to_string());
        assert_eq!(
            file("sqlite://convtrack.db?mode=rwc").as_deref(),
            Some("convtrack.db")
        );
        assert_eq!(file("sqlite:///tmp/x.db").as_deref(), Some("/tmp/x.db"));
        assert_eq!(file("sqlite:data.db").as_deref(), Some("data.db"));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://shared?mode=memory&cache=shared"), None);
        assert_eq!(file("postgres://postgres@127.0.0.1/test"), None);
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("one.db");
        let first = InstanceLock::acquire(&db).expect("first lock");
        let second = InstanceLock::acquire(&db).expect_err("second lock refused");
        assert!(second.to_string().contains("already serving"), "{second}");
        drop(first);
        InstanceLock::acquire(&db).expect("free again");
        dir.close().expect("clean up");
    }
}
