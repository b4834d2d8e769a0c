//! A page of the AI Conversations list as one plain value. Resolved by the
//! engine, each of a page's 50 rows is a future of its own, with a path
//! entry, a cursor made whether or not anyone asked for it, and the list
//! type's name formatted again per row. A listed page writes the nodes,
//! edges and page info a selection asks for in one pass; any selection it
//! does not know is handed to the engine's own connection type, row by row,
//! so the answer never depends on the path taken.

use std::borrow::Cow;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

use super::listed::{Basis, ListedConversation, Row, object, text, write_fields};
use crate::domain::clock::to_micros;
use crate::domain::cursor::ConversationCursor;

/// One page of the list, as the `conversations` field answers it.
pub struct ListedPage {
    pub rows: Vec<ListedConversation>,
    /// Whether the page was asked for after a cursor.
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

type Engine = Connection<String, ListedConversation>;

impl OutputType for ListedPage {
    fn type_name() -> Cow<'static, str> {
        <Engine as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Engine as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let (r, basis) = Basis::of(ctx, field).await?;
        let page = Written {
            page: self,
            basis: &basis,
        };
        let mut fields = IndexMap::with_capacity(ctx.item.node.items.len());
        let name = Self::type_name();
        if write_fields(
            ctx,
            &ctx.item.node,
            &[name.as_ref()],
            &mut fields,
            &mut |f| page.field(ctx, f),
        )
        .is_some()
        {
            return Ok(Value::Object(fields));
        }
        // Rows answered by `Conversation`'s own resolvers then find their
        // conversions cached: left to the loader's timer, a slow poll of 250
        // rows could split the batch.
        r.mark_badgeless(self.rows.iter().filter_map(ListedConversation::badgeless));
        let loaded = self.rows.iter().filter_map(|row| {
            Some((
                row.conversation.id,
                row.conversions.as_ref()?.all()?.clone(),
            ))
        });
        r.conversions.feed_many(loaded).await;
        OutputType::resolve(&self.engine(), ctx, field).await
    }
}

impl ListedPage {
    /// The engine's connection of the same rows.
    fn engine(&self) -> Engine {
        let mut connection = Connection::new(self.has_previous_page, self.has_next_page);
        connection.edges.extend(
            self.rows
                .iter()
                .map(|row| Edge::new(cursor(row), row.clone())),
        );
        connection
    }
}

fn cursor(row: &ListedConversation) -> String {
    ConversationCursor {
        started_at: to_micros(row.conversation.started_at),
        id: row.conversation.id,
    }
    .encode()
}

/// What a page's fields are written from.
struct Written<'a> {
    page: &'a ListedPage,
    basis: &'a Basis,
}

impl Written<'_> {
    fn row<'r>(&'r self, listed: &'r ListedConversation) -> Row<'r> {
        self.basis.row(listed)
    }

    /// One field of the connection, as the engine's connection answers it.
    fn field(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        let rows = &self.page.rows;
        let selection = &field.selection_set.node;
        Some(match field.name.node.as_str() {
            "__typename" => Value::String(ListedPage::type_name().into_owned()),
            "nodes" => Value::List(
                rows.iter()
                    .map(|listed| self.row(listed).write(ctx, selection))
                    .collect::<Option<_>>()?,
            ),
            "edges" => {
                let edge_type =
                    <Edge<String, ListedConversation, EmptyFields> as OutputType>::type_name();
                Value::List(
                    rows.iter()
                        .map(|listed| self.edge(ctx, &edge_type, listed, selection))
                        .collect::<Option<_>>()?,
                )
            }
            "pageInfo" => object(selection, "PageInfo", |name| match name {
                "hasPreviousPage" => Some(Value::Boolean(self.page.has_previous_page)),
                "hasNextPage" => Some(Value::Boolean(self.page.has_next_page)),
                "startCursor" => Some(text(rows.first().map(cursor).as_deref())),
                "endCursor" => Some(text(rows.last().map(cursor).as_deref())),
                _ => None,
            })?,
            _ => return None,
        })
    }

    fn edge(
        &self,
        ctx: &ContextSelectionSet<'_>,
        edge_type: &str,
        listed: &ListedConversation,
        selection: &SelectionSet,
    ) -> Option<Value> {
        let mut fields = IndexMap::with_capacity(selection.items.len());
        write_fields(
            ctx,
            selection,
            &[edge_type],
            &mut fields,
            &mut |f| match f.name.node.as_str() {
                "__typename" => Some(Value::String(edge_type.to_owned())),
                "cursor" => Some(Value::String(cursor(listed))),
                "node" => self.row(listed).write(ctx, &f.selection_set.node),
                _ => None,
            },
        )?;
        Some(Value::Object(fields))
    }
}
