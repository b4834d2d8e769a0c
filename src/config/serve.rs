//! `convtrack serve`'s flags.

use std::fmt;

use crate::domain::redact::redacted_each;

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

    /// Hosts webhook endpoints may use although they are not public HTTPS
    /// hosts, comma-separated, as written in the URL (e.g. `127.0.0.1`,
    /// `hooks.internal`): for development and tests. None by default.
    #[arg(long, env = "CONVTRACK_WEBHOOK_ALLOW_HOSTS", value_delimiter = ',')]
    pub webhook_allow_hosts: Vec<String>,

    /// Days a finished webhook delivery stays in the delivery log.
    #[arg(long, env = "CONVTRACK_WEBHOOK_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub webhook_retention_days: u32,

    /// A PEM file of certificate authorities trusted for webhook targets
    /// besides the Mozilla roots (an internal CA).
    #[arg(long, env = "CONVTRACK_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<std::path::PathBuf>,

    /// Multiplies every wait of the webhook retry schedule, for drills
    /// (`0.001` makes a day of retries take under two minutes); 1 in
    /// production.
    #[arg(long, env = "CONVTRACK_WEBHOOK_RETRY_SCALE", default_value_t = 1.0, value_parser = retry_scale)]
    pub webhook_retry_scale: f64,

    /// Seconds between two looks for conversations past their tenant's
    /// `messageRetentionDays`.
    #[arg(long, env = "CONVTRACK_RETENTION_CHECK_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_check_secs: u64,

    /// The origin people reach this server at (e.g.
    /// `https://track.example.com`): `createCtaLink` answers
    /// `trackedUrl` on it. Unset: `trackedUrl` is null (never guessed from
    /// a request's `Host`).
    #[arg(long, env = "CONVTRACK_PUBLIC_URL", value_parser = parse_origin)]
    pub public_url: Option<String>,
}

/// A retry scale: above 0, at most 1.
fn retry_scale(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(scale) if scale > 0.0 && scale <= 1.0 => Ok(scale),
        _ => Err(format!("{value} is not a number above 0 and at most 1")),
    }
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
            webhook_allow_hosts,
            webhook_retention_days,
            webhook_ca_file,
            webhook_retry_scale,
            retention_check_secs,
            public_url,
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
            .field("webhook_allow_hosts", webhook_allow_hosts)
            .field("webhook_retention_days", webhook_retention_days)
            .field("webhook_ca_file", webhook_ca_file)
            .field("webhook_retry_scale", webhook_retry_scale)
            .field("retention_check_secs", retention_check_secs)
            .field("public_url", public_url)
            .finish()
    }
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
mod tests {
    use super::*;

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
