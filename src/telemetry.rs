//! Logs (tracing, to standard error so standard output stays for what
//! commands print; text or JSON lines), OpenTelemetry traces over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and the Prometheus recorder.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the
    /// event's fields (`message` among them) and its `span`/`spans`.
    Json,
}

/// What must be flushed before the process exits.
#[must_use = "call shutdown() before exiting, or queued spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued (waits for the exporter, bounded by its
    /// own timeout).
    pub fn shutdown(self) {
        if let Some(traces) = self.traces
            && let Err(e) = traces.shutdown()
        {
            eprintln!("convtrack: flushing traces: {e}");
        }
    }
}

static TRACES_ON: AtomicBool = AtomicBool::new(false);
/// The tracer SQL statement spans are made with (set when traces are on).
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Whether spans are exported: only then do requests read `traceparent`
/// and open per-operation and per-statement spans.
pub fn traces_exported() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// Installs the process's logging and, when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the OTLP trace
/// exporter (HTTP/protobuf over plain `http://`; the other standard
/// `OTEL_*` variables apply, `OTEL_SERVICE_NAME` defaulting to
/// `convtrack`). Call it before any Tokio runtime starts: the exporter's
/// HTTP client runs on a thread of its own.
pub fn init(format: LogFormat) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    let endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    // One filter for the whole subscriber: a filter per layer costs a lookup
    // on every enter and exit of every span (each poll of a request's
    // future). A second init (tests start many servers in one process)
    // keeps the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(log_layer(format))
        .try_init();
    let Some(endpoint) = endpoint else {
        return Ok(Telemetry { traces: None });
    };
    if !endpoint.trim_start().starts_with("http://") {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_ENDPOINT {endpoint:?}: traces go over plain http:// to a collector (usually beside convtrack, which forwards them with TLS); https is not built in"
        ));
    }
    // Spans are made with the OpenTelemetry API where an operation starts
    // and ends and after a statement ran, not by a layer over `tracing`:
    // such a layer works on every enter and exit of every span (each poll of
    // a request's future), and cost a traced list request 8.5% more
    // instructions.
    let provider = tracer_provider()?;
    let _ = TRACER.set(provider.tracer("convtrack"));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    TRACES_ON.store(true, Ordering::Relaxed);
    Ok(Telemetry {
        traces: Some(provider),
    })
}

/// Log lines on standard error, as text or JSON.
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => log.boxed(),
        LogFormat::Json => log.json().boxed(),
    }
}

fn tracer_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("convtrack");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The trace a request's caller named in its W3C `traceparent` (and
/// `tracestate`) headers.
pub struct CallerTrace(Context);

/// The caller's trace, read only when traces are exported.
pub fn caller_trace(headers: &axum::http::HeaderMap) -> Option<CallerTrace> {
    if !traces_exported() {
        return None;
    }
    Some(CallerTrace(opentelemetry::global::get_text_map_propagator(
        |propagator| propagator.extract(&opentelemetry_http::HeaderExtractor(headers)),
    )))
}

tokio::task_local! {
    /// The operation whose SQL statements run in this task (their parent).
    static OPERATION: Context;
}

/// What names a GraphQL operation's span.
pub struct OperationNames<'a> {
    /// `query RecentChats`, as OpenTelemetry's GraphQL conventions ask.
    pub title: String,
    pub kind: Option<&'a str>,
    pub name: Option<&'a str>,
    pub tenant: Option<uuid::Uuid>,
}

/// A GraphQL operation's span while it runs; [`OperationSpan::finish`]
/// ends it with the outcome.
pub struct OperationSpan {
    span: opentelemetry_sdk::trace::Span,
    /// The span as a parent, for the statements the operation runs.
    context: Context,
}

/// Starts an operation's span when traces are exported, under the caller's
/// trace if it sent one.
pub fn start_operation(
    names: OperationNames<'_>,
    caller: Option<&CallerTrace>,
) -> Option<OperationSpan> {
    if !traces_exported() {
        return None;
    }
    let tracer = TRACER.get()?;
    let mut attributes = Vec::with_capacity(3);
    if let Some(kind) = names.kind {
        attributes.push(KeyValue::new("graphql.operation.type", kind.to_owned()));
    }
    if let Some(name) = names.name {
        attributes.push(KeyValue::new("graphql.operation.name", name.to_owned()));
    }
    if let Some(tenant) = names.tenant {
        attributes.push(KeyValue::new("convtrack.tenant", tenant.to_string()));
    }
    let builder = tracer
        .span_builder(names.title)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes);
    let root = Context::new();
    let span = tracer.build_with_context(builder, caller.map_or(&root, |c| &c.0));
    let context = Context::new().with_remote_span_context(span.span_context().clone());
    Some(OperationSpan { span, context })
}

impl OperationSpan {
    /// Runs `work` with this span as the parent of the statements it runs.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        OPERATION.scope(self.context.clone(), work).await
    }

    /// Ends the span: `code` is the first error's `extensions.code`.
    pub fn finish(mut self, failed: bool, code: Option<&str>) {
        if let Some(code) = code {
            self.span
                .set_attribute(KeyValue::new("convtrack.code", code.to_owned()));
        }
        self.span.set_status(if failed {
            Status::error("the operation answered with errors")
        } else {
            Status::Ok
        });
        self.span.end();
    }
}

/// Spawns `task` under the current operation (a DataLoader batch a request
/// asked for), so that its statements show under that operation.
pub fn spawn_in_operation<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match OPERATION.try_with(Context::clone) {
        Ok(operation) => tokio::spawn(OPERATION.scope(operation, task)),
        Err(_) => tokio::spawn(task),
    }
}

/// A span for one SQL statement that just ran, under the operation that ran
/// it (a trace of its own for background work), when traces are exported.
/// Made after the fact from the statement's timing rather than by wrapping
/// its future, which would move every query's (large) future once more:
/// SeaORM's own span wrapper cost 7% of a list request without an exporter.
pub fn record_statement(system: &'static str, sql: &str, elapsed: Duration, failed: bool) {
    if !traces_exported() {
        return;
    }
    let Some(tracer) = TRACER.get() else { return };
    let parent = OPERATION.try_with(Context::clone).unwrap_or_default();
    let ended = SystemTime::now();
    let operation = sql
        .split_whitespace()
        .next()
        .unwrap_or("SQL")
        .to_ascii_uppercase();
    let builder = tracer
        .span_builder(operation.clone())
        .with_kind(SpanKind::Client)
        .with_start_time(ended.checked_sub(elapsed).unwrap_or(ended))
        .with_attributes([
            KeyValue::new("db.system", system),
            KeyValue::new("db.operation", operation),
            KeyValue::new("db.statement", sql.to_owned()),
        ]);
    let mut span = tracer.build_with_context(builder, &parent);
    if failed {
        span.set_status(Status::error("the statement failed"));
    }
    span.end_with_timestamp(ended);
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder. Installed once per process: tests
/// start many servers in one binary and the `metrics` facade has one global
/// recorder.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}
