//! What each request carries into the resolvers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_graphql::ContextBase;
use async_graphql::dataloader::{DataLoader, HashMapCache};

use tokio::sync::OnceCell;

use super::loaders::{AdjustmentsLoader, ConversationLoader, ConversionsLoader};
use crate::domain::locked;
use crate::domain::settings::TenantSettings;
use crate::error::AppError;
use crate::service::{Caller, Services};

/// Per-request data: who is calling, and loaders that batch (and cache for
/// this request only) what the caller's tenant may see.
pub struct RequestContext {
    pub caller: Caller,
    pub services: Services,
    pub conversions: DataLoader<ConversionsLoader, HashMapCache>,
    pub conversations: DataLoader<ConversationLoader, HashMapCache>,
    /// Made on first use: few requests read a conversion's history.
    adjustments: std::sync::OnceLock<DataLoader<AdjustmentsLoader, HashMapCache>>,
    /// The tenant's settings, read at most once per request (or per event
    /// on a subscription socket, see [`RequestContext::forget`]).
    settings: Mutex<Arc<OnceCell<Arc<TenantSettings>>>>,
    /// Conversations a list found to have no badge, without reading their
    /// conversions: their `badges` answer empty rather than load them.
    badgeless: Mutex<HashSet<uuid::Uuid>>,
}

impl RequestContext {
    pub fn new(caller: Caller, services: Services) -> Arc<Self> {
        Arc::new(Self {
            conversions: super::loaders::conversions(caller.tenant_id, services.clone()),
            conversations: super::loaders::conversations(caller.tenant_id, services.clone()),
            caller,
            services,
            adjustments: std::sync::OnceLock::new(),
            settings: Mutex::new(Arc::new(OnceCell::new())),
            badgeless: Mutex::default(),
        })
    }

    /// Conversions' histories, batched.
    pub fn adjustments(&self) -> &DataLoader<AdjustmentsLoader, HashMapCache> {
        self.adjustments.get_or_init(|| {
            super::loaders::adjustments(self.caller.tenant_id, self.services.clone())
        })
    }

    /// A context whose tenant settings are already known (read with the key).
    pub fn with_settings(
        caller: Caller,
        services: Services,
        settings: Arc<TenantSettings>,
    ) -> Arc<Self> {
        let context = Self::new(caller, services);
        let cell = OnceCell::new_with(Some(settings));
        *locked(&context.settings) = Arc::new(cell);
        context
    }

    /// Concurrent resolvers share one read.
    pub async fn settings(&self) -> Result<Arc<TenantSettings>, AppError> {
        let cell = locked(&self.settings).clone();
        cell.get_or_try_init(|| async {
            Ok::<_, AppError>(Arc::new(self.services.tenant_settings(&self.caller).await?))
        })
        .await
        .cloned()
    }

    /// Drops everything cached. A subscription socket keeps one context for
    /// its whole life; each event must show the data as it is now.
    pub fn forget(&self) {
        self.conversions.clear::<uuid::Uuid>();
        self.conversations.clear::<uuid::Uuid>();
        if let Some(adjustments) = self.adjustments.get() {
            adjustments.clear::<uuid::Uuid>();
        }
        *locked(&self.settings) = Arc::new(OnceCell::new());
        locked(&self.badgeless).clear();
    }

    /// Notes conversations known to have no badge.
    pub fn mark_badgeless(&self, ids: impl IntoIterator<Item = uuid::Uuid>) {
        locked(&self.badgeless).extend(ids);
    }

    /// Whether a list found this conversation without a badge.
    pub fn is_badgeless(&self, id: uuid::Uuid) -> bool {
        locked(&self.badgeless).contains(&id)
    }
}

/// The request's context. Present on every request the HTTP layer lets
/// through; its absence is a wiring bug, reported as an internal error.
pub fn request<'a, T>(ctx: &ContextBase<'a, T>) -> Result<&'a RequestContext, AppError> {
    ctx.data::<Arc<RequestContext>>()
        .map(|arc| arc.as_ref())
        .map_err(|_| AppError::internal("request context missing"))
}
