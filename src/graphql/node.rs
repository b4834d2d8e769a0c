//! Relay's `node(id)`: any object by its opaque global id.

use async_graphql::{Context, ID, Interface, Object, Result};

use super::context::request;
use super::message::Message;
use super::objects::Conversation;
use super::objects::Conversion;
use crate::domain::cursor::{NodeType, parse_global_id};

/// An object with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Conversation(Conversation),
    Message(Message),
    Conversion(Conversion),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global id; null when there is no such object for
    /// this API key.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let r = request(ctx)?;
        let Some((node_type, uuid)) = parse_global_id(&id) else {
            return Ok(None);
        };
        let node = match node_type {
            NodeType::Conversation => r
                .services
                .conversation_by_id(&r.caller, uuid)
                .await?
                .map(|c| Node::Conversation(Conversation(c))),
            NodeType::Message => r
                .services
                .message_by_id(&r.caller, uuid)
                .await?
                .map(|m| Node::Message(Message(m))),
            NodeType::Conversion => r
                .services
                .conversion_by_id(&r.caller, uuid)
                .await?
                .map(|c| Node::Conversion(Conversion(c))),
        };
        Ok(node)
    }
}
