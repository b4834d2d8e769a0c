//! `bench faults cluster`: several instances on one PostgreSQL database,
//! live subscribers on each, writers spread over all of them; one instance
//! gets `kill -9` mid-run and stays down. Subscribers on the others must get
//! every event once; the killed one's subscribers reconnect to another
//! instance with their last cursor and miss nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::cli::{Backend, seconds};
use super::findings::Findings;
use super::instance::Instance;
use super::ledger::{Follower, Ledger, Tenant, WriterSetup, Writers, verify};
use super::scratch::Scratch;

#[derive(clap::Args)]
pub struct ClusterArgs {
    /// A PostgreSQL server (no database name) for the scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub instances: usize,
    /// Subscribers per instance.
    #[arg(long, default_value_t = 5)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 9)]
    pub writers: usize,
    /// Seconds of load before the kill, and after it.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub interval: Duration,
}

pub async fn run(args: ClusterArgs) -> Result<(), String> {
    if args.instances < 2 {
        return Err("--instances must be at least 2 (one is killed)".into());
    }
    Scratch::around(Backend::Postgres, &args.postgres, async |scratch| {
        scenario(&args, scratch).await
    })
    .await
}

async fn scenario(args: &ClusterArgs, scratch: &Scratch) -> Result<(), String> {
    println!(
        "cluster: {} instances on one PostgreSQL database, {} subscribers on each, {} writers",
        args.instances, args.subscribers, args.writers
    );
    let mut instances = Vec::new();
    for _ in 0..args.instances {
        instances.push(Instance::start(&args.server_bin, &scratch.url).await?);
    }
    let tenant = Tenant::create(
        &args.server_bin,
        &scratch.url,
        &instances[0].base(),
        args.writers,
    )
    .await?;
    let sockets: Vec<String> = instances.iter().map(Instance::socket).collect();
    let bases: Vec<String> = instances.iter().map(Instance::base).collect();
    let mut followers = Vec::new();
    for (i, _) in instances.iter().enumerate() {
        for s in 0..args.subscribers {
            followers.push((
                i,
                s,
                Follower::start(
                    sockets.clone(),
                    i,
                    tenant.api_key.clone(),
                    tenant.start.clone(),
                ),
            ));
        }
    }
    let ledger = Arc::new(Ledger::temporary("cluster")?);
    let writers = Writers::start(
        WriterSetup::visiting(bases.clone(), &tenant, "cluster"),
        args.writers,
        ledger.clone(),
    );

    tokio::time::sleep(args.interval).await;
    let victim = args.instances - 1;
    let before = writers.tally.acked();
    instances[victim].kill9();
    println!(
        "  killed instance {} after {before} acknowledged recordings",
        victim + 1
    );
    tokio::time::sleep(args.interval).await;
    let tally = writers.stop().await;
    println!("  writers: {}", tally.summary());

    let mut seen = Vec::new();
    let mut reconnected = 0;
    for (i, s, follower) in followers {
        let reconnects = follower
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed);
        if i == victim && reconnects > 0 {
            reconnected += 1;
        }
        let events = follower
            .finish(tally.acked() as usize, Duration::from_secs(30))
            .await;
        seen.push((
            format!("subscriber {} on instance {}", s + 1, i + 1),
            events,
        ));
    }
    println!(
        "  {reconnected} of {} subscribers of the killed instance reconnected elsewhere",
        args.subscribers
    );
    let verdict = verify(ledger.path(), &scratch.url, &bases[0], &tenant, &seen).await?;
    println!(
        "  verifier: {} ({} subscribers, each checked against the feed)",
        verdict.line(),
        seen.len()
    );
    let mut findings = Findings::default();
    findings.check(
        reconnected == args.subscribers,
        format!(
            "only {reconnected} of the killed instance's {} subscribers reconnected",
            args.subscribers
        ),
    );
    findings.check(
        tally.acked() > before,
        "nothing was recorded after the kill",
    );
    findings.settle(verdict.problems, &[&tally]);
    for (i, instance) in instances.iter_mut().enumerate() {
        if i != victim {
            findings.check(instance.running(), format!("instance {} exited", i + 1));
        }
        instance.kill9();
    }
    findings.verdict("cluster")
}
