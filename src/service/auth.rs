//! Resolving a bearer key to its caller on every request, from memory.
//!
//! Each instance keeps the keys it has verified, with their tenant's
//! settings. It forgets them all when who may call could have changed:
//! at once for changes made through this instance; on news from the
//! PostgreSQL listener for other instances' changes (and whenever it
//! reconnects); and, on both databases, when the shared change counter
//! (`auth_version`, moved in the same transaction as every revocation and
//! settings change) has moved, read at most every [`VERSION_CHECK_EVERY`].
//! Unknown keys are never remembered; a lookup that finds nothing is
//! charged to the client's address, and an address whose budget is spent
//! gets no lookup, so a flood of wrong keys cannot cost one statement each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseTransaction, Statement};

use super::{Caller, Services, statement};
use crate::domain::api_key as secrets;
use crate::domain::locked;
use crate::domain::rate_limit::{Budget, RateLimiter};
use crate::domain::settings::TenantSettings;
use crate::error::{AppError, stored};
use crate::events::KEYS_CHANNEL;

/// How stale a remembered key may be when it was revoked (or its tenant's
/// settings changed) through another process.
pub const VERSION_CHECK_EVERY: TimeDelta = TimeDelta::milliseconds(500);
/// Most keys remembered; past it the memory starts over.
const MAX_REMEMBERED: usize = 10_000;
/// Lookups of keys not in memory, per client address: a burst, then a
/// steady rate. Legitimate clients look a key up once.
const LOOKUPS: Budget = Budget {
    capacity: 20.0,
    per_second: 2.0,
};

/// A verified key: who calls with it, and its tenant's settings.
#[derive(Debug, Clone)]
struct Verified {
    caller: Caller,
    settings: Arc<TenantSettings>,
}

#[derive(Debug, Default)]
struct Memory {
    /// By key hash.
    keys: HashMap<String, Verified>,
    /// Moves whenever `keys` is forgotten, so a lookup that started before
    /// does not put back what was forgotten meanwhile.
    generation: u64,
    /// The listener's news count when last looked at.
    news_seen: u64,
    /// The shared change counter as last read, and when.
    version: Option<i64>,
    version_read_at: Option<DateTime<Utc>>,
}

impl Memory {
    fn forget(&mut self) {
        self.keys.clear();
        self.generation += 1;
    }
}

/// This instance's verified keys.
#[derive(Debug)]
pub struct KeyCache {
    memory: Mutex<Memory>,
    lookups: RateLimiter<IpAddr>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            memory: Mutex::default(),
            lookups: RateLimiter::new(LOOKUPS),
        }
    }
}

impl KeyCache {
    /// Forgets every key (a change made through this instance).
    pub fn forget_all(&self) {
        locked(&self.memory).forget();
    }
}

impl Services {
    /// Resolves a bearer key to its caller.
    pub async fn authenticate(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<Caller>, AppError> {
        Ok(self
            .authenticate_with_settings(secret, client)
            .await?
            .map(|(caller, _)| caller))
    }

    /// The caller and its tenant's settings: from memory, or in one
    /// statement for a key this instance has not verified yet. A lookup
    /// from a `client` that has spent its budget is refused with
    /// `RATE_LIMITED` before any statement.
    pub async fn authenticate_with_settings(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<(Caller, Arc<TenantSettings>)>, AppError> {
        let hash = secrets::hash(secret);
        let generation = self.refresh_key_memory().await?;
        if let Some(known) = locked(&self.key_cache.memory).keys.get(&hash) {
            return Ok(Some((known.caller, known.settings.clone())));
        }
        // Only lookups that find nothing are charged: a valid key's first
        // requests, however many at once, never spend the address's budget.
        let now = self.clock.now();
        let lookups = &self.key_cache.lookups;
        if let Some(client) = client {
            lookups.affords(&client, 1.0, now).map_err(|seconds| {
                AppError::RateLimited(format!(
                    "too many unknown API keys from this address; retry after {seconds} s"
                ))
            })?;
        }
        let Some(verified) = self.look_up_key(&hash).await? else {
            if let Some(client) = client {
                let _ = lookups.charge(client, 1.0, now);
            }
            return Ok(None);
        };
        let mut memory = locked(&self.key_cache.memory);
        if memory.generation == generation {
            if memory.keys.len() >= MAX_REMEMBERED {
                memory.keys.clear();
            }
            memory.keys.insert(hash, verified.clone());
        }
        Ok(Some((verified.caller, verified.settings)))
    }

    /// Forgets the remembered keys if the listener brought news or the
    /// shared change counter moved; returns the memory's generation.
    async fn refresh_key_memory(&self) -> Result<u64, AppError> {
        let now = self.clock.now();
        let news = self.key_news.count();
        let read_version = {
            let mut memory = locked(&self.key_cache.memory);
            if memory.news_seen != news {
                memory.news_seen = news;
                memory.forget();
            }
            let due = memory
                .version_read_at
                .is_none_or(|at| now - at >= VERSION_CHECK_EVERY || now < at);
            // The first request to find the check due makes it; the others
            // meanwhile go on with the memory as it is (at most one check
            // period old), instead of each reading the counter too.
            if due {
                memory.version_read_at = Some(now);
            }
            due
        };
        if read_version {
            let version = match auth_version(&self.db).await {
                Ok(version) => version,
                Err(e) => {
                    locked(&self.key_cache.memory).version_read_at = None;
                    return Err(e);
                }
            };
            let mut memory = locked(&self.key_cache.memory);
            if memory.version != Some(version) {
                memory.version = Some(version);
                memory.forget();
            }
        }
        Ok(locked(&self.key_cache.memory).generation)
    }

    async fn look_up_key(&self, hash: &str) -> Result<Option<Verified>, AppError> {
        let row = self
            .db
            .query_one_raw(statement(
                self.db.get_database_backend(),
                "SELECT k.id AS key_id, k.tenant_id AS tenant_id, k.role AS role, t.settings AS settings \
                 FROM api_key k JOIN tenant t ON t.id = k.tenant_id \
                 WHERE k.key_hash = ? AND k.revoked_at IS NULL",
                vec![hash.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let caller = Caller {
            tenant_id: row.try_get("", "tenant_id")?,
            role: stored("api_key.role", &row.try_get::<String>("", "role")?)?,
            key_id: row.try_get("", "key_id")?,
        };
        let settings = TenantSettings::from_json(&row.try_get::<String>("", "settings")?)
            .map_err(|e| AppError::internal_from("stored tenant settings", e))?;
        Ok(Some(Verified {
            caller,
            settings: Arc::new(settings),
        }))
    }
}

async fn auth_version<C: ConnectionTrait>(db: &C) -> Result<i64, AppError> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM auth_version WHERE id = 1",
        ))
        .await?
        .ok_or_else(|| AppError::internal("the auth_version row is missing"))?;
    Ok(row.try_get("", "version")?)
}

/// Inside the transaction of a change to who may call: moves the shared
/// counter (other instances forget their keys within
/// [`VERSION_CHECK_EVERY`]) and, on PostgreSQL, tells listening instances at
/// once when it commits.
pub(crate) async fn keys_changed(txn: &DatabaseTransaction) -> Result<(), AppError> {
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_string(
        backend,
        "UPDATE auth_version SET version = version + 1 WHERE id = 1",
    ))
    .await?;
    if backend == DatabaseBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_notify($1, '')",
            [KEYS_CHANNEL.into()],
        ))
        .await?;
    }
    Ok(())
}
