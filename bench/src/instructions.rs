//! `bench instructions`: the server's CPU cost of one list request, counted
//! in instructions by callgrind. Seconds on this machine move with whatever
//! else runs; an instruction count repeats, so a change to the request path
//! shows as a figure that does not drift between runs.
//!
//! The server runs under `valgrind --tool=callgrind`. After warm-up
//! requests (connections open, the key cached, statements prepared), the
//! counters are zeroed, `requests` list requests are sent one at a time,
//! and the counters dumped. Idle time with no requests is counted too
//! (before the requests) and taken off at the same rate: timers and
//! listeners tick whether or not anyone asks. With `settle`, the count goes
//! on that long after the last request, so that work requests leave behind
//! (a batch of trace spans exported every few hundred milliseconds) is
//! counted with them, and the warm-up's is over before the idle count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::load::{LIST, client, post};
use crate::server::{Server, create_key, free_port, wait_ready};

#[derive(clap::Args)]
pub struct InstructionsArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// List requests counted.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
    /// Keep callgrind's dump of the counted requests here, for
    /// `callgrind_annotate --inclusive=yes` (a release build with
    /// `CARGO_PROFILE_RELEASE_DEBUG=line-tables-only` names inlined code).
    #[arg(long)]
    pub profile_out: Option<PathBuf>,
    /// Go on counting this long after the last request (and wait as long
    /// after the warm-up), for work done after the answers: with traces on,
    /// set `OTEL_BSP_SCHEDULE_DELAY` below it so each batch is exported
    /// inside the count.
    #[arg(long, default_value_t = 0)]
    pub settle_ms: u64,
}

/// What one count found.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    /// Instructions per list request, idle ticking taken off.
    pub per_request: f64,
    /// Instructions the idle server ran over the same wall time.
    pub idle: u64,
}

/// Untimed list requests before the count starts.
const WARMUP: usize = 10;

pub async fn run(args: InstructionsArgs) -> Result<(), String> {
    let counted = count_list(
        &args.server_bin,
        &args.database_url,
        args.requests,
        args.profile_out.as_deref(),
        Duration::from_millis(args.settle_ms),
    )
    .await?;
    println!(
        "instructions per list request (50 rows, server process): {:.0} ({} requests; {} idle instructions at the idle rate taken off)",
        counted.per_request, args.requests, counted.idle
    );
    Ok(())
}

/// Whether callgrind can be run here.
pub fn available() -> bool {
    ["valgrind", "callgrind_control"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Counts the instructions of `requests` list requests (50 rows of
/// bench-a) on a server started under callgrind on `database_url`.
pub async fn count_list(
    bin: &Path,
    database_url: &str,
    requests: usize,
    profile_out: Option<&Path>,
    settle: Duration,
) -> Result<Counted, String> {
    if !available() {
        return Err("valgrind (with callgrind_control) is not installed".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let out = dir.path().join("callgrind.out");
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut server = Server::start_under(
        &[
            "valgrind",
            "--tool=callgrind",
            "--quiet",
            &format!("--callgrind-out-file={}", out.display()),
        ],
        bin,
        database_url,
        &addr,
        &[],
    )?;
    let http = client()?;
    let base = format!("http://{addr}");
    wait_ready(&http, &mut server, &base).await?;
    let graphql = format!("{base}/graphql");
    let key = create_key(bin, database_url, "bench-a")?;
    let list = || post(&http, &graphql, &key, LIST, json!({}));
    for _ in 0..WARMUP {
        list().await?;
    }

    tokio::time::sleep(settle).await;

    let idle_time = Duration::from_millis(500).max(settle);
    control(server.pid(), "-z")?;
    tokio::time::sleep(idle_time).await;
    let idle_count = dump(server.pid(), &out, 1)?;

    control(server.pid(), "-z")?;
    let started = Instant::now();
    for _ in 0..requests {
        list().await?;
    }
    tokio::time::sleep(settle).await;
    let busy_time = started.elapsed();
    let busy = dump(server.pid(), &out, 2)?;
    if let Some(keep) = profile_out {
        std::fs::copy(format!("{}.2", out.display()), keep)
            .map_err(|e| format!("keeping the profile at {}: {e}", keep.display()))?;
    }
    let idle = (idle_count as f64 * busy_time.as_secs_f64() / idle_time.as_secs_f64()) as u64;

    Ok(Counted {
        per_request: busy.saturating_sub(idle) as f64 / requests.max(1) as f64,
        idle,
    })
}

fn control(pid: u32, flag: &str) -> Result<(), String> {
    let output = Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .output()
        .map_err(|e| format!("running callgrind_control {flag}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {flag} {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Dumps the counters (the `n`th dump of this run) and reads their total.
fn dump(pid: u32, out: &Path, n: usize) -> Result<u64, String> {
    control(pid, "-d")?;
    let file = PathBuf::from(format!("{}.{n}", out.display()));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("reading callgrind's dump {}: {e}", file.display()))?;
    total_of(&text).ok_or_else(|| format!("no totals in callgrind's dump {}", file.display()))
}

/// The instruction total of a callgrind dump (its `summary:` line, or
/// `totals:` in older formats).
fn total_of(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_the_summary_line() {
        let dump =
            "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 123456\n\nfn=main\n";
        assert_eq!(total_of(dump), Some(123_456));
        assert_eq!(total_of("events: Ir\ntotals: 42 7\n"), Some(42));
        assert_eq!(total_of("events: Ir\n"), None);
    }
}
