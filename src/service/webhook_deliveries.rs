//! The state of webhook deliveries, for the dispatcher (`crate::dispatch`)
//! that makes the attempts: which endpoint an instance may deliver to now
//! (a lease in the database, so that one attempt at a time is made per
//! endpoint across instances), the delivery under way, the next event
//! queued in cursor order, and what each attempt came to.

use chrono::TimeDelta;
use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::Services;
use crate::domain::clock::to_micros;
use crate::domain::cursor::FeedPosition;
use crate::domain::webhook::{WebhookSecret, retry_delay};
use crate::error::AppError;

/// How long a claim on an endpoint lasts without being renewed: an
/// instance that died mid-delivery holds it at most this long.
pub const LEASE: TimeDelta = TimeDelta::seconds(30);

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Queued; not tried yet.
    Pending,
    Delivered,
    /// Failed; tried again at `next_attempt_at`.
    Retrying,
    /// Given up: the schedule ran out (or the endpoint answered 410).
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Retrying,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Retrying => "RETRYING",
            DeliveryStatus::Dead => "DEAD",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = crate::domain::InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                crate::domain::InvalidInput::new(format!("unknown delivery status {s:?}"))
            })
    }
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The status the endpoint answered with, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed without an answer.
    pub error: Option<String>,
    pub latency_ms: i32,
    /// In `[0, 1)`: spreads the retry over ±20%.
    pub jitter: f64,
}

impl Services {
    /// Enabled endpoints of every tenant: (endpoint, tenant).
    pub async fn enabled_webhook_endpoints(&self) -> Result<Vec<(Uuid, Uuid)>, AppError> {
        let rows = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|e| (e.id, e.tenant_id)).collect())
    }

    /// Claims (or renews) `owner`'s lease on an enabled endpoint; the
    /// endpoint when this instance may deliver to it now.
    pub async fn claim_webhook_endpoint(
        &self,
        id: Uuid,
        owner: Uuid,
    ) -> Result<Option<webhook_endpoint::Model>, AppError> {
        let now = self.clock.now();
        // A lease held with more than half of it left is not renewed: a
        // write per step would cost more than the deliveries.
        let held = webhook_endpoint::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|e| {
                e.enabled
                    && e.lease_owner == Some(owner)
                    && e.lease_until
                        .is_some_and(|until| until > to_micros(now + LEASE / 2))
            });
        if held.is_some() {
            return Ok(held);
        }
        let txn = self.begin_write().await?;
        let claimed = webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::LeaseOwner, Expr::value(owner))
            .col_expr(
                webhook_endpoint::Column::LeaseUntil,
                Expr::value(to_micros(now + LEASE)),
            )
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .filter(
                Condition::any()
                    .add(webhook_endpoint::Column::LeaseUntil.is_null())
                    .add(webhook_endpoint::Column::LeaseUntil.lt(to_micros(now)))
                    .add(webhook_endpoint::Column::LeaseOwner.eq(owner)),
            )
            .exec(&*txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Ok(None);
        }
        let endpoint = webhook_endpoint::Entity::find_by_id(id).one(&*txn).await?;
        txn.commit().await?;
        Ok(endpoint)
    }

    /// Gives the endpoint back, for another instance to take at once.
    pub async fn release_webhook_endpoint(&self, id: Uuid, owner: Uuid) -> Result<(), AppError> {
        let txn = self.begin_write().await?;
        webhook_endpoint::Entity::update_many()
            .col_expr(
                webhook_endpoint::Column::LeaseUntil,
                Expr::value(None::<i64>),
            )
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::LeaseOwner.eq(owner))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The endpoint's delivery under way (not yet delivered or given up).
    pub async fn open_delivery(
        &self,
        endpoint_id: Uuid,
    ) -> Result<Option<webhook_delivery::Model>, AppError> {
        Ok(webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .filter(webhook_delivery::Column::Status.is_in([
                DeliveryStatus::Pending.as_str(),
                DeliveryStatus::Retrying.as_str(),
            ]))
            .order_by_asc(webhook_delivery::Column::FeedXid)
            .order_by_asc(webhook_delivery::Column::FeedSeq)
            .one(&self.db)
            .await?)
    }

    /// Queues the event at `position` for `endpoint` (at its place in the
    /// feed, which moves to it); none when the endpoint moved meanwhile
    /// (another instance queued it).
    pub async fn queue_delivery(
        &self,
        endpoint: &webhook_endpoint::Model,
        position: FeedPosition,
        body: String,
    ) -> Result<Option<webhook_delivery::Model>, AppError> {
        let now = to_micros(self.clock.now());
        let txn = self.begin_write().await?;
        let moved = webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::FeedXid, Expr::value(position.xid))
            .col_expr(webhook_endpoint::Column::FeedSeq, Expr::value(position.seq))
            .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
            .filter(webhook_endpoint::Column::FeedXid.eq(endpoint.feed_xid))
            .filter(webhook_endpoint::Column::FeedSeq.eq(endpoint.feed_seq))
            .exec(&*txn)
            .await?;
        if moved.rows_affected != 1 {
            return Ok(None);
        }
        let delivery = webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(endpoint.tenant_id),
            endpoint_id: Set(endpoint.id),
            event_id: Set(event_id(position)),
            body: Set(body),
            feed_xid: Set(position.xid),
            feed_seq: Set(position.seq),
            status: Set(DeliveryStatus::Pending.as_str().to_owned()),
            attempts: Set(0),
            last_status_code: Set(None),
            last_error: Set(None),
            last_latency_ms: Set(None),
            next_attempt_at: Set(Some(now)),
            created_at: Set(now),
            finished_at: Set(None),
        }
        .insert(&*txn)
        .await?;
        txn.commit().await?;
        Ok(Some(delivery))
    }

    /// The secrets that sign a delivery to `endpoint` now: its own, and the
    /// one before a rotation for a day after it.
    pub fn signing_secrets(
        &self,
        endpoint: &webhook_endpoint::Model,
    ) -> Result<Vec<WebhookSecret>, AppError> {
        let now = to_micros(self.clock.now());
        let mut secrets = vec![stored_secret(&endpoint.secret)?];
        if let (Some(previous), Some(until)) =
            (&endpoint.previous_secret, endpoint.previous_secret_until)
            && now < until
        {
            secrets.push(stored_secret(previous)?);
        }
        Ok(secrets)
    }

    /// Records what an attempt came to, on the delivery and its endpoint:
    /// delivered on a 2xx; on 410 Gone, given up and the endpoint
    /// disabled; otherwise tried again on the schedule, or given up (and
    /// the endpoint paused, if it asks for that) once the schedule is over.
    pub async fn record_attempt(
        &self,
        endpoint: &webhook_endpoint::Model,
        delivery: &webhook_delivery::Model,
        attempt: Attempt,
    ) -> Result<DeliveryStatus, AppError> {
        let now = self.clock.now();
        let attempts = delivery.attempts + 1;
        let succeeded = attempt.status_code.is_some_and(|s| (200..300).contains(&s));
        let gone = attempt.status_code == Some(410);
        let retry_at = (!succeeded && !gone)
            .then(|| retry_delay(attempts.unsigned_abs(), attempt.jitter))
            .flatten()
            .map(|delay| delay.mul_f64(self.webhook_retry_scale))
            .and_then(|delay| TimeDelta::from_std(delay).ok())
            .map(|delay| to_micros(now + delay));
        let status = match (succeeded, retry_at) {
            (true, _) => DeliveryStatus::Delivered,
            (false, Some(_)) => DeliveryStatus::Retrying,
            (false, None) => DeliveryStatus::Dead,
        };
        let finished = matches!(status, DeliveryStatus::Delivered | DeliveryStatus::Dead);
        let txn = self.begin_write().await?;
        let mut row: webhook_delivery::ActiveModel = delivery.clone().into();
        row.status = Set(status.as_str().to_owned());
        row.attempts = Set(attempts);
        row.last_status_code = Set(attempt.status_code.map(i32::from));
        row.last_error = Set(attempt.error.clone());
        row.last_latency_ms = Set(Some(attempt.latency_ms));
        row.next_attempt_at = Set(retry_at);
        row.finished_at = Set(finished.then_some(to_micros(now)));
        row.update(&*txn).await?;
        let mut update = webhook_endpoint::Entity::update_many()
            .filter(webhook_endpoint::Column::Id.eq(endpoint.id));
        if succeeded {
            update = update
                .col_expr(
                    webhook_endpoint::Column::LastSuccessAt,
                    Expr::value(to_micros(now)),
                )
                .col_expr(
                    webhook_endpoint::Column::ConsecutiveFailures,
                    Expr::value(0),
                );
        } else {
            update = update.col_expr(
                webhook_endpoint::Column::ConsecutiveFailures,
                Expr::col(webhook_endpoint::Column::ConsecutiveFailures).add(1),
            );
        }
        let disabled = if gone {
            Some("the endpoint answered 410 Gone")
        } else if status == DeliveryStatus::Dead && endpoint.pause_on_dead {
            Some("paused after a dead letter")
        } else {
            None
        };
        if let Some(reason) = disabled {
            update = update
                .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
                .col_expr(
                    webhook_endpoint::Column::DisabledReason,
                    Expr::value(reason.to_owned()),
                );
        }
        update.exec(&*txn).await?;
        txn.commit().await?;
        Ok(status)
    }
}

/// The `webhook-id` of the event at `position`: the same for every
/// attempt and every endpoint.
pub fn event_id(position: FeedPosition) -> String {
    format!("evt_{}_{}", position.xid, position.seq)
}

fn stored_secret(text: &str) -> Result<WebhookSecret, AppError> {
    WebhookSecret::parse(text).map_err(|e| AppError::internal_from("stored webhook secret", e))
}

/// One delivery as the operator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: String,
    /// The event's place in the feed (its cursor, for `redeliverWebhooks`).
    pub position: FeedPosition,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TryFrom<webhook_delivery::Model> for Delivery {
    type Error = AppError;

    fn try_from(row: webhook_delivery::Model) -> Result<Self, AppError> {
        use crate::domain::clock::from_micros;
        Ok(Delivery {
            id: row.id,
            event_id: row.event_id,
            position: FeedPosition {
                xid: row.feed_xid,
                seq: row.feed_seq,
            },
            status: crate::error::stored("webhook_delivery.status", &row.status)?,
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            last_latency_ms: row.last_latency_ms,
            next_attempt_at: row.next_attempt_at.map(from_micros),
            created_at: from_micros(row.created_at),
            finished_at: row.finished_at.map(from_micros),
        })
    }
}

/// How long finished deliveries are kept unless the operator says.
pub const DEFAULT_RETENTION: TimeDelta = TimeDelta::days(30);

/// Finished deliveries pruned per pass: a pass never holds the database
/// long, however much is due.
const PRUNE_BATCH: u64 = 500;

impl Services {
    /// An endpoint's deliveries, newest first, after the delivery `after`
    /// (ADMIN).
    pub async fn webhook_deliveries(
        &self,
        caller: &super::Caller,
        endpoint_id: Option<Uuid>,
        status: Option<DeliveryStatus>,
        first: u64,
        after: Option<Uuid>,
    ) -> Result<super::Page<Delivery>, AppError> {
        caller.require(
            crate::domain::role::Operation::ManageWebhooks,
            "read webhook deliveries",
        )?;
        let endpoint = self.endpoint_row(caller, endpoint_id).await?;
        let mut query = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint.id));
        if let Some(status) = status {
            query = query.filter(webhook_delivery::Column::Status.eq(status.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(webhook_delivery::Column::Id.lt(after));
        }
        let rows = sea_orm::QuerySelect::limit(
            query.order_by_desc(webhook_delivery::Column::Id),
            first + 1,
        )
        .all(&self.db)
        .await?;
        let deliveries = rows
            .into_iter()
            .map(Delivery::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::Page::from_overfetch(deliveries, first))
    }

    /// Sends an endpoint's events again from the one after `after` (a
    /// feed cursor of the caller's tenant, at most the newest event): its
    /// delivery under way, if any, is given up, and its place in the feed
    /// moves back (or forward) to `after`.
    pub async fn redeliver_webhooks(
        &self,
        caller: &super::Caller,
        endpoint_id: Option<Uuid>,
        after: &str,
    ) -> Result<super::webhooks::WebhookEndpoint, AppError> {
        caller.require(
            crate::domain::role::Operation::ManageWebhooks,
            "redeliver webhooks",
        )?;
        let endpoint = self.endpoint_row(caller, endpoint_id).await?;
        let position =
            crate::domain::cursor::EventCursor::decode_for(after, caller.tenant_id)?.position;
        if position > self.settled_latest(caller.tenant_id).await? {
            return Err(AppError::BadInput(
                "after names an event that does not exist yet".into(),
            ));
        }
        let now = to_micros(self.clock.now());
        let txn = self.begin_write().await?;
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Dead.as_str()),
            )
            .col_expr(
                webhook_delivery::Column::LastError,
                Expr::value("given up for a redelivery"),
            )
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(None::<i64>),
            )
            .col_expr(webhook_delivery::Column::FinishedAt, Expr::value(now))
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint.id))
            .filter(webhook_delivery::Column::Status.is_in([
                DeliveryStatus::Pending.as_str(),
                DeliveryStatus::Retrying.as_str(),
            ]))
            .exec(&*txn)
            .await?;
        let mut row: webhook_endpoint::ActiveModel = endpoint.into();
        row.feed_xid = Set(position.xid);
        row.feed_seq = Set(position.seq);
        let row = row.update(&*txn).await?;
        txn.commit().await?;
        tracing::info!(endpoint = %row.id, "webhooks redelivered from a cursor");
        row.try_into()
    }

    /// Deletes up to a batch of deliveries finished longer than
    /// `retention` ago; how many.
    pub async fn prune_webhook_deliveries(&self, retention: TimeDelta) -> Result<u64, AppError> {
        let cutoff = to_micros(self.clock.now() - retention);
        let old: Vec<Uuid> = sea_orm::QuerySelect::limit(
            webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::CreatedAt.lt(cutoff))
                .filter(webhook_delivery::Column::Status.is_in([
                    DeliveryStatus::Delivered.as_str(),
                    DeliveryStatus::Dead.as_str(),
                ])),
            PRUNE_BATCH,
        )
        .all(&self.db)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
        if old.is_empty() {
            return Ok(0);
        }
        let txn = self.begin_write().await?;
        let pruned = webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::Id.is_in(old))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        metrics::counter!("convtrack_webhook_deliveries_pruned_total")
            .increment(pruned.rows_affected);
        Ok(pruned.rows_affected)
    }
}
