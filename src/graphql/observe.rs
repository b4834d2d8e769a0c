//! What a finished GraphQL response leaves behind: Prometheus figures per
//! operation (request count and latency, labelled by operation type and
//! root field (`query:conversations`), a bounded set, unlike client-chosen
//! operation names), one log line per internal error, over HTTP and
//! WebSocket alike, and, when traces are exported, a span per operation.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextSubscribe,
};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{Response, ServerResult, Variables};

use crate::telemetry::{self, CallerTrace, OperationNames, OperationSpan};

/// Installs [`OperationMetricsExtension`] on each request.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetricsExtension::default())
    }
}

#[derive(Default)]
pub struct OperationMetricsExtension {
    /// Labels of the document's operations, by operation name.
    operations: Mutex<Vec<(Option<String>, String)>>,
    /// The executed operation's name (as the client wrote it) and label.
    chosen: Mutex<Option<(Option<String>, String)>>,
}

fn label_of(document: &ExecutableDocument) -> Vec<(Option<String>, String)> {
    document
        .operations
        .iter()
        .map(|(name, op)| {
            let kind = match op.node.ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            };
            let root = op
                .node
                .selection_set
                .node
                .items
                .iter()
                .find_map(|s| match &s.node {
                    Selection::Field(f) => Some(f.node.name.node.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "fragment".to_owned());
            (name.map(|n| n.to_string()), format!("{kind}:{root}"))
        })
        .collect()
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationMetricsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        super::errors::log_causes(&response);
        let chosen = self.chosen.lock().ok().and_then(|c| c.clone());
        if chosen.is_none() {
            // Never executed (unparsable, invalid, over a limit): a span of
            // its own carries the code.
            if let Some(span) = operation_span(ctx, None) {
                finish(span, &response);
            }
        }
        let label = chosen.map_or_else(|| "invalid".to_owned(), |(_, label)| label);
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics::counter!("convtrack_graphql_requests_total", "operation" => label.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("convtrack_graphql_request_duration_seconds", "operation" => label)
            .record(started.elapsed().as_secs_f64());
        response
    }

    /// Every message of a WebSocket operation (subscription events, and
    /// queries sent over the socket) passes here, not through `request`.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .inspect(super::errors::log_causes)
            .boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Ok(mut ops) = self.operations.lock() {
            *ops = label_of(&document);
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let chosen = match (self.operations.lock(), self.chosen.lock()) {
            (Ok(ops), Ok(mut chosen)) => {
                *chosen = match operation_name {
                    Some(name) => ops
                        .iter()
                        .find(|(n, _)| n.as_deref() == Some(name))
                        .cloned(),
                    None => ops.first().cloned(),
                };
                chosen.clone()
            }
            _ => None,
        };
        let Some(span) = operation_span(ctx, chosen.as_ref()) else {
            // Not wrapped: that would move the whole execution's future once more.
            return next.run(ctx, operation_name).await;
        };
        let response = span.run(next.run(ctx, operation_name)).await;
        finish(span, &response);
        response
    }
}

/// An operation's span when traces are exported, named as OpenTelemetry's
/// GraphQL conventions ask (`query ListConversations`, or the type alone
/// for an anonymous one), with the tenant, under the caller's trace.
fn operation_span(
    ctx: &ExtensionContext<'_>,
    chosen: Option<&(Option<String>, String)>,
) -> Option<OperationSpan> {
    if !telemetry::traces_exported() {
        return None;
    }
    let kind = chosen.and_then(|(_, label)| label.split(':').next());
    let name = chosen.and_then(|(name, _)| name.as_deref());
    let title = match (kind, name) {
        (Some(kind), Some(name)) => format!("{kind} {name}"),
        (Some(kind), None) => kind.to_owned(),
        _ => "GraphQL request".to_owned(),
    };
    let names = OperationNames {
        title,
        kind,
        name,
        tenant: ctx
            .data_opt::<Arc<super::RequestContext>>()
            .map(|context| context.caller.tenant_id),
    };
    telemetry::start_operation(names, ctx.data_opt::<CallerTrace>())
}

/// Ends an operation's span with its outcome: the first error's code, if any.
fn finish(span: OperationSpan, response: &Response) {
    let code = response
        .errors
        .iter()
        .find_map(|e| match e.extensions.as_ref()?.get("code")? {
            async_graphql::Value::String(code) => Some(code.as_str()),
            _ => None,
        });
    span.finish(!response.errors.is_empty(), code);
}

#[cfg(test)]
mod tests {
    use std::io;

    use async_graphql::futures_util::Stream;
    use async_graphql::{EmptyMutation, Object, Schema, Subscription};

    use super::*;
    use crate::domain::locked;
    use crate::error::AppError;

    /// Log output kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            locked(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn ledger_on_fire() -> async_graphql::Error {
        AppError::internal_from("reading the ledger", io::Error::other("disk on fire")).into()
    }

    struct Broken;

    #[Object]
    impl Broken {
        async fn total(&self) -> async_graphql::Result<i32> {
            Err(ledger_on_fire())
        }
    }

    struct BrokenFeed;

    #[Subscription]
    impl BrokenFeed {
        async fn totals(&self) -> impl Stream<Item = async_graphql::Result<i32>> {
            futures_util::stream::once(async { Err(ledger_on_fire()) })
        }
    }

    #[tokio::test]
    async fn an_internal_error_is_logged_once_with_its_cause_over_http_and_websocket() {
        let schema = Schema::build(Broken, EmptyMutation, BrokenFeed)
            .extension(OperationMetrics)
            .finish();
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer({
                let captured = captured.clone();
                move || captured.clone()
            })
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let answer = schema.execute("{ total }").await;
        assert!(!answer.errors[0].message.contains("disk"), "{answer:?}");
        let events: Vec<Response> = schema
            .execute_stream("subscription { totals }")
            .collect()
            .await;
        assert!(!events[0].errors[0].message.contains("disk"), "{events:?}");

        let log = String::from_utf8(locked(&captured.0).clone()).expect("utf-8");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("disk on fire")).collect();
        assert_eq!(lines.len(), 2, "one line per response:\n{log}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains("reading the ledger: disk on fire")),
            "{log}"
        );
    }
}
