//! `bench`: generates a realistic dataset for convtrack and times the
//! server's read queries against it. See bench/README.md.

mod compare;
mod corpus;
mod drive;
mod export;
mod faults;
mod feed;
mod generate;
mod instructions;
mod load;
mod peers;
mod queries;
mod rng;
mod server;
mod targets;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Dataset generator and query benchmark for convtrack"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Each subcommand's flags are declared next to the code that reads them.
#[derive(Subcommand)]
enum Command {
    /// Fill an empty database (migrations applied first) with tenants
    /// bench-a (~90%) and bench-b, their conversations, messages and conversions.
    Generate(generate::GenerateArgs),
    /// Start the release server on a generated database and time the list,
    /// filter, search and stats queries, one request at a time.
    Queries(queries::QueriesArgs),
    /// Fixed concurrency for a fixed time per scenario: req/s, p50/p99, SQL
    /// statements per request, peak memory.
    Load(load::LoadArgs),
    /// The whole benchmark in one go: datasets, convtrack on PostgreSQL (two
    /// sizes) and SQLite, PostGraphile and raw SQL on the same database; one
    /// table and the targets as ratios of this run.
    Compare(compare::CompareArgs),
    /// Break things under write load and prove that nothing acknowledged is
    /// lost or counted twice (bench/README.md, README "Reliability").
    Faults {
        #[command(subcommand)]
        scenario: faults::Fault,
    },
    /// Start one or two servers on a database and time how long a recorded
    /// conversion takes to reach many subscribers.
    FeedLatency(feed::FeedArgs),
    /// Count, with callgrind, the instructions the server runs per list
    /// request (50 rows): a CPU figure that repeats on a noisy machine.
    Instructions(instructions::InstructionsArgs),
    /// Time a recorded conversion to its webhook endpoints' receiver, and
    /// drain a burst of events to one endpoint.
    Webhooks(webhooks::WebhooksArgs),
    /// Download each export whole: first byte, total time, rows, and the
    /// server's resident memory while it streams.
    Export(export::ExportArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Generate(args) => generate::run(args).await,
        Command::Queries(args) => queries::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Compare(args) => compare::run(args).await,
        Command::Faults { scenario } => faults::run(scenario).await,
        Command::FeedLatency(args) => feed::run(args).await,
        Command::Instructions(args) => instructions::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Webhooks(args) => webhooks::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench: {message}");
            ExitCode::FAILURE
        }
    }
}
