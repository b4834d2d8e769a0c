//! The conversion event feed: every committed conversion of a tenant, in
//! cursor order, read from the table after a cursor.

use entity::{api_key, conversation, conversion};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{Caller, Services};
use crate::domain::channel::Channel;
use crate::domain::conversion::ConversionKind;
use crate::domain::role::Operation;
use crate::error::AppError;

/// Narrows the feed. The cursor still counts every conversion.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub kinds: Option<Vec<ConversionKind>>,
    pub channels: Option<Vec<Channel>>,
}

impl FeedFilter {
    /// Whether an event passes the filter (what `events_after` does in SQL).
    pub fn matches(&self, event: &FeedEvent) -> bool {
        let kind_ok = self
            .kinds
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| k.as_str() == event.conversion.kind));
        let channel_ok = self.channels.as_ref().is_none_or(|channels| {
            event
                .conversation
                .as_ref()
                .is_some_and(|c| channels.iter().any(|ch| ch.as_str() == c.channel))
        });
        kind_ok && channel_ok
    }
}

/// One conversion with the conversation it belongs to (none for an
/// unattributed conversion without one).
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub conversion: conversion::Model,
    pub conversation: Option<conversation::Model>,
}

impl Services {
    /// Refuses callers that may not follow the feed.
    pub fn may_follow_feed(&self, caller: &Caller) -> Result<(), AppError> {
        caller.require(
            Operation::FollowConversionFeed,
            "follow the conversion feed",
        )
    }

    /// The cursor of the newest committed conversion (0 before the first).
    pub async fn latest_event_seq(&self, tenant_id: Uuid) -> Result<i64, AppError> {
        let newest = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(tenant_id))
            .order_by_desc(conversion::Column::FeedSeq)
            .one(&self.db)
            .await?;
        Ok(newest.map_or(0, |c| c.feed_seq))
    }

    /// Up to `limit` events after `after`, oldest first: two statements.
    pub async fn events_after(
        &self,
        tenant_id: Uuid,
        after: i64,
        filter: &FeedFilter,
        limit: u64,
    ) -> Result<Vec<FeedEvent>, AppError> {
        let mut query = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(tenant_id))
            .filter(conversion::Column::FeedSeq.gt(after));
        if let Some(kinds) = &filter.kinds {
            query = query.filter(conversion::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())));
        }
        if let Some(channels) = &filter.channels {
            let on_channels = Query::select()
                .column(conversation::Column::Id)
                .from(conversation::Entity)
                .and_where(Expr::col(conversation::Column::TenantId).eq(tenant_id))
                .and_where(
                    Expr::col(conversation::Column::Channel)
                        .is_in(channels.iter().map(|c| c.as_str())),
                )
                .to_owned();
            query = query.filter(conversion::Column::ConversationId.in_subquery(on_channels));
        }
        let rows = query
            .order_by_asc(conversion::Column::FeedSeq)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids: Vec<Uuid> = rows.iter().filter_map(|c| c.conversation_id).collect();
        let conversations = if ids.is_empty() {
            Default::default()
        } else {
            self.conversations_by_ids(tenant_id, &ids).await?
        };
        Ok(rows
            .into_iter()
            .map(|conversion| FeedEvent {
                conversation: conversion
                    .conversation_id
                    .and_then(|id| conversations.get(&id).cloned()),
                conversion,
            })
            .collect())
    }

    /// Whether an API key is still valid (checked by open sockets, so a
    /// revoked key loses its subscriptions on every instance).
    pub async fn key_is_active(&self, key_id: Uuid) -> Result<bool, AppError> {
        let key = api_key::Entity::find_by_id(key_id).one(&self.db).await?;
        Ok(key.is_some_and(|k| k.revoked_at.is_none()))
    }
}
