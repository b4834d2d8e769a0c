//! Token buckets: per API key, charged with each request's cost (its
//! GraphQL complexity, so aliases and batching cannot dodge it); also per
//! link and visitor, so a link's follows count once a minute. Time comes
//! from the caller, so tests move it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use super::locked;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Budget settings: a full bucket holds `capacity` units and refills at
/// `per_second` units a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub capacity: f64,
    pub per_second: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: f64,
    at: DateTime<Utc>,
}

impl Bucket {
    /// The bucket's units at `now`, refilled since it was last charged.
    fn units_at(&self, budget: Budget, now: DateTime<Utc>) -> f64 {
        let elapsed = (now - self.at)
            .num_microseconds()
            .unwrap_or(i64::MAX)
            .max(0) as f64
            / 1e6;
        (self.units + elapsed * budget.per_second).min(budget.capacity)
    }
}

/// Fewest buckets before full ones are dropped.
const PRUNE_FLOOR: usize = 4096;

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
    /// Full buckets are dropped (a missing bucket is a full one) when the
    /// map grows past this; it then doubles what is left, so pruning costs
    /// O(1) per charge on average.
    prune_at: usize,
}

/// The buckets of one server instance, one per key.
#[derive(Debug)]
pub struct RateLimiter<K = Uuid> {
    budget: Budget,
    buckets: Mutex<Buckets<K>>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// Whether `key` could pay `cost` now, charging nothing: for work that
    /// is charged only when it turns out to be wasted. `Err(seconds)` as
    /// for [`Self::charge`].
    pub fn affords(&self, key: &K, cost: f64, now: DateTime<Utc>) -> Result<(), u64> {
        let budget = self.budget;
        let units = locked(&self.buckets)
            .map
            .get(key)
            .map_or(budget.capacity, |b| b.units_at(budget, now));
        let cost = cost.min(budget.capacity);
        if cost <= units {
            Ok(())
        } else {
            Err(wait_seconds(budget, cost - units))
        }
    }

    /// Charges `cost` to `key`. `Err(seconds)` when the bucket cannot pay:
    /// nothing is charged, and the request may be retried after that long.
    pub fn charge(&self, key: K, cost: f64, now: DateTime<Utc>) -> Result<(), u64> {
        let budget = self.budget;
        // A request never costs more than a full bucket, so it can always
        // run after waiting.
        let cost = cost.min(budget.capacity);
        let mut buckets = locked(&self.buckets);
        if buckets.map.len() >= buckets.prune_at {
            buckets
                .map
                .retain(|_, b| b.units_at(budget, now) < budget.capacity);
            buckets.prune_at = (buckets.map.len() * 2).max(PRUNE_FLOOR);
        }
        let bucket = buckets.map.entry(key).or_insert(Bucket {
            units: budget.capacity,
            at: now,
        });
        bucket.units = bucket.units_at(budget, now);
        bucket.at = now;
        if cost <= bucket.units {
            bucket.units -= cost;
            return Ok(());
        }
        Err(wait_seconds(budget, cost - bucket.units))
    }
}

/// Seconds until `missing` units have refilled.
fn wait_seconds(budget: Budget, missing: f64) -> u64 {
    let wait = if budget.per_second > 0.0 {
        (missing / budget.per_second).ceil().max(1.0)
    } else {
        3600.0
    };
    wait as u64
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new(Budget {
            capacity: 100.0,
            per_second: 10.0,
        })
    }

    #[test]
    fn a_bucket_pays_until_empty_then_refills() {
        let limiter = limiter();
        let key = Uuid::now_v7();
        let t0 = DateTime::from_timestamp(1_750_000_000, 0).expect("valid");
        assert_eq!(limiter.charge(key, 60.0, t0), Ok(()));
        assert_eq!(
            limiter.charge(key, 60.0, t0),
            Err(2),
            "40 left, 20 missing at 10/s"
        );
        assert_eq!(
            limiter.charge(key, 40.0, t0),
            Ok(()),
            "a refused request costs nothing"
        );
        assert_eq!(
            limiter.charge(key, 50.0, t0 + TimeDelta::seconds(5)),
            Ok(())
        );
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let limiter = limiter();
        let t0 = DateTime::from_timestamp(1_750_000_000, 0).expect("valid");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(limiter.charge(a, 100.0, t0), Ok(()));
        assert!(limiter.charge(a, 1.0, t0).is_err());
        assert_eq!(limiter.charge(b, 100.0, t0), Ok(()));
    }

    #[test]
    fn full_buckets_are_forgotten_so_memory_stays_bounded() {
        let limiter = RateLimiter::<u32>::new(Budget {
            capacity: 1.0,
            per_second: 1.0 / 60.0,
        });
        let t0 = DateTime::from_timestamp(1_750_000_000, 0).expect("valid");
        for i in 0..10_000 {
            assert_eq!(limiter.charge(i, 1.0, t0), Ok(()));
        }
        assert_eq!(limiter.charge(7, 1.0, t0), Err(60), "charged a minute ago");
        let later = t0 + TimeDelta::seconds(61);
        for i in 10_000..20_000 {
            assert_eq!(limiter.charge(i, 1.0, later), Ok(()));
        }
        let held = limiter.buckets.lock().expect("lock").map.len();
        assert!(held < 12_000, "{held} buckets held");
        assert_eq!(
            limiter.charge(7, 1.0, later),
            Ok(()),
            "a minute later it counts again"
        );
    }

    #[test]
    fn a_cost_above_capacity_waits_for_a_full_bucket() {
        let limiter = limiter();
        let t0 = DateTime::from_timestamp(1_750_000_000, 0).expect("valid");
        let key = Uuid::now_v7();
        assert_eq!(limiter.charge(key, 50.0, t0), Ok(()));
        assert_eq!(limiter.charge(key, 500.0, t0), Err(5));
    }

    #[test]
    fn affording_charges_nothing() {
        let limiter = limiter();
        let key = Uuid::now_v7();
        let now = Utc::now();
        for _ in 0..100 {
            assert!(limiter.affords(&key, 10.0, now).is_ok());
        }
        while limiter.charge(key, 10.0, now).is_ok() {}
        assert!(limiter.affords(&key, 10.0, now).is_err());
    }
}
