//! `recordConversion`, unattributed conversions for review, and the badge
//! legend.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};

use super::context::request;
use super::enums::{BadgeColour, ConversionKind, RecordType};
use super::money::MoneyInput;
use super::objects::Conversion;
use super::pagination;
use crate::domain;
use crate::domain::cursor::decode_conversion_cursor;
use crate::domain::cursor::encode_conversion_cursor;
use crate::domain::cursor::{NodeType, parse_global_id};
use crate::domain::session_id::SessionId;
use crate::error::AppError;
use crate::service::conversions::{
    Adjusted, Origin, RecordConversion, Recorded, RestateConversion, RetractConversion,
};

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
    /// What the outcome earned (the contract's, booking's or pass's price),
    /// optional; not given to the `CUSTOMER_CREATED` conversion
    /// `newCustomerId` adds. Recording the same outcome again with another
    /// value is `CONFLICT` (a changed sale is a restatement).
    pub value: Option<MoneyInput>,
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

/// A recorded sale whose value changed: an upgrade, a partial refund.
#[derive(InputObject)]
pub struct RestateConversionInput {
    /// The conversion's `id`.
    pub conversion_id: ID,
    /// Its value from now on, in the currency of its value so far (amounts
    /// are never converted). A conversion recorded without a value gets
    /// its first one.
    pub value: MoneyInput,
    /// Why, as the operator should read it in the history, e.g. "upgraded
    /// to a dedicated desk" (up to 500 characters).
    pub reason: String,
    /// Makes retries safe: the same key with the same input replays the
    /// first answer; with another input it is refused
    /// (`IDEMPOTENCY_KEY_REUSED`). Keys are shared with `recordConversion`.
    pub idempotency_key: String,
}

/// The result of `restateConversion`.
#[derive(SimpleObject)]
pub struct RestateConversionPayload {
    /// The conversion as it is now.
    pub conversion: Conversion,
    /// False for a replay, or when it was already worth exactly that.
    pub created: bool,
}

/// A recorded sale withdrawn: cancelled, fully refunded, a membership
/// ended in its first week.
#[derive(InputObject)]
pub struct RetractConversionInput {
    /// The conversion's `id`.
    pub conversion_id: ID,
    /// Why, as the operator should read it in the history, e.g. "booking
    /// cancelled" (up to 500 characters).
    pub reason: String,
    /// Makes retries safe, as for `restateConversion`.
    pub idempotency_key: String,
}

/// The result of `retractConversion`.
#[derive(SimpleObject)]
pub struct RetractConversionPayload {
    /// The conversion as it is now: RETRACTED, with the value it had.
    pub conversion: Conversion,
    /// False for a replay, or when it was already retracted.
    pub created: bool,
}

impl From<Adjusted> for RetractConversionPayload {
    fn from(adjusted: Adjusted) -> Self {
        RetractConversionPayload {
            conversion: Conversion(adjusted.conversion),
            created: adjusted.created,
        }
    }
}

impl From<Adjusted> for RestateConversionPayload {
    fn from(adjusted: Adjusted) -> Self {
        RestateConversionPayload {
            conversion: Conversion(adjusted.conversion),
            created: adjusted.created,
        }
    }
}

/// The conversion an `ID` names; none for an id of no conversion.
pub(super) fn conversion_id(id: &ID) -> Option<uuid::Uuid> {
    match parse_global_id(id) {
        Some((NodeType::Conversion, uuid)) => Some(uuid),
        _ => None,
    }
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
            (encode_conversion_cursor(c.position.seq), Conversion(c))
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
        let value = input.value.as_ref().map(MoneyInput::parse).transpose()?;
        let recorded = r
            .services
            .record_conversion(
                &r.caller,
                RecordConversion {
                    origin,
                    kind: input.kind.into(),
                    record_id: input.record_id,
                    new_customer_id: input.new_customer_id,
                    value,
                    idempotency_key: input.idempotency_key,
                    attribution_window: r.settings().await?.attribution_window(),
                },
            )
            .await?;
        Ok(RecordConversionPayload::of(recorded)?)
    }

    /// Changes a recorded conversion's value (roles CHECKOUT, INTEGRATOR,
    /// ADMIN): the change joins `Conversion.adjustments` and is a `RESTATED`
    /// event of the feed. A value in another currency than its own is
    /// `CONFLICT`.
    async fn restate_conversion(
        &self,
        ctx: &Context<'_>,
        input: RestateConversionInput,
    ) -> Result<RestateConversionPayload> {
        let r = request(ctx)?;
        let adjusted = r
            .services
            .restate_conversion(
                &r.caller,
                RestateConversion {
                    conversion_id: conversion_id(&input.conversion_id),
                    value: input.value.parse()?,
                    reason: input.reason,
                    idempotency_key: input.idempotency_key,
                },
            )
            .await?;
        Ok(adjusted.into())
    }

    /// Withdraws a recorded conversion (roles CHECKOUT, INTEGRATOR,
    /// ADMIN): its badge leaves the conversation, it no longer counts in
    /// "converted" or the stats, and it stays in `Conversation.conversions`
    /// as RETRACTED with the value it had. The change joins
    /// `Conversion.adjustments` and is a `RETRACTED` event of the feed.
    /// Retracting it again changes nothing (`created: false`); a retracted
    /// conversion is not restated (`CONFLICT`).
    async fn retract_conversion(
        &self,
        ctx: &Context<'_>,
        input: RetractConversionInput,
    ) -> Result<RetractConversionPayload> {
        let r = request(ctx)?;
        let adjusted = r
            .services
            .retract_conversion(
                &r.caller,
                RetractConversion {
                    conversion_id: conversion_id(&input.conversion_id),
                    reason: input.reason,
                    idempotency_key: input.idempotency_key,
                },
            )
            .await?;
        Ok(adjusted.into())
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
