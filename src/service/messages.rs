//! Appending messages to a conversation and reading its thread.

use entity::message;
use migration::message_grams;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use uuid::Uuid;

use super::conversions::write::retry_raced;
use super::read_model::{self, Conversation, Message};
use super::request_keys::{Answer, Keyed, KeyedOperation};
use super::sessions::{lock_open_session, touch_for_message};
use super::{Caller, Page, Services};
use crate::domain::activity::ActivityChange;
use crate::domain::clock::to_micros;
use crate::domain::message::{Fitted, MessageRole, fit_content};
use crate::domain::opening::opening_message;
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::error::AppError;

impl Services {
    #[tracing::instrument(skip(self, caller, session_id, content, idempotency_key), fields(tenant = %caller.tenant_id, role = role.as_str()))]
    pub async fn append_message(
        &self,
        caller: &Caller,
        session_id: &SessionId,
        role: MessageRole,
        content: String,
        idempotency_key: Option<&str>,
    ) -> Result<(Message, Conversation), AppError> {
        caller.require(Operation::ManageSessions, "append messages")?;
        let keyed = Keyed::of(
            KeyedOperation::AppendMessage,
            idempotency_key,
            &[
                Some(session_id.as_str()),
                Some(role.as_str()),
                Some(&content),
            ],
        )?;
        let fitted = fit_content(content).map_err(|e| AppError::BadInput(e.to_string()))?;
        let appended =
            retry_raced(|| self.append_once(caller, session_id, role, &fitted, keyed.as_ref()))
                .await?;
        self.conversation_changed(caller, appended.1.id, ActivityChange::Message);
        Ok(appended)
    }

    /// One attempt of [`Self::append_message`], in one transaction.
    async fn append_once(
        &self,
        caller: &Caller,
        session_id: &SessionId,
        role: MessageRole,
        fitted: &Fitted,
        keyed: Option<&Keyed>,
    ) -> Result<(Message, Conversation), AppError> {
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        if let Some(keyed) = keyed
            && let Some(first) = keyed.bound(&*txn, caller.tenant_id).await?
        {
            return replayed(&*txn, &first).await;
        }
        let found = lock_open_session(&txn, caller.tenant_id, session_id, now)
            .await?
            .conversation;
        // A person erased mid-conversation stays erased: the thread goes on
        // (positions, counts, activity) without their words.
        let erased = found.erased_at.is_some();
        let content = if erased {
            String::new()
        } else {
            fitted.content.clone()
        };
        let opening = (role == MessageRole::Visitor && found.opening_message.is_none() && !erased)
            .then(|| opening_message(&content));
        let conversation = touch_for_message(found.id, now, opening)
            .exec_with_returning(&*txn)
            .await?
            .pop()
            .ok_or(AppError::NotFound("session"))?;
        let message = message::ActiveModel {
            id: Set(Uuid::now_v7()),
            conversation_id: Set(conversation.id),
            seq: Set(conversation.message_count),
            role: Set(role.as_str().to_owned()),
            content: Set(content),
            created_at: Set(to_micros(now)),
            truncated: Set(fitted.truncated && !erased),
        }
        .insert(&*txn)
        .await?;
        if role != MessageRole::Tool
            && !erased
            && txn.get_database_backend() == DatabaseBackend::Sqlite
        {
            // SQLite's short-text search index, written here rather than by
            // a trigger: SQL cannot list a text's character pairs cheaply.
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "INSERT INTO message_grams (rowid, grams) SELECT rowid, ? FROM message WHERE id = ?",
                [message_grams(&message.content).into(), message.id.into()],
            ))
            .await?;
        }
        if let Some(keyed) = keyed {
            let answer = Answer {
                conversation_id: conversation.id,
                message_id: Some(message.id),
                resumed: false,
            };
            keyed
                .bind(&*txn, caller.tenant_id, answer, to_micros(now))
                .await?;
        }
        txn.commit().await?;
        Ok((message.try_into()?, conversation.try_into()?))
    }

    /// Messages of a conversation the caller has already been allowed to see,
    /// oldest first.
    pub async fn thread_page(
        &self,
        caller: &Caller,
        conversation_id: Uuid,
        first: u64,
        after_seq: Option<i32>,
        include_tool_calls: bool,
    ) -> Result<Page<Message>, AppError> {
        if include_tool_calls {
            caller.require(Operation::ReadToolCalls, "read tool calls")?;
        }
        let mut query = message::Entity::find()
            .filter(message::Column::ConversationId.eq(conversation_id))
            .filter(message::Column::Seq.gt(after_seq.unwrap_or(0)));
        if !include_tool_calls {
            query = query.filter(message::Column::Role.ne(MessageRole::Tool.as_str()));
        }
        let rows = query
            .order_by_asc(message::Column::Seq)
            .limit(first + 1)
            .all(&self.db)
            .await?;
        Ok(Page::from_overfetch(read_model::read_all(rows)?, first))
    }
}

impl Services {
    /// A message by id, if its conversation belongs to the caller's tenant.
    /// Tool calls are visible only to roles that may read them.
    pub async fn message_by_id(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Option<Message>, AppError> {
        caller.require(Operation::ReadConversation, "read conversations")?;
        let Some(found) = message::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        if found.role == MessageRole::Tool.as_str() && !caller.role.may(Operation::ReadToolCalls) {
            return Ok(None);
        }
        let visible = self
            .conversation_by_id(caller, found.conversation_id)
            .await?
            .is_some();
        visible.then(|| found.try_into()).transpose()
    }
}

/// The first answer of a keyed `appendMessage`: its message, and the
/// conversation as it is now.
async fn replayed<C: ConnectionTrait>(
    db: &C,
    first: &entity::request_key::Model,
) -> Result<(Message, Conversation), AppError> {
    let message = match first.message_id {
        Some(id) => message::Entity::find_by_id(id).one(db).await?,
        None => None,
    }
    .ok_or_else(|| AppError::internal("a message key lost its message"))?;
    let conversation = entity::conversation::Entity::find_by_id(first.conversation_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("session"))?;
    Ok((message.try_into()?, conversation.try_into()?))
}
