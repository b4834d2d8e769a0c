//! `bench compare`: the whole benchmark in one command. Generates (or
//! reuses) the datasets, measures convtrack on PostgreSQL at two sizes and
//! on SQLite, PostGraphile and raw SQL (`pgbench`) on the same PostgreSQL
//! database, and prints one table and the targets as ratios of that run.

use std::fmt::Write as _;
use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};

use crate::drive::{Measured, drive};
use crate::generate::{self, GenerateArgs};
use crate::instructions;
use crate::load::{self, Convtrack, Row};
use crate::peers::{self, PostGraphile};
use crate::targets::Measurements;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// A PostgreSQL server (no database name): databases
    /// convtrack_bench_<size> are created there, or reused when they hold
    /// the right dataset.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
    /// Conversations in the small dataset (scale comparison).
    #[arg(long, default_value_t = 10_000)]
    pub small: u64,
    /// Conversations in the large dataset (every scenario and peer).
    #[arg(long, default_value_t = 1_000_000)]
    pub large: u64,
    /// Conversations in the SQLite dataset (a temporary file); 0 skips SQLite.
    #[arg(long, default_value_t = 10_000)]
    pub sqlite_conversations: u64,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
    pub concurrency: Vec<usize>,
    /// Seconds per scenario and concurrency.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Rounds of the compared scenarios (list and record on every
    /// target); each figure is the median round.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// A folder where PostGraphile 5 is installed (bench/README.md);
    /// without it PostGraphile is not measured.
    #[arg(long)]
    pub postgraphile_dir: Option<PathBuf>,
    /// Generate the datasets again even when they exist.
    #[arg(long)]
    pub regenerate: bool,
    /// Drop the PostgreSQL datasets at the end.
    #[arg(long)]
    pub drop_after: bool,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
    /// List requests counted by callgrind for the instructions per list
    /// request (on the small dataset); 0 skips the count.
    #[arg(long, default_value_t = 50)]
    pub instruction_requests: usize,
}

/// One measured line of the table.
pub(crate) struct Line {
    pub target: &'static str,
    pub dataset: String,
    pub row: Row,
}

pub async fn run(mut args: CompareArgs) -> Result<(), String> {
    // A median needs a round.
    args.rounds = args.rounds.max(1);
    let base = args.postgres.trim_end_matches('/').to_owned();
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .map_err(|e| format!("cannot connect to {base}/postgres: {e}"))?;
    let large_url = dataset(&admin, &base, args.large, args.regenerate).await?;
    let small_url = dataset(&admin, &base, args.small, args.regenerate).await?;
    let mut run = Run::new(&args);
    let list_rss = run.postgres_large(&large_url).await?;
    run.postgres_small(&small_url).await?;
    run.instructions(&small_url).await;
    if args.sqlite_conversations > 0 {
        run.sqlite().await?;
    }
    if args.drop_after {
        for n in [args.large, args.small] {
            drop_database(&admin, &database_name(n)).await?;
        }
    }
    run.report(list_rss)
}

/// One `bench compare`: its arguments and what it has measured so far.
struct Run<'a> {
    args: &'a CompareArgs,
    /// Workers at the highest concurrency: convtrack starts a recording
    /// session for each.
    max_workers: usize,
    /// Size labels of the two PostgreSQL datasets ("1M", "10k").
    large: String,
    small: String,
    /// The large dataset's name in the table.
    pg_large: String,
    samples: Samples,
    /// Instructions per list request, on the small dataset.
    instructions: Option<f64>,
    /// Printed under the table.
    notes: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(args: &'a CompareArgs) -> Self {
        let large = size_label(args.large);
        Self {
            args,
            max_workers: args.concurrency.iter().copied().max().unwrap_or(1),
            pg_large: format!("PG {large}"),
            large,
            small: size_label(args.small),
            samples: Samples::default(),
            instructions: None,
            notes: Vec::new(),
        }
    }

    /// Every target on the large dataset: the compared scenarios in rounds,
    /// then convtrack's other scenarios. Returns convtrack's peak RSS after
    /// the list scenario (a).
    async fn postgres_large(&mut self, url: &str) -> Result<Option<f64>, String> {
        let args = self.args;
        let mut large = Large::open(self, url).await?;
        let list_rss = self.compared_rounds(&mut large).await?;
        for scenario in ["detail", "search", "stats"] {
            for c in alone_then(scenario, &args.concurrency) {
                eprintln!("convtrack {scenario} c={c}");
                let row = large.ours.measure(scenario, c, args.seconds).await?;
                self.samples.add("convtrack", &self.pg_large, row);
            }
        }
        self.notes.push(format!(
            "convtrack peak RSS: {:.0} MB under (a), {:.0} MB after every scenario (PostgreSQL, {})",
            list_rss.unwrap_or(f64::NAN),
            large.ours.peak_rss_mb().unwrap_or(f64::NAN),
            self.large
        ));
        if let Some(peak) = large.peer.as_ref().and_then(PostGraphile::peak_rss_mb) {
            self.notes
                .push(format!("PostGraphile peak RSS: {peak:.0} MB"));
        }
        Ok(list_rss)
    }

    /// List and record on every target, back to back: the shared machine's
    /// speed drifts by tens of percent within minutes, so the targets
    /// compared are measured in rounds and each figure is the median round.
    /// Returns convtrack's peak RSS after the first list scenario.
    async fn compared_rounds(&mut self, large: &mut Large) -> Result<Option<f64>, String> {
        let args = self.args;
        let mut list_rss = None;
        for round in 1..=args.rounds {
            for scenario in ["list", "record"] {
                for &c in &args.concurrency {
                    eprintln!("round {round}/{}: {scenario} c={c}", args.rounds);
                    let row = large.ours.measure(scenario, c, args.seconds).await?;
                    self.samples.add("convtrack", &self.pg_large, row);
                    if let Some(row) = large.postgraphile(scenario, c, args.seconds).await? {
                        self.samples.add("PostGraphile", &self.pg_large, row);
                    }
                    self.pgbench(large, scenario, c).await;
                }
                if scenario == "list" && list_rss.is_none() {
                    list_rss = large.ours.peak_rss_mb();
                }
            }
        }
        Ok(list_rss)
    }

    /// Raw SQL's figure for `scenario`. pgbench's first failure becomes a
    /// note, and pgbench is not run again.
    async fn pgbench(&mut self, large: &mut Large, scenario: &str, c: usize) {
        if large.pgbench_failed {
            return;
        }
        let seconds = self.args.seconds;
        let measured = if scenario == "list" {
            peers::pgbench_list(&large.db, &large.url, c, seconds).await
        } else {
            peers::pgbench_record(&large.db, &large.url, c, seconds).await
        };
        match measured {
            Ok(m) => self
                .samples
                .add("pgbench", &self.pg_large, peer_row(scenario, c, m)),
            Err(e) => {
                self.notes.push(format!("pgbench not measured: {e}"));
                large.pgbench_failed = true;
            }
        }
    }

    /// convtrack's list on the small dataset, for how latency grows with size.
    async fn postgres_small(&mut self, url: &str) -> Result<(), String> {
        let args = self.args;
        let target = Convtrack::start(&args.server_bin, url, self.max_workers).await?;
        let dataset = format!("PG {}", self.small);
        for round in 1..=args.rounds {
            for &c in &args.concurrency {
                eprintln!(
                    "round {round}/{}: list c={c}, {} conversations",
                    args.rounds, self.small
                );
                let row = target.measure("list", c, args.seconds).await?;
                self.samples.add("convtrack", &dataset, row);
            }
        }
        Ok(())
    }

    /// convtrack's list and record on a SQLite dataset of its own.
    async fn sqlite(&mut self) -> Result<(), String> {
        let args = self.args;
        let dataset = format!("SQLite {}", size_label(args.sqlite_conversations));
        // The database with its -wal and -shm files goes with the folder,
        // on every path out, after the server (declared later, dropped first).
        let folder = tempfile::Builder::new()
            .prefix("convtrack-compare-")
            .tempdir()
            .map_err(|e| format!("creating a temporary folder: {e}"))?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            folder.path().join("compare.db").display()
        );
        generate::run(GenerateArgs {
            database_url: url.clone(),
            conversations: args.sqlite_conversations,
            seed: 1,
        })
        .await?;
        let target = Convtrack::start(&args.server_bin, &url, self.max_workers).await?;
        for round in 1..=args.rounds {
            for scenario in ["list", "record"] {
                for &c in &args.concurrency {
                    eprintln!("round {round}/{}: {dataset} {scenario} c={c}", args.rounds);
                    let row = target.measure(scenario, c, args.seconds).await?;
                    self.samples.add("convtrack", &dataset, row);
                }
            }
        }
        for scenario in ["search", "stats"] {
            eprintln!("{dataset} {scenario} c=1");
            let row = target.measure(scenario, 1, args.seconds).await?;
            self.samples.add("convtrack", &dataset, row);
        }
        Ok(())
    }

    /// The instructions per list request, counted by callgrind on the
    /// small dataset; a note says why when they are not.
    async fn instructions(&mut self, url: &str) {
        let requests = self.args.instruction_requests;
        if requests == 0 {
            return;
        }
        eprintln!("instructions per list request ({requests} requests under callgrind)");
        match instructions::count_list(
            &self.args.server_bin,
            url,
            requests,
            None,
            std::time::Duration::ZERO,
        )
        .await
        {
            Ok(counted) => self.instructions = Some(counted.per_request),
            Err(e) => self
                .notes
                .push(format!("instructions per list request not counted: {e}")),
        }
    }

    /// Prints the table, the notes and the targets.
    fn report(self, list_rss: Option<f64>) -> Result<(), String> {
        let args = self.args;
        let lines = self.samples.medians();
        println!(
            "Median of {} round(s) of {} s each (after a {} s warm-up), {}",
            args.rounds,
            args.seconds,
            crate::drive::WARMUP.as_secs(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        println!();
        println!("{}", table(&lines));
        for note in &self.notes {
            println!("{note}");
        }
        println!();
        let measured = Measurements {
            lines: &lines,
            large: &self.large,
            small: &self.small,
            list_rss,
            instructions: self.instructions,
        };
        println!("{}", measured.targets());
        // A benchmark of a server that answers with errors measures nothing.
        let failed: u64 = lines
            .iter()
            .filter(|l| l.target == "convtrack")
            .map(|l| l.row.measured.errors)
            .sum();
        if failed > 0 {
            return Err(format!(
                "convtrack answered {failed} measured requests with errors (the first of each run is printed above)"
            ));
        }
        Ok(())
    }
}

/// The targets side by side on the large PostgreSQL dataset, and what the
/// peers need to send the same requests as convtrack.
struct Large {
    ours: Convtrack,
    peer: Option<PostGraphile>,
    db: DatabaseConnection,
    url: String,
    http: reqwest::Client,
    /// bench-a, whose list is compared.
    tenant: String,
    /// bench-record, and its newest conversation, which the peers record on.
    recorder: String,
    conversation: String,
    pgbench_failed: bool,
}

impl Large {
    /// Starts convtrack, and PostGraphile when it is installed (else a note
    /// says it is not measured).
    async fn open(run: &mut Run<'_>, url: &str) -> Result<Self, String> {
        let args = run.args;
        let ours = Convtrack::start(&args.server_bin, url, run.max_workers).await?;
        let peer = match &args.postgraphile_dir {
            Some(dir) => Some(PostGraphile::start(dir, url).await?),
            None => {
                run.notes.push(
                    "PostGraphile not measured: pass --postgraphile-dir (bench/README.md says how to install it)"
                        .to_owned(),
                );
                None
            }
        };
        let db = Database::connect(url)
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        // Fresh planner statistics and no dead rows from earlier runs, as
        // autovacuum keeps a production database (this machine runs
        // PostgreSQL with autovacuum off; without it, a tenant that grew by
        // 300,000 recordings still looks empty to the planner).
        db.execute_unprepared("VACUUM ANALYZE")
            .await
            .map_err(|e| format!("VACUUM ANALYZE: {e}"))?;
        let http = load::client()?;
        let tenant = scalar(&db, "SELECT id::text FROM tenant WHERE name = 'bench-a'").await?;
        let recorder = scalar(
            &db,
            "SELECT id::text FROM tenant WHERE name = 'bench-record'",
        )
        .await?;
        let conversation = scalar(
            &db,
            &format!(
                "SELECT id::text FROM conversation WHERE tenant_id = '{recorder}' \
                 ORDER BY started_at DESC LIMIT 1"
            ),
        )
        .await?;
        Ok(Self {
            ours,
            peer,
            db,
            url: url.to_owned(),
            http,
            tenant,
            recorder,
            conversation,
            pgbench_failed: false,
        })
    }

    /// PostGraphile's figure for `scenario`, when it is measured.
    async fn postgraphile(
        &self,
        scenario: &str,
        c: usize,
        seconds: u64,
    ) -> Result<Option<Row>, String> {
        let Some(peer) = &self.peer else {
            return Ok(None);
        };
        let recorder = &self.recorder;
        let make = if scenario == "list" {
            peer.list(&self.http, &self.tenant)
        } else {
            let next = scalar(
                &self.db,
                &format!(
                    "SELECT (COALESCE(MAX(feed_seq), 0) + 1)::text FROM conversion \
                     WHERE tenant_id = '{recorder}'"
                ),
            )
            .await?
            .parse()
            .map_err(|_| "feed_seq is not a number")?;
            peer.record(&self.http, recorder, &self.conversation, next)
        };
        let row = peer_row(scenario, c, drive(c, secs(seconds), make).await);
        if scenario == "record" {
            // PostGraphile's rows took feed numbers behind convtrack's back;
            // move the feed's numbering past them.
            migration::resync_feed(&self.db)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(Some(row))
    }
}

/// Every measurement, grouped by target, data and scenario.
#[derive(Default)]
struct Samples(Vec<Line>);

impl Samples {
    fn add(&mut self, target: &'static str, dataset: &str, row: Row) {
        self.0.push(Line {
            target,
            dataset: dataset.to_owned(),
            row,
        });
    }

    /// One line per target, data, scenario and concurrency: the round with
    /// the median throughput, in first-measured order.
    fn medians(self) -> Vec<Line> {
        let mut groups: Vec<Vec<Line>> = Vec::new();
        for line in self.0 {
            let same = |g: &&mut Vec<Line>| {
                let first = &g[0];
                first.target == line.target
                    && first.dataset == line.dataset
                    && first.row.scenario == line.row.scenario
                    && first.row.concurrency == line.row.concurrency
            };
            match groups.iter_mut().find(same) {
                Some(group) => group.push(line),
                None => groups.push(vec![line]),
            }
        }
        groups
            .into_iter()
            .map(|mut group| {
                group.sort_by(|a, b| {
                    a.row
                        .measured
                        .per_second
                        .total_cmp(&b.row.measured.per_second)
                });
                let middle = group.len() / 2;
                group.swap_remove(middle)
            })
            .collect()
    }
}

/// The concurrencies `scenario` is measured at: stats and search alone
/// first (their targets are for one request at a time), then `levels`.
fn alone_then(scenario: &str, levels: &[usize]) -> Vec<usize> {
    let alone = matches!(scenario, "search" | "stats") && !levels.contains(&1);
    alone
        .then_some(1)
        .into_iter()
        .chain(levels.iter().copied())
        .collect()
}

fn secs(seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(seconds)
}

fn peer_row(scenario: &str, concurrency: usize, measured: Measured) -> Row {
    if let Some(e) = &measured.first_error {
        eprintln!("peer {scenario} c={concurrency}: first error: {e}");
    }
    Row {
        scenario: scenario.to_owned(),
        concurrency,
        measured,
        statements_per_request: None,
    }
}

fn size_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn database_name(n: u64) -> String {
    format!("convtrack_bench_{}", size_label(n).to_lowercase())
}

/// The URL of a database holding `n` generated conversations: reused when
/// it already holds exactly that, else (re)created and generated.
async fn dataset(
    admin: &DatabaseConnection,
    base: &str,
    n: u64,
    regenerate: bool,
) -> Result<String, String> {
    let name = database_name(n);
    let url = format!("{base}/{name}");
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        ))
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if exists && !regenerate {
        let db = Database::connect(&url).await.map_err(|e| e.to_string())?;
        let held = scalar(
            &db,
            "SELECT COUNT(*)::text FROM conversation WHERE tenant_id IN \
             (SELECT id FROM tenant WHERE name IN ('bench-a', 'bench-b'))",
        )
        .await
        .unwrap_or_default();
        if held == n.to_string() {
            eprintln!("reusing {name} ({n} conversations)");
            return Ok(url);
        }
    }
    drop_database(admin, &name).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("creating {name}: {e}"))?;
    eprintln!("generating {n} conversations into {name}");
    generate::run(GenerateArgs {
        database_url: url.clone(),
        conversations: n,
        seed: 1,
    })
    .await?;
    Ok(url)
}

async fn drop_database(admin: &DatabaseConnection, name: &str) -> Result<(), String> {
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .map(|_| ())
        .map_err(|e| format!("dropping {name}: {e}"))
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> Result<String, String> {
    db.query_one_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
        .await
        .map_err(|e| e.to_string())?
        .and_then(|row| row.try_get_by_index::<String>(0).ok())
        .ok_or_else(|| format!("no result for: {sql}"))
}

fn table(lines: &[Line]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | data | scenario | conc | req/s | p50 ms | p99 ms | SQL/req | errors |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for l in lines {
        let m = &l.row.measured;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            l.target,
            l.dataset,
            l.row.scenario,
            l.row.concurrency,
            m.per_second,
            m.p50_ms,
            m.p99_ms,
            l.row
                .statements_per_request
                .map_or("-".to_owned(), |s| format!("{s:.2}")),
            m.errors
        );
    }
    out
}
