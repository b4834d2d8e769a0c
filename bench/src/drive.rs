//! The load generator every target shares: a fixed number of workers, each
//! sending its next request as soon as the previous one answered, until a
//! deadline; latencies go into an HDR histogram.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Builds request `n` of worker `worker`.
pub type MakeRequest = Arc<dyn Fn(usize, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Requests sent, warm-up included (what the server saw).
    pub sent: u64,
    /// Requests measured (after the warm-up).
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Untimed load before each measurement: connections open, caches and
/// (for PostGraphile) the JIT warm up.
pub const WARMUP: Duration = Duration::from_secs(2);

/// Runs `concurrency` workers for [`WARMUP`] untimed, then for `duration`
/// measured. A request fails on a transport error, a non-2xx status or a
/// body carrying a GraphQL `errors` member.
pub async fn drive(concurrency: usize, duration: Duration, make: MakeRequest) -> Measured {
    let warm = Instant::now() + WARMUP;
    let started = warm;
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            // 1 µs to 60 s at three significant digits.
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut errors = 0u64;
            let mut first_error = None;
            let mut n = 0usize;
            while Instant::now() < warm {
                let _ = send(make(worker, n)).await;
                n += 1;
            }
            while Instant::now() < deadline {
                let at = Instant::now();
                let outcome = send(make(worker, n)).await;
                histogram.saturating_record(at.elapsed().as_micros() as u64);
                if let Err(e) = outcome {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                n += 1;
            }
            (histogram, errors, first_error, n as u64)
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut errors = 0;
    let mut first_error = None;
    let mut sent = 0;
    for worker in workers {
        match worker.await {
            Ok((h, e, first, n)) => {
                histogram.add(&h).expect("same bounds");
                sent += n;
                errors += e;
                if first_error.is_none() {
                    first_error = first;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("worker failed: {e}"));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Measured {
        sent,
        requests: histogram.len(),
        errors,
        first_error,
        per_second: histogram.len() as f64 / elapsed,
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    // A successful GraphQL response of ours or a peer's never has this
    // member; searching the bytes keeps the generator's own cost low.
    if body.windows(9).any(|w| w == b"\"errors\":") {
        return Err(String::from_utf8_lossy(&body).chars().take(300).collect());
    }
    Ok(())
}
