//! The webhook delivery log (ADMIN), and replays from a cursor.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::context::request;
use super::pagination;
use super::webhook::{WebhookEndpoint, endpoint_uuid};
use crate::domain::cursor::EventCursor;
use crate::error::AppError;
use crate::service::webhook_deliveries::{self, Delivery};

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "webhook_deliveries::DeliveryStatus")]
pub enum DeliveryStatus {
    /// Queued, not tried yet.
    Pending,
    /// Answered with a 2xx.
    Delivered,
    /// Failed; tried again at `nextAttemptAt`.
    Retrying,
    /// Given up: the retry schedule ran out, the endpoint answered 410
    /// Gone, or a redelivery replaced it.
    Dead,
}

/// One feed event sent to one endpoint, with its attempts.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    /// The `webhook-id` header: the event's id, the same on every attempt.
    pub event_id: String,
    /// The event's feed cursor (for `redeliverWebhooks`, or
    /// `conversionsSince`).
    pub cursor: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// The status code of the last answer, if there was one.
    pub last_status_code: Option<i32>,
    /// Why the last attempt got no answer (a timeout, a refused
    /// connection, an address that is not public).
    pub last_error: Option<String>,
    /// How long the last attempt took, in milliseconds.
    pub last_latency_ms: Option<i32>,
    /// When it is tried again (RETRYING), or first (PENDING).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
}

impl WebhookDelivery {
    fn of(delivery: Delivery, tenant_id: uuid::Uuid) -> Self {
        WebhookDelivery {
            event_id: delivery.event_id,
            cursor: EventCursor {
                tenant_id,
                position: delivery.position,
            }
            .encode(),
            status: delivery.status.into(),
            attempts: delivery.attempts,
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error,
            last_latency_ms: delivery.last_latency_ms,
            next_attempt_at: delivery.next_attempt_at,
            created_at: delivery.created_at,
            finished_at: delivery.finished_at,
        }
    }
}

/// Replays an endpoint's events from a cursor.
#[derive(InputObject)]
pub struct RedeliverWebhooksInput {
    /// The endpoint's id.
    pub endpoint_id: ID,
    /// The cursor of the last event not to send again (a delivery's
    /// `cursor`, or any feed cursor of the tenant).
    pub after: String,
}

/// The result of `redeliverWebhooks`.
#[derive(SimpleObject)]
pub struct RedeliverWebhooksPayload {
    /// The endpoint, whose next delivery is the event after `after`.
    pub endpoint: WebhookEndpoint,
}

#[derive(Default)]
pub struct WebhookDeliveryQuery;

#[Object]
impl WebhookDeliveryQuery {
    /// An endpoint's deliveries, newest first (ADMIN only). Finished ones
    /// are kept for the server's retention window (30 days unless the
    /// operator sets `--webhook-retention-days`).
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        #[graphql(desc = "Only deliveries in this state.")] status: Option<DeliveryStatus>,
        #[graphql(desc = "Page size, 1 to 250; default 50.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last delivery already seen.")] after: Option<String>,
    ) -> Result<Connection<String, WebhookDelivery>> {
        let r = request(ctx)?;
        let first = pagination::WEBHOOK_DELIVERIES.first(first)?;
        let after_id = after
            .as_deref()
            .map(|a| {
                uuid::Uuid::parse_str(a)
                    .map_err(|_| AppError::BadInput("after is not a delivery cursor".into()))
            })
            .transpose()?;
        let page = r
            .services
            .webhook_deliveries(
                &r.caller,
                endpoint_uuid(&endpoint_id),
                status.map(Into::into),
                first,
                after_id,
            )
            .await?;
        let tenant_id = r.caller.tenant_id;
        Ok(pagination::connection(page, after.is_some(), |d| {
            (d.id.to_string(), WebhookDelivery::of(d, tenant_id))
        }))
    }
}

#[derive(Default)]
pub struct WebhookDeliveryMutation;

#[Object]
impl WebhookDeliveryMutation {
    /// Sends an endpoint's events again from the one after `after` (ADMIN
    /// only): its delivery under way, if any, is given up (DEAD), and the
    /// events after `after` are delivered again in order, under their
    /// same `webhook-id`s. A cursor of an event that does not exist yet is
    /// `BAD_USER_INPUT`.
    async fn redeliver_webhooks(
        &self,
        ctx: &Context<'_>,
        input: RedeliverWebhooksInput,
    ) -> Result<RedeliverWebhooksPayload> {
        let r = request(ctx)?;
        let endpoint = r
            .services
            .redeliver_webhooks(&r.caller, endpoint_uuid(&input.endpoint_id), &input.after)
            .await?;
        Ok(RedeliverWebhooksPayload {
            endpoint: endpoint.into(),
        })
    }
}
