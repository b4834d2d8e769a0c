//! `bench export`: starts the server on a generated database and downloads
//! each export whole, one at a time: time to the first byte, time to the
//! last, rows, size, and the server's resident memory while it streams.
//! The targets (issue 21): under 100 MB resident, first byte within 1 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::generate::TENANTS;
use crate::server::{Server, create_key, free_port, wait_ready};

#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
    /// The exports to download, in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "conversations.csv,conversations.ndjson,conversions.csv"
    )]
    pub files: Vec<String>,
    /// Fail when the server's resident memory passes this (MB).
    #[arg(long, default_value_t = 100.0)]
    pub max_rss_mb: f64,
    /// Fail when an export's first byte takes longer (ms).
    #[arg(long, default_value_t = 1_000)]
    pub max_first_byte_ms: u64,
}

/// One download, measured.
struct Download {
    file: String,
    rows: u64,
    bytes: u64,
    first_byte: Duration,
    whole: Duration,
    /// The most the server held (VmRSS) at any chunk, in kB.
    max_rss_kb: u64,
}

/// Counts records as bytes arrive: a line break outside quotes ends one
/// (CSV cells may hold line breaks; JSON strings escape theirs).
#[derive(Default)]
struct Records {
    count: u64,
    quoted: bool,
}

impl Records {
    fn add(&mut self, bytes: &[u8], csv: bool) {
        for &b in bytes {
            match b {
                b'"' if csv => self.quoted = !self.quoted,
                b'\n' if !self.quoted => self.count += 1,
                _ => {}
            }
        }
    }
}

async fn download(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    file: &str,
    server: &Server,
) -> Result<Download, String> {
    let csv = file.ends_with(".csv");
    let started = Instant::now();
    let mut response = http
        .get(format!("{base}/export/{file}"))
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| format!("{file}: {e}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{file}: HTTP {status}: {body}"));
    }
    let (mut records, mut bytes, mut first_byte) = (Records::default(), 0u64, None);
    let mut max_rss_kb = server.rss_kb().unwrap_or(0);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{file}: the transfer broke off after {bytes} bytes: {e}"))?
    {
        first_byte.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len() as u64;
        records.add(&chunk, csv);
        max_rss_kb = max_rss_kb.max(server.rss_kb().unwrap_or(0));
    }
    Ok(Download {
        file: file.to_owned(),
        // The CSV header is a record too.
        rows: records.count.saturating_sub(u64::from(csv)),
        bytes,
        first_byte: first_byte.unwrap_or_else(|| started.elapsed()),
        whole: started.elapsed(),
        max_rss_kb,
    })
}

pub async fn run(args: ExportArgs) -> Result<(), String> {
    if !args.server_bin.is_file() {
        return Err(format!(
            "no server binary at {}: build it first with `cargo build --release` (or pass --server-bin)",
            args.server_bin.display()
        ));
    }
    let addr = format!("127.0.0.1:{}", free_port()?);
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3_600))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let mut server = Server::start(&args.server_bin, &args.database_url, &addr)?;
    println!(
        "server {} pid {} on {base}, log {}",
        args.server_bin.display(),
        server.pid(),
        server.keep_log().display()
    );
    wait_ready(&http, &mut server, &base).await?;
    let key = create_key(&args.server_bin, &args.database_url, TENANTS[0])?;
    let idle_kb = server.rss_kb().unwrap_or(0);
    println!(
        "tenant {}: server resident {:.1} MB before the first export",
        TENANTS[0],
        idle_kb as f64 / 1024.0
    );
    println!(
        "{:<22} {:>10} {:>9} {:>12} {:>9} {:>10} {:>13}",
        "export", "rows", "MB", "first byte", "whole", "rows/s", "server RSS MB"
    );
    let mut failures = Vec::new();
    for file in &args.files {
        let d = download(&http, &base, &key, file, &server).await?;
        if let Some(exit) = server.exited() {
            return Err(exit);
        }
        let rss_mb = d.max_rss_kb as f64 / 1024.0;
        println!(
            "{:<22} {:>10} {:>9.1} {:>9.0} ms {:>7.1} s {:>10.0} {:>13.1}",
            d.file,
            d.rows,
            d.bytes as f64 / 1_048_576.0,
            d.first_byte.as_secs_f64() * 1000.0,
            d.whole.as_secs_f64(),
            d.rows as f64 / d.whole.as_secs_f64().max(1e-9),
            rss_mb,
        );
        if rss_mb > args.max_rss_mb {
            failures.push(format!(
                "{}: the server held {rss_mb:.1} MB (limit {} MB)",
                d.file, args.max_rss_mb
            ));
        }
        if d.first_byte > Duration::from_millis(args.max_first_byte_ms) {
            failures.push(format!(
                "{}: the first byte took {:.0} ms (limit {} ms)",
                d.file,
                d.first_byte.as_secs_f64() * 1000.0,
                args.max_first_byte_ms
            ));
        }
    }
    let peak = server.peak_rss_mb().unwrap_or(f64::NAN);
    println!("server peak resident (VmHWM, whole run): {peak:.1} MB");
    if peak > args.max_rss_mb {
        failures.push(format!(
            "the server's peak resident memory was {peak:.1} MB (limit {} MB)",
            args.max_rss_mb
        ));
    }
    if failures.is_empty() {
        println!(
            "export: PASS (under {} MB resident, first byte within {} ms)",
            args.max_rss_mb, args.max_first_byte_ms
        );
        Ok(())
    } else {
        Err(format!("export: FAIL: {}", failures.join("; ")))
    }
}
