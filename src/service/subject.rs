//! Subject access: everything the tenant holds about a person (found by
//! contact or signed-in user id) as one document: conversations, their
//! messages (tool calls included), outcomes, confirmations and links.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{confirmation, conversation, conversion, cta_link, message};
use sea_orm::sea_query::{Condition, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use uuid::Uuid;

use super::erasure::stored_contact_lowered;
use super::read_model::{self, Conversation};
use super::{Caller, Services};
use crate::domain::InvalidInput;
use crate::domain::clock::from_micros;
use crate::domain::cursor::{NodeType, global_id};
use crate::domain::erasure::contact_forms;
use crate::domain::role::Operation;
use crate::domain::text;
use crate::error::AppError;

/// Most conversations one document holds; a person with more gets the
/// newest and `complete: false`.
pub const MAX_CONVERSATIONS: u64 = 1_000;
/// Most messages one document holds, over all its conversations.
pub const MAX_MESSAGES: u64 = 20_000;

/// Everything held about one person.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectData {
    pub subject: Subject,
    pub generated_at: DateTime<Utc>,
    /// False when the person has more than the document's limits hold.
    pub complete: bool,
    pub conversations: Vec<HeldConversation>,
}

/// Who the document is about, as asked.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub contact: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldConversation {
    pub id: String,
    pub session_id: String,
    pub channel: &'static str,
    pub started_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub contact: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub thread_key: Option<String>,
    pub opening_message: Option<String>,
    pub messages: Vec<HeldMessage>,
    pub conversions: Vec<HeldConversion>,
    pub confirmations: Vec<HeldConfirmation>,
    pub links: Vec<HeldLink>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldMessage {
    pub position: i32,
    pub role: &'static str,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldConversion {
    pub id: String,
    pub kind: &'static str,
    pub record_type: &'static str,
    pub record_id: String,
    pub recorded_at: DateTime<Utc>,
    pub status: &'static str,
    pub attributed: bool,
    pub value: Option<HeldMoney>,
}

#[derive(Debug, Serialize)]
pub struct HeldMoney {
    pub amount: String,
    pub currency: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldConfirmation {
    pub action: String,
    pub summary: String,
    pub requested_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldLink {
    pub action: String,
    pub target_url: String,
    pub issued_at: DateTime<Utc>,
    pub follow_count: i32,
}

impl Services {
    /// Everything held about the person with this contact or user id
    /// (either or both; ADMIN only), newest conversation first.
    pub async fn subject_data(
        &self,
        caller: &Caller,
        contact: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<SubjectData, AppError> {
        caller.require(Operation::ManagePersonalData, "read a person's data")?;
        let contact = contact.map(contact_forms).transpose()?;
        let user_id = user_id
            .map(|u| text::required("userId", u, 200))
            .transpose()?;
        let mut who = Condition::any();
        if let Some(forms) = &contact {
            who = who.add(
                Condition::all()
                    .add(conversation::Column::Contact.is_not_null())
                    .add(stored_contact_lowered().is_in(forms.clone())),
            );
        }
        if let Some(id) = &user_id {
            who = who.add(conversation::Column::UserId.eq(id.clone()));
        }
        if contact.is_none() && user_id.is_none() {
            return Err(InvalidInput::new("give contact, userId or both").into());
        }
        let rows = conversation::Entity::find()
            .filter(conversation::Column::TenantId.eq(caller.tenant_id))
            .filter(who)
            .order_by_desc(conversation::Column::StartedAt)
            .order_by_desc(conversation::Column::Id)
            .limit(MAX_CONVERSATIONS + 1)
            .all(&self.db)
            .await?;
        let mut complete = rows.len() as u64 <= MAX_CONVERSATIONS;
        // The newest conversations whole, as many as the message budget
        // holds: never an older one's messages in place of a newer one's.
        let mut budget = MAX_MESSAGES;
        let mut conversations = Vec::new();
        for row in rows.into_iter().take(MAX_CONVERSATIONS as usize) {
            let Some(left) = budget.checked_sub(u64::try_from(row.message_count).unwrap_or(0))
            else {
                complete = false;
                break;
            };
            budget = left;
            conversations.push(Conversation::try_from(row)?);
        }
        let ids: Vec<Uuid> = conversations.iter().map(|c| c.id).collect();
        let held = self.held_parts(&ids).await?;
        complete &= !held.cut;
        Ok(SubjectData {
            subject: Subject {
                contact: contact.and_then(|forms| forms.into_iter().next()),
                user_id,
            },
            generated_at: self.clock.now(),
            complete,
            conversations: held.assemble(conversations)?,
        })
    }

    /// What hangs off the conversations `ids`, each kind at most
    /// [`MAX_MESSAGES`] rows (`cut` says when one had more).
    async fn held_parts(&self, ids: &[Uuid]) -> Result<Parts, AppError> {
        if ids.is_empty() {
            return Ok(Parts::default());
        }
        let mut parts = Parts {
            messages: message::Entity::find()
                .filter(message::Column::ConversationId.is_in(ids.iter().copied()))
                .order_by_asc(message::Column::ConversationId)
                .order_by_asc(message::Column::Seq)
                .limit(MAX_MESSAGES + 1)
                .all(&self.db)
                .await?,
            conversions: conversion::Entity::find()
                .filter(conversion::Column::ConversationId.is_in(ids.iter().copied()))
                .order_by_asc(conversion::Column::FeedSeq)
                .limit(MAX_MESSAGES + 1)
                .all(&self.db)
                .await?,
            confirmations: confirmation::Entity::find()
                .filter(confirmation::Column::ConversationId.is_in(ids.iter().copied()))
                .order_by_asc(confirmation::Column::RequestedAt)
                .limit(MAX_MESSAGES + 1)
                .all(&self.db)
                .await?,
            links: cta_link::Entity::find()
                .filter(cta_link::Column::ConversationId.is_in(ids.iter().copied()))
                .order_by_asc(cta_link::Column::IssuedAt)
                .limit(MAX_MESSAGES + 1)
                .all(&self.db)
                .await?,
            cut: false,
        };
        let over = |len: usize| len as u64 > MAX_MESSAGES;
        parts.cut = over(parts.messages.len())
            || over(parts.conversions.len())
            || over(parts.confirmations.len())
            || over(parts.links.len());
        Ok(parts)
    }
}

/// The rows hanging off a person's conversations.
#[derive(Default)]
struct Parts {
    messages: Vec<message::Model>,
    conversions: Vec<conversion::Model>,
    confirmations: Vec<confirmation::Model>,
    links: Vec<cta_link::Model>,
    /// Some kind had more rows than a document holds.
    cut: bool,
}

impl Parts {
    fn assemble(self, conversations: Vec<Conversation>) -> Result<Vec<HeldConversation>, AppError> {
        let index: HashMap<Uuid, usize> = conversations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        let mut held: Vec<HeldConversation> = conversations.into_iter().map(held).collect();
        for row in self.messages.into_iter().take(MAX_MESSAGES as usize) {
            let i = index[&row.conversation_id];
            let m = read_model::Message::try_from(row)?;
            held[i].messages.push(HeldMessage {
                position: m.seq,
                role: m.role.as_str(),
                content: m.content,
                created_at: m.created_at,
            });
        }
        for row in self.conversions {
            let Some(i) = row.conversation_id.and_then(|id| index.get(&id).copied()) else {
                continue;
            };
            let c = read_model::Conversion::try_from(row)?;
            held[i].conversions.push(HeldConversion {
                id: global_id(NodeType::Conversion, c.id),
                kind: c.kind.as_str(),
                record_type: c.record_type.as_str(),
                record_id: c.record_id,
                recorded_at: c.recorded_at,
                status: c.status.as_str(),
                attributed: c.attributed,
                value: c.value.map(|v| HeldMoney {
                    amount: v.amount(),
                    currency: v.currency.code(),
                }),
            });
        }
        for row in self.confirmations {
            held[index[&row.conversation_id]]
                .confirmations
                .push(HeldConfirmation {
                    action: row.action,
                    summary: row.summary,
                    requested_at: from_micros(row.requested_at),
                    confirmed_at: row.confirmed_at.map(from_micros),
                    cancelled_at: row.cancelled_at.map(from_micros),
                    cancel_reason: row.cancel_reason,
                });
        }
        for row in self.links {
            held[index[&row.conversation_id]].links.push(HeldLink {
                action: row.action,
                target_url: row.target_url,
                issued_at: from_micros(row.issued_at),
                follow_count: row.follow_count,
            });
        }
        Ok(held)
    }
}

fn held(c: Conversation) -> HeldConversation {
    HeldConversation {
        id: global_id(NodeType::Conversation, c.id),
        session_id: c.session_id.to_string(),
        channel: c.channel.as_str(),
        started_at: c.started_at,
        last_activity_at: c.last_activity_at,
        closed_at: c.closed_at,
        contact: c.contact,
        user_id: c.user_id,
        user_name: c.user_name,
        thread_key: c.thread_key,
        opening_message: c.opening_message,
        messages: Vec::new(),
        conversions: Vec::new(),
        confirmations: Vec::new(),
        links: Vec::new(),
    }
}
