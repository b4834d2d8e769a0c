//! `bench queries`: starts the release server on a generated database and
//! times the list, filter, search and stats queries one request at a time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::generate::TENANTS;
use crate::server::{Server, create_key, free_port, wait_ready};

#[derive(clap::Args)]
pub struct QueriesArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Timed requests per scenario.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Untimed requests per scenario before the timed ones.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
    /// Run only these scenarios (comma-separated): list, list-filtered,
    /// search-common, search-rare, search-short, search-person, stats,
    /// stats-filtered, by-label.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

const LIST_FIELDS: &str = "nodes { id openingMessage startedAt channel user { name } \
     badges { kind label colour } } pageInfo { hasNextPage endCursor }";

const STATS_FIELDS: &str = "conversations convertedConversations conversionRate \
     byKind { kind count rate } byChannel { channel conversations converted rate } \
     medianSecondsToConvert unattributed";

/// What the admin page's header reads.
const HEADER_FIELDS: &str = "conversations convertedConversations conversionRate \
     medianSecondsToConvert unattributed byKind { kind count } \
     byChannel { channel conversations converted rate } bySource { source count } \
     funnel { action issued followed converted } \
     revenue { currency total convertedConversations perConvertedConversation }";

const BY_LABEL_FIELDS: &str =
    "value conversations converted rate rateLow rateHigh revenue { amount currency }";

/// How many pages the deep-page variant of `list` follows.
const DEEP_PAGES: usize = 5;

fn list_query(filter: Option<&str>) -> String {
    let filter = filter.map(|f| format!(", filter: {f}")).unwrap_or_default();
    format!(
        "query($after: String) {{ conversations(first: 50, after: $after{filter}) {{ {LIST_FIELDS} }} }}"
    )
}

/// One request shape: a query and its variables.
#[derive(Clone)]
struct Request {
    /// Names the variant in the per-variant breakdown.
    label: String,
    query: String,
    variables: Value,
}

impl Request {
    fn new(label: &'static str, query: String, variables: Value) -> Self {
        Self {
            label: label.to_owned(),
            query,
            variables,
        }
    }
}

struct Scenario {
    name: &'static str,
    /// Requests cycle through these.
    variants: Vec<Request>,
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    /// The same latencies, per variant.
    by_variant: Vec<Vec<Duration>>,
    errors: usize,
    first_error: Option<String>,
    /// `conversations.nodes` of the first measured response, when there is one.
    nodes: Option<usize>,
}

struct Client {
    http: reqwest::Client,
    url: String,
    authorization: String,
}

/// A response's failure, if it is one: a transport error, a non-200 status or
/// a GraphQL `errors` array.
fn failure(status: reqwest::StatusCode, body: &Value) -> Option<String> {
    if let Some(errors) = body.get("errors").filter(|e| !e.is_null()) {
        let first = errors
            .get(0)
            .map(|e| {
                let message = e.get("message").and_then(Value::as_str).unwrap_or("?");
                match e.pointer("/extensions/code").and_then(Value::as_str) {
                    Some(code) => format!("{code}: {message}"),
                    None => message.to_owned(),
                }
            })
            .unwrap_or_else(|| errors.to_string());
        return Some(first);
    }
    (!status.is_success()).then(|| format!("HTTP {status}"))
}

impl Client {
    /// Sends one request; returns its latency, the parsed body and the failure, if any.
    async fn send(&self, request: &Request) -> (Duration, Value, Option<String>) {
        let body = json!({ "query": request.query, "variables": request.variables });
        let started = Instant::now();
        let result = async {
            let response = self
                .http
                .post(&self.url)
                .header(reqwest::header::AUTHORIZATION, &self.authorization)
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let elapsed = started.elapsed();
        match result {
            Err(e) => (elapsed, Value::Null, Some(format!("request failed: {e}"))),
            Ok((status, bytes)) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => {
                    let failure = failure(status, &value);
                    (elapsed, value, failure)
                }
                Err(_) => (
                    elapsed,
                    Value::Null,
                    Some(format!(
                        "HTTP {status}, not JSON: {}",
                        String::from_utf8_lossy(&bytes)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    )),
                ),
            },
        }
    }
}

/// The cursor of page `DEEP_PAGES + 1` of the unfiltered list, by following
/// `endCursor`; `None` when the list is shorter or does not answer.
async fn deep_cursor(client: &Client) -> Option<String> {
    let mut after: Option<String> = None;
    for _ in 0..DEEP_PAGES {
        let request = Request::new("", list_query(None), json!({ "after": after }));
        let (_, body, failure) = client.send(&request).await;
        if let Some(failure) = failure {
            eprintln!("following endCursor for the deep list page: {failure}");
            return None;
        }
        let page = body.pointer("/data/conversations/pageInfo")?;
        if page.get("hasNextPage").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        after = Some(page.get("endCursor")?.as_str()?.to_owned());
    }
    after
}

/// Who to look for in `search-person`: an email contact written in
/// capitals, a WhatsApp number in Twilio's form, a signed-in name, read
/// from the newest conversations that have them.
async fn people(client: &Client) -> Option<Vec<(&'static str, String)>> {
    let mut who = Vec::new();
    for (channel, what) in [
        ("EMAIL", "contact"),
        ("WHATSAPP", "contact"),
        ("CHAT", "name"),
    ] {
        let query = format!(
            "{{ conversations(first: 50, filter: {{ channels: [{channel}] }}) {{ nodes {{ contact user {{ name }} }} }} }}"
        );
        let (_, body, failure) = client.send(&Request::new("", query, json!({}))).await;
        if let Some(failure) = failure {
            eprintln!("finding people to search for: {failure}");
            return None;
        }
        let nodes = body.pointer("/data/conversations/nodes")?.as_array()?;
        let found = nodes.iter().find_map(|n| match what {
            "contact" => n.get("contact")?.as_str().map(str::to_owned),
            _ => n.pointer("/user/name")?.as_str().map(str::to_owned),
        })?;
        who.push(match channel {
            "EMAIL" => ("contact, email in capitals", found.to_uppercase()),
            "WHATSAPP" => ("contact, whatsapp: form", format!("whatsapp:{found}")),
            _ => ("whole name, lower case", found.to_lowercase()),
        });
    }
    Some(who)
}

fn scenarios(deep: Option<String>, people: Option<Vec<(&'static str, String)>>) -> Vec<Scenario> {
    let first_page = json!({ "after": null });
    let mut list = vec![Request::new(
        "first page",
        list_query(None),
        first_page.clone(),
    )];
    if let Some(cursor) = deep {
        list.push(Request::new(
            "page 6",
            list_query(None),
            json!({ "after": cursor }),
        ));
    }
    let search = |term: &str| {
        vec![Request::new(
            "first page",
            list_query(Some(&format!("{{ search: {} }}", json!(term)))),
            first_page.clone(),
        )]
    };
    let now = chrono::Utc::now();
    let rfc3339 =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    vec![
        Scenario {
            name: "list",
            variants: list,
        },
        Scenario {
            name: "list-filtered",
            variants: vec![
                Request::new(
                    "WHATSAPP + CONTRACT_CREATED",
                    list_query(Some("{ channels: [WHATSAPP], badges: [CONTRACT_CREATED] }")),
                    first_page.clone(),
                ),
                Request::new(
                    "converted",
                    list_query(Some("{ converted: true }")),
                    first_page.clone(),
                ),
            ],
        },
        Scenario {
            name: "search-common",
            variants: search("parking"),
        },
        Scenario {
            name: "search-rare",
            variants: search(crate::corpus::RARE_TOKEN),
        },
        Scenario {
            name: "search-short",
            variants: search("wi"),
        },
        Scenario {
            name: "search-person",
            variants: people
                .unwrap_or_else(|| vec![("contact", "nobody@example.com".to_owned())])
                .into_iter()
                .map(|(variant, term)| {
                    Request::new(
                        variant,
                        list_query(Some(&format!("{{ search: {} }}", json!(term)))),
                        first_page.clone(),
                    )
                })
                .collect(),
        },
        Scenario {
            name: "stats",
            variants: vec![
                Request::new(
                    "all time",
                    format!("{{ conversionStats {{ {STATS_FIELDS} }} }}"),
                    json!({}),
                ),
                Request::new(
                    "last 30 days",
                    format!(
                        "{{ conversionStats(from: {}, to: {}) {{ {STATS_FIELDS} }} }}",
                        json!(rfc3339(now - chrono::Duration::days(30))),
                        json!(rfc3339(now)),
                    ),
                    json!({}),
                ),
            ],
        },
        Scenario {
            name: "stats-filtered",
            variants: filtered_stats(rfc3339(now - chrono::Duration::days(30))),
        },
        Scenario {
            name: "by-label",
            variants: vec![
                Request::new(
                    "prompt, all time",
                    format!(
                        "{{ conversionStats {{ byLabel(key: \"prompt\") {{ {BY_LABEL_FIELDS} }} }} }}"
                    ),
                    json!({}),
                ),
                Request::new(
                    "prompt, last 30 days",
                    format!(
                        "{{ conversionStats(from: {}, to: {}) {{ byLabel(key: \"prompt\") {{ {BY_LABEL_FIELDS} }} }} }}",
                        json!(rfc3339(now - chrono::Duration::days(30))),
                        json!(rfc3339(now)),
                    ),
                    json!({}),
                ),
            ],
        },
    ]
}

/// The header's stats for the filters an operator sets: over the last 30
/// days (`since`) and over all time.
fn filtered_stats(since: String) -> Vec<Request> {
    let filters = [
        ("channels CHAT+EMAIL", "channels: [CHAT, EMAIL]"),
        ("converted", "converted: true"),
        ("badge CONTRACT_CREATED", "badges: [CONTRACT_CREATED]"),
        ("prompt=v7", "labels: [{ key: \"prompt\", value: \"v7\" }]"),
        (
            "WhatsApp · \"parking\"",
            "channels: [WHATSAPP], search: \"parking\"",
        ),
        ("\"parking\"", "search: \"parking\""),
    ];
    let mut requests = Vec::new();
    for (period, dates) in [
        ("last 30 days", format!("startedAfter: {}, ", json!(since))),
        ("all time", String::new()),
    ] {
        for (name, filter) in filters {
            requests.push(Request {
                label: format!("{period} · {name}"),
                query: format!(
                    "{{ conversionStats(filter: {{ {dates}{filter} }}) {{ {HEADER_FIELDS} }} }}"
                ),
                variables: json!({}),
            });
        }
    }
    requests
}

async fn run_scenario(
    client: &Client,
    scenario: &Scenario,
    warmup: usize,
    requests: usize,
) -> Outcome {
    let variants = &scenario.variants;
    let mut outcome = Outcome {
        by_variant: vec![Vec::new(); variants.len()],
        ..Outcome::default()
    };
    for i in 0..warmup {
        let _ = client.send(&variants[i % variants.len()]).await;
    }
    for i in 0..requests {
        let (latency, body, failure) = client.send(&variants[i % variants.len()]).await;
        outcome.latencies.push(latency);
        outcome.by_variant[i % variants.len()].push(latency);
        if i == 0 {
            outcome.nodes = body
                .pointer("/data/conversations/nodes")
                .and_then(Value::as_array)
                .map(Vec::len);
        }
        if let Some(failure) = failure {
            outcome.errors += 1;
            outcome.first_error.get_or_insert(failure);
        }
    }
    outcome
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn mean_ms(latencies: &[Duration]) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / latencies.len() as f64
}

pub async fn run(args: QueriesArgs) -> Result<(), String> {
    if !args.server_bin.is_file() {
        return Err(format!(
            "no server binary at {}: build it first with `cargo build --release` (or pass --server-bin)",
            args.server_bin.display()
        ));
    }
    let all = scenarios(None, None);
    if let Some(unknown) = args
        .only
        .iter()
        .find(|name| !all.iter().any(|s| s.name == name.as_str()))
    {
        let names: Vec<&str> = all.iter().map(|s| s.name).collect();
        return Err(format!(
            "unknown scenario {unknown:?}; scenarios are {}",
            names.join(", ")
        ));
    }

    let addr = format!("127.0.0.1:{}", free_port()?);
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let mut server = Server::start(&args.server_bin, &args.database_url, &addr)?;
    let pid = server.pid();
    // The log is named here for the user to read, during the run or after.
    println!(
        "server {} pid {pid} on {base}, log {}",
        args.server_bin.display(),
        server.keep_log().display()
    );
    let ready_started = Instant::now();
    wait_ready(&http, &mut server, &base).await?;
    println!("ready after {:.1?}", ready_started.elapsed());
    let key = create_key(&args.server_bin, &args.database_url, TENANTS[0])?;
    let client = Client {
        http,
        url: format!("{base}/graphql"),
        authorization: format!("Bearer {key}"),
    };

    let deep = deep_cursor(&client).await;
    if deep.is_none() {
        println!("list: no cursor {DEEP_PAGES} pages deep; timing the first page only");
    }
    let people = people(&client).await;
    let selected: Vec<Scenario> = scenarios(deep, people)
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s.name))
        .collect();

    println!(
        "{} requests per scenario, one at a time, after {} warm-up requests",
        args.requests, args.warmup
    );
    let mut rows = Vec::new();
    for scenario in &selected {
        let outcome = run_scenario(&client, scenario, args.warmup, args.requests).await;
        if let Some(exit) = server.exited() {
            return Err(exit);
        }
        rows.push((scenario.name, outcome));
    }

    println!();
    println!(
        "{:<14} {:>8} {:>7} {:>9} {:>9} {:>9} {:>6}",
        "scenario", "requests", "errors", "p50 ms", "p99 ms", "mean ms", "nodes"
    );
    for (name, outcome) in &mut rows {
        outcome.latencies.sort();
        println!(
            "{:<14} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>6}",
            name,
            outcome.latencies.len(),
            outcome.errors,
            percentile_ms(&outcome.latencies, 50.0),
            percentile_ms(&outcome.latencies, 99.0),
            mean_ms(&outcome.latencies),
            outcome
                .nodes
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".to_owned()),
        );
    }
    println!();
    println!(
        "{:<14} {:<28} {:>8} {:>9} {:>9} {:>9}",
        "by variant", "", "requests", "p50 ms", "p99 ms", "mean ms"
    );
    for (name, outcome) in &mut rows {
        let scenario = selected.iter().find(|s| s.name == *name);
        let Some(scenario) = scenario.filter(|s| s.variants.len() > 1) else {
            continue;
        };
        for (request, latencies) in scenario.variants.iter().zip(&mut outcome.by_variant) {
            latencies.sort();
            println!(
                "{:<14} {:<28} {:>8} {:>9.2} {:>9.2} {:>9.2}",
                name,
                request.label,
                latencies.len(),
                percentile_ms(latencies, 50.0),
                percentile_ms(latencies, 99.0),
                mean_ms(latencies),
            );
        }
    }
    for (name, outcome) in &rows {
        if let Some(error) = &outcome.first_error {
            println!("{name}: {} error(s), first: {error}", outcome.errors);
        }
    }
    match server.memory() {
        Some((peak, current)) => println!("server peak RSS (VmHWM) {peak}, current {current}"),
        None => println!("server memory: /proc not readable"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&sorted, 50.0), 50.0);
        assert_eq!(percentile_ms(&sorted, 99.0), 99.0);
        assert_eq!(percentile_ms(&sorted[..1], 99.0), 1.0);
        assert!((mean_ms(&sorted) - 50.5).abs() < 1e-9);
    }

    #[test]
    fn graphql_errors_are_failures() {
        let ok = reqwest::StatusCode::OK;
        assert_eq!(failure(ok, &json!({ "data": {} })), None);
        assert_eq!(
            failure(
                ok,
                &json!({ "errors": [{ "message": "nope", "extensions": { "code": "FORBIDDEN" } }] })
            ),
            Some("FORBIDDEN: nope".to_owned())
        );
        assert_eq!(
            failure(reqwest::StatusCode::UNAUTHORIZED, &json!({})),
            Some("HTTP 401 Unauthorized".to_owned())
        );
    }

    #[test]
    fn queries_embed_filters() {
        assert!(
            list_query(Some("{ search: \"wi\" }"))
                .contains("conversations(first: 50, after: $after, filter: { search: \"wi\" })")
        );
        assert!(list_query(None).contains("conversations(first: 50, after: $after)"));
    }
}
