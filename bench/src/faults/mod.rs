//! `bench faults`: breaks things on purpose under load and proves that no
//! acknowledged conversion is lost and none is counted twice. Every
//! scenario runs on a scratch database of its own (a temporary SQLite file
//! or a new PostgreSQL database), records through the bookkeeping writers
//! (`ledger`), and ends with the verifier.

mod cli;
mod cluster;
mod findings;
mod instance;
mod kill;
mod ledger;
mod pg_restart;
mod scratch;
mod soak;
mod storm;
mod webhooks;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Fault {
    /// kill -9 the server repeatedly under write load; restart; retry.
    Kill(kill::KillArgs),
    /// Stop and start a private PostgreSQL (initdb/pg_ctl on a free port)
    /// under write load while convtrack keeps running.
    PgRestart(pg_restart::PgRestartArgs),
    /// The retry storm and the same-session storm.
    Storm(storm::StormArgs),
    /// Instances on one PostgreSQL database with subscribers on each; one
    /// is killed mid-run.
    Cluster(cluster::ClusterArgs),
    /// A long run at half of the maximum recording rate: memory, file
    /// descriptors and the pool must stay flat.
    Soak(soak::SoakArgs),
    /// Webhook endpoints fed under load by instances (one killed on
    /// PostgreSQL) to a receiver that fails and hangs: every event arrives,
    /// in order, duplicates only under the same id.
    Webhooks(webhooks::WebhooksArgs),
}

pub async fn run(scenario: Fault) -> Result<(), String> {
    match scenario {
        Fault::Kill(args) => kill::run(args).await,
        Fault::PgRestart(args) => pg_restart::run(args).await,
        Fault::Storm(args) => storm::run(args).await,
        Fault::Cluster(args) => cluster::run(args).await,
        Fault::Soak(args) => soak::run(args).await,
        Fault::Webhooks(args) => webhooks::run(args).await,
    }
}
