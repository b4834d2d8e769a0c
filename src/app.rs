//! Building a running server from configuration: database, migrations,
//! services, schema and routes. `main` and every test start it this way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::domain::clock::Clock;
use crate::domain::link::SigningKey;
use crate::domain::rate_limit::RateLimiter;
use crate::graphql;
use crate::service::Services;
use crate::web::AppState;
use crate::{db, events, telemetry, web};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the {place}: {source}{hint}")]
    Database {
        /// Which database, without credentials.
        place: String,
        source: sea_orm::DbErr,
        /// What to check, when the cause is a known one.
        hint: &'static str,
    },
    #[error("{0}")]
    SqliteInUse(#[from] db::InstanceLockError),
    #[error("invalid link secret: {0}")]
    LinkSecret(String),
    #[error("cannot prepare link signing: {0}")]
    LinkKey(String),
    #[error("cannot read the webhook CA file: {0}")]
    WebhookCa(String),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// A server bound to its address and ready to run.
pub struct Application {
    /// SQLite only: held while the server runs.
    instance_lock: Option<db::InstanceLock>,
    listener: TcpListener,
    state: AppState,
    sql_statements: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
    connection_limits: web::serve::ConnectionLimits,
}

impl Application {
    pub async fn build(config: &ServerConfig, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let metrics = telemetry::prometheus();
        let sql_statements = Arc::new(AtomicU64::new(0));
        let instance_lock = db::sqlite_file(&config.database_url)
            .map(|file| db::InstanceLock::acquire(&file))
            .transpose()?;
        let connection = open_database(config, sql_statements.clone()).await?;
        let services = Services::new(connection, clock)
            .with_operator_link_keys(operator_link_keys(config)?)
            .with_pool_size(config.db_max_connections)
            .with_search_steps(config.search_steps)
            .with_webhooks(
                config.webhook_allow_hosts.clone(),
                config.webhook_retention,
                config.webhook_retry_scale,
            );
        services
            .ensure_link_key()
            .await
            .map_err(|e| StartupError::LinkKey(e.to_string()))?;
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| StartupError::Listen {
                    address: config.listen.clone(),
                    source,
                })?;
        let (shutdown, shutdown_seen) = watch::channel(false);
        let webhook_tls = crate::dispatch::post::tls_config(config.webhook_ca_file.as_deref())
            .map_err(StartupError::WebhookCa)?;
        let dispatch_db = open_dispatch_pool(config).await?;
        let mut background = services.clone();
        background.db = dispatch_db;
        tokio::spawn(crate::service::retention::keep(
            background.clone(),
            config.retention_every,
            shutdown_seen.clone(),
        ));
        crate::dispatch::spawn(background, webhook_tls, shutdown_seen.clone());
        if let Some(pool) = postgres_pool(&services.db) {
            services.events.tell_other_instances();
            tokio::spawn(events::postgres::announce(
                services.db.clone(),
                services.events.clone(),
                shutdown_seen.clone(),
            ));
            services.activity.tell_other_instances();
            tokio::spawn(events::postgres::announce_activity(
                services.db.clone(),
                services.activity.clone(),
                shutdown_seen.clone(),
            ));
            let heard = events::postgres::Heard {
                bus: services.events.clone(),
                key_news: services.key_news.clone(),
                activity: services.activity.clone(),
            };
            tokio::spawn(events::postgres::listen(pool, heard, shutdown_seen.clone()));
            tokio::spawn(db::keep_statistics(
                services.db.clone(),
                shutdown_seen.clone(),
            ));
        }
        let state = AppState {
            services,
            schema: graphql::schema(
                config.introspection,
                Arc::new(RateLimiter::new(config.rate_limit)),
                graphql::PublicUrl(config.public_url.clone()),
            ),
            metrics,
            shutdown: shutdown_seen,
            sockets: TaskTracker::new(),
            socket_init_timeout: config.socket_init_timeout,
            socket_send_timeout: config.socket_send_timeout,
            request_timeout: config.request_timeout,
            cors_origins: Arc::new(config.cors_origins.clone()),
            own_origins: Arc::new(web::own_origins(listener.local_addr().ok())),
            socket_counts: Arc::default(),
        };
        Ok(Self {
            instance_lock,
            listener,
            state,
            sql_statements,
            shutdown,
            connection_limits: web::serve::ConnectionLimits {
                header_read: config.header_read_timeout,
                // A request past its timeout has been answered 504 already.
                drain: config.request_timeout + std::time::Duration::from_secs(1),
            },
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn services(&self) -> &Services {
        &self.state.services
    }

    /// SQL statements this server has executed so far.
    pub fn sql_statement_counter(&self) -> Arc<AtomicU64> {
        self.sql_statements.clone()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests
    /// (for at most the request timeout) and closes open WebSockets with a
    /// close frame (clients reconnect elsewhere with their cursor).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Released when the server has stopped, not before.
        let instance_lock = self.instance_lock;
        let sockets = self.state.sockets.clone();
        let router = web::router(self.state);
        let stop = self.shutdown;
        web::serve::serve(
            self.listener,
            router,
            async move {
                shutdown.await;
                let _ = stop.send(true);
            },
            self.connection_limits,
        )
        .await;
        sockets.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), sockets.wait()).await;
        drop(instance_lock);
        Ok(())
    }
}

/// Migrates the database, then opens the serving pool, which counts its
/// statements into `statements`.
async fn open_database(
    config: &ServerConfig,
    statements: Arc<AtomicU64>,
) -> Result<sea_orm::DatabaseConnection, StartupError> {
    if let Some(warning) = db::plaintext_risk(&config.database_url) {
        tracing::warn!("{warning}");
    }
    let failed = |source: sea_orm::DbErr| {
        let hint = if source.to_string().contains("certificate") {
            " (TLS: the server's certificate must chain to the authority in sslrootcert and, with sslmode=verify-full, name the host DATABASE_URL connects to)"
        } else {
            ""
        };
        StartupError::Database {
            place: db::describe(&config.database_url),
            source,
            hint,
        }
    };
    // Migrations run on their own connection, free of the statement
    // timeout that protects the serving pool.
    let migrator = db::connect(&config.database_url, 1).await.map_err(failed)?;
    db::migrate(&migrator).await.map_err(failed)?;
    db::refresh_statistics(&migrator).await.map_err(failed)?;
    migrator.close().await.map_err(failed)?;
    let statement_timeout = config
        .request_timeout
        .saturating_sub(std::time::Duration::from_secs(1))
        .max(std::time::Duration::from_secs(1));
    let mut connection = db::connect_with(
        &config.database_url,
        config.db_max_connections,
        Some(statement_timeout),
    )
    .await
    .map_err(failed)?;
    let system = match connection.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "postgresql",
        sea_orm::DatabaseBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    connection.set_metric_callback(move |info| {
        statements.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("convtrack_sql_statements_total").increment(1);
        telemetry::record_statement(system, &info.statement.sql, info.elapsed, info.failed);
    });
    Ok(connection)
}

/// The pool webhook deliveries run on: their own, so that their background
/// reads (endpoints every second, each delivery's steps) never wait behind
/// requests nor requests behind them, and so that they are not counted as
/// request statements. Connections open only when used.
async fn open_dispatch_pool(
    config: &ServerConfig,
) -> Result<sea_orm::DatabaseConnection, StartupError> {
    db::connect_with(
        &config.database_url,
        (config.db_max_connections / 2).max(2),
        Some(
            config
                .request_timeout
                .max(std::time::Duration::from_secs(1)),
        ),
    )
    .await
    .map_err(|source| StartupError::Database {
        place: db::describe(&config.database_url),
        source,
        hint: "",
    })
}

/// The link secrets the operator configured, the first signing.
fn operator_link_keys(config: &ServerConfig) -> Result<Vec<SigningKey>, StartupError> {
    config
        .link_secrets
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            SigningKey::from_operator_secret(s.trim()).map_err(|e| StartupError::LinkSecret(e.0))
        })
        .collect()
}

/// The PostgreSQL pool behind a connection, for LISTEN.
fn postgres_pool(db: &sea_orm::DatabaseConnection) -> Option<sea_orm::sqlx::PgPool> {
    match &db.inner {
        sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            Some(db.get_postgres_connection_pool().clone())
        }
        _ => None,
    }
}
