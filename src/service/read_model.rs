//! What services hand to the layers above: the stored rows read once, their
//! stored strings parsed into domain values. A stored value that does not
//! parse is corrupt data, an internal error here, never at a call site.

use chrono::{DateTime, Utc};
use entity::{conversation, conversion, conversion_adjustment, message};
use uuid::Uuid;

use crate::domain::adjustment::{ConversionChange, ConversionStatus};
use crate::domain::channel::Channel;
use crate::domain::clock::from_micros;
use crate::domain::conversion::{ConversionKind, ConversionSource, RecordType};
use crate::domain::cursor::FeedPosition;
use crate::domain::label::{Label, Labels};
use crate::domain::link::CtaAction;
use crate::domain::message::MessageRole;
use crate::domain::money::Money;
use crate::domain::role::Role;
use crate::domain::session_id::SessionId;
use crate::domain::settings::TenantSettings;
use crate::error::{AppError, stored};

/// One AI-assistant conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: Uuid,
    pub session_id: SessionId,
    pub channel: Channel,
    pub thread_key: Option<String>,
    pub contact: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub opening_message: Option<String>,
    pub message_count: i32,
    /// When the person's data in it was erased.
    pub erased_at: Option<DateTime<Utc>>,
    /// Its labels, by key.
    pub labels: Vec<Label>,
}

impl Conversation {
    /// Whether it can still take messages at `now`, under its tenant's rules.
    pub fn is_active(&self, now: DateTime<Utc>, settings: &TenantSettings) -> bool {
        self.closed_at.is_none()
            && !settings
                .policy(self.channel)
                .has_expired(self.last_activity_at, now)
    }
}

impl TryFrom<conversation::Model> for Conversation {
    type Error = AppError;

    fn try_from(row: conversation::Model) -> Result<Self, AppError> {
        Ok(Conversation {
            id: row.id,
            session_id: SessionId::from_stored(row.session_id).map_err(|e| {
                AppError::internal_from(format!("stored conversation.session_id of {}", row.id), e)
            })?,
            channel: stored("conversation.channel", &row.channel)?,
            thread_key: row.thread_key,
            contact: row.contact,
            user_id: row.user_id,
            user_name: row.user_name,
            started_at: from_micros(row.started_at),
            last_activity_at: from_micros(row.last_activity_at),
            closed_at: row.closed_at.map(from_micros),
            opening_message: row.opening_message,
            message_count: row.message_count,
            erased_at: row.erased_at.map(from_micros),
            labels: Labels::from_stored(&row.labels).iter().collect(),
        })
    }
}

/// One recorded business outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    pub id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub kind: ConversionKind,
    pub record_type: RecordType,
    pub record_id: String,
    pub source: ConversionSource,
    pub attributed: bool,
    pub unattributed_reason: Option<String>,
    /// Its position in the tenant's event feed; `position.seq` alone orders
    /// a conversation's conversions and the review list.
    pub position: FeedPosition,
    pub recorded_at: DateTime<Utc>,
    pub link_action: Option<CtaAction>,
    /// What it earned; none when recorded without a value.
    pub value: Option<Money>,
    pub status: ConversionStatus,
    /// An operator's review while it was unattributed: `Attributed` (it is
    /// credited now) or `Dismissed` (out of the review queue).
    pub review: Option<ConversionChange>,
}

impl Conversion {
    /// Whether it shows as a badge on its conversation: credited to it and
    /// not withdrawn.
    pub fn has_badge(&self) -> bool {
        self.attributed && self.status == ConversionStatus::Active
    }
}

impl TryFrom<conversion::Model> for Conversion {
    type Error = AppError;

    fn try_from(row: conversion::Model) -> Result<Self, AppError> {
        Ok(Conversion {
            id: row.id,
            conversation_id: row.conversation_id,
            kind: stored("conversion.kind", &row.kind)?,
            record_type: stored("conversion.record_type", &row.record_type)?,
            record_id: row.record_id,
            source: stored("conversion.source", &row.source)?,
            attributed: row.attributed,
            unattributed_reason: row.unattributed_reason,
            position: FeedPosition {
                xid: row.feed_xid,
                seq: row.feed_seq,
            },
            recorded_at: from_micros(row.recorded_at),
            link_action: row
                .link_action
                .as_deref()
                .map(|action| stored("conversion.link_action", action))
                .transpose()?,
            value: stored_value(row.value_minor, row.currency.as_deref())?,
            status: stored("conversion.status", &row.status)?,
            review: row
                .review
                .as_deref()
                .map(|review| stored("conversion.review", review))
                .transpose()?,
        })
    }
}

/// One change to a recorded sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub conversion_id: Uuid,
    pub change: ConversionChange,
    pub at: DateTime<Utc>,
    pub value: Option<Money>,
    pub previous_value: Option<Money>,
    pub reason: String,
    /// The role of the key that made it.
    pub role: Role,
    /// The first characters of that key; none for changes made before
    /// keys were kept.
    pub key_prefix: Option<String>,
}

impl TryFrom<conversion_adjustment::Model> for Adjustment {
    type Error = AppError;

    fn try_from(row: conversion_adjustment::Model) -> Result<Self, AppError> {
        Ok(Adjustment {
            conversion_id: row.conversion_id,
            change: stored("conversion_adjustment.change", &row.change)?,
            at: from_micros(row.at),
            value: stored_value(row.value_minor, row.currency.as_deref())?,
            previous_value: stored_value(
                row.previous_value_minor,
                row.previous_currency.as_deref(),
            )?,
            reason: row.reason,
            role: stored("conversion_adjustment.role", &row.role)?,
            key_prefix: row.key_prefix,
        })
    }
}

/// A stored amount and currency, both present or both empty.
pub fn stored_value(minor: Option<i64>, currency: Option<&str>) -> Result<Option<Money>, AppError> {
    match (minor, currency) {
        (None, None) => Ok(None),
        (Some(minor), Some(currency)) => Money::from_stored(minor, currency)
            .map(Some)
            .map_err(|e| AppError::internal_from("stored conversion value", e)),
        _ => Err(AppError::internal(
            "stored conversion value has an amount or a currency, not both",
        )),
    }
}

/// One message of a conversation's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: Uuid,
    /// 1-based position in the thread, counting tool calls.
    pub seq: i32,
    pub role: MessageRole,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// Stored cut at [`crate::domain::message::MAX_CONTENT_BYTES`].
    pub truncated: bool,
}

impl TryFrom<message::Model> for Message {
    type Error = AppError;

    fn try_from(row: message::Model) -> Result<Self, AppError> {
        Ok(Message {
            id: row.id,
            seq: row.seq,
            role: stored("message.role", &row.role)?,
            content: row.content,
            created_at: from_micros(row.created_at),
            truncated: row.truncated,
        })
    }
}

/// Conversions by the conversation they belong to, each list oldest first.
pub type ConversionsOf = std::collections::HashMap<Uuid, Vec<Conversion>>;

/// Reads every row of a list, failing on the first corrupt one.
pub fn read_all<R, T>(rows: impl IntoIterator<Item = R>) -> Result<Vec<T>, AppError>
where
    T: TryFrom<R, Error = AppError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_conversion(kind: &str) -> conversion::Model {
        conversion::Model {
            id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            conversation_id: None,
            kind: kind.to_owned(),
            record_type: "BOOKING".to_owned(),
            record_id: "b-1".to_owned(),
            source: "DIRECT".to_owned(),
            attributed: true,
            unattributed_reason: None,
            idempotency_key: None,
            payload_fingerprint: None,
            feed_seq: 7,
            recorded_at: 1_700_000_000_000_000,
            link_id: None,
            link_action: None,
            conversation_started_at: None,
            conversation_channel: None,
            feed_xid: 0,
            value_minor: None,
            currency: None,
            status: "ACTIVE".to_owned(),
            recorded_value_minor: None,
            review: None,
        }
    }

    #[test]
    fn stored_strings_are_read_once_into_domain_values() {
        let read = Conversion::try_from(stored_conversion("BOOKING_CREATED")).expect("valid");
        assert_eq!(read.kind, ConversionKind::BookingCreated);
        assert_eq!(read.record_type, RecordType::Booking);
        assert_eq!(read.source, ConversionSource::Direct);
        assert_eq!(read.recorded_at, from_micros(1_700_000_000_000_000));
        assert_eq!(read.value, None);
        let mut valued = stored_conversion("BOOKING_CREATED");
        (valued.value_minor, valued.currency) = (Some(12_345), Some("KWD".to_owned()));
        let read = Conversion::try_from(valued).expect("valid");
        assert_eq!(read.value.map(|v| v.amount()), Some("12.345".to_owned()));
    }

    #[test]
    fn a_corrupt_stored_value_is_an_internal_error_not_the_callers() {
        let refused = Conversion::try_from(stored_conversion("NOT_A_KIND")).expect_err("corrupt");
        assert!(matches!(refused, AppError::Internal { .. }), "{refused:?}");
        let mut half = stored_conversion("BOOKING_CREATED");
        half.value_minor = Some(100);
        let refused = Conversion::try_from(half).expect_err("an amount without a currency");
        assert!(matches!(refused, AppError::Internal { .. }), "{refused:?}");
    }
}
