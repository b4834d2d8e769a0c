//! The scratch database each fault scenario runs on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, Database as Connect, DatabaseBackend, Statement};
use tempfile::TempDir;

use super::cli::Backend;

/// A database made for one scenario and removed after it: a SQLite file in
/// a temporary folder, or a new database on a PostgreSQL server.
pub struct Scratch {
    pub url: String,
    storage: Storage,
}

enum Storage {
    Folder(TempDir),
    PostgresDatabase { server: String, name: String },
}

/// Tells apart the PostgreSQL databases of one run's scenarios.
static SCRATCH_COUNT: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    /// `postgres` is a server URL without a database name.
    pub async fn create(backend: Backend, postgres: &str) -> Result<Self, String> {
        match backend {
            Backend::Sqlite => {
                let folder = tempfile::Builder::new()
                    .prefix("convtrack-faults-")
                    .tempdir()
                    .map_err(|e| format!("creating a temporary folder: {e}"))?;
                Ok(Self {
                    url: format!(
                        "sqlite://{}?mode=rwc",
                        folder.path().join("faults.db").display()
                    ),
                    storage: Storage::Folder(folder),
                })
            }
            Backend::Postgres => {
                let n = SCRATCH_COUNT.fetch_add(1, Ordering::Relaxed);
                let name = format!("convtrack_faults_{}_{n}", std::process::id());
                admin_statement(postgres, &format!("CREATE DATABASE {name}")).await?;
                Ok(Self {
                    url: format!("{}/{name}", postgres.trim_end_matches('/')),
                    storage: Storage::PostgresDatabase {
                        server: postgres.to_owned(),
                        name,
                    },
                })
            }
        }
    }

    /// Runs `scenario` on a new scratch database and removes the database
    /// afterwards, whatever the scenario's outcome.
    pub async fn around(
        backend: Backend,
        postgres: &str,
        scenario: impl AsyncFnOnce(&Scratch) -> Result<(), String>,
    ) -> Result<(), String> {
        let scratch = Self::create(backend, postgres).await?;
        let outcome = scenario(&scratch).await;
        scratch.remove().await;
        outcome
    }

    /// The SQLite file, when this is one.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.storage {
            Storage::Folder(folder) => Some(folder.path().join("faults.db")),
            Storage::PostgresDatabase { .. } => None,
        }
    }

    /// Removes the database (after every server on it has stopped).
    pub async fn remove(self) {
        match self.storage {
            Storage::Folder(folder) => {
                let _ = folder.close();
            }
            Storage::PostgresDatabase { server, name } => {
                let dropped = admin_statement(
                    &server,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await;
                if let Err(e) = dropped {
                    eprintln!("bench: could not drop {name}: {e}");
                }
            }
        }
    }
}

async fn admin_statement(server: &str, sql: &str) -> Result<(), String> {
    let url = format!("{}/postgres", server.trim_end_matches('/'));
    let admin = Connect::connect(&url)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    admin
        .execute_unprepared(sql)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    admin.close().await.map_err(|e| e.to_string())
}

/// `PRAGMA integrity_check` of a SQLite database: "ok" when it is sound.
pub async fn sqlite_integrity(url: &str) -> Result<String, String> {
    let db = Connect::connect(url).await.map_err(|e| e.to_string())?;
    let rows = db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .map_err(|e| e.to_string())?;
    let lines: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .collect();
    db.close().await.map_err(|e| e.to_string())?;
    Ok(lines.join("; "))
}
