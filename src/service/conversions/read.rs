//! Conversions and the conversations they credit, read back.

use std::collections::HashMap;

use entity::{conversation, conversion};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::domain::conversion::RecordType;
use crate::domain::role::Operation;
use crate::error::AppError;
use crate::service::read_model::{Conversation, Conversion, ConversionsOf, read_all};
use crate::service::{Caller, Page, Services};

impl Services {
    /// The most recent conversation credited with a record: the "AI Agent
    /// Conversation" view of a Visitor, Coworker, contract, booking or product.
    pub async fn conversation_for_record(
        &self,
        caller: &Caller,
        record_type: RecordType,
        record_id: &str,
    ) -> Result<Option<Conversation>, AppError> {
        caller.require(
            Operation::BrowseConversations,
            "look up conversations by record",
        )?;
        // A record has a handful of conversions at most; the newest is
        // picked here rather than by ORDER BY in SQL, which can
        // lure PostgreSQL onto the tenant's whole feed index.
        let latest = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .filter(conversion::Column::RecordType.eq(record_type.as_str()))
            .filter(conversion::Column::RecordId.eq(record_id.trim()))
            .filter(conversion::Column::Attributed.eq(true))
            .all(&self.db)
            .await?
            .into_iter()
            .max_by_key(|c| (c.feed_xid, c.feed_seq));
        let Some(conversation_id) = latest.and_then(|c| c.conversation_id) else {
            return Ok(None);
        };
        self.conversation_in_tenant(caller.tenant_id, conversation_id)
            .await
    }

    pub async fn conversion_by_id(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Option<Conversion>, AppError> {
        caller.require(Operation::ReadConversation, "read conversions")?;
        conversion::Entity::find_by_id(id)
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .one(&self.db)
            .await?
            .map(Conversion::try_from)
            .transpose()
    }

    /// Unattributed conversions, newest first, for review (ADMIN).
    pub async fn unattributed_page(
        &self,
        caller: &Caller,
        first: u64,
        after_seq: Option<i64>,
    ) -> Result<Page<Conversion>, AppError> {
        caller.require(
            Operation::ReviewUnattributed,
            "review unattributed conversions",
        )?;
        let mut query = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(caller.tenant_id))
            .filter(conversion::Column::Attributed.eq(false))
            // Dismissed ones were reviewed: kept, but not in the queue.
            .filter(conversion::Column::Review.is_null());
        if let Some(after) = after_seq {
            query = query.filter(conversion::Column::FeedSeq.lt(after));
        }
        let rows = query
            .order_by_desc(conversion::Column::FeedSeq)
            .limit(first + 1)
            .all(&self.db)
            .await?;
        Ok(Page::from_overfetch(read_all(rows)?, first))
    }

    /// Conversions of many conversations at once (the batch behind badges).
    /// One statement, whatever the number of conversations.
    pub async fn conversions_of(
        &self,
        tenant_id: Uuid,
        conversation_ids: &[Uuid],
    ) -> Result<ConversionsOf, AppError> {
        let rows = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(tenant_id))
            .filter(conversion::Column::ConversationId.is_in(conversation_ids.iter().copied()))
            .order_by_asc(conversion::Column::FeedSeq)
            .all(&self.db)
            .await?;
        let mut by_conversation = ConversionsOf::new();
        for row in rows {
            if let Some(id) = row.conversation_id {
                by_conversation.entry(id).or_default().push(row.try_into()?);
            }
        }
        Ok(by_conversation)
    }

    /// Conversations by id, for many ids at once.
    pub async fn conversations_by_ids(
        &self,
        tenant_id: Uuid,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Conversation>, AppError> {
        let rows = conversation::Entity::find()
            .filter(conversation::Column::TenantId.eq(tenant_id))
            .filter(conversation::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| Ok((row.id, row.try_into()?)))
            .collect()
    }
}
