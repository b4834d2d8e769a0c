//! `bench faults kill`: `kill -9` the server again and again while writers
//! record; start it again each time; the writers retry what was not
//! acknowledged. Nothing acknowledged may be lost, nothing doubled, the
//! server must be ready again within 5 s, and a SQLite file must pass
//! `PRAGMA integrity_check`.

use std::sync::Arc;
use std::time::Duration;

use super::cli::{Place, seconds};
use super::findings::{Findings, settle_with_subscriber};
use super::instance::Instance;
use super::ledger::{Follower, Ledger, Tenant, WriterSetup, Writers};
use super::scratch::{Scratch, sqlite_integrity};

#[derive(clap::Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub place: Place,
    #[arg(long, default_value_t = 5)]
    pub kills: usize,
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Seconds of load between two kills.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub interval: Duration,
}

/// The longest a restarted server may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(5);

pub async fn run(args: KillArgs) -> Result<(), String> {
    Scratch::around(args.place.database, &args.place.postgres, async |scratch| {
        scenario(&args, scratch).await
    })
    .await
}

async fn scenario(args: &KillArgs, scratch: &Scratch) -> Result<(), String> {
    let name = format!("kill -9 ({:?})", args.place.database).to_lowercase();
    println!(
        "{name}: {} kills, {} writers, {:?} of load between kills",
        args.kills, args.writers, args.interval
    );
    let bin = &args.place.server_bin;
    let mut server = Instance::start(bin, &scratch.url).await?;
    let tenant = Tenant::create(bin, &scratch.url, &server.base(), args.writers).await?;
    let ledger = Arc::new(Ledger::temporary("kill")?);
    let follower = Follower::start(
        vec![server.socket()],
        0,
        tenant.api_key.clone(),
        tenant.start.clone(),
    );
    let writers = Writers::start(
        WriterSetup::visiting(vec![server.base()], &tenant, "kill"),
        args.writers,
        ledger.clone(),
    );

    let mut findings = Findings::default();
    let mut before = 0;
    // Vary the moment so kills land in different places of a request (the
    // same moments every run).
    let mut rng = crate::rng::Rng::new(8);
    for kill in 1..=args.kills {
        let jitter = Duration::from_millis(rng.below(400));
        tokio::time::sleep(args.interval + jitter).await;
        let acked = writers.tally.acked();
        findings.check(
            acked > before,
            format!("no recording was acknowledged before kill {kill}: not under load"),
        );
        server.kill9();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ready = server.restart().await?;
        println!(
            "  kill {kill}: {} acknowledged before it; ready again in {:.2} s",
            acked - before,
            ready.as_secs_f64()
        );
        findings.check(
            ready <= READY_WITHIN,
            format!(
                "after kill {kill} the server took {ready:?} to be ready (limit {READY_WITHIN:?})"
            ),
        );
        before = acked;
    }
    tokio::time::sleep(args.interval).await;
    let tally = writers.stop().await;
    println!("  writers: {}", tally.summary());
    settle_with_subscriber(
        &mut findings,
        follower,
        ledger.path(),
        &scratch.url,
        &server.base(),
        &tenant,
        &[&tally],
    )
    .await?;
    server.kill9();
    if let Some(file) = scratch.sqlite_file() {
        let integrity = sqlite_integrity(&scratch.url).await?;
        println!(
            "  PRAGMA integrity_check on {}: {integrity}",
            file.display()
        );
        findings.check(integrity == "ok", format!("integrity_check: {integrity}"));
    }
    findings.verdict(&name)
}
