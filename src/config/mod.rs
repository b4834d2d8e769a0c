//! Command line and environment. Every flag has an environment twin.

mod server;

pub use server::ServerConfig;

use std::fmt;

use clap::{Parser, Subcommand};

use crate::domain::redact::{redacted_each, redacted_url};
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
    #[arg(long, env = "DATABASE_URL", global = true, default_value = DEFAULT_DATABASE_URL)]
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
            ..
        } = self
        else {
            return Ok(SettingsChange::default());
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

#[derive(Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONVTRACK_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: String,

    /// Secrets of the keys that seal link tokens, comma-separated, each at
    /// least 32 bytes: the first seals, all open (drop one to stop trusting
    /// its tokens). Without it the keys live in the database (`link-keys`).
    #[arg(
        long = "link-secret",
        env = "CONVTRACK_LINK_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub link_secrets: Vec<String>,

    /// A file holding the link secrets, one per line (the first seals):
    /// unlike `--link-secret`, they do not show in `ps` or the environment.
    #[arg(
        long = "link-secret-file",
        env = "CONVTRACK_LINK_SECRET_FILE",
        value_name = "PATH",
        conflicts_with = "link_secrets"
    )]
    pub link_secret_file: Option<std::path::PathBuf>,

    /// Where the first start on an empty database writes the ADMIN key it
    /// creates (a new file, readable by its owner only) instead of printing
    /// it: for containers, whose output ends up in logs.
    #[arg(long, env = "CONVTRACK_FIRST_ADMIN_KEY_FILE", value_name = "PATH")]
    pub first_admin_key_file: Option<std::path::PathBuf>,

    /// Turns off introspection and "Did you mean" suggestions (on by
    /// default: GraphiQL needs them).
    #[arg(long, env = "CONVTRACK_DISABLE_INTROSPECTION")]
    pub disable_introspection: bool,

    /// Longest an HTTP request may take, in seconds, before it is answered
    /// 504; PostgreSQL statements are cut off a little before.
    #[arg(long, env = "CONVTRACK_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Longest a client may take to send a request's headers, in seconds;
    /// also how long an idle keep-alive connection stays open.
    #[arg(long, env = "CONVTRACK_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Each API key's request budget: how much query complexity it may
    /// spend at once (a field costs 1, a connection `first` times its
    /// selection) ...
    #[arg(long, env = "CONVTRACK_RATE_LIMIT_BURST", default_value_t = 2_000_000)]
    pub rate_limit_burst: u64,

    /// ... and how fast the budget refills, per second. Per instance.
    #[arg(
        long,
        env = "CONVTRACK_RATE_LIMIT_PER_SECOND",
        default_value_t = 400_000
    )]
    pub rate_limit_per_second: u64,

    /// Browser origins allowed to call the API and open WebSockets,
    /// comma-separated (e.g. `https://admin.example.com`). None by default:
    /// only same-origin pages and server-side clients.
    #[arg(long, env = "CONVTRACK_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
}

impl ServeArgs {
    /// The link secrets: `--link-secret`'s, or those in the file
    /// `--link-secret-file` names (one per line; blank lines skipped).
    pub fn link_secrets(&self) -> Result<Vec<String>, String> {
        let Some(path) = &self.link_secret_file else {
            return Ok(self.link_secrets.clone());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --link-secret-file {}: {e}", path.display()))?;
        let secrets: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        if secrets.is_empty() {
            return Err(format!(
                "--link-secret-file {} holds no secret",
                path.display()
            ));
        }
        Ok(secrets)
    }
}

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            listen,
            link_secrets,
            link_secret_file,
            first_admin_key_file,
            disable_introspection,
            request_timeout_secs,
            header_read_timeout_secs,
            rate_limit_burst,
            rate_limit_per_second,
            cors_origins,
        } = self;
        f.debug_struct("ServeArgs")
            .field("listen", listen)
            .field("link_secrets", &redacted_each(link_secrets))
            .field("link_secret_file", link_secret_file)
            .field("first_admin_key_file", first_admin_key_file)
            .field("disable_introspection", disable_introspection)
            .field("request_timeout_secs", request_timeout_secs)
            .field("header_read_timeout_secs", header_read_timeout_secs)
            .field("rate_limit_burst", rate_limit_burst)
            .field("rate_limit_per_second", rate_limit_per_second)
            .field("cors_origins", cors_origins)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; creates the tenant if it is new. The key is printed
    /// alone on the last line of standard output, once.
    Create {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// ADMIN, AGENT, CHECKOUT or INTEGRATOR.
        #[arg(long, value_parser = parse_role)]
        role: Role,
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

/// Checks an allowed origin: `scheme://host[:port]`, nothing else (no `*`:
/// the allowlist is the point).
pub fn parse_origin(origin: &str) -> Result<String, String> {
    let origin = origin.trim().trim_end_matches('/');
    let refuse = || format!("{origin:?} is not an origin like https://admin.example.com");
    let url = url::Url::parse(origin).map_err(|_| refuse())?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && !origin.ends_with(':');
    if bare && url.origin().ascii_serialization() == origin.to_ascii_lowercase() {
        Ok(url.origin().ascii_serialization())
    } else {
        Err(refuse())
    }
}

#[cfg(test)]
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

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(
            parse_origin("https://admin.example.com"),
            Ok("https://admin.example.com".into())
        );
        assert_eq!(
            parse_origin("http://localhost:5173/"),
            Ok("http://localhost:5173".into())
        );
        for bad in [
            "*",
            "admin.example.com",
            "https://admin.example.com/path",
            "ftp://x.example",
            "https://",
            "https://a.example?x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
