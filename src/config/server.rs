//! What a server needs to start, gathered from the command line.

use std::fmt;

use crate::domain::redact::{redacted_each, redacted_url};

/// What a server needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    pub database_url: String,
    pub db_max_connections: u32,
    pub listen: String,
    /// Operator-given link secrets; empty to use the database's keys.
    pub link_secrets: Vec<String>,
    /// Time a WebSocket client has to send `connection_init`.
    pub socket_init_timeout: std::time::Duration,
    /// Longest a WebSocket client may take to accept a message before it is
    /// closed as too slow (`1013`).
    pub socket_send_timeout: std::time::Duration,
    /// Introspection and suggestions on (the default) or off.
    pub introspection: bool,
    /// Longest an HTTP request may take (504 after); PostgreSQL statements
    /// are cut off a little before.
    pub request_timeout: std::time::Duration,
    /// Longest a client may take to send a request's headers, and how long
    /// an idle keep-alive connection is kept.
    pub header_read_timeout: std::time::Duration,
    /// Each API key's request budget on this instance.
    pub rate_limit: crate::domain::rate_limit::Budget,
    /// Browser origins allowed to call the API (CORS) and open WebSockets.
    pub cors_origins: Vec<String>,
    /// How much a search reads in each step (tests make them small).
    pub search_steps: crate::service::search::SearchSteps,
    /// Hosts webhook endpoints may use outside the public-HTTPS rule.
    pub webhook_allow_hosts: Vec<String>,
    /// How long finished webhook deliveries are kept.
    pub webhook_retention: chrono::TimeDelta,
    /// Certificate authorities trusted for webhook targets besides the
    /// Mozilla roots.
    pub webhook_ca_file: Option<std::path::PathBuf>,
    /// Multiplies every wait of the webhook retry schedule (1 normally).
    pub webhook_retry_scale: f64,
    /// How often the retention periods are applied.
    pub retention_every: std::time::Duration,
    /// The origin people reach this server at, for absolute link URLs.
    pub public_url: Option<String>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            database_url,
            db_max_connections,
            listen,
            link_secrets,
            socket_init_timeout,
            socket_send_timeout,
            introspection,
            request_timeout,
            header_read_timeout,
            rate_limit,
            cors_origins,
            search_steps,
            webhook_allow_hosts,
            webhook_retention,
            webhook_ca_file,
            webhook_retry_scale,
            retention_every,
            public_url,
        } = self;
        f.debug_struct("ServerConfig")
            .field("database_url", &redacted_url(database_url))
            .field("db_max_connections", db_max_connections)
            .field("listen", listen)
            .field("link_secrets", &redacted_each(link_secrets))
            .field("socket_init_timeout", socket_init_timeout)
            .field("socket_send_timeout", socket_send_timeout)
            .field("introspection", introspection)
            .field("request_timeout", request_timeout)
            .field("header_read_timeout", header_read_timeout)
            .field("rate_limit", rate_limit)
            .field("cors_origins", cors_origins)
            .field("search_steps", search_steps)
            .field("webhook_allow_hosts", webhook_allow_hosts)
            .field("webhook_retention", webhook_retention)
            .field("webhook_ca_file", webhook_ca_file)
            .field("webhook_retry_scale", webhook_retry_scale)
            .field("retention_every", retention_every)
            .field("public_url", public_url)
            .finish()
    }
}

impl ServerConfig {
    /// How long a WebSocket client may take to send `connection_init`.
    pub const DEFAULT_SOCKET_INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    /// How long a WebSocket client may take to accept a message.
    pub const DEFAULT_SOCKET_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    /// How long a client may take to send a request's headers.
    pub const DEFAULT_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "hunter2-db-password";
    const LINK_SECRET: &str = "link-secret-0123456789-0123456789-0123456789";

    #[test]
    fn a_server_config_debugs_without_its_secrets() {
        let config = ServerConfig {
            database_url: format!("postgres://app:{PASSWORD}@db.example/convtrack"),
            db_max_connections: 16,
            listen: "127.0.0.1:8000".to_owned(),
            link_secrets: vec![LINK_SECRET.to_owned(), LINK_SECRET.to_uppercase()],
            socket_init_timeout: ServerConfig::DEFAULT_SOCKET_INIT_TIMEOUT,
            socket_send_timeout: ServerConfig::DEFAULT_SOCKET_SEND_TIMEOUT,
            introspection: true,
            request_timeout: std::time::Duration::from_secs(30),
            header_read_timeout: ServerConfig::DEFAULT_HEADER_READ_TIMEOUT,
            rate_limit: crate::domain::rate_limit::Budget {
                capacity: 10.0,
                per_second: 1.0,
            },
            cors_origins: vec!["https://admin.example.com".to_owned()],
            search_steps: Default::default(),
            webhook_allow_hosts: Vec::new(),
            webhook_retention: chrono::TimeDelta::days(30),
            webhook_ca_file: None,
            webhook_retry_scale: 1.0,
            retention_every: std::time::Duration::from_secs(60),
            public_url: None,
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains(PASSWORD), "{debug}");
        assert!(!debug.to_lowercase().contains(LINK_SECRET), "{debug}");
        assert!(
            debug.contains("postgres://app:***@db.example/convtrack"),
            "{debug}"
        );
        assert!(debug.contains("[[redacted], [redacted]]"), "{debug}");
        assert!(debug.contains("127.0.0.1:8000"), "{debug}");
        assert!(debug.contains("https://admin.example.com"), "{debug}");
    }
}
