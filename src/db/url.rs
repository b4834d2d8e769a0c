//! What a database URL says about where it goes, for messages and warnings.

use super::sqlite_file;

/// The database a URL names, for messages: never its password or options.
pub fn describe(url: &str) -> String {
    if let Some(file) = sqlite_file(url) {
        return format!("SQLite database {}", file.display());
    }
    match url::Url::parse(url) {
        Ok(parsed) if parsed.scheme().starts_with("postgres") => format!(
            "PostgreSQL database {} at {}:{}",
            parsed.path().trim_start_matches('/'),
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(5432)
        ),
        _ => "database".to_owned(),
    }
}

/// The URL the driver is given. A PostgreSQL URL to this machine (loopback
/// or a socket) without an `sslmode` gets `sslmode=disable`: the driver's
/// default, `prefer`, would encrypt every byte over loopback (about a tenth
/// of a list request's CPU, measured) and protect nothing. Any stated mode,
/// and every other host, is left as written.
pub fn effective(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(parsed) = Postgres::parse(url) else {
        return url.into();
    };
    if parsed.mode().is_some() || !parsed.is_local() {
        return url.into();
    }
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}sslmode=disable").into()
}

/// A PostgreSQL URL's parts that decide where it goes and how.
struct Postgres(url::Url);

impl Postgres {
    fn parse(url: &str) -> Option<Self> {
        let parsed = url::Url::parse(url).ok()?;
        parsed
            .scheme()
            .starts_with("postgres")
            .then_some(Self(parsed))
    }

    /// A query parameter as the driver reads it: the last of a repeated
    /// one wins.
    fn param(&self, names: &[&str]) -> Option<String> {
        self.0
            .query_pairs()
            .filter(|(k, _)| names.contains(&k.as_ref()))
            .map(|(_, v)| v.into_owned())
            .last()
    }

    fn mode(&self) -> Option<String> {
        self.param(&["sslmode", "ssl-mode"])
    }

    fn host(&self) -> Option<String> {
        self.param(&["host"])
            .or_else(|| self.0.host_str().map(str::to_owned))
    }

    /// Loopback, `localhost` or a Unix socket.
    fn is_local(&self) -> bool {
        match self.host() {
            None => true,
            Some(host) => {
                host.starts_with('/')
                    || host == "localhost"
                    || host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

/// A warning for a PostgreSQL URL that reaches another machine and may
/// silently fall back to plaintext: no `sslmode`, or `prefer` or `allow`
/// (a stated `disable` is the operator's choice, and `require` and the
/// `verify-*` modes refuse plaintext).
pub fn plaintext_risk(url: &str) -> Option<String> {
    let parsed = Postgres::parse(url)?;
    if !matches!(parsed.mode().as_deref(), None | Some("prefer" | "allow")) || parsed.is_local() {
        return None;
    }
    Some(format!(
        "the PostgreSQL connection to {} does not require TLS and may fall back to plaintext; add sslmode=verify-full&sslrootcert=CA_FILE (or sslmode=require) to DATABASE_URL, or sslmode=disable on a network you trust",
        parsed.host().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_described_without_its_credentials() {
        assert_eq!(
            describe("postgres://app:secret@db.example:6432/convtrack?sslmode=require"),
            "PostgreSQL database convtrack at db.example:6432"
        );
        assert_eq!(
            describe("sqlite://convtrack.db?mode=rwc"),
            "SQLite database convtrack.db"
        );
    }

    #[test]
    fn postgresql_on_this_machine_without_a_mode_goes_without_tls() {
        assert_eq!(
            effective("postgres://app@127.0.0.1:5432/db"),
            "postgres://app@127.0.0.1:5432/db?sslmode=disable"
        );
        assert_eq!(
            effective("postgres://app@localhost/db?application_name=x"),
            "postgres://app@localhost/db?application_name=x&sslmode=disable"
        );
        for unchanged in [
            "sqlite://convtrack.db?mode=rwc",
            "postgres://app@127.0.0.1/db?sslmode=require",
            "postgres://app@db.example/db",
            "postgres://app@localhost/db?host=db.remote",
        ] {
            assert_eq!(effective(unchanged), unchanged);
        }
    }

    #[test]
    fn only_remote_postgresql_that_may_fall_back_to_plaintext_is_a_risk() {
        for safe in [
            "sqlite://convtrack.db?mode=rwc",
            "postgres://app@127.0.0.1:5432/db",
            "postgres://app@localhost/db",
            "postgres://app@[::1]/db",
            "postgres://app@db.example/db?sslmode=require",
            "postgres://app@db.example/db?sslmode=verify-full&sslrootcert=/ca.crt",
            "postgresql://app@db.example/db?application_name=x&sslmode=verify-ca",
            "postgres://app@db.example/db?ssl-mode=require",
            "postgres://app@db.example/db?sslmode=disable",
            "postgres://app@ignored/db?host=/var/run/postgresql",
            "postgres://app@db.example/db?sslmode=prefer&sslmode=require",
        ] {
            assert_eq!(plaintext_risk(safe), None, "{safe}");
        }
        for risky in [
            "postgres://app:pw@db.example/db",
            "postgres://app@10.0.0.5/db?sslmode=prefer",
            "postgresql://app@db.example/db?sslmode=allow",
            "postgres://app@localhost/db?host=db.remote",
            "postgres://app@db.example/db?sslmode=require&sslmode=prefer",
        ] {
            let warning = plaintext_risk(risky).expect(risky);
            assert!(warning.contains("sslmode=verify-full"), "{warning}");
            assert!(!warning.contains("pw"), "no password in {warning}");
        }
    }
}
