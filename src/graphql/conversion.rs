//! Conversions and badges: the `Conversion` and `Badge` types and
//! `recordConversion`.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::context::request;
use super::conversation::Conversation;
use super::enums::{BadgeColour, ConversionKind, ConversionSource, CtaAction, RecordType};
use super::pagination;
use crate::domain;
use crate::domain::cursor::{
    NodeType, decode_conversion_cursor, encode_conversion_cursor, global_id,
};
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::domain::settings::TenantSettings;
use crate::error::AppError;
use crate::service::conversions::{Origin, RecordConversion, Recorded};
use crate::service::read_model;

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

    /// True when credited to a conversation (and shown as a badge).
    async fn attributed(&self) -> bool {
        self.0.attributed
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

/// An outcome to record: against a session given by its ID, or by the link
/// token that came with the person (give exactly one of the two).
#[derive(InputObject)]
pub struct RecordConversionInput {
    /// The session the outcome came from.
    pub session_id: Option<SessionId>,
    /// The `ai_session` value of the call-to-action link the person followed,
    /// exactly as it arrived.
    pub link_token: Option<String>,
    /// The outcome.
    pub kind: ConversionKind,
    /// The id of the record it created (Visitor, Coworker, contract, booking
    /// or product), up to 200 characters.
    pub record_id: String,
    /// With `CONTRACT_CREATED` for a person who was not a customer yet: the
    /// new Coworker's id. Records `CUSTOMER_CREATED` too, in one transaction.
    pub new_customer_id: Option<String>,
    /// Makes retries safe: the same key with the same input returns the first
    /// result; with a different input it is refused (`IDEMPOTENCY_KEY_REUSED`).
    pub idempotency_key: Option<String>,
}

impl RecordConversionInput {
    fn origin(&self) -> Result<Origin, AppError> {
        match (&self.session_id, &self.link_token) {
            (Some(session_id), None) => Ok(Origin::Session(session_id.clone())),
            (None, Some(token)) => Ok(Origin::LinkToken(token.clone())),
            _ => Err(AppError::BadInput(
                "give exactly one of sessionId or linkToken".into(),
            )),
        }
    }
}

/// The result of `recordConversion`.
#[derive(SimpleObject)]
pub struct RecordConversionPayload {
    /// The conversion of the requested kind.
    pub conversion: Conversion,
    /// Every conversion the request stands for: the requested one, then
    /// `CUSTOMER_CREATED` when `newCustomerId` was given.
    pub conversions: Vec<Conversion>,
    /// False when it had been recorded already (a retry or a replay).
    pub created: bool,
    /// True when credited to the conversation.
    pub attributed: bool,
}

#[derive(Default)]
pub struct ConversionQuery;

#[Object]
impl ConversionQuery {
    /// Conversions kept for review rather than credited (for example a link
    /// followed after its attribution window), newest first (ADMIN only).
    #[graphql(
        complexity = "super::limits::connection_complexity(first, super::pagination::UNATTRIBUTED.default, child_complexity)"
    )]
    async fn unattributed_conversions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 250; default 50.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last conversion already seen.")] after: Option<String>,
    ) -> Result<Connection<String, Conversion>> {
        let r = request(ctx)?;
        let first = pagination::UNATTRIBUTED.first(first)?;
        let after = after
            .as_deref()
            .map(decode_conversion_cursor)
            .transpose()
            .map_err(AppError::from)?;
        let page = r
            .services
            .unattributed_page(&r.caller, first, after)
            .await?;
        Ok(pagination::connection(page, after.is_some(), |c| {
            (encode_conversion_cursor(c.feed_seq), Conversion(c))
        }))
    }

    /// Every outcome kind with its badge label and colour, for legends.
    async fn badge_kinds(&self) -> Vec<BadgeKind> {
        domain::conversion::ConversionKind::ALL
            .into_iter()
            .map(|kind| BadgeKind {
                kind: kind.into(),
                label: kind.badge_label(),
                colour: kind.badge_colour().into(),
                record_type: kind.record_type().into(),
            })
            .collect()
    }
}

/// An outcome kind and how its badge looks.
#[derive(SimpleObject)]
pub struct BadgeKind {
    /// The outcome.
    pub kind: ConversionKind,
    /// The badge's text.
    pub label: &'static str,
    /// The badge's colour.
    pub colour: BadgeColour,
    /// The record type the badge links to.
    pub record_type: RecordType,
}

#[derive(Default)]
pub struct ConversionMutation;

#[Object]
impl ConversionMutation {
    /// Records an outcome (roles CHECKOUT, AGENT, ADMIN), by session ID or by
    /// link token. Inside the session's attribution window the conversion is
    /// attributed; past it, it is stored unattributed (`ATTRIBUTION_EXPIRED`,
    /// no badge); a changed, malformed or foreign token gets
    /// `INVALID_LINK_TOKEN` and nothing is stored. Recording the
    /// same (session, kind, record) again returns the existing conversion
    /// with `created: false`.
    async fn record_conversion(
        &self,
        ctx: &Context<'_>,
        input: RecordConversionInput,
    ) -> Result<RecordConversionPayload> {
        let r = request(ctx)?;
        let origin = input.origin()?;
        let recorded = r
            .services
            .record_conversion(
                &r.caller,
                RecordConversion {
                    origin,
                    kind: input.kind.into(),
                    record_id: input.record_id,
                    new_customer_id: input.new_customer_id,
                    idempotency_key: input.idempotency_key,
                    attribution_window: r.settings().await?.attribution_window(),
                },
            )
            .await?;
        Ok(RecordConversionPayload::of(recorded)?)
    }
}

impl RecordConversionPayload {
    pub fn of(recorded: Recorded) -> Result<Self, AppError> {
        let conversions: Vec<Conversion> =
            recorded.conversions.into_iter().map(Conversion).collect();
        let primary = conversions
            .first()
            .map(|c| Conversion(c.0.clone()))
            .ok_or_else(|| AppError::internal("recording returned no conversion"))?;
        Ok(RecordConversionPayload {
            conversion: primary,
            conversions,
            created: recorded.created,
            attributed: recorded.attributed,
        })
    }
}
