//! `bench`: generates a realistic dataset for convtrack and times the
//! server's read queries against it. See bench/README.md.

mod compare;
mod corpus;
mod drive;
mod faults;
mod feed;
mod generate;
mod load;
mod peers;
mod queries;
mod rng;

use std::path::PathBuf;
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

#[derive(Subcommand)]
enum Command {
    /// Fill an empty database (migrations applied first) with tenants
    /// bench-a (~90%) and bench-b, their conversations, messages and conversions.
    Generate {
        /// sqlite://FILE?mode=rwc or postgres://user@host:port/db
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// How many conversations (about 3 messages each, ~10% converted).
        #[arg(long, default_value_t = 100_000)]
        conversations: u64,
        /// Seed of the generator: the same seed gives the same rows (times
        /// are relative to now).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Start the release server on a generated database and time the list,
    /// filter, search and stats queries, one request at a time.
    Queries {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Timed requests per scenario.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Untimed requests per scenario before the timed ones.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// The server binary (build it with `cargo build --release`).
        #[arg(long, default_value = "target/release/convtrack")]
        server_bin: PathBuf,
        /// Run only these scenarios (comma-separated): list, list-filtered,
        /// search-common, search-rare, search-short, stats.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Fixed concurrency for a fixed time per scenario: req/s, p50/p99, SQL
    /// statements per request, peak memory.
    Load {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Concurrency levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
        concurrency: Vec<usize>,
        /// Seconds per scenario and concurrency.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Scenarios, comma-separated: list (a), detail (b), record (c),
        /// search and stats (d).
        #[arg(long, value_delimiter = ',', default_values_t = load::SCENARIOS.map(str::to_owned))]
        scenarios: Vec<String>,
        /// The server binary (build it with `cargo build --release`).
        #[arg(long, default_value = "target/release/convtrack")]
        server_bin: PathBuf,
    },
    /// The whole benchmark in one go: datasets, convtrack on PostgreSQL (two
    /// sizes) and SQLite, PostGraphile and raw SQL on the same database; one
    /// table and the targets as ratios of this run.
    Compare {
        /// A PostgreSQL server (no database name): databases
        /// convtrack_bench_<size> are created there, or reused when they hold
        /// the right dataset.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        postgres: String,
        /// Conversations in the small dataset (scale comparison).
        #[arg(long, default_value_t = 10_000)]
        small: u64,
        /// Conversations in the large dataset (every scenario and peer).
        #[arg(long, default_value_t = 1_000_000)]
        large: u64,
        /// Conversations in the SQLite dataset (a temporary file); 0 skips SQLite.
        #[arg(long, default_value_t = 10_000)]
        sqlite_conversations: u64,
        /// Concurrency levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
        concurrency: Vec<usize>,
        /// Seconds per scenario and concurrency.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Rounds of the compared scenarios (list and record on every
        /// target); each figure is the median round.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// A folder where PostGraphile 5 is installed (bench/README.md);
        /// without it PostGraphile is not measured.
        #[arg(long)]
        postgraphile_dir: Option<PathBuf>,
        /// Generate the datasets again even when they exist.
        #[arg(long)]
        regenerate: bool,
        /// Drop the PostgreSQL datasets at the end.
        #[arg(long)]
        drop_after: bool,
        /// The server binary (build it with `cargo build --release`).
        #[arg(long, default_value = "target/release/convtrack")]
        server_bin: PathBuf,
    },
    /// Break things under write load and prove that nothing acknowledged is
    /// lost or counted twice (bench/README.md, README "Reliability").
    Faults {
        #[command(subcommand)]
        scenario: Fault,
    },
    /// Start one or two servers on a database and time how long a recorded
    /// conversion takes to reach many subscribers.
    FeedLatency {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Subscribers connected at once.
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        /// Conversions recorded, one after the other.
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// 1: subscribers on the recording server; 2: on a second server
        /// sharing the PostgreSQL database.
        #[arg(long, default_value_t = 1)]
        instances: u8,
        /// Pause between recordings, in milliseconds.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// The server binary (build it with `cargo build --release`).
        #[arg(long, default_value = "target/release/convtrack")]
        server_bin: PathBuf,
    },
}

/// Where a fault scenario's scratch database lives.
#[derive(clap::Args)]
struct Place {
    /// sqlite: a temporary file; postgres: a new database on --postgres.
    #[arg(long, value_enum, default_value = "sqlite")]
    database: faults::Backend,
    /// A PostgreSQL server (no database name) for scratch databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    server_bin: PathBuf,
}

#[derive(Subcommand)]
enum Fault {
    /// kill -9 the server repeatedly under write load; restart; retry.
    Kill {
        #[command(flatten)]
        place: Place,
        #[arg(long, default_value_t = 5)]
        kills: usize,
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// Seconds of load between two kills.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
    },
    /// Stop and start a private PostgreSQL (initdb/pg_ctl on a free port)
    /// under write load while convtrack keeps running.
    PgRestart {
        /// The server binary (build it with `cargo build --release`).
        #[arg(long, default_value = "target/release/convtrack")]
        server_bin: PathBuf,
        /// Restarts; odd ones stop PostgreSQL cleanly, even ones crash it.
        #[arg(long, default_value_t = 2)]
        restarts: usize,
        /// Seconds PostgreSQL stays down each time.
        #[arg(long, default_value_t = 5.0)]
        outage: f64,
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// Seconds of load before, between and after the restarts.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
    },
    /// The retry storm and the same-session storm.
    Storm {
        #[command(flatten)]
        place: Place,
        /// Clients in the retry storm, writers in the same-session storm.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Records per writer in the same-session storm.
        #[arg(long, default_value_t = 200)]
        records: u64,
    },
    /// Instances on one PostgreSQL database with subscribers on each; one
    /// is killed mid-run.
    Cluster {
        /// A PostgreSQL server (no database name) for the scratch database.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        postgres: String,
        /// The server binary (build it with `cargo build --release`).
        #[arg(long, default_value = "target/release/convtrack")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 3)]
        instances: usize,
        /// Subscribers per instance.
        #[arg(long, default_value_t = 5)]
        subscribers: usize,
        #[arg(long, default_value_t = 9)]
        writers: usize,
        /// Seconds of load before the kill, and after it.
        #[arg(long, default_value_t = 10.0)]
        interval: f64,
    },
    /// A long run at half of the maximum recording rate: memory, file
    /// descriptors and the pool must stay flat.
    Soak {
        #[command(flatten)]
        place: Place,
        /// Seconds; the warm-up is a tenth of it, at least 30 s and at most
        /// 60 s (half of a run shorter than a minute).
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// The most the server's RSS may grow after the warm-up, in per cent.
        #[arg(long, default_value_t = 10.0)]
        rss_growth_limit: f64,
    },
}

fn seconds(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(s.max(0.0))
}

async fn fault(scenario: Fault) -> Result<(), String> {
    match scenario {
        Fault::Kill {
            place,
            kills,
            writers,
            interval,
        } => {
            faults::kill(faults::KillArgs {
                backend: place.database,
                postgres: place.postgres,
                kills,
                writers,
                interval: seconds(interval),
                server_bin: place.server_bin,
            })
            .await
        }
        Fault::PgRestart {
            server_bin,
            restarts,
            outage,
            writers,
            interval,
        } => {
            faults::pg_restart(faults::PgRestartArgs {
                restarts,
                outage: seconds(outage),
                writers,
                interval: seconds(interval),
                server_bin,
            })
            .await
        }
        Fault::Storm {
            place,
            clients,
            records,
        } => {
            faults::storm(faults::StormArgs {
                backend: place.database,
                postgres: place.postgres,
                clients,
                records,
                server_bin: place.server_bin,
            })
            .await
        }
        Fault::Cluster {
            postgres,
            server_bin,
            instances,
            subscribers,
            writers,
            interval,
        } => {
            faults::cluster(faults::ClusterArgs {
                postgres,
                instances,
                subscribers,
                writers,
                interval: seconds(interval),
                server_bin,
            })
            .await
        }
        Fault::Soak {
            place,
            seconds: duration,
            writers,
            rss_growth_limit,
        } => {
            faults::soak(faults::SoakArgs {
                backend: place.database,
                postgres: place.postgres,
                duration: seconds(duration),
                writers,
                rss_growth_limit,
                server_bin: place.server_bin,
            })
            .await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Generate {
            database_url,
            conversations,
            seed,
        } => {
            generate::run(generate::GenerateArgs {
                database_url,
                conversations,
                seed,
            })
            .await
        }
        Command::Queries {
            database_url,
            requests,
            warmup,
            server_bin,
            only,
        } => {
            queries::run(queries::QueriesArgs {
                database_url,
                requests,
                warmup,
                server_bin,
                only,
            })
            .await
        }
        Command::Load {
            database_url,
            concurrency,
            seconds,
            scenarios,
            server_bin,
        } => {
            load::run(load::LoadArgs {
                database_url,
                concurrency,
                seconds,
                scenarios,
                server_bin,
            })
            .await
        }
        Command::Compare {
            postgres,
            small,
            large,
            sqlite_conversations,
            concurrency,
            seconds,
            rounds,
            postgraphile_dir,
            regenerate,
            drop_after,
            server_bin,
        } => {
            compare::run(compare::CompareArgs {
                postgres,
                small,
                large,
                sqlite_conversations,
                concurrency,
                seconds,
                rounds: rounds.max(1),
                postgraphile_dir,
                regenerate,
                drop_after,
                server_bin,
            })
            .await
        }
        Command::Faults { scenario } => fault(scenario).await,
        Command::FeedLatency {
            database_url,
            subscribers,
            events,
            instances,
            interval_ms,
            server_bin,
        } => {
            feed::run(feed::FeedArgs {
                database_url,
                subscribers,
                events,
                instances,
                interval: std::time::Duration::from_millis(interval_ms),
                server_bin,
            })
            .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench: {message}");
            ExitCode::FAILURE
        }
    }
}
