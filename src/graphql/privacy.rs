//! A person's data rights (ADMIN): erasure, its audit log, and everything
//! held about a person (README "Privacy").

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::context::request;
use super::pagination;
use crate::domain::erasure::{self, Person};
use crate::error::AppError;
use crate::service::erasure as service;
use crate::service::subject::SubjectData;

/// What an erasure matched on.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "erasure::ErasureScope")]
pub enum ErasureScope {
    /// The person's contact (email address or phone number).
    Contact,
    /// The person's signed-in user id.
    UserId,
    /// One session.
    SessionId,
    /// The tenant's `messageRetentionDays`.
    Retention,
}

/// One erasure in the audit log: who, when, on what kind of identifier
/// and how much. The erased values are never kept, not even here.
#[derive(SimpleObject)]
pub struct Erasure {
    /// Its id.
    pub id: ID,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The kind of identifier it matched on (not its value).
    pub scope: ErasureScope,
    /// Why, as the operator gave it (for RETENTION, the period).
    pub reason: String,
    /// The conversations it erased.
    pub conversations: i64,
    /// The messages whose text it erased.
    pub messages: i64,
    /// The first characters of the API key that asked; null for the
    /// retention job.
    pub key_prefix: Option<String>,
}

impl From<service::Erasure> for Erasure {
    fn from(e: service::Erasure) -> Self {
        Erasure {
            id: ID(e.id.to_string()),
            at: e.at,
            scope: e.scope.into(),
            reason: e.reason,
            conversations: e.conversations,
            messages: e.messages,
            key_prefix: e.key_prefix,
        }
    }
}

/// Whose data to erase: exactly one of `contact`, `userId`, `sessionId`.
#[derive(InputObject)]
pub struct EraseContactInput {
    /// An email address (any case) or phone number (any form the API
    /// normalises), or a chat contact as it was given.
    pub contact: Option<String>,
    /// A signed-in user id.
    pub user_id: Option<String>,
    /// One session.
    pub session_id: Option<String>,
    /// Why (a request reference, "GDPR art. 17"), up to 500 characters;
    /// kept in the audit log.
    pub reason: String,
}

/// The result of `eraseContact`.
#[derive(SimpleObject)]
pub struct EraseContactPayload {
    /// The conversations erased now; 0 when nothing matched (or all of it
    /// was erased before).
    pub erased: i64,
    /// The audit entry.
    pub erasure: Erasure,
}

#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// The erasure audit log, newest first (ADMIN only).
    async fn erasures(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 250; default 50.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last erasure already seen.")] after: Option<String>,
    ) -> Result<Connection<String, Erasure>> {
        let r = request(ctx)?;
        let first = pagination::ERASURES.first(first)?;
        let after_id = after
            .as_deref()
            .map(|a| {
                Uuid::parse_str(a)
                    .map_err(|_| AppError::BadInput("after is not an erasure cursor".into()))
            })
            .transpose()?;
        let page = r.services.erasure_page(&r.caller, first, after_id).await?;
        Ok(pagination::connection(page, after.is_some(), |e| {
            (e.id.to_string(), e.into())
        }))
    }

    /// Everything held about a person, found by contact, user id or both
    /// (ADMIN only): every conversation with its messages (tool calls
    /// included), outcomes, confirmations and links, as one JSON document
    /// (README "Privacy" describes it). At most 1,000 conversations and
    /// 20,000 messages; `complete` is false when the person has more.
    async fn contact_data(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "An email address or phone number, in any form.")] contact: Option<String>,
        #[graphql(desc = "A signed-in user id.")] user_id: Option<String>,
    ) -> Result<Json<SubjectData>> {
        let r = request(ctx)?;
        let data = r
            .services
            .subject_data(&r.caller, contact.as_deref(), user_id.as_deref())
            .await?;
        Ok(Json(data))
    }
}

#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Erases a person's data (ADMIN only): every matching conversation
    /// loses its messages' text, opening, contact, user, thread key,
    /// confirmation summaries and link targets, and its search-index
    /// entries. Outcomes, badges, times and record ids stay, so stats do
    /// not change. Logged in `erasures`. Erasing again erases nothing more
    /// (`erased: 0`).
    async fn erase_contact(
        &self,
        ctx: &Context<'_>,
        input: EraseContactInput,
    ) -> Result<EraseContactPayload> {
        let r = request(ctx)?;
        let person = Person::named(
            input.contact.as_deref(),
            input.user_id.as_deref(),
            input.session_id.as_deref(),
        )
        .map_err(AppError::from)?;
        let reason = erasure::reason(&input.reason).map_err(AppError::from)?;
        let done = r.services.erase_person(&r.caller, person, reason).await?;
        Ok(EraseContactPayload {
            erased: done.conversations,
            erasure: done.into(),
        })
    }
}
