//! Logs (tracing, to standard error so standard output stays for what
//! commands print; text or JSON lines), OpenTelemetry traces over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and the Prometheus recorder.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
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
    let Some(endpoint) = endpoint else {
        // One filter for the whole subscriber: a filter per layer costs a
        // lookup on every enter and exit of every span (each poll of a
        // request's future).
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(format))
            .try_init();
        return Ok(Telemetry { traces: None });
    };
    if !endpoint.trim_start().starts_with("http://") {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_ENDPOINT {endpoint:?}: traces go over plain http:// to a collector (usually beside convtrack, which forwards them with TLS); https is not built in"
        ));
    }
    let provider = tracer_provider()?;
    let _ = TRACER.set(provider.tracer("convtrack"));
    // No source locations, threads, busy/idle times, targets or context
    // activation on each enter: with them, a traced list request ran a
    // quarter more instructions.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("convtrack"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_context_activation(false);
    // Still one filter: the GraphQL operation spans are DEBUG (so that
    // without an exporter nothing builds them) and are let through here;
    // the request spans are INFO, as RUST_LOG has it by default. Filters per
    // layer cost a lookup on every enter and exit (a tenth of a request).
    let filter = filter.add_directive(
        "convtrack::graphql::observe=debug"
            .parse()
            .map_err(|e| format!("a log filter: {e}"))?,
    );
    // A second init (tests start many servers in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(log_layer(format))
        .with(traces)
        .try_init();
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

/// Makes `span` a child of the trace a request names in its W3C
/// `traceparent` (and `tracestate`) headers, when traces are exported.
pub fn continue_remote_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !traces_exported() {
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
}

/// A span for one SQL statement that just ran, under the current span (the
/// GraphQL operation's), when traces are exported. Made after the fact
/// from the statement's timing rather than by wrapping its future, which
/// would move every query's (large) future once more: SeaORM's own span
/// wrapper cost 7% of a list request without an exporter.
pub fn record_statement(system: &'static str, sql: &str, elapsed: Duration, failed: bool) {
    if !traces_exported() {
        return;
    }
    let Some(tracer) = TRACER.get() else { return };
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = tracing::Span::current().context();
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
