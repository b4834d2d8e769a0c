//! Secrets as `{:?}` shows them: `{:?}` output ends up in logs, panics and
//! test failures, so whatever holds a secret prints one of these instead.

use std::fmt;

/// Stands in for a secret in `{:?}` output.
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One `[redacted]` per secret: how many are set helps whoever debugs a
/// deployment, what they are must not show.
pub fn redacted_each(secrets: &[String]) -> Vec<Redacted> {
    secrets.iter().map(|_| Redacted).collect()
}

/// A database URL with its password shown as `***`
/// (`postgres://app:***@db/convtrack`). One that does not parse, or whose
/// `user:password@` the parser would take for a scheme and a path, is
/// hidden whole: where its password is cannot be told.
pub fn redacted_url(raw: &str) -> String {
    const HIDDEN: &str = "***";
    let url = url::Url::parse(raw)
        .ok()
        .filter(|url| !(url.cannot_be_a_base() && raw.contains('@')));
    let Some(mut url) = url else {
        return format!("{Redacted:?}");
    };
    let mut changed = false;
    if url.password().is_some() {
        // Refused only by URLs that cannot have a password in the first place.
        let _ = url.set_password(Some(HIDDEN));
        changed = true;
    }
    // PostgreSQL also takes the password as a query parameter.
    if url.query_pairs().any(|(name, _)| name == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == "password" {
                    HIDDEN.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    // Unchanged URLs are shown as given, not as the parser normalises them.
    if changed { url.into() } else { raw.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "hunter2-db-password";
    const DEFAULT_DATABASE_URL: &str = "sqlite://convtrack.db?mode=rwc";

    #[test]
    fn database_urls_lose_their_password_only() {
        assert_eq!(
            redacted_url(&format!(
                "postgres://app:{PASSWORD}@db.example:5432/convtrack"
            )),
            "postgres://app:***@db.example:5432/convtrack"
        );
        let in_query = redacted_url(&format!(
            "postgres://app@db.example/convtrack?sslmode=require&password={PASSWORD}"
        ));
        assert!(!in_query.contains(PASSWORD), "{in_query}");
        assert!(in_query.contains("sslmode=require"), "{in_query}");
        for unchanged in [
            DEFAULT_DATABASE_URL,
            "sqlite::memory:",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ] {
            assert_eq!(redacted_url(unchanged), unchanged);
        }
        for broken in [
            format!("app:{PASSWORD}@db.example/convtrack"),
            format!("postgres://app:{PASSWORD}@[db.example/convtrack"),
        ] {
            assert_eq!(redacted_url(&broken), "[redacted]");
        }
    }
}
