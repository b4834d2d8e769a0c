//! The list's rows as plain values. A page of 50 conversations asks for
//! some 600 fields; resolved one by one, each costs a boxed future, a pass
//! through every extension and a path entry, most of a list request's CPU.
//! A listed row writes the fields a list asks for straight into a value,
//! from the row and the conversions that came with it. It is the same
//! GraphQL type as [`Conversation`]: any selection this does not know
//! (the thread, `conversions`, a repeated response key) is handed to that
//! type's own resolvers instead, so the answer never depends on the path.

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, ID, InputType, Name, OutputType, Positioned, ScalarType, ServerResult,
    Value,
};

use super::context::{RequestContext, request};
use super::enums::{BadgeColour, Channel, ConversionKind, RecordType};
use super::objects::Conversation;
use crate::domain::cursor::{NodeType, global_id};
use crate::domain::settings::TenantSettings;
use crate::service::read_model;

/// A row of the AI Conversations list, with what the list read of its
/// conversions, when it read them.
#[derive(Clone)]
pub struct ListedConversation {
    pub conversation: read_model::Conversation,
    pub conversions: Option<ListedConversions>,
}

/// What the list read of a row's conversions.
#[derive(Clone)]
pub enum ListedConversions {
    /// Every conversion of the row, oldest first.
    All(Vec<read_model::Conversion>),
    /// The row has no attributed conversion, so no badge; any others were
    /// not read.
    NoBadge,
}

impl ListedConversation {
    /// Its id, if the list found it without a badge.
    pub fn badgeless(&self) -> Option<uuid::Uuid> {
        matches!(self.conversions, Some(ListedConversions::NoBadge)).then_some(self.conversation.id)
    }
}

impl ListedConversions {
    /// Every conversion of the row, when the list read them all.
    pub fn all(&self) -> Option<&Vec<read_model::Conversion>> {
        match self {
            ListedConversions::All(all) => Some(all),
            ListedConversions::NoBadge => None,
        }
    }
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
        let (r, basis) = Basis::of(ctx, field).await?;
        if let Some(value) = basis.row(self).write(ctx, &ctx.item.node) {
            return Ok(value);
        }
        r.mark_badgeless(self.badgeless());
        let conversation = Conversation(self.conversation.clone());
        OutputType::resolve(&conversation, ctx, field).await
    }
}

/// What every row of one request is written with.
pub(super) struct Basis {
    settings: Arc<TenantSettings>,
    now: chrono::DateTime<chrono::Utc>,
}

impl Basis {
    /// The caller's settings and the request's time, with the request
    /// they came from; a failure is an error at `field`.
    pub(super) async fn of<'a>(
        ctx: &ContextSelectionSet<'a>,
        field: &Positioned<Field>,
    ) -> ServerResult<(&'a RequestContext, Self)> {
        let failed = |e: crate::error::AppError| {
            ctx.set_error_path(async_graphql::Error::from(e).into_server_error(field.pos))
        };
        let r = request(ctx).map_err(failed)?;
        let settings = r.settings().await.map_err(failed)?;
        let now = r.services.clock.now();
        Ok((r, Self { settings, now }))
    }

    pub(super) fn row<'r>(&'r self, listed: &'r ListedConversation) -> Row<'r> {
        Row {
            listed,
            settings: &self.settings,
            now: self.now,
        }
    }
}

/// What a row's fields are written from.
pub(super) struct Row<'a> {
    pub listed: &'a ListedConversation,
    pub settings: &'a TenantSettings,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Writes `selection`, made for an object of one of `types`, into
/// `fields`, each field answered by `answer` and fragments followed;
/// `None` when some field has no plain answer.
pub(super) fn write_fields(
    ctx: &ContextSelectionSet<'_>,
    selection: &SelectionSet,
    types: &[&str],
    fields: &mut IndexMap<Name, Value>,
    answer: &mut dyn FnMut(&Field) -> Option<Value>,
) -> Option<()> {
    let applies = |condition: Option<&str>| condition.is_none_or(|t| types.contains(&t));
    for item in &selection.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                if !field.arguments.is_empty() || !field.directives.is_empty() {
                    return None;
                }
                put(fields, &field.response_key().node, answer(field)?)?;
            }
            Selection::FragmentSpread(spread) => {
                let fragment = ctx
                    .query_env
                    .fragments
                    .get(&spread.node.fragment_name.node)?;
                if applies(Some(fragment.node.type_condition.node.on.node.as_str())) {
                    write_fields(
                        ctx,
                        &fragment.node.selection_set.node,
                        types,
                        fields,
                        answer,
                    )?;
                }
            }
            Selection::InlineFragment(inline) => {
                let condition = inline.node.type_condition.as_ref();
                if applies(condition.map(|c| c.node.on.node.as_str())) {
                    write_fields(ctx, &inline.node.selection_set.node, types, fields, answer)?;
                }
            }
        }
    }
    Some(())
}

/// Adds `value` under `key`; `None` when the key is taken (two selections
/// answered under one name are merged by the engine, not here).
pub(super) fn put(fields: &mut IndexMap<Name, Value>, key: &Name, value: Value) -> Option<()> {
    match fields.entry(key.clone()) {
        Entry::Occupied(_) => None,
        Entry::Vacant(place) => {
            place.insert(value);
            Some(())
        }
    }
}

pub(super) fn text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |t| Value::String(t.to_owned()))
}

/// A `DateTime` as the scalar writes it.
fn time(value: chrono::DateTime<chrono::Utc>) -> Value {
    Value::String(crate::domain::clock::rfc3339(value))
}

impl Row<'_> {
    /// The conversation's selection as a plain value; `None` when some part
    /// of it is not one.
    pub(super) fn write(
        &self,
        ctx: &ContextSelectionSet<'_>,
        selection: &SelectionSet,
    ) -> Option<Value> {
        let mut fields = IndexMap::with_capacity(selection.items.len());
        write_fields(
            ctx,
            selection,
            &["Conversation", "Node"],
            &mut fields,
            &mut |field| self.field(field),
        )?;
        Some(Value::Object(fields))
    }

    /// One field of the conversation, as `Conversation`'s resolvers answer it.
    fn field(&self, field: &Field) -> Option<Value> {
        let c = &self.listed.conversation;
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
            "labels" => self.labels(&field.selection_set.node)?,
            _ => return None,
        })
    }

    fn labels(&self, selection: &SelectionSet) -> Option<Value> {
        let labels = self.listed.conversation.labels.iter().map(|label| {
            object(selection, "Label", |name| match name {
                "key" => Some(Value::String(label.key.clone())),
                "value" => Some(Value::String(label.value.clone())),
                _ => None,
            })
        });
        Some(Value::List(labels.collect::<Option<Vec<Value>>>()?))
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
        let conversions = match self.listed.conversions.as_ref()? {
            ListedConversions::All(all) => all.as_slice(),
            ListedConversions::NoBadge => &[],
        };
        let badges = conversions
            .iter()
            .filter(|c| c.has_badge())
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
                "value" => match conversion.value {
                    None => Value::Null,
                    Some(value) => object(&field.selection_set.node, "Money", |name| match name {
                        "amount" => Some(Value::String(value.amount())),
                        "currency" => Some(Value::String(value.currency.code().to_owned())),
                        _ => None,
                    })?,
                },
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
pub(super) fn object(
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
