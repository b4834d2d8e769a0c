//! Command line and environment. Every flag has an environment twin.

mod serve;
mod server;

pub use serve::{ServeArgs, parse_origin};
pub use server::ServerConfig;

use std::fmt;

use clap::{Parser, Subcommand};

use crate::domain::redact::redacted_url;
use uuid::Uuid;

use crate::domain::InvalidInput;
use crate::domain::channel::Channel;
use crate::domain::conversion::RecordType;
use crate::domain::role::Role;
use crate::domain::settings::{ChannelOverride, SettingsChange};
use crate::telemetry::LogFormat;

/// The SQLite file `convtrack` uses when no database is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://convtrack.db?mode=rwc";

/// convtrack: which AI conversations drove which business outcomes, over GraphQL.
#[derive(Parser)]
#[command(name = "convtrack", version, about)]
pub struct Cli {
    /// Database: `sqlite://FILE?mode=rwc` (embedded; one server instance) or
    /// `postgres://USER@HOST:PORT/DB` (any number of instances).
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Most connections the database pool opens.
    #[arg(
        long,
        env = "CONVTRACK_DB_MAX_CONNECTIONS",
        global = true,
        default_value_t = 16
    )]
    pub db_max_connections: u32,

    /// Log lines as `text` or `json` (one object per line), on standard error.
    #[arg(
        long,
        env = "CONVTRACK_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

// `{:?}` of the command line or of a server's configuration ends up in logs,
// panics and test failures: the database password and the link secrets are
// hidden there. The impls destructure `self` so that a new field does not
// compile until someone decides whether it is shown.
impl fmt::Debug for Cli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            database_url,
            db_max_connections,
            log_format,
            command,
        } = self;
        f.debug_struct("Cli")
            .field("database_url", &redacted_url(database_url))
            .field("db_max_connections", db_max_connections)
            .field("log_format", log_format)
            .field("command", command)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server (migrations are applied first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL); `schema.graphql` is this output.
    Schema,
    /// Exit 0 when the server listening at `--listen` is ready (its
    /// `/readyz` answers 200), 1 otherwise: a container health check that
    /// needs no shell or curl.
    Healthcheck {
        /// The address the server listens on (`0.0.0.0` is asked on 127.0.0.1).
        #[arg(long, env = "CONVTRACK_LISTEN", default_value = "127.0.0.1:8000")]
        listen: String,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Show or change a tenant's settings.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Manage the keys that seal link tokens (when no --link-secret is set).
    LinkKeys {
        #[command(subcommand)]
        command: LinkKeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkKeysCommand {
    /// List the stored keys (never their secrets).
    List,
    /// Create a new link key; the older ones keep opening their tokens.
    Rotate,
    /// Remove a key: every token it sealed stops working, on every server.
    Remove {
        /// The key id, as `link-keys list` shows it (it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant (a new one: an existing name is refused).
    Create {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
    },
    /// Print a tenant's settings as JSON.
    Show {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
    },
    /// Change a tenant's settings; what is not named stays as it is.
    Set {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// Days after a session starts during which its links attribute (1 to 365).
        #[arg(long)]
        attribution_window_days: Option<u32>,
        /// Where a record type's records live, e.g.
        /// `VISITOR=https://admin.example.com/visitors/{id}`. Repeatable.
        #[arg(long = "record-url", value_name = "TYPE=TEMPLATE")]
        record_urls: Vec<String>,
        /// Removes a record type's URL template. Repeatable.
        #[arg(long = "clear-record-url", value_name = "TYPE")]
        clear_record_urls: Vec<String>,
        /// A channel's inactivity timeout, e.g. `CHAT=3600`. Repeatable.
        #[arg(long = "inactivity-timeout", value_name = "CHANNEL=SECONDS")]
        inactivity_timeouts: Vec<String>,
        /// A channel's confirmation window, e.g. `EMAIL=14400`. Repeatable.
        #[arg(long = "confirmation-window", value_name = "CHANNEL=SECONDS")]
        confirmation_windows: Vec<String>,
        /// Replaces the hosts link targets must be on: comma-separated
        /// `book.example.com` or `*.example.com`; an empty value allows any
        /// public host again.
        #[arg(long = "link-target-hosts", value_name = "HOSTS")]
        link_target_hosts: Option<String>,
        /// Erase conversations this many days after their last activity
        /// (1 to 3650), or `none` to keep them.
        #[arg(long = "message-retention-days", value_name = "DAYS|none")]
        message_retention_days: Option<String>,
    },
}

impl TenantsCommand {
    /// The settings change a `set` asks for.
    pub fn change(&self) -> Result<SettingsChange, String> {
        let TenantsCommand::Set {
            attribution_window_days,
            record_urls,
            clear_record_urls,
            inactivity_timeouts,
            confirmation_windows,
            link_target_hosts,
            message_retention_days,
            ..
        } = self
        else {
            return Ok(SettingsChange::default());
        };
        let message_retention_days = match message_retention_days.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(days) => Some(Some(days.parse::<i64>().map_err(|_| {
                format!("--message-retention-days takes a number of days or none, not {days:?}")
            })?)),
        };
        let mut change = SettingsChange {
            attribution_window_days: *attribution_window_days,
            link_target_hosts: link_target_hosts.as_ref().map(|hosts| {
                hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            message_retention_days,
            ..Default::default()
        };
        for pair in record_urls {
            let (record_type, template) = split_pair(pair, "TYPE=TEMPLATE")?;
            change.record_url_templates.push((
                parse_upper::<RecordType>(record_type)?,
                Some(template.to_owned()),
            ));
        }
        for record_type in clear_record_urls {
            change
                .record_url_templates
                .push((parse_upper::<RecordType>(record_type)?, None));
        }
        for (pairs, is_inactivity) in [(inactivity_timeouts, true), (confirmation_windows, false)] {
            for pair in pairs {
                let (channel, seconds) = split_pair(pair, "CHANNEL=SECONDS")?;
                let seconds: i64 = seconds
                    .parse()
                    .map_err(|_| format!("{seconds:?} is not a number of seconds"))?;
                let mut o = ChannelOverride::default();
                if is_inactivity {
                    o.inactivity_timeout_seconds = Some(seconds);
                } else {
                    o.confirmation_window_seconds = Some(seconds);
                }
                change.channels.push((parse_upper::<Channel>(channel)?, o));
            }
        }
        Ok(change)
    }
}

fn split_pair<'a>(pair: &'a str, shape: &str) -> Result<(&'a str, &'a str), String> {
    pair.split_once('=')
        .ok_or_else(|| format!("{pair:?} is not {shape}"))
}

fn parse_upper<T: std::str::FromStr<Err = InvalidInput>>(value: &str) -> Result<T, String> {
    value
        .trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|e: InvalidInput| e.0)
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a tenant. The key is printed alone on the last
    /// line of standard output, once.
    Create {
        /// Tenant name (an existing tenant, unless --create-tenant).
        #[arg(long)]
        tenant: String,
        /// ADMIN, AGENT, CHECKOUT or INTEGRATOR.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Create the tenant if there is none of that name.
        #[arg(long)]
        create_tenant: bool,
    },
    /// List every key (never the secret).
    List,
    /// Revoke a key by id; refused at once by every server sharing the database.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: Uuid,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    value.parse().map_err(|e: InvalidInput| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "hunter2-db-password";
    const LINK_SECRET: &str = "link-secret-0123456789-0123456789-0123456789";

    #[test]
    fn the_command_line_debugs_without_its_secrets() {
        let database_url = format!("postgres://app:{PASSWORD}@db.example/convtrack");
        let cli = Cli::try_parse_from([
            "convtrack",
            "--database-url",
            &database_url,
            "serve",
            "--link-secret",
            LINK_SECRET,
            "--listen",
            "127.0.0.1:9000",
        ])
        .expect("valid command line");
        let debug = format!("{cli:?}");
        assert!(!debug.contains(PASSWORD), "{debug}");
        assert!(!debug.contains(LINK_SECRET), "{debug}");
        assert!(debug.contains("[[redacted]]"), "{debug}");
        assert!(debug.contains("127.0.0.1:9000"), "{debug}");
    }
}
