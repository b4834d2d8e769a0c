//! Webhook endpoints (ADMIN): where a tenant's feed events are POSTed, with
//! filters like the subscription's and a signing secret shown once.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use super::{Caller, Services};
use crate::domain::channel::Channel;
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::conversion::ConversionKind;
use crate::domain::role::Operation;
use crate::domain::text;
use crate::domain::webhook::{self, WebhookSecret};
use crate::error::{AppError, stored};

/// Endpoints a tenant may have: each is a delivery loop of its own.
pub const MAX_ENDPOINTS: u64 = 20;

/// Longest description kept.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// How long a rotated-out secret still signs, so receivers can switch.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);

/// A webhook endpoint as integrators see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    /// Empty for every kind.
    pub kinds: Vec<ConversionKind>,
    /// Empty for every channel.
    pub channels: Vec<Channel>,
    pub description: String,
    pub enabled: bool,
    /// Why the server disabled it (a 410 Gone), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Its last attempt failed.
    pub failing: bool,
    /// It stops (disabled) after a dead letter instead of going on.
    pub pause_on_dead_letter: bool,
}

impl TryFrom<webhook_endpoint::Model> for WebhookEndpoint {
    type Error = AppError;

    fn try_from(row: webhook_endpoint::Model) -> Result<Self, AppError> {
        Ok(WebhookEndpoint {
            id: row.id,
            url: row.url,
            kinds: stored_list("webhook_endpoint.kinds", row.kinds.as_deref())?,
            channels: stored_list("webhook_endpoint.channels", row.channels.as_deref())?,
            description: row.description,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            created_at: from_micros(row.created_at),
            last_success_at: row.last_success_at.map(from_micros),
            failing: row.consecutive_failures > 0,
            pause_on_dead_letter: row.pause_on_dead,
        })
    }
}

/// A comma-separated stored list; none stored for "every".
fn stored_list<T: std::str::FromStr<Err = crate::domain::InvalidInput>>(
    column: &str,
    list: Option<&str>,
) -> Result<Vec<T>, AppError> {
    list.into_iter()
        .flat_map(|list| list.split(','))
        .filter(|item| !item.is_empty())
        .map(|item| stored(column, item))
        .collect()
}

/// A list to store: none for an empty one ("every").
fn list_to_store<T>(items: &[T], name: impl Fn(&T) -> &'static str) -> Option<String> {
    let mut names: Vec<&str> = items.iter().map(name).collect();
    names.sort_unstable();
    names.dedup();
    (!names.is_empty()).then(|| names.join(","))
}

/// What `createWebhookEndpoint` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub kinds: Vec<ConversionKind>,
    pub channels: Vec<Channel>,
    pub description: Option<String>,
    pub pause_on_dead_letter: bool,
}

/// What `updateWebhookEndpoint` changes; `None` keeps what it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub kinds: Option<Vec<ConversionKind>>,
    pub channels: Option<Vec<Channel>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub pause_on_dead_letter: Option<bool>,
}

/// An endpoint with its secret, shown once (on creation and rotation).
#[derive(Debug, Clone)]
pub struct EndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: WebhookSecret,
}

impl Services {
    #[tracing::instrument(skip(self, caller, new), fields(tenant = %caller.tenant_id))]
    pub async fn create_webhook_endpoint(
        &self,
        caller: &Caller,
        new: NewEndpoint,
    ) -> Result<EndpointWithSecret, AppError> {
        caller.require(Operation::ManageWebhooks, "manage webhook endpoints")?;
        let url = webhook::parse_target(&new.url, &self.webhook_allow_hosts)?;
        let description = description(new.description.as_deref())?;
        let existing = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(caller.tenant_id))
            .count(&self.db)
            .await?;
        if existing >= MAX_ENDPOINTS {
            return Err(AppError::BadInput(format!(
                "a tenant may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
            )));
        }
        let secret = WebhookSecret::generate()?;
        // Events from now on: the newest committed one is already past.
        let start = self.settled_latest(caller.tenant_id).await?;
        let txn = self.begin_write().await?;
        let row = webhook_endpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(caller.tenant_id),
            url: Set(url.to_string()),
            kinds: Set(list_to_store(&new.kinds, |k| k.as_str())),
            channels: Set(list_to_store(&new.channels, |c| c.as_str())),
            description: Set(description),
            enabled: Set(true),
            disabled_reason: Set(None),
            pause_on_dead: Set(new.pause_on_dead_letter),
            secret: Set(secret.to_text()),
            previous_secret: Set(None),
            previous_secret_until: Set(None),
            created_at: Set(to_micros(self.clock.now())),
            last_success_at: Set(None),
            consecutive_failures: Set(0),
            feed_xid: Set(start.xid),
            feed_seq: Set(start.seq),
            lease_owner: Set(None),
            lease_until: Set(None),
        }
        .insert(&*txn)
        .await?;
        txn.commit().await?;
        tracing::info!(endpoint = %row.id, "webhook endpoint created");
        Ok(EndpointWithSecret {
            endpoint: row.try_into()?,
            secret,
        })
    }

    /// The tenant's endpoints, oldest first.
    pub async fn webhook_endpoints(
        &self,
        caller: &Caller,
    ) -> Result<Vec<WebhookEndpoint>, AppError> {
        caller.require(Operation::ManageWebhooks, "read webhook endpoints")?;
        let rows = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(caller.tenant_id))
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .order_by_asc(webhook_endpoint::Column::Id)
            .all(&self.db)
            .await?;
        rows.into_iter().map(WebhookEndpoint::try_from).collect()
    }

    #[tracing::instrument(skip(self, caller, change), fields(tenant = %caller.tenant_id))]
    pub async fn update_webhook_endpoint(
        &self,
        caller: &Caller,
        id: Option<Uuid>,
        change: EndpointChange,
    ) -> Result<WebhookEndpoint, AppError> {
        caller.require(Operation::ManageWebhooks, "manage webhook endpoints")?;
        let row = self.endpoint_row(caller, id).await?;
        let url = change
            .url
            .as_deref()
            .map(|url| webhook::parse_target(url, &self.webhook_allow_hosts))
            .transpose()?;
        let description = change
            .description
            .as_deref()
            .map(|d| description(Some(d)))
            .transpose()?;
        let mut active = row.into_active_model();
        if let Some(url) = url {
            active.url = Set(url.to_string());
        }
        if let Some(kinds) = change.kinds {
            active.kinds = Set(list_to_store(&kinds, |k| k.as_str()));
        }
        if let Some(channels) = change.channels {
            active.channels = Set(list_to_store(&channels, |c| c.as_str()));
        }
        if let Some(description) = description {
            active.description = Set(description);
        }
        if let Some(pause) = change.pause_on_dead_letter {
            active.pause_on_dead = Set(pause);
        }
        if let Some(enabled) = change.enabled {
            active.enabled = Set(enabled);
            if enabled {
                // Enabled again by hand: whatever disabled it is over.
                active.disabled_reason = Set(None);
                active.consecutive_failures = Set(0);
            }
        }
        let txn = self.begin_write().await?;
        let row = active.update(&*txn).await?;
        txn.commit().await?;
        row.try_into()
    }

    /// A new secret; the one before signs too for [`ROTATION_OVERLAP`].
    #[tracing::instrument(skip(self, caller), fields(tenant = %caller.tenant_id))]
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: Option<Uuid>,
    ) -> Result<EndpointWithSecret, AppError> {
        caller.require(Operation::ManageWebhooks, "manage webhook endpoints")?;
        let row = self.endpoint_row(caller, id).await?;
        let secret = WebhookSecret::generate()?;
        let until = to_micros(self.clock.now() + ROTATION_OVERLAP);
        let mut active = row.clone().into_active_model();
        active.previous_secret = Set(Some(row.secret.clone()));
        active.previous_secret_until = Set(Some(until));
        active.secret = Set(secret.to_text());
        let txn = self.begin_write().await?;
        let row = active.update(&*txn).await?;
        txn.commit().await?;
        Ok(EndpointWithSecret {
            endpoint: row.try_into()?,
            secret,
        })
    }

    /// Deletes the endpoint and its delivery log; true when it existed.
    #[tracing::instrument(skip(self, caller), fields(tenant = %caller.tenant_id))]
    pub async fn delete_webhook_endpoint(
        &self,
        caller: &Caller,
        id: Option<Uuid>,
    ) -> Result<(), AppError> {
        caller.require(Operation::ManageWebhooks, "manage webhook endpoints")?;
        let row = self.endpoint_row(caller, id).await?;
        let txn = self.begin_write().await?;
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(row.id))
            .exec(&*txn)
            .await?;
        webhook_endpoint::Entity::delete_by_id(row.id)
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        tracing::info!(endpoint = %row.id, "webhook endpoint deleted");
        Ok(())
    }

    /// The caller's tenant's endpoint `id`; `NOT_FOUND` for another
    /// tenant's or an id of none.
    pub(super) async fn endpoint_row(
        &self,
        caller: &Caller,
        id: Option<Uuid>,
    ) -> Result<webhook_endpoint::Model, AppError> {
        let id = id.ok_or(AppError::NotFound("webhook endpoint"))?;
        webhook_endpoint::Entity::find_by_id(id)
            .filter(webhook_endpoint::Column::TenantId.eq(caller.tenant_id))
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("webhook endpoint"))
    }
}

/// A description: optional, trimmed, at most [`MAX_DESCRIPTION_CHARS`].
fn description(given: Option<&str>) -> Result<String, AppError> {
    Ok(text::optional("description", given, MAX_DESCRIPTION_CHARS)?.unwrap_or_default())
}
