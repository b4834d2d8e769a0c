//! `bench faults`: breaks things on purpose under load and proves that no
//! acknowledged conversion is lost and none is counted twice. Every
//! scenario runs on a scratch database of its own (a temporary SQLite file
//! or a new PostgreSQL database), records through the bookkeeping writers
//! (`ledger`), and ends with the verifier.

mod cluster;
mod instance;
mod kill;
mod ledger;
mod pg_restart;
mod soak;
mod storm;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, Database as Connect, DatabaseBackend, Statement};

pub use cluster::{ClusterArgs, run as cluster};
pub use kill::{KillArgs, run as kill};
pub use pg_restart::{PgRestartArgs, run as pg_restart};
pub use soak::{SoakArgs, run as soak};
pub use storm::{StormArgs, run as storm};

/// Which database a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one scenario and removed after it: a SQLite file in
/// a temporary folder, or a new database on a PostgreSQL server.
pub struct Scratch {
    pub url: String,
    place: Place,
}

enum Place {
    Folder(PathBuf),
    PostgresDatabase { server: String, name: String },
}

static SCRATCH_COUNT: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    /// `postgres` is a server URL without a database name.
    pub async fn create(backend: Backend, postgres: &str) -> Result<Self, String> {
        let n = SCRATCH_COUNT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}_{}", std::process::id(), n);
        match backend {
            Backend::Sqlite => {
                let folder = std::env::temp_dir().join(format!("convtrack-faults-{tag}"));
                std::fs::create_dir_all(&folder)
                    .map_err(|e| format!("creating {}: {e}", folder.display()))?;
                Ok(Self {
                    url: format!("sqlite://{}?mode=rwc", folder.join("faults.db").display()),
                    place: Place::Folder(folder),
                })
            }
            Backend::Postgres => {
                let name = format!("convtrack_faults_{tag}");
                admin_statement(postgres, &format!("CREATE DATABASE {name}")).await?;
                Ok(Self {
                    url: format!("{}/{name}", postgres.trim_end_matches('/')),
                    place: Place::PostgresDatabase {
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
        match &self.place {
            Place::Folder(folder) => Some(folder.join("faults.db")),
            Place::PostgresDatabase { .. } => None,
        }
    }

    /// Removes the database (after every server on it has stopped).
    pub async fn remove(self) {
        match self.place {
            Place::Folder(folder) => {
                let _ = std::fs::remove_dir_all(folder);
            }
            Place::PostgresDatabase { server, name } => {
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

/// What a scenario found wrong; empty when everything held.
#[derive(Default)]
pub struct Findings(Vec<String>);

impl Findings {
    pub fn check(&mut self, holds: bool, what: impl Into<String>) {
        if !holds {
            self.0.push(what.into());
        }
    }

    pub fn add(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    /// The verifier's problems, and whatever the writers got refused,
    /// failed at or never got acknowledged.
    pub fn settle(&mut self, problems: Vec<String>, tallies: &[&ledger::Tally]) {
        self.0.extend(problems);
        for tally in tallies {
            self.0.extend(tally.refused());
            self.0.extend(tally.failures());
            for key in tally.unfinished() {
                self.add(format!("{key} was never acknowledged"));
            }
        }
    }

    /// Ok when nothing was found; else every finding in one error.
    pub fn verdict(self, scenario: &str) -> Result<(), String> {
        if self.0.is_empty() {
            println!("{scenario}: PASS");
            Ok(())
        } else {
            Err(format!("{scenario}: FAIL\n  - {}", self.0.join("\n  - ")))
        }
    }
}
