//! The list's rows as plain values. A page of 50 conversations asks for
//! some 600 fields; resolved one by one, each costs a boxed future, a pass
//! through every extension and a path entry, most of a list request's CPU.
//! A listed row writes the fields a list asks for straight into a value,
//! from the row and the conversions that came with it. It is the same
//! GraphQL type as [`Conversation`]: any selection this does not know
//! (the thread, `conversions`, a repeated response key) is handed to that
//! type's own resolvers instead, so the answer never depends on the path.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, ID, InputType, Name, OutputType, Positioned, ScalarType, ServerResult,
    Value,
};

use super::context::request;
use super::enums::{BadgeColour, Channel, ConversionKind, RecordType};
use super::objects::Conversation;
use crate::domain::cursor::{NodeType, global_id};
use crate::domain::settings::TenantSettings;
use crate::service::read_model;

/// A row of the AI Conversations list, with its conversions when the
/// list loaded them.
pub struct ListedConversation {
    pub conversation: read_model::Conversation,
    pub conversions: Option<Vec<read_model::Conversion>>,
}

impl OutputType for ListedConversation {
    fn type_name() -> Cow<'static, str> {
        <Conversation as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Conversation as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let failed = |e: crate::error::AppError| {
            ctx.set_error_path(async_graphql::Error::from(e).into_server_error(field.pos))
        };
        let r = request(ctx).map_err(failed)?;
        let settings = r.settings().await.map_err(failed)?;
        let row = Row {
            listed: self,
            settings: &settings,
            now: r.services.clock.now(),
        };
        let mut fields = IndexMap::new();
        if row.write(ctx, &ctx.item.node, &mut fields).is_some() {
            return Ok(Value::Object(fields));
        }
        let conversation = Conversation(self.conversation.clone());
        OutputType::resolve(&conversation, ctx, field).await
    }
}

/// What a row's fields are written from.
struct Row<'a> {
    listed: &'a ListedConversation,
    settings: &'a TenantSettings,
    now: chrono::DateTime<chrono::Utc>,
}

/// Whether a fragment written for `type_condition` applies to a conversation.
fn applies(type_condition: Option<&str>) -> bool {
    type_condition.is_none_or(|t| t == "Conversation" || t == "Node")
}

/// Adds `value` under `key`; `None` when the key is taken (two selections
/// answered under one name are merged by the engine, not here).
fn put(fields: &mut IndexMap<Name, Value>, key: &Name, value: Value) -> Option<()> {
    match fields.entry(key.clone()) {
        Entry::Occupied(_) => None,
        Entry::Vacant(place) => {
            place.insert(value);
            Some(())
        }
    }
}

fn text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |t| Value::String(t.to_owned()))
}

fn time(value: chrono::DateTime<chrono::Utc>) -> Value {
    ScalarType::to_value(&value)
}

impl Row<'_> {
    /// Writes the selection into `fields`; `None` when some part of it is
    /// not a plain value.
    fn write(
        &self,
        ctx: &ContextSelectionSet<'_>,
        selection: &SelectionSet,
        fields: &mut IndexMap<Name, Value>,
    ) -> Option<()> {
        for item in &selection.items {
            match &item.node {
                Selection::Field(field) => {
                    let value = self.field(&field.node)?;
                    put(fields, &field.node.response_key().node, value)?;
                }
                Selection::FragmentSpread(spread) => {
                    let fragment = ctx
                        .query_env
                        .fragments
                        .get(&spread.node.fragment_name.node)?;
                    if applies(Some(fragment.node.type_condition.node.on.node.as_str())) {
                        self.write(ctx, &fragment.node.selection_set.node, fields)?;
                    }
                }
                Selection::InlineFragment(inline) => {
                    let condition = inline.node.type_condition.as_ref();
                    if applies(condition.map(|c| c.node.on.node.as_str())) {
                        self.write(ctx, &inline.node.selection_set.node, fields)?;
                    }
                }
            }
        }
        Some(())
    }

    /// One field of the conversation, as `Conversation`'s resolvers answer it.
    fn field(&self, field: &Field) -> Option<Value> {
        let c = &self.listed.conversation;
        if !field.arguments.is_empty() || !field.directives.is_empty() {
            return None;
        }
        Some(match field.name.node.as_str() {
            "__typename" => Value::String("Conversation".to_owned()),
            "id" => ScalarType::to_value(&ID(global_id(NodeType::Conversation, c.id))),
            "sessionId" => Value::String(c.session_id.as_str().to_owned()),
            "channel" => Channel::from(c.channel).to_value(),
            "startedAt" => time(c.started_at),
            "lastActivityAt" => time(c.last_activity_at),
            "closedAt" => c.closed_at.map_or(Value::Null, time),
            "active" => Value::Boolean(c.is_active(self.now, self.settings)),
            "openingMessage" => text(c.opening_message.as_deref()),
            "contact" => text(c.contact.as_deref()),
            "threadKey" => text(c.thread_key.as_deref()),
            "messageCount" => Value::from(c.message_count),
            "user" => self.user(&field.selection_set.node)?,
            "badges" => self.badges(&field.selection_set.node)?,
            _ => return None,
        })
    }

    fn user(&self, selection: &SelectionSet) -> Option<Value> {
        let c = &self.listed.conversation;
        if c.user_id.is_none() && c.user_name.is_none() {
            return Some(Value::Null);
        }
        object(selection, "User", |name| match name {
            "id" => Some(text(c.user_id.as_deref())),
            "name" => Some(text(c.user_name.as_deref())),
            _ => None,
        })
    }

    fn badges(&self, selection: &SelectionSet) -> Option<Value> {
        let conversions = self.listed.conversions.as_ref()?;
        let badges = conversions
            .iter()
            .filter(|c| c.attributed)
            .map(|c| self.badge(c, selection))
            .collect::<Option<Vec<Value>>>()?;
        Some(Value::List(badges))
    }

    fn badge(
        &self,
        conversion: &read_model::Conversion,
        selection: &SelectionSet,
    ) -> Option<Value> {
        let kind = conversion.kind;
        let mut fields = IndexMap::new();
        for item in &selection.items {
            let Selection::Field(field) = &item.node else {
                return None;
            };
            let field = &field.node;
            let value = match field.name.node.as_str() {
                "record" => object(&field.selection_set.node, "Record", |name| match name {
                    "type" => Some(RecordType::from(conversion.record_type).to_value()),
                    "id" => Some(Value::String(conversion.record_id.clone())),
                    "url" => Some(text(
                        self.settings
                            .record_url(conversion.record_type, &conversion.record_id)
                            .as_deref(),
                    )),
                    _ => None,
                })?,
                "kind" => ConversionKind::from(kind).to_value(),
                "label" => Value::String(kind.badge_label().to_owned()),
                "colour" => BadgeColour::from(kind.badge_colour()).to_value(),
                "recordedAt" => time(conversion.recorded_at),
                "__typename" => Value::String("Badge".to_owned()),
                _ => return None,
            };
            put(&mut fields, &field.response_key().node, value)?;
        }
        Some(Value::Object(fields))
    }
}

/// An object of leaf fields only: each selected field answered by `leaf`,
/// `__typename` by `type_name`. `None` for anything else (a fragment, a
/// nested selection, a repeated response key).
fn object(
    selection: &SelectionSet,
    type_name: &str,
    leaf: impl Fn(&str) -> Option<Value>,
) -> Option<Value> {
    let mut fields = IndexMap::with_capacity(selection.items.len());
    for item in &selection.items {
        let Selection::Field(field) = &item.node else {
            return None;
        };
        let field = &field.node;
        if !field.selection_set.node.items.is_empty() || !field.directives.is_empty() {
            return None;
        }
        let value = match field.name.node.as_str() {
            "__typename" => Value::String(type_name.to_owned()),
            name => leaf(name)?,
        };
        put(&mut fields, &field.response_key().node, value)?;
    }
    Some(Value::Object(fields))
}
