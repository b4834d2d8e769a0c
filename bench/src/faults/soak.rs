//! `bench faults soak`: a long run at half of the measured maximum
//! recording rate, with a live subscriber and list reads on the side. After
//! the warm-up the server's resident memory may not grow by 10% or more,
//! its open file descriptors stay flat, and its connection pool is never
//! exhausted: no request is refused for want of a connection (the pool's
//! in-use gauge is reported, not judged: sqlx counts a connection in use
//! while it pings it on release).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::cli::{Place, seconds};
use super::findings::{Findings, settle_with_subscriber};
use super::instance::Instance;
use super::ledger::{Follower, Ledger, Tenant, WriterSetup, Writers};
use super::scratch::Scratch;

/// How many more descriptors the second half may hold open at its lowest:
/// one more SQLite pool connection (database and WAL file) opened late is
/// bounded by the pool, not a leak; a leak grows by far more in minutes.
const FD_SLACK: usize = 4;

#[derive(clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub place: Place,
    /// Seconds; the warm-up is a tenth of it, at least 30 s and at most
    /// 60 s (half of a run shorter than a minute).
    #[arg(long = "seconds", value_name = "SECONDS", default_value = "600", value_parser = seconds)]
    pub duration: Duration,
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// The most the server's RSS may grow after the warm-up, in per cent.
    #[arg(long, default_value_t = 10.0)]
    pub rss_growth_limit: f64,
}

/// One look at the server.
struct Sample {
    at: Duration,
    rss_kb: u64,
    fds: usize,
    pool_in_use: f64,
    pool_max: f64,
}

pub async fn run(args: SoakArgs) -> Result<(), String> {
    Scratch::around(args.place.database, &args.place.postgres, async |scratch| {
        scenario(&args, scratch).await
    })
    .await
}

async fn scenario(args: &SoakArgs, scratch: &Scratch) -> Result<(), String> {
    let name = format!("soak ({:?})", args.place.database).to_lowercase();
    let bin = &args.place.server_bin;
    let mut server = Instance::start(bin, &scratch.url).await?;
    let tenant = Tenant::create(bin, &scratch.url, &server.base(), args.writers).await?;
    let ledger = Arc::new(Ledger::temporary("soak")?);
    let setup = WriterSetup {
        bases: Arc::new(vec![server.base()]),
        api_key: tenant.api_key.clone(),
        sessions: tenant.sessions.clone(),
        run: "probe".into(),
        per_writer: None,
        pace: None,
        give_up_after: Duration::from_secs(60),
        // Real traffic: many conversations with a few outcomes each.
        visits: Some(3),
    };

    // The maximum: as fast as the writers can go, for a tenth of the run
    // (5 to 20 s).
    let probe = (args.duration / 10).clamp(Duration::from_secs(5), Duration::from_secs(20));
    let writers = Writers::start(setup.clone(), args.writers, ledger.clone());
    tokio::time::sleep(probe).await;
    let probed = writers.stop().await;
    let maximum = probed.acked() as f64 / probe.as_secs_f64();
    let rate = maximum / 2.0;
    println!(
        "{name}: maximum {maximum:.0} recordings/s with {} writers; soaking at {rate:.0}/s for {:?}",
        args.writers, args.duration
    );

    let follower = Follower::start(
        vec![server.socket()],
        0,
        tenant.api_key.clone(),
        tenant.start.clone(),
    );
    let writers = Writers::start(
        WriterSetup {
            run: "soak".into(),
            pace: Some(Duration::from_secs_f64(args.writers as f64 / rate.max(1.0))),
            ..setup
        },
        args.writers,
        ledger.clone(),
    );
    let reading = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn(read_lists(
        server.base(),
        tenant.api_key.clone(),
        reading.clone(),
    ));

    let started = Instant::now();
    // Caches fill during the warm-up: the live feed's buffer of recent
    // events, SQLite's page cache per connection, the allocator's arenas.
    let warm_up = (args.duration / 10)
        .clamp(Duration::from_secs(30), Duration::from_secs(60))
        .min(args.duration / 2);
    let every = (args.duration / 60).clamp(Duration::from_millis(500), Duration::from_secs(10));
    let mut samples = Vec::new();
    while started.elapsed() < args.duration {
        tokio::time::sleep(every).await;
        let (Some(rss_kb), Some(fds), Some((_, pool_in_use, pool_max))) =
            (server.rss_kb(), server.open_fds(), server.pool().await)
        else {
            return Err("the server stopped answering during the soak".into());
        };
        samples.push(Sample {
            at: started.elapsed(),
            rss_kb,
            fds,
            pool_in_use,
            pool_max,
        });
    }
    reading.store(false, Ordering::Relaxed);
    let reads = reader.await.map_err(|e| e.to_string())?;
    let tally = writers.stop().await;
    let achieved = (tally.acked()) as f64 / started.elapsed().as_secs_f64();
    println!(
        "  writers: {} ({achieved:.0}/s); {} list reads",
        tally.summary(),
        reads.0
    );

    let mut findings = Findings::default();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    let (Some(first), Some(last)) = (after.first(), after.last()) else {
        return Err("no sample after the warm-up; run longer".into());
    };
    let peak_rss = after.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let growth = (last.rss_kb as f64 - first.rss_kb as f64) / first.rss_kb as f64 * 100.0;
    // A leak raises the floor; a sample that happens to catch a reader's
    // socket being opened or a pool connection being replaced only raises
    // the peak. So the halves are compared by their lowest count.
    let early_fds = after[..after.len().div_ceil(2)]
        .iter()
        .map(|s| s.fds)
        .min()
        .unwrap_or(0);
    let late_fds = after[after.len() / 2..]
        .iter()
        .map(|s| s.fds)
        .min()
        .unwrap_or(0);
    let busiest = after.iter().map(|s| s.pool_in_use).fold(0.0, f64::max);
    let pool_max = first.pool_max;
    println!(
        "  after the {warm_up:?} warm-up: RSS {:.1} MB → {:.1} MB ({growth:+.1}%, peak {:.1} MB); open fds {} → {} (fewest in the first half {early_fds}, in the second {late_fds}); pool at most {busiest} of {pool_max} connections in use",
        first.rss_kb as f64 / 1024.0,
        last.rss_kb as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        first.fds,
        last.fds,
    );
    let step = samples.len().div_ceil(10).max(1);
    let timeline: Vec<String> = samples
        .iter()
        .step_by(step)
        .chain(samples.last())
        .map(|s| {
            format!(
                "{:.0}s {:.1} MB/{} fds/{} in use",
                s.at.as_secs_f64(),
                s.rss_kb as f64 / 1024.0,
                s.fds,
                s.pool_in_use
            )
        })
        .collect();
    println!("  timeline: {}", timeline.join(", "));
    findings.check(
        growth < args.rss_growth_limit,
        format!(
            "RSS grew {growth:.1}% after the warm-up (limit {}%)",
            args.rss_growth_limit
        ),
    );
    findings.check(
        late_fds <= early_fds + FD_SLACK,
        format!("open file descriptors grew: at least {early_fds} open throughout the first half, {late_fds} throughout the second (allowed: {FD_SLACK} more)"),
    );
    findings.check(
        tally.unavailable.load(Ordering::Relaxed) == 0 && reads.1 == 0,
        format!("{} recordings and {} reads were refused as retryable (pool exhausted or database busy)",
            tally.unavailable.load(Ordering::Relaxed), reads.1),
    );
    findings.check(
        achieved >= rate * 0.75,
        format!("only {achieved:.0}/s of the {rate:.0}/s asked for"),
    );

    settle_with_subscriber(
        &mut findings,
        follower,
        ledger.path(),
        &scratch.url,
        &server.base(),
        &tenant,
        &[&probed, &tally],
    )
    .await?;
    server.kill9();
    findings.verdict(&name)
}

/// The operator's list, five times a second, until `reading` turns false:
/// (reads answered, reads failed).
async fn read_lists(base: String, api_key: String, reading: Arc<AtomicBool>) -> (u64, u64) {
    let http = reqwest::Client::new();
    let (mut reads, mut refused) = (0, 0);
    while reading.load(Ordering::Relaxed) {
        match crate::load::post(
            &http,
            &format!("{base}/graphql"),
            &api_key,
            crate::load::LIST,
            json!({}),
        )
        .await
        {
            Ok(_) => reads += 1,
            Err(_) => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (reads, refused)
}
