//! The flags the fault scenarios share: where a scenario's scratch
//! database lives, and durations given in seconds.

use std::path::PathBuf;
use std::time::Duration;

/// Which database a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a fault scenario's scratch database lives.
#[derive(clap::Args)]
pub struct Place {
    /// sqlite: a temporary file; postgres: a new database on --postgres.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub database: Backend,
    /// A PostgreSQL server (no database name) for scratch databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
}

/// A flag's value in seconds ("1.5"); a negative one waits no time at all.
pub fn seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value
        .parse()
        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    Duration::try_from_secs_f64(seconds.max(0.0)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_fractions_and_clamp_at_zero() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds("-3"), Ok(Duration::ZERO));
        assert_eq!(seconds("five"), Err("invalid float literal".to_owned()));
        assert!(seconds("inf").is_err());
    }
}
