//! Exports (ADMIN): every conversation matching the list's filters, or every
//! conversion, read a page at a time by keyset so an export of any size
//! holds one page in memory.

use entity::conversion;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select,
};

use super::listing::{ConversationFilter, Listed, ListedReads};
use super::read_model::{Conversation, Conversion};
use super::{Caller, Services};
use crate::domain::channel::Channel;
use crate::domain::clock::to_micros;
use crate::domain::conversion::ConversionKind;
use crate::domain::cursor::{ConversationCursor, FeedPosition};
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::error::AppError;

/// Rows an export reads per statement.
pub const EXPORT_PAGE: u64 = 500;

/// Narrows the conversions export.
#[derive(Debug, Clone, Default)]
pub struct ConversionFilter {
    pub kinds: Option<Vec<ConversionKind>>,
    pub channels: Option<Vec<Channel>>,
    /// Credited to a conversation (true) or kept for review (false).
    pub attributed: Option<bool>,
    pub recorded_after: Option<chrono::DateTime<chrono::Utc>>,
    pub recorded_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// A conversion with the session it was credited to (or came through).
#[derive(Debug, Clone)]
pub struct ExportedConversion {
    pub conversion: Conversion,
    pub session_id: Option<SessionId>,
    /// The channel of that conversation.
    pub channel: Option<Channel>,
}

impl Services {
    /// Refuses a caller who may not export, before a response starts.
    pub fn may_export(&self, caller: &Caller) -> Result<(), AppError> {
        caller.require(Operation::ManagePersonalData, "export conversations")
    }

    /// The next page of the conversations export, in list order, with each
    /// row's conversions.
    pub async fn export_conversations_page(
        &self,
        caller: &Caller,
        after: Option<ConversationCursor>,
        filter: &ConversationFilter,
    ) -> Result<Listed, AppError> {
        self.may_export(caller)?;
        self.list_conversations(
            caller,
            EXPORT_PAGE,
            after,
            filter.clone(),
            ListedReads::Conversions,
        )
        .await
    }

    /// The next page of the conversions export, in feed order (oldest
    /// first), after `after`.
    pub async fn export_conversions_page(
        &self,
        caller: &Caller,
        after: Option<FeedPosition>,
        filter: &ConversionFilter,
    ) -> Result<Vec<ExportedConversion>, AppError> {
        self.may_export(caller)?;
        let query = conversions_after(caller, after, filter);
        // The session id comes from a subquery in the same statement: a
        // second statement looking the page's conversations up by a list of
        // ids would differ in length page after page, and every length
        // would be prepared and kept in each connection's statement cache.
        let query = query
            .expr_as(
                Expr::cust(
                    "(SELECT c.session_id FROM conversation c WHERE c.id = conversion.conversation_id)",
                ),
                "exported_session_id",
            )
            .order_by_asc(conversion::Column::FeedXid)
            .order_by_asc(conversion::Column::FeedSeq)
            .limit(EXPORT_PAGE)
            .build(self.db.get_database_backend());
        let rows = self.db.query_all_raw(query).await?;
        rows.iter()
            .map(|row| {
                let stored = conversion::Model::from_query_result(row, "")?;
                let session_id: Option<String> = row.try_get("", "exported_session_id")?;
                let session_id = session_id
                    .map(SessionId::from_stored)
                    .transpose()
                    .map_err(|e| AppError::internal_from("stored conversation.session_id", e))?;
                let channel = stored
                    .conversation_channel
                    .as_deref()
                    .map(|stored| stored.parse::<Channel>())
                    .transpose()
                    .map_err(|e| {
                        AppError::internal_from("stored conversion.conversation_channel", e)
                    })?;
                Ok(ExportedConversion {
                    conversion: Conversion::try_from(stored)?,
                    session_id,
                    channel,
                })
            })
            .collect()
    }
}

/// The tenant's conversions after `after` in feed order, narrowed by
/// `filter`.
fn conversions_after(
    caller: &Caller,
    after: Option<FeedPosition>,
    filter: &ConversionFilter,
) -> Select<conversion::Entity> {
    let mut query =
        conversion::Entity::find().filter(conversion::Column::TenantId.eq(caller.tenant_id));
    if let Some(after) = after {
        query = query.filter(
            Expr::tuple([
                Expr::col(conversion::Column::FeedXid),
                Expr::col(conversion::Column::FeedSeq),
            ])
            .gt(Expr::tuple([
                Expr::value(after.xid),
                Expr::value(after.seq),
            ])),
        );
    }
    if let Some(kinds) = &filter.kinds {
        query = query.filter(conversion::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())));
    }
    if let Some(channels) = &filter.channels {
        query = query.filter(
            conversion::Column::ConversationChannel.is_in(channels.iter().map(|c| c.as_str())),
        );
    }
    if let Some(attributed) = filter.attributed {
        query = query.filter(conversion::Column::Attributed.eq(attributed));
    }
    if let Some(from) = filter.recorded_after {
        query = query.filter(conversion::Column::RecordedAt.gte(to_micros(from)));
    }
    if let Some(to) = filter.recorded_before {
        query = query.filter(conversion::Column::RecordedAt.lt(to_micros(to)));
    }
    query
}

/// The cursor after the last row of a conversations page.
pub fn after_conversation(last: &Conversation) -> ConversationCursor {
    ConversationCursor {
        started_at: to_micros(last.started_at),
        id: last.id,
    }
}
