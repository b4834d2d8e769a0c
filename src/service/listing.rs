//! The AI Conversations list: newest first, keyset pagination on
//! (started_at, id), never OFFSET.

use chrono::{DateTime, Utc};
use entity::conversation;
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Caller, Page, Services};
use crate::domain::channel::Channel;
use crate::domain::clock::to_micros;
use crate::domain::cursor::ConversationCursor;
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::error::AppError;

pub const DEFAULT_PAGE: u64 = 250;
pub const MAX_PAGE: u64 = 250;

/// Narrows the list. Every field is optional; given fields all apply.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub session_id: Option<SessionId>,
    pub channels: Option<Vec<Channel>>,
    pub started_after: Option<DateTime<Utc>>,
    pub started_before: Option<DateTime<Utc>>,
}

impl Services {
    #[tracing::instrument(skip(self, caller, filter), fields(tenant = %caller.tenant_id))]
    pub async fn list_conversations(
        &self,
        caller: &Caller,
        first: u64,
        after: Option<ConversationCursor>,
        filter: ConversationFilter,
    ) -> Result<Page<conversation::Model>, AppError> {
        caller.require(Operation::BrowseConversations, "list conversations")?;
        let mut query = conversation::Entity::find()
            .filter(conversation::Column::TenantId.eq(caller.tenant_id));
        if let Some(after) = after {
            query = query.filter(
                Condition::any()
                    .add(conversation::Column::StartedAt.lt(after.started_at))
                    .add(
                        Condition::all()
                            .add(conversation::Column::StartedAt.eq(after.started_at))
                            .add(conversation::Column::Id.lt(after.id)),
                    ),
            );
        }
        if let Some(session_id) = &filter.session_id {
            query = query.filter(conversation::Column::SessionId.eq(session_id.as_str()));
        }
        if let Some(channels) = &filter.channels {
            query = query
                .filter(conversation::Column::Channel.is_in(channels.iter().map(|c| c.as_str())));
        }
        if let Some(after) = filter.started_after {
            query = query.filter(conversation::Column::StartedAt.gte(to_micros(after)));
        }
        if let Some(before) = filter.started_before {
            query = query.filter(conversation::Column::StartedAt.lt(to_micros(before)));
        }
        let rows = query
            .order_by_desc(conversation::Column::StartedAt)
            .order_by_desc(conversation::Column::Id)
            .limit(first + 1)
            .all(&self.db)
            .await?;
        Ok(Page::from_overfetch(rows, first))
    }
}
