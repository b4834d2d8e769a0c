//! Webhook endpoints (ADMIN): where the tenant's feed events are POSTed,
//! signed as the Standard Webhooks specification says (README "Webhooks").

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::context::request;
use super::enums::{Channel, ConversionKind};
use crate::service::webhooks::{self, EndpointChange, EndpointWithSecret, NewEndpoint};

/// Where the tenant's feed events are POSTed.
#[derive(SimpleObject)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: ID,
    /// The URL deliveries are POSTed to.
    pub url: String,
    /// The outcome kinds it receives; empty for every kind.
    pub kinds: Vec<ConversionKind>,
    /// The channels it receives; empty for every channel (an unattributed
    /// conversion, on no channel, only reaches endpoints without one).
    pub channels: Vec<Channel>,
    /// The operator's note about it.
    pub description: String,
    /// False once disabled, by hand or by the server (a 410 Gone answer).
    pub enabled: bool,
    /// Why the server disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last answered a delivery with a 2xx.
    pub last_success_at: Option<DateTime<Utc>>,
    /// True when its last attempt failed.
    pub failing: bool,
    /// True when a dead letter disables it (deliveries stop until it is
    /// enabled again); false (the default) when the next event goes on.
    pub pause_on_dead_letter: bool,
}

impl From<webhooks::WebhookEndpoint> for WebhookEndpoint {
    fn from(e: webhooks::WebhookEndpoint) -> Self {
        WebhookEndpoint {
            id: ID(e.id.to_string()),
            url: e.url,
            kinds: e.kinds.into_iter().map(Into::into).collect(),
            channels: e.channels.into_iter().map(Into::into).collect(),
            description: e.description,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
            last_success_at: e.last_success_at,
            failing: e.failing,
            pause_on_dead_letter: e.pause_on_dead_letter,
        }
    }
}

/// A new endpoint.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// An https:// URL on a public host (hosts the operator allows with
    /// `--webhook-allow-hosts` may be http and private). Up to 2,000
    /// characters.
    pub url: String,
    /// Only these outcome kinds; omitted or empty for every kind.
    pub kinds: Option<Vec<ConversionKind>>,
    /// Only these channels; omitted or empty for every channel.
    pub channels: Option<Vec<Channel>>,
    /// A note for the operator, up to 500 characters.
    pub description: Option<String>,
    /// Stop after a dead letter rather than go on; false by default.
    pub pause_on_dead_letter: Option<bool>,
}

/// A new endpoint and its signing secret.
#[derive(SimpleObject)]
pub struct CreateWebhookEndpointPayload {
    /// The endpoint. It receives the events committed from now on.
    pub endpoint: WebhookEndpoint,
    /// The signing secret, `whsec_…`: shown this once.
    pub secret: String,
}

/// Changes to an endpoint; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    /// The endpoint's id.
    pub id: ID,
    /// A new URL, under the same rules as on creation.
    pub url: Option<String>,
    /// New kinds; empty for every kind.
    pub kinds: Option<Vec<ConversionKind>>,
    /// New channels; empty for every channel.
    pub channels: Option<Vec<Channel>>,
    /// A new note.
    pub description: Option<String>,
    /// False stops deliveries; true starts them again where they stopped.
    pub enabled: Option<bool>,
    /// Stop after a dead letter rather than go on.
    pub pause_on_dead_letter: Option<bool>,
}

/// An endpoint named by id.
#[derive(InputObject)]
pub struct WebhookEndpointInput {
    /// The endpoint's id.
    pub id: ID,
}

/// An endpoint with its new signing secret.
#[derive(SimpleObject)]
pub struct RotateWebhookSecretPayload {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// The new secret, `whsec_…`: shown this once. The one before it signs
    /// too (a second signature in the header) for 24 hours.
    pub secret: String,
}

/// The result of `deleteWebhookEndpoint`.
#[derive(SimpleObject)]
pub struct DeleteWebhookEndpointPayload {
    /// The id of the endpoint deleted.
    pub id: ID,
}

impl From<EndpointWithSecret> for CreateWebhookEndpointPayload {
    fn from(made: EndpointWithSecret) -> Self {
        CreateWebhookEndpointPayload {
            endpoint: made.endpoint.into(),
            secret: made.secret.to_text(),
        }
    }
}

/// The endpoint an id names; none for anything else.
pub(super) fn endpoint_uuid(id: &ID) -> Option<Uuid> {
    Uuid::parse_str(id.as_str()).ok()
}

fn kinds(
    given: Option<Vec<ConversionKind>>,
) -> Option<Vec<crate::domain::conversion::ConversionKind>> {
    given.map(|kinds| kinds.into_iter().map(Into::into).collect())
}

fn channels(given: Option<Vec<Channel>>) -> Option<Vec<crate::domain::channel::Channel>> {
    given.map(|channels| channels.into_iter().map(Into::into).collect())
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The tenant's webhook endpoints, oldest first (ADMIN only).
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let r = request(ctx)?;
        let endpoints = r.services.webhook_endpoints(&r.caller).await?;
        Ok(endpoints.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Creates an endpoint (ADMIN only) that receives the feed's events
    /// committed from now on, and returns its signing secret once. A
    /// tenant has at most 20.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<CreateWebhookEndpointPayload> {
        let r = request(ctx)?;
        let made = r
            .services
            .create_webhook_endpoint(
                &r.caller,
                NewEndpoint {
                    url: input.url,
                    kinds: kinds(input.kinds).unwrap_or_default(),
                    channels: channels(input.channels).unwrap_or_default(),
                    description: input.description,
                    pause_on_dead_letter: input.pause_on_dead_letter.unwrap_or(false),
                },
            )
            .await?;
        Ok(made.into())
    }

    /// Changes an endpoint (ADMIN only).
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateWebhookEndpointInput,
    ) -> Result<WebhookEndpoint> {
        let r = request(ctx)?;
        let change = EndpointChange {
            url: input.url,
            kinds: kinds(input.kinds),
            channels: channels(input.channels),
            description: input.description,
            enabled: input.enabled,
            pause_on_dead_letter: input.pause_on_dead_letter,
        };
        let endpoint = r
            .services
            .update_webhook_endpoint(&r.caller, endpoint_uuid(&input.id), change)
            .await?;
        Ok(endpoint.into())
    }

    /// Gives an endpoint a new signing secret (ADMIN only); the old one
    /// signs too for 24 hours.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<RotateWebhookSecretPayload> {
        let r = request(ctx)?;
        let rotated = r
            .services
            .rotate_webhook_secret(&r.caller, endpoint_uuid(&input.id))
            .await?;
        Ok(RotateWebhookSecretPayload {
            endpoint: rotated.endpoint.into(),
            secret: rotated.secret.to_text(),
        })
    }

    /// Deletes an endpoint and its delivery log (ADMIN only).
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<DeleteWebhookEndpointPayload> {
        let r = request(ctx)?;
        r.services
            .delete_webhook_endpoint(&r.caller, endpoint_uuid(&input.id))
            .await?;
        Ok(DeleteWebhookEndpointPayload { id: input.id })
    }
}
