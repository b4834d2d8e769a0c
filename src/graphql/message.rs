//! The `Message` type.

use async_graphql::{ID, Object, Result};
use chrono::{DateTime, Utc};
use entity::message;

use super::enums::MessageRole;
use crate::domain;
use crate::domain::clock::from_micros;
use crate::domain::cursor::{NodeType, global_id};
use crate::error::{AppError, stored};

/// One message of a conversation's thread.
pub struct Message(pub message::Model);

impl Message {
    fn domain_role(&self) -> Result<domain::message::MessageRole, AppError> {
        stored("message.role", &self.0.role)
    }
}

#[Object]
impl Message {
    /// Opaque global id; accepted by `node(id:)`.
    pub async fn id(&self) -> ID {
        ID(global_id(NodeType::Message, self.0.id))
    }

    /// Who wrote it.
    async fn role(&self) -> Result<MessageRole> {
        Ok(self.domain_role()?.into())
    }

    /// How the thread labels it: "Visitor", "AI agent" or "Tool".
    async fn label(&self) -> Result<&'static str> {
        Ok(self.domain_role()?.label())
    }

    /// The text, exactly as appended.
    async fn content(&self) -> &str {
        &self.0.content
    }

    /// 1-based position in the thread, counting tool calls.
    async fn position(&self) -> i32 {
        self.0.seq
    }

    /// When it was appended.
    async fn created_at(&self) -> DateTime<Utc> {
        from_micros(self.0.created_at)
    }
}
