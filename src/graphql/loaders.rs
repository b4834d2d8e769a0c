//! DataLoaders: one SQL statement per batch, so a page of 250 conversations
//! with badges costs as many statements as a page of 5. Each loader is made
//! per request and bound to the caller's tenant.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use uuid::Uuid;

use crate::error::AppError;
use crate::service::Services;
use crate::service::read_model::{Adjustment, Conversation, Conversion};

/// Keeps `IN (…)` lists far below every backend's bind-parameter limit.
const MAX_BATCH: usize = 500;

/// Conversions (attributed or not) by conversation id.
pub struct ConversionsLoader {
    tenant_id: Uuid,
    services: Services,
}

impl Loader<Uuid> for ConversionsLoader {
    type Value = Vec<Conversion>;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        self.services.conversions_of(self.tenant_id, keys).await
    }
}

/// A conversion's changes, oldest first, by conversion id.
pub struct AdjustmentsLoader {
    tenant_id: Uuid,
    services: Services,
}

impl Loader<Uuid> for AdjustmentsLoader {
    type Value = Vec<Adjustment>;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        self.services.adjustments_of(self.tenant_id, keys).await
    }
}

pub fn adjustments(
    tenant_id: Uuid,
    services: Services,
) -> DataLoader<AdjustmentsLoader, HashMapCache> {
    DataLoader::with_cache(
        AdjustmentsLoader {
            tenant_id,
            services,
        },
        spawn_in_span,
        HashMapCache::default(),
    )
    .max_batch_size(MAX_BATCH)
}

/// Conversations by id.
pub struct ConversationLoader {
    tenant_id: Uuid,
    services: Services,
}

impl Loader<Uuid> for ConversationLoader {
    type Value = Conversation;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        self.services
            .conversations_by_ids(self.tenant_id, keys)
            .await
    }
}

pub fn conversions(
    tenant_id: Uuid,
    services: Services,
) -> DataLoader<ConversionsLoader, HashMapCache> {
    DataLoader::with_cache(
        ConversionsLoader {
            tenant_id,
            services,
        },
        spawn_in_span,
        HashMapCache::default(),
    )
    .max_batch_size(MAX_BATCH)
}

/// Runs a batch as a task in the log span of the request that asked for it
/// and under its GraphQL operation, so its SQL statements show there in a
/// trace.
fn spawn_in_span<F>(batch: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::telemetry::spawn_in_operation(tracing::Instrument::in_current_span(batch))
}

pub fn conversations(
    tenant_id: Uuid,
    services: Services,
) -> DataLoader<ConversationLoader, HashMapCache> {
    DataLoader::with_cache(
        ConversationLoader {
            tenant_id,
            services,
        },
        spawn_in_span,
        HashMapCache::default(),
    )
    .max_batch_size(MAX_BATCH)
}
