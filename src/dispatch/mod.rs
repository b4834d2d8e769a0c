//! Webhook deliveries: every instance runs a dispatcher that keeps one
//! worker per enabled endpoint (so a slow endpoint never delays another).
//! A worker takes the endpoint's lease, then either tries its delivery
//! under way when it is due, or queues the endpoint's next feed event —
//! rendered through the GraphQL schema exactly as `conversionsSince`
//! answers it — and tries that. Events go out in cursor order, one at a
//! time per endpoint, at least once: a delivery is recorded only after its
//! attempt, so an instance killed mid-attempt leaves it to be tried again.

pub mod post;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_graphql::{Request, Variables};
use entity::{webhook_delivery, webhook_endpoint};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::domain::cursor::{EventCursor, FeedPosition};
use crate::domain::role::Role;
use crate::domain::webhook::signature_header;
use crate::error::AppError;
use crate::graphql::{ApiSchema, RequestContext};
use crate::service::webhook_deliveries::{Attempt, DeliveryStatus};
use crate::service::{Caller, Services};

/// How often the dispatcher looks for endpoints created, enabled,
/// disabled or deleted (on any instance).
const REFRESH: Duration = Duration::from_secs(1);

/// How often an idle worker looks again without news of its tenant's
/// feed: for retries falling due, and leases other instances let go.
const TICK: Duration = Duration::from_millis(250);

/// The event as a delivery's body carries it: what `conversionsSince`
/// answers for one event, every field.
const NEXT_EVENT: &str = "query($after: String, $kinds: [ConversionKind!], $channels: [Channel!]) {
  conversionsSince(after: $after, first: 1, kinds: $kinds, channels: $channels) {
    nodes {
      cursor change
      conversion { id kind source attributed unattributedReason linkAction status recordedAt
                   value { amount currency } record { type id url } }
      conversation { id sessionId channel startedAt labels { key value }
                     badges { kind label colour recordedAt value { amount currency } record { type id url } } }
    }
  }
}";

/// Starts this instance's dispatcher; it stops when `shutdown` turns true.
pub fn spawn(
    services: Services,
    tls: Arc<rustls::ClientConfig>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let dispatcher = Arc::new(Dispatcher {
        services,
        tls,
        schema: crate::graphql::schema_builder().finish(),
        owner: Uuid::now_v7(),
    });
    tokio::spawn(dispatcher.run(shutdown))
}

struct Dispatcher {
    services: Services,
    /// Renders events (no rate limit: the documents are ours).
    schema: ApiSchema,
    /// This instance, as the leases name it.
    owner: Uuid,
    /// The authorities HTTPS targets must chain to.
    tls: Arc<rustls::ClientConfig>,
}

/// What a worker's step leaves it to do.
enum Step {
    /// Go on at once: there may be more to deliver.
    Again,
    /// Wait for news or the next tick.
    Idle,
}

impl Dispatcher {
    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut workers: HashMap<Uuid, JoinHandle<()>> = HashMap::new();
        loop {
            match self.services.enabled_webhook_endpoints().await {
                Ok(enabled) => {
                    let wanted: HashMap<Uuid, Uuid> = enabled.into_iter().collect();
                    workers.retain(|id, worker| {
                        let keep = wanted.contains_key(id) && !worker.is_finished();
                        if !keep {
                            worker.abort();
                        }
                        keep
                    });
                    for (id, tenant_id) in wanted {
                        workers
                            .entry(id)
                            .or_insert_with(|| tokio::spawn(self.clone().work(id, tenant_id)));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook endpoints could not be read"),
            }
            let retention = self.services.webhook_retention();
            if let Err(e) = self.services.prune_webhook_deliveries(retention).await {
                tracing::warn!(error = %e, "old webhook deliveries could not be pruned");
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = shutdown.changed() => break,
            }
        }
        for worker in workers.into_values() {
            worker.abort();
        }
    }

    async fn work(self: Arc<Self>, endpoint_id: Uuid, tenant_id: Uuid) {
        let mut moved = self.services.events.watch(tenant_id);
        loop {
            match self.step(endpoint_id).await {
                Ok(Step::Again) => continue,
                Ok(Step::Idle) => {}
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint_id, error = %e, "webhook delivery step failed");
                }
            }
            tokio::select! {
                _ = moved.changed() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// One step for one endpoint, under its lease.
    async fn step(&self, endpoint_id: Uuid) -> Result<Step, AppError> {
        let services = &self.services;
        let Some(endpoint) = services
            .claim_webhook_endpoint(endpoint_id, self.owner)
            .await?
        else {
            return Ok(Step::Idle);
        };
        let delivery = match services.open_delivery(endpoint.id).await? {
            Some(delivery) => delivery,
            None => match self.next_event(&endpoint).await? {
                Some((position, body)) => {
                    match services.queue_delivery(&endpoint, position, body).await? {
                        Some(delivery) => delivery,
                        None => return Ok(Step::Again),
                    }
                }
                None => {
                    services
                        .release_webhook_endpoint(endpoint.id, self.owner)
                        .await?;
                    return Ok(Step::Idle);
                }
            },
        };
        let now = crate::domain::clock::to_micros(services.clock.now());
        if delivery.next_attempt_at.is_some_and(|due| due > now) {
            services
                .release_webhook_endpoint(endpoint.id, self.owner)
                .await?;
            return Ok(Step::Idle);
        }
        self.attempt(&endpoint, &delivery).await?;
        Ok(Step::Again)
    }

    /// The endpoint's next event after its place in the feed, matching its
    /// filters: its position and the body to send.
    async fn next_event(
        &self,
        endpoint: &webhook_endpoint::Model,
    ) -> Result<Option<(FeedPosition, String)>, AppError> {
        let after = EventCursor {
            tenant_id: endpoint.tenant_id,
            position: FeedPosition {
                xid: endpoint.feed_xid,
                seq: endpoint.feed_seq,
            },
        }
        .encode();
        let list = |stored: &Option<String>| match stored {
            Some(list) => json!(list.split(',').collect::<Vec<_>>()),
            None => Value::Null,
        };
        let variables = json!({
            "after": after,
            "kinds": list(&endpoint.kinds),
            "channels": list(&endpoint.channels),
        });
        let caller = Caller {
            tenant_id: endpoint.tenant_id,
            role: Role::Integrator,
            key_id: endpoint.id,
        };
        let request = Request::new(NEXT_EVENT)
            .variables(Variables::from_json(variables))
            .data(RequestContext::new(caller, self.services.clone()));
        let response = self.schema.execute(request).await;
        if let Some(error) = response.errors.first() {
            return Err(AppError::internal(format!(
                "rendering a webhook event: {}",
                error.message
            )));
        }
        let data = response
            .data
            .into_json()
            .map_err(|e| AppError::internal(format!("rendering a webhook event: {e}")))?;
        let Some(event) = data["conversionsSince"]["nodes"].get(0).cloned() else {
            return Ok(None);
        };
        let cursor = event["cursor"].as_str().unwrap_or_default();
        let position = EventCursor::decode_for(cursor, endpoint.tenant_id)
            .map_err(|e| AppError::internal_from("a rendered event's cursor", e))?
            .position;
        let change = event["change"]
            .as_str()
            .unwrap_or("RECORDED")
            .to_ascii_lowercase();
        let body = json!({
            "type": format!("conversion.{change}"),
            "timestamp": self.services.clock.now().to_rfc3339(),
            "data": event,
        });
        Ok(Some((position, body.to_string())))
    }

    /// Tries `delivery` once and records what came of it.
    async fn attempt(
        &self,
        endpoint: &webhook_endpoint::Model,
        delivery: &webhook_delivery::Model,
    ) -> Result<DeliveryStatus, AppError> {
        let services = &self.services;
        let url = url::Url::parse(&endpoint.url)
            .map_err(|e| AppError::internal_from("a stored webhook URL", e))?;
        // The receiver compares this with its own clock (Standard Webhooks
        // receivers refuse a timestamp more than 5 minutes off), so it is
        // the real time, whatever clock schedules the retries.
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        let secrets = services.signing_secrets(endpoint)?;
        let signers: Vec<_> = secrets.iter().collect();
        let body = Bytes::from(delivery.body.clone());
        let signature = signature_header(&signers, &delivery.event_id, timestamp, &body);
        let post = post::Post {
            url: &url,
            headers: vec![
                ("webhook-id", delivery.event_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ],
            body,
        };
        let (answer, latency) = post::send(post, services.webhook_allow_hosts(), &self.tls).await;
        let (status_code, error) = match answer {
            post::Answer::Status(code) => (Some(code), None),
            post::Answer::Failed(why) => (None, Some(why)),
        };
        let outcome = match status_code {
            Some(code) if (200..300).contains(&code) => "delivered",
            Some(_) => "refused",
            None => "unanswered",
        };
        metrics::counter!("convtrack_webhook_attempts_total", "endpoint" => endpoint.id.to_string(), "outcome" => outcome)
            .increment(1);
        let attempt = Attempt {
            status_code,
            error,
            latency_ms: i32::try_from(latency.as_millis()).unwrap_or(i32::MAX),
            jitter: jitter(),
        };
        let status = services.record_attempt(endpoint, delivery, attempt).await?;
        if status == DeliveryStatus::Dead {
            metrics::counter!("convtrack_webhook_dead_letters_total", "endpoint" => endpoint.id.to_string())
                .increment(1);
        }
        Ok(status)
    }
}

/// A number in `[0, 1)` that spreads retries.
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
