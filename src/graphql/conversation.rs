//! The AI Conversations list and single-conversation lookups.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use super::context::request;
use super::enums::{Channel, ConversionKind, RecordType};
use super::label::{self, LabelInput};
use super::listed::{ListedConversation, ListedConversions};
use super::listed_page::ListedPage;
use super::objects::Conversation;
use super::pagination;
use crate::domain::cursor::{ConversationCursor, NodeType, parse_global_id};
use crate::domain::session_id::SessionId;
use crate::error::AppError;
use crate::service::listing::{self, ListedReads};

/// Narrows the AI Conversations list. Given fields all apply.
#[derive(InputObject, Default)]
pub struct ConversationFilter {
    /// Only conversations with a visitor or AI message containing this text,
    /// whatever its case (`%`, `_` and quotes match literally; tool calls are
    /// not searched). Up to 200 characters.
    pub search: Option<String>,
    /// Only conversations with a badge of any of these kinds.
    pub badges: Option<Vec<ConversionKind>>,
    /// Only conversations with (true) or without (false) a badge.
    pub converted: Option<bool>,
    /// Only the conversation with exactly this session ID.
    pub session_id: Option<SessionId>,
    /// Only conversations on these channels.
    pub channels: Option<Vec<Channel>>,
    /// Only conversations started at or after this time.
    pub started_after: Option<DateTime<Utc>>,
    /// Only conversations started before this time.
    pub started_before: Option<DateTime<Utc>>,
    /// Only conversations with every one of these labels (key and value
    /// exactly, case included).
    pub labels: Option<Vec<LabelInput>>,
}

impl ConversationFilter {
    pub(super) fn parse(self) -> Result<listing::ConversationFilter, AppError> {
        Ok(listing::ConversationFilter {
            search: self.search,
            badges: self
                .badges
                .map(|kinds| kinds.into_iter().map(Into::into).collect()),
            converted: self.converted,
            session_id: self.session_id,
            channels: self
                .channels
                .map(|cs| cs.into_iter().map(Into::into).collect()),
            started_after: self.started_after,
            started_before: self.started_before,
            labels: label::parsed(self.labels)?,
        })
    }
}

/// Whether the list query asks for badges or conversions of its rows.
fn listed_reads(ctx: &Context<'_>) -> ListedReads {
    let look_ahead = ctx.look_ahead();
    let nodes = look_ahead.field("nodes");
    let edge_nodes = look_ahead.field("edges").field("node");
    let wants = |f: &str| nodes.field(f).exists() || edge_nodes.field(f).exists();
    if wants("conversions") {
        ListedReads::Conversions
    } else if wants("badges") {
        ListedReads::Badges
    } else {
        ListedReads::Rows
    }
}

#[derive(Default)]
pub struct ConversationQuery;

#[Object]
impl ConversationQuery {
    /// The AI Conversations list: one row per conversation, newest first,
    /// 250 by default. Page on with `after: pageInfo.endCursor`.
    #[graphql(
        complexity = "super::limits::connection_complexity(first, super::pagination::CONVERSATIONS.default, child_complexity)"
    )]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 250; default 250.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last row already seen.")] after: Option<String>,
        filter: Option<ConversationFilter>,
    ) -> Result<ListedPage> {
        let r = request(ctx)?;
        let first = pagination::CONVERSATIONS.first(first)?;
        let after = after
            .as_deref()
            .map(ConversationCursor::decode)
            .transpose()
            .map_err(AppError::from)?;
        let filter = filter.unwrap_or_default().parse()?;
        let listed = r
            .services
            .list_conversations(&r.caller, first, after, filter, listed_reads(ctx))
            .await?;
        let mut conversions = listed.conversions;
        let rows = listed
            .page
            .items
            .into_iter()
            .map(|conversation| ListedConversation {
                conversions: conversions.as_mut().map(|all| {
                    all.remove(&conversation.id)
                        .map_or(ListedConversions::NoBadge, ListedConversions::All)
                }),
                conversation,
            })
            .collect();
        Ok(ListedPage {
            rows,
            has_previous_page: after.is_some(),
            has_next_page: listed.page.has_next_page,
        })
    }

    /// One conversation, by its `id` or by its `sessionId` (give exactly
    /// one). Null when there is no such conversation for this API key.
    async fn conversation(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        session_id: Option<SessionId>,
    ) -> Result<Option<Conversation>> {
        let r = request(ctx)?;
        let found = match (id, session_id) {
            (Some(id), None) => match parse_global_id(&id) {
                Some((NodeType::Conversation, uuid)) => {
                    r.services.conversation_by_id(&r.caller, uuid).await?
                }
                _ => None,
            },
            (None, Some(session_id)) => {
                r.services
                    .conversation_by_session_id(&r.caller, &session_id)
                    .await?
            }
            _ => {
                return Err(
                    AppError::BadInput("give exactly one of id or sessionId".into()).into(),
                );
            }
        };
        Ok(found.map(Conversation))
    }

    /// The most recent conversation credited with a record of the operator's
    /// system (for example the "AI Agent Conversation" of a Visitor).
    async fn conversation_for_record(
        &self,
        ctx: &Context<'_>,
        record_type: RecordType,
        record_id: String,
    ) -> Result<Option<Conversation>> {
        let r = request(ctx)?;
        let found = r
            .services
            .conversation_for_record(&r.caller, record_type.into(), &record_id)
            .await?;
        Ok(found.map(Conversation))
    }
}
