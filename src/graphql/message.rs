//! The `Message` type.

use async_graphql::{ID, Object};
use chrono::{DateTime, Utc};

use super::enums::MessageRole;
use crate::domain::cursor::{NodeType, global_id};
use crate::service::read_model;

/// One message of a conversation's thread.
pub struct Message(pub read_model::Message);

#[Object]
impl Message {
    /// Opaque global id; accepted by `node(id:)`.
    pub async fn id(&self) -> ID {
        ID(global_id(NodeType::Message, self.0.id))
    }

    /// Who wrote it.
    async fn role(&self) -> MessageRole {
        self.0.role.into()
    }

    /// How the thread labels it: "Visitor", "AI agent" or "Tool".
    async fn label(&self) -> &'static str {
        self.0.role.label()
    }

    /// The text, exactly as appended; empty once erased.
    async fn content(&self) -> &str {
        &self.0.content
    }

    /// True when its text was erased (README "Privacy").
    async fn erased(&self) -> bool {
        self.0.content.is_empty()
    }

    /// True when the content was longer than 32 KiB and is stored cut there
    /// (on a character boundary): a message is never refused for its
    /// length.
    async fn truncated(&self) -> bool {
        self.0.truncated
    }

    /// 1-based position in the thread, counting tool calls.
    async fn position(&self) -> i32 {
        self.0.seq
    }

    /// When it was appended.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
