//! Where "now" comes from. The server reads time only through [`Clock`], so
//! tests move time forward instead of sleeping.

use std::sync::{Arc, Mutex};

use super::locked;
use chrono::{DateTime, TimeDelta, Utc};

/// The source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, truncated to whole microseconds (what the database stores).
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now())
    }
}

/// A clock that moves only when told to; shared by clones.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(truncate_to_micros(start))),
        }
    }

    pub fn advance(&self, by: TimeDelta) {
        *locked(&self.now) += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *locked(&self.now) = truncate_to_micros(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *locked(&self.now)
    }
}

pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(t.timestamp_micros())
}

/// The stored form of a timestamp: microseconds since the Unix epoch, UTC.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Reads a stored timestamp. Values outside chrono's range (about ±262,000
/// years) cannot be written by this server; they clamp rather than panic.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let start = from_micros(1_700_000_000_000_000);
        let clock = ManualClock::starting_at(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        other.advance(TimeDelta::hours(2));
        assert_eq!(clock.now(), start + TimeDelta::hours(2));
    }

    #[test]
    fn micros_round_trip_and_truncation() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid");
        let stored = to_micros(t);
        assert_eq!(stored, 1_700_000_000_123_456);
        assert_eq!(from_micros(stored), truncate_to_micros(t));
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
