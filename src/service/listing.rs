//! The AI Conversations list: newest first, keyset pagination on
//! (started_at, id), never OFFSET.

use chrono::{DateTime, Utc};
use entity::{conversation, conversion};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Statement, TryGetable,
};
use uuid::Uuid;

use super::read_model::{Conversation, Conversion, ConversionsOf, read_all};
use super::{Caller, Page, Services};
use crate::domain::channel::Channel;
use crate::domain::clock::to_micros;
use crate::domain::conversion::ConversionKind;
use crate::domain::cursor::ConversationCursor;
use crate::domain::role::Operation;
use crate::domain::session_id::SessionId;
use crate::error::AppError;

/// Longest accepted search text.
pub const MAX_SEARCH_CHARS: usize = 200;

/// Narrows the list. Every field is optional; given fields all apply.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Case-insensitive substring of any visitor or AI message.
    pub search: Option<String>,
    /// Conversations with at least one attributed conversion of these kinds.
    pub badges: Option<Vec<ConversionKind>>,
    /// With (true) or without (false) any attributed conversion.
    pub converted: Option<bool>,
    pub session_id: Option<SessionId>,
    pub channels: Option<Vec<Channel>>,
    pub started_after: Option<DateTime<Utc>>,
    pub started_before: Option<DateTime<Utc>>,
}

/// A page of the list, with every conversion of its rows when asked for.
#[derive(Debug)]
pub struct Listed {
    pub page: Page<Conversation>,
    /// By conversation, oldest first; every row of the page has an entry.
    pub conversions: Option<ConversionsOf>,
}

impl Services {
    /// One page of the list, in one statement: with `with_conversions`,
    /// the rows' conversions (their badges) come in the same statement.
    #[tracing::instrument(skip(self, caller, filter), fields(tenant = %caller.tenant_id))]
    pub async fn list_conversations(
        &self,
        caller: &Caller,
        first: u64,
        after: Option<ConversationCursor>,
        filter: ConversationFilter,
        with_conversions: bool,
    ) -> Result<Listed, AppError> {
        caller.require(Operation::BrowseConversations, "list conversations")?;
        let backend = self.db.get_database_backend();
        check_search(&filter)?;
        let query = match filter.search.as_deref().filter(|s| !s.is_empty()) {
            Some(text) => {
                let ids = self
                    .search_page(caller, first, after, &filter, text)
                    .await?;
                list_query_among(backend, caller, after, &filter, ids)?
            }
            None => list_query(caller, after, &filter)?,
        };
        let query = query
            .order_by_desc(conversation::Column::StartedAt)
            .order_by_desc(conversation::Column::Id);
        if !with_conversions {
            let rows = query.limit(first + 1).all(&self.db).await?;
            return Ok(Listed {
                page: Page::from_overfetch(read_all(rows)?, first),
                conversions: None,
            });
        }
        let page = query.build(backend);
        // The row count is written into the statement, not bound: with a
        // bound LIMIT, PostgreSQL's generic plan looks dearer than planning
        // each time, so it planned every list request (~0.2 ms of its CPU);
        // with the count known it keeps one plan per page size.
        let sql = format!(
            "WITH page AS ({} LIMIT {}) SELECT {} FROM page LEFT JOIN conversion v ON v.conversation_id = page.id \
             ORDER BY page.started_at DESC, page.id DESC, v.feed_seq",
            page.sql,
            first + 1,
            joined_columns()
        );
        let values = page.values.map(|v| v.0).unwrap_or_default();
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let (conversations, conversions) = rows_with_conversions(rows)?;
        Ok(Listed {
            page: Page::from_overfetch(conversations, first),
            conversions: Some(conversions),
        })
    }
}

/// [`list_query`] narrowed to the conversations `ids`, read by primary
/// key. SQLite's planner, without statistics, would rather walk the
/// tenant's (tenant, start) index testing each row against the list (1M
/// conversations: 196 ms against 1 ms), so there the tenant's equality is
/// written so that no index serves it.
pub(super) fn list_query_among(
    backend: DatabaseBackend,
    caller: &Caller,
    after: Option<ConversationCursor>,
    filter: &ConversationFilter,
    ids: Vec<Uuid>,
) -> Result<Select<conversation::Entity>, AppError> {
    let tenant = match backend {
        DatabaseBackend::Sqlite => {
            Expr::cust_with_values(r#"+"conversation"."tenant_id" = ?"#, [caller.tenant_id])
        }
        _ => conversation::Column::TenantId.eq(caller.tenant_id),
    };
    let query = conversation::Entity::find()
        .filter(tenant)
        .filter(conversation::Column::Id.is_in(ids));
    narrowed(query, caller, after, filter)
}

/// The list's rows, filtered (all but the search, which
/// [`Services::search_page`] applies) and after the cursor, not yet ordered.
pub(super) fn list_query(
    caller: &Caller,
    after: Option<ConversationCursor>,
    filter: &ConversationFilter,
) -> Result<Select<conversation::Entity>, AppError> {
    let query =
        conversation::Entity::find().filter(conversation::Column::TenantId.eq(caller.tenant_id));
    narrowed(query, caller, after, filter)
}

/// Refuses a search text longer than [`MAX_SEARCH_CHARS`], before any
/// statement runs.
fn check_search(filter: &ConversationFilter) -> Result<(), AppError> {
    match &filter.search {
        Some(search) if search.chars().count() > MAX_SEARCH_CHARS => Err(AppError::BadInput(
            format!("search may be at most {MAX_SEARCH_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

/// `query` after the cursor and narrowed by every filter but the search.
fn narrowed(
    mut query: Select<conversation::Entity>,
    caller: &Caller,
    after: Option<ConversationCursor>,
    filter: &ConversationFilter,
) -> Result<Select<conversation::Entity>, AppError> {
    if let Some(after) = after {
        // A row-value comparison, so the (tenant, started_at, id) index
        // seeks straight to the cursor on both databases.
        query = query.filter(
            Expr::tuple([
                Expr::col((conversation::Entity, conversation::Column::StartedAt)),
                Expr::col((conversation::Entity, conversation::Column::Id)),
            ])
            .lt(Expr::tuple([
                Expr::value(after.started_at),
                Expr::value(after.id),
            ])),
        );
    }
    if let Some(kinds) = &filter.badges {
        let with_badge = Query::select()
            .column(conversion::Column::ConversationId)
            .from(conversion::Entity)
            .and_where(conversion::Column::TenantId.eq(caller.tenant_id))
            .and_where(conversion::Column::Attributed.eq(true))
            .and_where(conversion::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())))
            .to_owned();
        query = query.filter(conversation::Column::Id.in_subquery(with_badge));
    }
    match filter.converted {
        Some(true) => query = query.filter(conversation::Column::FirstConvertedAt.is_not_null()),
        Some(false) => query = query.filter(conversation::Column::FirstConvertedAt.is_null()),
        None => {}
    }
    if let Some(session_id) = &filter.session_id {
        query = query.filter(conversation::Column::SessionId.eq(session_id.as_str()));
    }
    if let Some(channels) = &filter.channels {
        query =
            query.filter(conversation::Column::Channel.is_in(channels.iter().map(|c| c.as_str())));
    }
    if let Some(after) = filter.started_after {
        query = query.filter(conversation::Column::StartedAt.gte(to_micros(after)));
    }
    if let Some(before) = filter.started_before {
        query = query.filter(conversation::Column::StartedAt.lt(to_micros(before)));
    }
    Ok(query)
}

/// Every column of a page row and of one of its conversions (all null for
/// a row without any), each in its entity's column order.
fn joined_columns() -> String {
    let page = conversation::Column::iter().map(|c| format!("page.\"{}\"", c.as_str()));
    let conversions = conversion::Column::iter().map(|c| format!("v.\"{}\"", c.as_str()));
    page.chain(conversions).collect::<Vec<_>>().join(", ")
}

/// Folds the joined rows (a page row repeated once per conversion, in
/// order) into the page and each row's conversions. Columns are read by
/// position ([`joined_columns`] order): by name, each value costs a
/// formatted column name and a lookup, most of a list request's CPU.
fn rows_with_conversions(
    rows: Vec<QueryResult>,
) -> Result<(Vec<Conversation>, ConversionsOf), AppError> {
    let conversation_columns = conversation::Column::iter().count();
    let mut conversations: Vec<Conversation> = Vec::new();
    let mut conversions = ConversionsOf::new();
    for row in rows {
        let id: Uuid = row.try_get_by_index(0)?;
        if conversations.last().is_none_or(|c| c.id != id) {
            conversations.push(conversation_at(&row)?.try_into()?);
            conversions.entry(id).or_default();
        }
        if row
            .try_get_by_index::<Option<Uuid>>(conversation_columns)?
            .is_some()
        {
            let conversion: Conversion = conversion_at(&row, conversation_columns)?.try_into()?;
            conversions.entry(id).or_default().push(conversion);
        }
    }
    Ok((conversations, conversions))
}

/// Reads a row's columns one after another from a starting position.
struct Columns<'a> {
    row: &'a QueryResult,
    next: usize,
}

impl Columns<'_> {
    fn read<T: TryGetable>(&mut self) -> Result<T, DbErr> {
        self.next += 1;
        self.row.try_get_by_index(self.next - 1)
    }
}

/// The conversation of a joined row: its first columns, in
/// `conversation::Column` order.
fn conversation_at(row: &QueryResult) -> Result<conversation::Model, DbErr> {
    let mut c = Columns { row, next: 0 };
    Ok(conversation::Model {
        id: c.read()?,
        tenant_id: c.read()?,
        session_id: c.read()?,
        channel: c.read()?,
        thread_key: c.read()?,
        contact: c.read()?,
        user_id: c.read()?,
        user_name: c.read()?,
        started_at: c.read()?,
        last_activity_at: c.read()?,
        closed_at: c.read()?,
        opening_message: c.read()?,
        message_count: c.read()?,
        first_converted_at: c.read()?,
    })
}

/// The conversion of a joined row, from column `start` on, in
/// `conversion::Column` order.
fn conversion_at(row: &QueryResult, start: usize) -> Result<conversion::Model, DbErr> {
    let mut c = Columns { row, next: start };
    Ok(conversion::Model {
        id: c.read()?,
        tenant_id: c.read()?,
        conversation_id: c.read()?,
        kind: c.read()?,
        record_type: c.read()?,
        record_id: c.read()?,
        source: c.read()?,
        attributed: c.read()?,
        unattributed_reason: c.read()?,
        idempotency_key: c.read()?,
        payload_fingerprint: c.read()?,
        feed_seq: c.read()?,
        recorded_at: c.read()?,
        link_id: c.read()?,
        link_action: c.read()?,
        conversation_started_at: c.read()?,
        conversation_channel: c.read()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`conversation_at`] and [`conversion_at`] read fields in this order.
    #[test]
    fn joined_rows_are_read_in_the_entities_column_order() {
        let names = |columns: Vec<&'static str>| columns.join(",");
        assert_eq!(
            names(conversation::Column::iter().map(|c| c.as_str()).collect()),
            "id,tenant_id,session_id,channel,thread_key,contact,user_id,user_name,started_at,\
             last_activity_at,closed_at,opening_message,message_count,first_converted_at"
        );
        assert_eq!(
            names(conversion::Column::iter().map(|c| c.as_str()).collect()),
            "id,tenant_id,conversation_id,kind,record_type,record_id,source,attributed,\
             unattributed_reason,idempotency_key,payload_fingerprint,feed_seq,recorded_at,\
             link_id,link_action,conversation_started_at,conversation_channel"
        );
    }
}
