//! Tenants' retention periods (`messageRetentionDays`): every instance
//! looks regularly for conversations whose last activity is older and
//! erases them as `eraseContact` would, a batch at a time. On PostgreSQL a
//! batch runs only while no other instance's does (an advisory lock taken
//! without waiting): instances never compete for the same rows.

use std::time::Duration;

use chrono::TimeDelta;
use entity::{conversation, tenant};
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tokio::sync::watch;

use super::Services;
use super::erasure::Request;
use super::tenants::parse_settings;
use crate::domain::clock::to_micros;
use crate::domain::erasure::ErasureScope;
use crate::error::AppError;

/// What one pass over the tenants did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPass {
    pub conversations: i64,
    pub messages: i64,
    /// Conversations past their tenant's period still held after the pass
    /// (another instance's batch was under way, or the database failed).
    pub backlog: u64,
}

impl Services {
    /// Erases, in every tenant with a retention period, the conversations
    /// whose last activity is older than it. A tenant that fails (its
    /// database work, or its stored settings) is logged and left for the
    /// next pass; the others go on.
    pub async fn apply_retention(&self) -> Result<RetentionPass, AppError> {
        let mut pass = RetentionPass::default();
        let now = self.clock.now();
        for row in tenant::Entity::find().all(&self.db).await? {
            match self.retain(&row, now).await {
                Ok(done) => {
                    pass.conversations += done.conversations;
                    pass.messages += done.messages;
                    pass.backlog += done.backlog;
                }
                Err(e) => {
                    tracing::warn!(tenant = %row.id, "retention of this tenant failed this pass");
                    e.log();
                }
            }
        }
        Ok(pass)
    }

    /// One tenant's part of a pass.
    async fn retain(
        &self,
        row: &tenant::Model,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<RetentionPass, AppError> {
        let Some(days) = parse_settings(row)?.message_retention_days else {
            return Ok(RetentionPass::default());
        };
        let cutoff = to_micros(now - TimeDelta::days(i64::from(days)));
        let expired = Condition::all()
            .add(conversation::Column::TenantId.eq(row.id))
            .add(conversation::Column::ErasedAt.is_null())
            .add(conversation::Column::LastActivityAt.lt(cutoff));
        let erased = self
            .erase(Request {
                tenant_id: row.id,
                key_id: None,
                scope: ErasureScope::Retention,
                reason: format!("no activity for {days} days (messageRetentionDays)"),
                matching: expired.clone(),
                log_when_empty: false,
                one_instance_at_a_time: true,
                by_last_activity: true,
            })
            .await?;
        let backlog = conversation::Entity::find()
            .filter(expired)
            .count(&self.db)
            .await?;
        Ok(RetentionPass {
            conversations: erased.conversations,
            messages: erased.messages,
            backlog,
        })
    }
}

/// Applies the retention periods every `every` until `shutdown`; what it
/// did shows in `/metrics`.
pub async fn keep(services: Services, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        // Idempotency keys past their time go in the same rhythm.
        if let Err(e) = services.prune_request_keys().await {
            e.log();
        }
        match services.apply_retention().await {
            Ok(pass) => {
                metrics::gauge!("convtrack_retention_backlog_conversations")
                    .set(pass.backlog as f64);
                metrics::gauge!("convtrack_retention_last_pass_timestamp_seconds")
                    .set(services.clock.now().timestamp() as f64);
                if pass.conversations > 0 {
                    tracing::info!(
                        conversations = pass.conversations,
                        messages = pass.messages,
                        backlog = pass.backlog,
                        "erased conversations past their retention period"
                    );
                }
            }
            // A database that is down now is tried again next time.
            Err(e) => e.log(),
        }
    }
}
