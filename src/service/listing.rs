//! The AI Conversations list: newest first, keyset pagination on
//! (started_at, id), never OFFSET.

use chrono::{DateTime, Utc};
use entity::{conversation, conversion};
use sea_orm::sea_query::{Alias, BinOper, Expr, ExprTrait, Func, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Statement,
};
use uuid::Uuid;

use super::read_model::{Conversation, Conversion, ConversionsOf, read_all};
use super::{Caller, Page, Services};
use crate::domain::channel::Channel;
use crate::domain::clock::to_micros;
use crate::domain::conversion::ConversionKind;
use crate::domain::cursor::ConversationCursor;
use crate::domain::label::Label;
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
    /// Conversations with every one of these labels.
    pub labels: Vec<Label>,
}

/// What a list request reads besides its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedReads {
    /// The rows alone.
    Rows,
    /// The conversions of the rows with a badge (every conversion of
    /// those rows, attributed or not).
    Badges,
    /// Every conversion of every row.
    Conversions,
}

/// A page of the list, with every conversion of its rows when asked for.
#[derive(Debug)]
pub struct Listed {
    pub page: Page<Conversation>,
    /// By conversation, oldest first, every conversion of each row with
    /// an entry: every row for [`ListedReads::Conversions`], each row with
    /// a badge for [`ListedReads::Badges`] (a row without an entry then
    /// has no badge; its unattributed conversions were not read).
    pub conversions: Option<ConversionsOf>,
}

impl Services {
    /// One page of the list, in one statement, with what `reads` asks of
    /// the rows' conversions read in the same statement.
    #[tracing::instrument(skip(self, caller, filter), fields(tenant = %caller.tenant_id))]
    pub async fn list_conversations(
        &self,
        caller: &Caller,
        first: u64,
        after: Option<ConversationCursor>,
        filter: ConversationFilter,
        reads: ListedReads,
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
        if reads == ListedReads::Rows {
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
            "WITH page AS ({} LIMIT {}) SELECT {} FROM page LEFT JOIN conversion v ON v.conversation_id = {} \
             ORDER BY page.started_at DESC, page.id DESC, v.feed_seq",
            page.sql,
            first + 1,
            joined_columns(),
            // For badges, only rows with one are looked up: most
            // conversations have no conversion, and their lookups were a
            // third of PostgreSQL's time on a list request. A NULL key
            // finds nothing without descending the index.
            match reads {
                ListedReads::Badges =>
                    "CASE WHEN page.first_converted_at IS NOT NULL THEN page.id END",
                _ => "page.id",
            }
        );
        let values = page.values.map(|v| v.0).unwrap_or_default();
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let (conversations, conversions) = rows_with_conversions(rows, reads)?;
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
    narrowed(query, after, filter)
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
    narrowed(query, after, filter)
}

/// Refuses a search text longer than [`MAX_SEARCH_CHARS`], before any
/// statement runs.
pub(super) fn check_search(filter: &ConversationFilter) -> Result<(), AppError> {
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
        // The kinds each conversation has a badge of, kept by every write
        // (a recording, a retraction, a review): one narrow row per
        // conversation and kind, where the conversions are wide rows.
        let with_badge = Query::select()
            .column(Alias::new("conversation_id"))
            .from(Alias::new("conversation_kind"))
            .and_where(Expr::col(Alias::new("kind")).is_in(kinds.iter().map(|k| k.as_str())))
            .to_owned();
        // A conversation with a badge is converted: saying so lets the
        // planners read converted conversations from their own index.
        query = query
            .filter(conversation::Column::FirstConvertedAt.is_not_null())
            .filter(conversation::Column::Id.in_subquery(with_badge));
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
    for label in &filter.labels {
        query = query.filter(has_label(label));
    }
    Ok(query)
}

/// Whether the conversation has `label`: its line is in the stored labels.
/// `REPLACE` finds it on both databases, case and all (`LIKE` ignores case
/// on SQLite); a value holds no line break, so a line cannot match part of
/// another.
fn has_label(label: &Label) -> Expr {
    let framed = || {
        Expr::val("\n")
            .binary(
                BinOper::Custom("||"),
                Expr::col(conversation::Column::Labels),
            )
            .binary(BinOper::Custom("||"), Expr::val("\n"))
    };
    let line = format!("\n{}\n", label.pair());
    Expr::from(Func::cust("replace").args([framed(), Expr::val(line), Expr::val("")])).ne(framed())
}

/// Every column of a page row and of one of its conversions (all null for
/// a row without any), each in its entity's column order.
fn joined_columns() -> &'static str {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let page = conversation::Column::iter().map(|c| format!("page.\"{}\"", c.as_str()));
        let conversions = conversion::Column::iter().map(|c| format!("v.\"{}\"", c.as_str()));
        page.chain(conversions).collect::<Vec<_>>().join(", ")
    });
    &COLUMNS
}

/// Folds the joined rows (a page row repeated once per conversion, in
/// order) into the page and the conversions of each row with a badge.
fn rows_with_conversions(
    rows: Vec<QueryResult>,
    reads: ListedReads,
) -> Result<(Vec<Conversation>, ConversionsOf), AppError> {
    let start = conversation::Column::iter().count();
    let mut conversations: Vec<Conversation> = Vec::new();
    let mut conversions = ConversionsOf::new();
    for row in &rows {
        let (conversation, conversion) = if let Some(row) = row.try_as_pg_row() {
            Columns::joined(row, start, conversations.last())?
        } else if let Some(row) = row.try_as_sqlite_row() {
            Columns::joined(row, start, conversations.last())?
        } else {
            return Err(DbErr::Custom("a row from neither PostgreSQL nor SQLite".into()).into());
        };
        if let Some(PageRow {
            conversation,
            has_badge,
        }) = conversation
        {
            if has_badge || reads == ListedReads::Conversions {
                conversions.entry(conversation.id).or_default();
            }
            conversations.push(conversation);
        }
        if let (Some(conversion), Some(of)) = (conversion, conversations.last()) {
            conversions.entry(of.id).or_default().push(conversion);
        }
    }
    Ok((conversations, conversions))
}

/// A page row, read from the first joined row that names it.
struct PageRow {
    conversation: Conversation,
    /// Whether it has an attributed conversion.
    has_badge: bool,
}

/// A column type the driver decodes.
trait Column<'r, D: sea_orm::sqlx::Database>:
    sea_orm::sqlx::Decode<'r, D> + sea_orm::sqlx::Type<D>
{
}

impl<'r, D: sea_orm::sqlx::Database, T: sea_orm::sqlx::Decode<'r, D> + sea_orm::sqlx::Type<D>>
    Column<'r, D> for T
{
}

/// Reads a joined row's columns one after another, by position
/// ([`joined_columns`] order), straight from the driver's row: through
/// sea-orm, every null column costs a formatted error message (most of a
/// list request's CPU went to the null columns of rows without badges).
struct Columns<'r, R> {
    row: &'r R,
    next: usize,
}

impl<'r, R> Columns<'r, R>
where
    R: sea_orm::sqlx::Row,
    usize: sea_orm::sqlx::ColumnIndex<R>,
    Uuid: Column<'r, R::Database>,
    Option<Uuid>: Column<'r, R::Database>,
    String: Column<'r, R::Database>,
    Option<String>: Column<'r, R::Database>,
    i64: Column<'r, R::Database>,
    Option<i64>: Column<'r, R::Database>,
    i32: Column<'r, R::Database>,
    bool: Column<'r, R::Database>,
{
    /// One joined row: its conversation unless it repeats `previous` (and
    /// whether it has a badge), and its conversion (from column `start`
    /// on) if it has one.
    fn joined(
        row: &'r R,
        start: usize,
        previous: Option<&Conversation>,
    ) -> Result<(Option<PageRow>, Option<Conversion>), AppError> {
        let mut columns = Self { row, next: 0 };
        let conversation = match previous {
            Some(previous) if previous.id == columns.read::<Uuid>()? => None,
            _ => {
                columns.next = 0;
                let row = columns.conversation()?;
                let has_badge = row.first_converted_at.is_some();
                Some(PageRow {
                    conversation: row.try_into()?,
                    has_badge,
                })
            }
        };
        columns.next = start;
        if columns.read::<Option<Uuid>>()?.is_none() {
            return Ok((conversation, None));
        }
        columns.next = start;
        Ok((conversation, Some(columns.conversion()?.try_into()?)))
    }

    /// The next column. Its type is not compared with the column's: the
    /// statement is ours, its columns are in the entities' order (the test
    /// below), and the comparison cost more than the decoding.
    fn read<T: Column<'r, R::Database>>(&mut self) -> Result<T, DbErr> {
        self.next += 1;
        self.row
            .try_get_unchecked(self.next - 1)
            .map_err(|e| DbErr::Type(format!("list column {}: {e}", self.next - 1)))
    }

    /// A conversation, in `conversation::Column` order.
    fn conversation(&mut self) -> Result<conversation::Model, DbErr> {
        Ok(conversation::Model {
            id: self.read()?,
            tenant_id: self.read()?,
            session_id: self.read()?,
            channel: self.read()?,
            thread_key: self.read()?,
            contact: self.read()?,
            user_id: self.read()?,
            user_name: self.read()?,
            started_at: self.read()?,
            last_activity_at: self.read()?,
            closed_at: self.read()?,
            opening_message: self.read()?,
            message_count: self.read()?,
            first_converted_at: self.read()?,
            retractions: self.read()?,
            erased_at: self.read()?,
            labels: self.read()?,
        })
    }

    /// A conversion, in `conversion::Column` order.
    fn conversion(&mut self) -> Result<conversion::Model, DbErr> {
        Ok(conversion::Model {
            id: self.read()?,
            tenant_id: self.read()?,
            conversation_id: self.read()?,
            kind: self.read()?,
            record_type: self.read()?,
            record_id: self.read()?,
            source: self.read()?,
            attributed: self.read()?,
            unattributed_reason: self.read()?,
            idempotency_key: self.read()?,
            payload_fingerprint: self.read()?,
            feed_seq: self.read()?,
            recorded_at: self.read()?,
            link_id: self.read()?,
            link_action: self.read()?,
            conversation_started_at: self.read()?,
            conversation_channel: self.read()?,
            feed_xid: self.read()?,
            value_minor: self.read()?,
            currency: self.read()?,
            status: self.read()?,
            recorded_value_minor: self.read()?,
            review: self.read()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Columns::conversation`] and [`Columns::conversion`] read fields in
    /// this order.
    #[test]
    fn joined_rows_are_read_in_the_entities_column_order() {
        let names = |columns: Vec<&'static str>| columns.join(",");
        assert_eq!(
            names(conversation::Column::iter().map(|c| c.as_str()).collect()),
            "id,tenant_id,session_id,channel,thread_key,contact,user_id,user_name,started_at,\
             last_activity_at,closed_at,opening_message,message_count,first_converted_at,retractions,erased_at,\
             labels"
        );
        assert_eq!(
            names(conversion::Column::iter().map(|c| c.as_str()).collect()),
            "id,tenant_id,conversation_id,kind,record_type,record_id,source,attributed,\
             unattributed_reason,idempotency_key,payload_fingerprint,feed_seq,recorded_at,\
             link_id,link_action,conversation_started_at,conversation_channel,feed_xid,\
             value_minor,currency,status,recorded_value_minor,review"
        );
    }
}
