//! What can go wrong in a service call, as types. The one place that turns
//! these into client-facing GraphQL errors is `graphql::errors`.

use sea_orm::DbErr;

use crate::domain::InvalidInput;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadInput(String),
    #[error("this API key's role ({role}) may not {action}")]
    Forbidden {
        role: &'static str,
        action: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the session has expired after {0} without activity; start a new session")]
    SessionExpired(String),
    #[error("the session is closed; start a new session")]
    SessionClosed,
    #[error("{0}")]
    Conflict(String),
    /// Whatever was wrong with a link token, the answer is the same.
    #[error("the link token is not valid; pass the ai_session value exactly as it arrived")]
    InvalidLinkToken,
    #[error("the confirmation expired at {0}; request a new one")]
    ConfirmationExpired(String),
    #[error(
        "this idempotencyKey was already used with a different payload; use a new key for a different request"
    )]
    IdempotencyKeyReused,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RateLimited(String),
    /// The database could not be reached or stayed busy: nothing was
    /// committed and the same request may be retried.
    #[error("the database is busy or unreachable; nothing was committed, retry the request")]
    Unavailable(#[source] DbErr),
    /// A concurrent request wrote the same row first (a unique index said
    /// so). Services retry on it; it reaches a client only if the race
    /// repeats, and retrying then is still right.
    #[error("a concurrent request wrote the same record; nothing was committed, retry the request")]
    Raced,
    /// Anything else: logged with details, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Reads a value the server wrote to the database. One that does not parse
/// is corrupt data, an internal error, never the caller's fault.
pub fn stored<T>(column: &str, value: &str) -> Result<T, AppError>
where
    T: std::str::FromStr<Err = InvalidInput>,
{
    value
        .parse()
        .map_err(|_| AppError::Internal(format!("stored {column} {value:?} is not valid")))
}

impl From<InvalidInput> for AppError {
    fn from(e: InvalidInput) -> Self {
        AppError::BadInput(e.0)
    }
}

impl From<DbErr> for AppError {
    fn from(e: DbErr) -> Self {
        if is_transient(&e) {
            AppError::Unavailable(e)
        } else {
            AppError::Internal(format!("database: {e}"))
        }
    }
}

impl From<getrandom::Error> for AppError {
    fn from(e: getrandom::Error) -> Self {
        AppError::Internal(format!("random number generator: {e}"))
    }
}

/// Whether a database error means "try again" (busy, locked, unreachable,
/// shutting down, serialization failure) rather than a bug.
pub fn is_transient(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as SqlxError;
    let runtime = match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        SqlxError::Io(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed
        | SqlxError::Tls(_) => true,
        SqlxError::Database(db) => db.code().is_some_and(|code| {
            // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6) and their extended codes.
            let sqlite_busy = code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
            // PostgreSQL: connection exceptions, shutdown, too many connections,
            // serialization failure and deadlock.
            let pg_transient = code.starts_with("08")
                || code.starts_with("57P")
                || matches!(code.as_ref(), "53300" | "40001" | "40P01");
            sqlite_busy || pg_transient
        }),
        _ => false,
    }
}
