//! `bench faults pg-restart`: a private PostgreSQL (initdb + pg_ctl on a
//! free port, never the machine's shared one) is stopped and started again
//! under write load while convtrack keeps running. During the outage
//! convtrack may only answer with retryable errors, `/readyz` must go red
//! and then green again by itself, writes must succeed again within 10 s of
//! PostgreSQL being back, and after the retries the totals must be exact.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::cli::seconds;
use super::findings::{Findings, settle_with_subscriber};
use super::instance::Instance;
use super::ledger::{Follower, Ledger, Tenant, WriterSetup, Writers, locked};
use crate::server::free_port;

#[derive(clap::Args)]
pub struct PgRestartArgs {
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
    /// Restarts; odd ones stop PostgreSQL cleanly, even ones crash it.
    #[arg(long, default_value_t = 2)]
    pub restarts: usize,
    /// Seconds PostgreSQL stays down each time.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub outage: Duration,
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Seconds of load before, between and after the restarts.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub interval: Duration,
}

/// The longest convtrack may take to write again once PostgreSQL is back.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// A PostgreSQL cluster of this run's own in a temporary folder, removed
/// when dropped.
struct PrivatePostgres {
    /// Removed after `drop` has stopped the server.
    folder: TempDir,
    data: PathBuf,
    port: u16,
    /// initdb and the server refuse to run as root: run them as `postgres`.
    as_postgres: bool,
}

impl PrivatePostgres {
    fn start() -> Result<Self, String> {
        let folder = tempfile::Builder::new()
            .prefix("convtrack-faults-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temporary folder: {e}"))?;
        let as_postgres = is_root();
        let cluster = Self {
            data: folder.path().join("data"),
            folder,
            port: free_port()?,
            as_postgres,
        };
        if as_postgres {
            execute(
                Command::new("chown")
                    .arg("postgres")
                    .arg(cluster.folder.path()),
            )?;
        }
        let data = cluster.data.display().to_string();
        execute(cluster.tool("initdb").args([
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]))?;
        cluster.pg_ctl("start")?;
        Ok(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn tool(&self, name: &str) -> Command {
        let program = pg_bin(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// `start`, or `stop` in mode `fast` / `immediate`; waits until done.
    fn pg_ctl(&self, action: &str) -> Result<(), String> {
        let data = self.data.display().to_string();
        let log = self
            .folder
            .path()
            .join("postgres.log")
            .display()
            .to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.folder.path().display()
        );
        let mut command = self.tool("pg_ctl");
        command.args(["-D", &data, "-l", &log, "-o", &options, "-w"]);
        match action.split_once(' ') {
            Some(("stop", mode)) => command.args(["stop", "-m", mode]),
            _ => command.arg(action),
        };
        execute(&mut command)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop immediate");
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL program: from PATH when there, else from Debian's folder.
fn pg_bin(name: &str) -> PathBuf {
    let on_path = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if on_path {
        return PathBuf::from(name);
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| {
            versions
                .filter_map(Result::ok)
                .map(|v| v.path().join("bin").join(name))
                .filter(|p| p.exists())
                .max()
        })
        .unwrap_or_else(|| Path::new(name).to_owned())
}

fn execute(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `/readyz` as seen every 100 ms: (when, ready).
struct Prober {
    samples: Arc<Mutex<Vec<(Instant, bool)>>>,
    stop: Arc<AtomicBool>,
}

impl Prober {
    fn start(base: String) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !st.load(Ordering::Relaxed) {
                // A probe counts at the moment it was sent: one sent during
                // the outage that timed out after it is still red.
                let sent = Instant::now();
                let ready = http
                    .get(format!("{base}/readyz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
                locked(&s).push((sent, ready));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { samples, stop }
    }

    /// Whether a probe sent in `from..to` found it red, and when the first
    /// probe that found it green was sent after `to`.
    fn around(&self, from: Instant, to: Instant) -> (bool, Option<Instant>) {
        let samples = locked(&self.samples);
        let red = samples
            .iter()
            .any(|(at, ready)| *at >= from && *at <= to && !ready);
        let green = samples
            .iter()
            .find(|(at, ready)| *at > to && *ready)
            .map(|(at, _)| *at);
        (red, green)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub async fn run(args: PgRestartArgs) -> Result<(), String> {
    let postgres = tokio::task::block_in_place(PrivatePostgres::start)?;
    println!(
        "postgres restart: private PostgreSQL on port {}, {} restarts of {:?}, {} writers",
        postgres.port, args.restarts, args.outage, args.writers
    );
    let url = postgres.url();
    let mut server = Instance::start(&args.server_bin, &url).await?;
    let tenant = Tenant::create(&args.server_bin, &url, &server.base(), args.writers).await?;
    let ledger = Arc::new(Ledger::temporary("pg")?);
    let follower = Follower::start(
        vec![server.socket()],
        0,
        tenant.api_key.clone(),
        tenant.start.clone(),
    );
    let prober = Prober::start(server.base());
    let writers = Writers::start(
        WriterSetup::visiting(vec![server.base()], &tenant, "pg-restart"),
        args.writers,
        ledger.clone(),
    );

    let mut findings = Findings::default();
    for restart in 1..=args.restarts {
        tokio::time::sleep(args.interval).await;
        // Alternate a clean shutdown with a crash (recovery from the WAL).
        let mode = if restart % 2 == 1 {
            "fast"
        } else {
            "immediate"
        };
        let down = Instant::now();
        let acked_before = writers.tally.acked();
        let refusals_before = writers.tally.unavailable.load(Ordering::Relaxed);
        blocking(&postgres, &format!("stop {mode}")).await?;
        tokio::time::sleep(args.outage).await;
        blocking(&postgres, "start").await?;
        let back = Instant::now();
        let mut written_again = None;
        while Instant::now() < back + Duration::from_secs(30) {
            if writers.tally.acked() > acked_before {
                written_again = Some(Instant::now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut red, mut green) = prober.around(down, back);
        while green.is_none() && back.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            (red, green) = prober.around(down, back);
        }
        let refusals = writers.tally.unavailable.load(Ordering::Relaxed) - refusals_before;
        let secs = |t: Option<Instant>| {
            t.map_or("never".to_owned(), |t| {
                format!("{:.2} s", t.duration_since(back).as_secs_f64())
            })
        };
        println!(
            "  restart {restart} ({mode}): {refusals} retryable refusals during the outage; /readyz {} then green {} after PostgreSQL was back; writes again {} after",
            if red { "red" } else { "never red" },
            secs(green),
            secs(written_again)
        );
        findings.check(red, format!("restart {restart}: /readyz never went red"));
        for (what, at) in [("/readyz", green), ("writing", written_again)] {
            let within = at.is_some_and(|t| t.duration_since(back) <= RECOVER_WITHIN);
            findings.check(
                within,
                format!("restart {restart}: {what} recovered {} after PostgreSQL was back (limit {RECOVER_WITHIN:?})", secs(at)),
            );
        }
    }
    tokio::time::sleep(args.interval).await;
    let tally = writers.stop().await;
    drop(prober);
    println!("  writers: {}", tally.summary());
    findings.check(
        tally.transport.load(Ordering::Relaxed) == 0,
        "convtrack dropped connections or did not answer during the outage (only retryable errors are allowed)",
    );
    findings.check(
        server.running(),
        "convtrack exited while PostgreSQL was down",
    );
    settle_with_subscriber(
        &mut findings,
        follower,
        ledger.path(),
        &url,
        &server.base(),
        &tenant,
        &[&tally],
    )
    .await?;
    server.kill9();
    drop(postgres);
    findings.verdict("postgres restart")
}

async fn blocking(postgres: &PrivatePostgres, action: &str) -> Result<(), String> {
    // pg_ctl waits for the server; keep the runtime's threads free meanwhile.
    tokio::task::block_in_place(|| postgres.pg_ctl(action))
}
