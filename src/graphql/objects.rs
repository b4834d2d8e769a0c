//! The object types a conversation and its outcomes are read as. They refer
//! to each other (a conversation lists its conversions, a conversion names
//! its conversation), so they live together.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::context::request;
use super::enums::{
    BadgeColour, Channel, ConversionChange, ConversionKind, ConversionSource, ConversionStatus,
    CtaAction, KeyRole, RecordType,
};
use super::message::Message;
use super::money::Money;
use super::pagination;
use crate::domain::cursor::{NodeType, decode_message_cursor, encode_message_cursor, global_id};
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::domain::settings::TenantSettings;
use crate::error::AppError;
use crate::service::read_model;

/// One AI-assistant conversation (a session) on one channel, with its thread
/// and the business outcomes it led to.
#[derive(Clone)]
pub struct Conversation(pub read_model::Conversation);

/// The member who was logged in when the conversation started.
#[derive(SimpleObject)]
pub struct User {
    /// The member's id in the operator's system.
    pub id: Option<String>,
    /// The member's name as the agent runtime reported it.
    pub name: Option<String>,
}

#[Object]
impl Conversation {
    /// Opaque global id of the conversation (the admin-facing identifier);
    /// accepted by `conversation(id:)` and `node(id:)`.
    pub async fn id(&self) -> ID {
        ID(global_id(NodeType::Conversation, self.0.id))
    }

    /// The session ID the agent runtime and call-to-action links carry.
    async fn session_id(&self) -> &SessionId {
        &self.0.session_id
    }

    /// The channel the conversation happens on.
    async fn channel(&self) -> Channel {
        self.0.channel.into()
    }

    /// When the session started.
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }

    /// When the last message arrived (or the session was resumed).
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }

    /// When the session was closed; null while it is not.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }

    /// True while the session takes messages: not closed and not past its
    /// channel's inactivity timeout.
    async fn active(&self, ctx: &Context<'_>) -> Result<bool> {
        let r = request(ctx)?;
        let now = r.services.clock.now();
        Ok(self.0.is_active(now, &*r.settings().await?))
    }

    /// The first visitor message, cut to 120 characters (never inside a
    /// character) and then ending with "…"; null until the visitor has
    /// said something.
    async fn opening_message(&self) -> Option<&str> {
        self.0.opening_message.as_deref()
    }

    /// The logged-in member; null for anonymous visitors.
    async fn user(&self) -> Option<User> {
        (self.0.user_id.is_some() || self.0.user_name.is_some()).then(|| User {
            id: self.0.user_id.clone(),
            name: self.0.user_name.clone(),
        })
    }

    /// The email address (EMAIL) or E.164 phone number (WHATSAPP, VOICE) of
    /// the person; free text or null on CHAT.
    async fn contact(&self) -> Option<&str> {
        self.0.contact.as_deref()
    }

    /// The email thread the session belongs to (EMAIL only).
    async fn thread_key(&self) -> Option<&str> {
        self.0.thread_key.as_deref()
    }

    /// Number of messages in the thread, tool calls included.
    async fn message_count(&self) -> i32 {
        self.0.message_count
    }

    /// When the person's data in it was erased (`eraseContact`, or the
    /// tenant's `messageRetentionDays`); null while it is held. An erased
    /// conversation keeps its outcomes, times and session ID; its messages
    /// read as erased and its contact, user, thread key and opening are
    /// null.
    async fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.0.erased_at
    }

    /// Its labels (`startSession`, `setSessionLabels`), by key.
    async fn labels(&self) -> Vec<super::label::Label> {
        self.0.labels.iter().cloned().map(Into::into).collect()
    }

    /// The thread, oldest first. Tool calls are left out unless
    /// `includeToolCalls` is true, which only ADMIN keys may ask for.
    #[graphql(
        complexity = "super::limits::connection_complexity(first, super::pagination::THREAD.default, child_complexity)"
    )]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 500; default 500.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last message already seen.")] after: Option<String>,
        #[graphql(default = false, desc = "Include TOOL messages (ADMIN only).")]
        include_tool_calls: bool,
    ) -> Result<Connection<String, Message>> {
        let r = request(ctx)?;
        let first = pagination::THREAD.first(first)?;
        let after_seq = after
            .as_deref()
            .map(decode_message_cursor)
            .transpose()
            .map_err(AppError::from)?;
        let page = r
            .services
            .thread_page(&r.caller, self.0.id, first, after_seq, include_tool_calls)
            .await?;
        Ok(pagination::connection(page, after_seq.is_some(), |m| {
            (encode_message_cursor(m.seq), Message(m))
        }))
    }

    /// Badges of the outcomes credited to this conversation, oldest first;
    /// one per active conversion (a retracted one has none).
    async fn badges(&self, ctx: &Context<'_>) -> Result<Vec<Badge>> {
        let r = request(ctx)?;
        if r.is_badgeless(self.0.id) {
            return Ok(Vec::new());
        }
        let settings = r.settings().await?;
        let conversions = r.conversions.load_one(self.0.id).await?;
        let badges = conversions
            .unwrap_or_default()
            .into_iter()
            .filter(read_model::Conversion::has_badge)
            .map(|c| Badge::of(&c, &settings))
            .collect();
        Ok(badges)
    }

    /// The confirmations asked in this conversation, oldest first, each in
    /// its state now. Read per conversation: ask for it in a detail, not
    /// across a list.
    async fn confirmations(&self, ctx: &Context<'_>) -> Result<Vec<super::link::Confirmation>> {
        let r = request(ctx)?;
        let found = r.services.confirmations_of(&r.caller, self.0.id).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }

    /// Every conversion recorded against this conversation, oldest first.
    async fn conversions(&self, ctx: &Context<'_>) -> Result<Vec<Conversion>> {
        let conversions = request(ctx)?.conversions.load_one(self.0.id).await?;
        Ok(conversions
            .unwrap_or_default()
            .into_iter()
            .map(Conversion)
            .collect())
    }
}

/// A record in the operator's system that an outcome created.
#[derive(SimpleObject)]
pub struct Record {
    /// What kind of record it is.
    #[graphql(name = "type")]
    pub record_type: RecordType,
    /// Its id in the operator's system.
    pub id: String,
    /// A link to it in the operator's admin, from the tenant's URL template
    /// for this record type; null without a template.
    pub url: Option<String>,
}

/// A coloured badge on a conversation: one outcome it led to.
#[derive(SimpleObject)]
pub struct Badge {
    /// The outcome.
    pub kind: ConversionKind,
    /// The badge's text, e.g. "Day pass purchased".
    pub label: &'static str,
    /// The badge's colour, e.g. PEACH.
    pub colour: BadgeColour,
    /// The record the badge links to.
    pub record: Record,
    /// When the outcome was recorded.
    pub recorded_at: DateTime<Utc>,
    /// What it earned, when the sale said.
    pub value: Option<Money>,
}

fn record_of(conversion: &read_model::Conversion, settings: &TenantSettings) -> Record {
    Record {
        record_type: conversion.record_type.into(),
        id: conversion.record_id.clone(),
        url: settings.record_url(conversion.record_type, &conversion.record_id),
    }
}

impl Badge {
    pub fn of(conversion: &read_model::Conversion, settings: &TenantSettings) -> Self {
        let kind = conversion.kind;
        Badge {
            kind: kind.into(),
            label: kind.badge_label(),
            colour: kind.badge_colour().into(),
            record: record_of(conversion, settings),
            recorded_at: conversion.recorded_at,
            value: conversion.value.map(Money::from),
        }
    }
}

/// A business outcome recorded by convtrack.
#[derive(Clone)]
pub struct Conversion(pub read_model::Conversion);

#[Object]
impl Conversion {
    /// Opaque global id; accepted by `node(id:)`.
    pub async fn id(&self) -> ID {
        ID(global_id(NodeType::Conversion, self.0.id))
    }

    /// The outcome.
    async fn kind(&self) -> ConversionKind {
        self.0.kind.into()
    }

    /// The record it created in the operator's system.
    async fn record(&self, ctx: &Context<'_>) -> Result<Record> {
        let settings = request(ctx)?.settings().await?;
        Ok(record_of(&self.0, &settings))
    }

    /// When it was recorded.
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }

    /// What it earned, when the sale said (see README "Money"), as last
    /// restated.
    async fn value(&self) -> Option<Money> {
        self.0.value.map(Money::from)
    }

    /// ACTIVE, or RETRACTED once withdrawn.
    async fn status(&self) -> ConversionStatus {
        self.0.status.into()
    }

    /// Every change since it was recorded, oldest first.
    async fn adjustments(&self, ctx: &Context<'_>) -> Result<Vec<ConversionAdjustment>> {
        let r = request(ctx)?;
        Ok(r.adjustments()
            .load_one(self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(ConversionAdjustment::from)
            .collect())
    }

    /// True when credited to a conversation (and shown as a badge),
    /// including when an operator attributed it anyway.
    async fn attributed(&self) -> bool {
        self.0.attributed
    }

    /// True when an operator dismissed it from the review of unattributed
    /// conversions (`dismissConversion`): kept, unattributed, out of
    /// `unattributedConversions`.
    async fn dismissed(&self) -> bool {
        self.0.review == Some(crate::domain::adjustment::ConversionChange::Dismissed)
    }

    /// Why an unattributed conversion was not credited, e.g. `ATTRIBUTION_EXPIRED`.
    async fn unattributed_reason(&self) -> Option<&str> {
        self.0.unattributed_reason.as_deref()
    }

    /// How it reached convtrack.
    async fn source(&self) -> ConversionSource {
        self.0.source.into()
    }

    /// The call to action whose link led to it (`LINK` conversions only).
    async fn link_action(&self) -> Option<CtaAction> {
        self.0.link_action.map(Into::into)
    }

    /// The conversation it came from. For an unattributed conversion this is
    /// the conversation whose (expired) link it came through, not credited.
    /// Needs a role that may read conversations (not CHECKOUT).
    async fn conversation(&self, ctx: &Context<'_>) -> Result<Option<Conversation>> {
        let r = request(ctx)?;
        r.caller
            .require(Operation::ReadConversation, "read conversations")?;
        let Some(id) = self.0.conversation_id else {
            return Ok(None);
        };
        Ok(r.conversations.load_one(id).await?.map(Conversation))
    }
}

/// One change to a conversion after it was recorded: a sale restated or
/// retracted, or an operator's review of an unattributed one.
#[derive(SimpleObject)]
pub struct ConversionAdjustment {
    /// What changed: `RESTATED`, `RETRACTED`, `ATTRIBUTED` or `DISMISSED`.
    pub change: ConversionChange,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The value after it.
    pub value: Option<Money>,
    /// The value before it.
    pub previous_value: Option<Money>,
    /// Why, as the caller said.
    pub reason: String,
    /// The role of the API key that made it.
    pub role: KeyRole,
    /// The first characters of the API key that made it (as `convtrack
    /// keys list` prints them); null for changes made before they were
    /// kept.
    pub key_prefix: Option<String>,
}

impl From<read_model::Adjustment> for ConversionAdjustment {
    fn from(adjustment: read_model::Adjustment) -> Self {
        ConversionAdjustment {
            change: adjustment.change.into(),
            at: adjustment.at,
            value: adjustment.value.map(Money::from),
            previous_value: adjustment.previous_value.map(Money::from),
            reason: adjustment.reason,
            role: adjustment.role.into(),
            key_prefix: adjustment.key_prefix,
        }
    }
}
