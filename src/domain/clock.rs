//! Where "now" comes from. The server reads time only through [`Clock`], so
//! tests move time forward instead of sleeping.

use std::sync::{Arc, Mutex};

use super::locked;
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};

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

/// `t` as RFC 3339 text, exactly as chrono's `to_rfc3339` writes it (the
/// GraphQL `DateTime` scalar's form: fractions of 3, 6 or 9 digits as
/// needed, `+00:00`). Every listed row carries timestamps, and chrono's
/// general formatter cost five times this; years it cannot write in four
/// digits, and leap seconds, go to chrono.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    let (date, time) = (t.date_naive(), t.time());
    let nanos = time.nanosecond();
    let Ok(year) = u32::try_from(date.year()) else {
        return t.to_rfc3339();
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return t.to_rfc3339();
    }
    let mut out = String::with_capacity(32);
    let mut digits = |value: u32, width: u32, then: &str| {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
        }
        out.push_str(then);
    };
    digits(year, 4, "-");
    digits(date.month(), 2, "-");
    digits(date.day(), 2, "T");
    digits(time.hour(), 2, ":");
    digits(time.minute(), 2, ":");
    match (nanos, nanos % 1_000_000, nanos % 1_000) {
        (0, _, _) => digits(time.second(), 2, ""),
        (_, 0, _) => {
            digits(time.second(), 2, ".");
            digits(nanos / 1_000_000, 3, "");
        }
        (_, _, 0) => {
            digits(time.second(), 2, ".");
            digits(nanos / 1_000, 6, "");
        }
        _ => {
            digits(time.second(), 2, ".");
            digits(nanos, 9, "");
        }
    }
    out.push_str("+00:00");
    out
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

    #[test]
    fn rfc3339_text_is_chronos() {
        let mut samples = vec![
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::from_timestamp(0, 0).expect("epoch"),
            DateTime::from_timestamp(-62_167_219_200, 0).expect("year 0"),
            DateTime::from_timestamp(-62_167_219_201, 0).expect("year -1"),
            DateTime::from_timestamp(253_402_300_799, 999_999_999).expect("9999"),
            DateTime::from_timestamp(253_402_300_800, 0).expect("10000"),
            DateTime::from_timestamp(1_700_006_399, 1_500_000_000).expect("leap"),
        ];
        // Spread over the years, with every kind of fraction.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seconds = (x % 400_000_000_000) as i64 - 100_000_000_000;
            let nanos = match x % 4 {
                0 => 0,
                1 => (x >> 8) as u32 % 1_000 * 1_000_000,
                2 => (x >> 8) as u32 % 1_000_000 * 1_000,
                _ => (x >> 8) as u32 % 1_000_000_000,
            };
            samples.push(DateTime::from_timestamp(seconds, nanos).expect("in range"));
        }
        for t in samples {
            assert_eq!(rfc3339(t), t.to_rfc3339(), "{t:?}");
        }
    }
}
