//! Conversions and badges: the `Conversion` and `Badge` types and
//! `recordConversion`.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::conversion;

use super::context::request;
use super::conversation::Conversation;
use super::enums::{BadgeColour, ConversionKind, ConversionSource, RecordType};
use crate::domain;
use crate::domain::clock::from_micros;
use crate::domain::cursor::{NodeType, global_id};
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::domain::settings::TenantSettings;
use crate::error::{AppError, stored};
use crate::service::conversions::RecordConversion;

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

fn kind_of(model: &conversion::Model) -> Result<domain::conversion::ConversionKind, AppError> {
    stored("conversion.kind", &model.kind)
}

fn record_of(model: &conversion::Model, settings: &TenantSettings) -> Result<Record, AppError> {
    let record_type: domain::conversion::RecordType =
        stored("conversion.record_type", &model.record_type)?;
    Ok(Record {
        record_type: record_type.into(),
        id: model.record_id.clone(),
        url: settings.record_url(record_type, &model.record_id),
    })
}

impl Badge {
    pub fn of(model: conversion::Model, settings: &TenantSettings) -> Result<Self, AppError> {
        let kind = kind_of(&model)?;
        Ok(Badge {
            kind: kind.into(),
            label: kind.badge_label(),
            colour: kind.badge_colour().into(),
            record: record_of(&model, settings)?,
            recorded_at: from_micros(model.recorded_at),
        })
    }
}

/// A business outcome recorded by convtrack.
pub struct Conversion(pub conversion::Model);

#[Object]
impl Conversion {
    /// Opaque global id; accepted by `node(id:)`.
    pub async fn id(&self) -> ID {
        ID(global_id(NodeType::Conversion, self.0.id))
    }

    /// The outcome.
    async fn kind(&self) -> Result<ConversionKind> {
        Ok(kind_of(&self.0)?.into())
    }

    /// The record it created in the operator's system.
    async fn record(&self, ctx: &Context<'_>) -> Result<Record> {
        let settings = request(ctx)?.settings().await?;
        Ok(record_of(&self.0, settings)?)
    }

    /// When it was recorded.
    async fn recorded_at(&self) -> DateTime<Utc> {
        from_micros(self.0.recorded_at)
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
    async fn source(&self) -> Result<ConversionSource> {
        let source: domain::conversion::ConversionSource =
            stored("conversion.source", &self.0.source)?;
        Ok(source.into())
    }

    /// The conversation it is credited to; null when unattributed. Needs a
    /// role that may read conversations (not CHECKOUT).
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

/// An outcome to record against a session.
#[derive(InputObject)]
pub struct RecordConversionInput {
    /// The session the outcome came from.
    pub session_id: String,
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
    /// Records an outcome against a session (roles CHECKOUT, AGENT, ADMIN).
    /// Recording the same (session, kind, record) again returns the existing
    /// conversion with `created: false`.
    async fn record_conversion(
        &self,
        ctx: &Context<'_>,
        input: RecordConversionInput,
    ) -> Result<RecordConversionPayload> {
        let r = request(ctx)?;
        let session_id = SessionId::parse(input.session_id.trim()).map_err(AppError::from)?;
        let recorded = r
            .services
            .record_conversion(
                &r.caller,
                RecordConversion {
                    session_id,
                    kind: input.kind.into(),
                    record_id: input.record_id,
                    new_customer_id: input.new_customer_id,
                    idempotency_key: input.idempotency_key,
                },
            )
            .await?;
        let conversions: Vec<Conversion> =
            recorded.conversions.into_iter().map(Conversion).collect();
        let primary = conversions
            .first()
            .map(|c| Conversion(c.0.clone()))
            .ok_or_else(|| AppError::Internal("recording returned no conversion".into()))?;
        Ok(RecordConversionPayload {
            conversion: primary,
            conversions,
            created: recorded.created,
            attributed: recorded.attributed,
        })
    }
}
