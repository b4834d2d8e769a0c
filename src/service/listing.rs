//! The AI Conversations list: newest first, keyset pagination on
//! (started_at, id), never OFFSET.

use chrono::{DateTime, Utc};
use entity::{conversation, conversion};
use sea_orm::sea_query::{Expr, ExprTrait, PostgresQueryBuilder, Query, QueryBuilder, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, IdenStatic,
    Iterable, QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Statement,
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
/// The trigram index serves searches of at least this many characters.
const TRIGRAM: usize = 3;

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
        let query = list_query(backend, caller, after, &filter)?
            .order_by_desc(conversation::Column::StartedAt)
            .order_by_desc(conversation::Column::Id)
            .limit(first + 1);
        if !with_conversions {
            let rows = query.all(&self.db).await?;
            return Ok(Listed {
                page: Page::from_overfetch(read_all(rows)?, first),
                conversions: None,
            });
        }
        let page = query.build(backend);
        let sql = format!(
            "WITH page AS ({}) SELECT {} FROM page LEFT JOIN conversion v ON v.conversation_id = page.id \
             ORDER BY page.started_at DESC, page.id DESC, v.feed_seq",
            page.sql,
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

/// The list's rows, filtered and after the cursor, not yet ordered.
fn list_query(
    backend: DatabaseBackend,
    caller: &Caller,
    after: Option<ConversationCursor>,
    filter: &ConversationFilter,
) -> Result<Select<conversation::Entity>, AppError> {
    let mut query =
        conversation::Entity::find().filter(conversation::Column::TenantId.eq(caller.tenant_id));
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
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        if search.chars().count() > MAX_SEARCH_CHARS {
            return Err(AppError::BadInput(format!(
                "search may be at most {MAX_SEARCH_CHARS} characters"
            )));
        }
        query = query.filter(search_condition(backend, search));
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

/// Every column of a page row (`c_…`) and of one of its conversions
/// (`v_…`, all null for a row without any).
fn joined_columns() -> String {
    let page =
        conversation::Column::iter().map(|c| format!("page.\"{0}\" AS \"c_{0}\"", c.as_str()));
    let conversions =
        conversion::Column::iter().map(|c| format!("v.\"{0}\" AS \"v_{0}\"", c.as_str()));
    page.chain(conversions).collect::<Vec<_>>().join(", ")
}

/// Folds the joined rows (a page row repeated once per conversion, in
/// order) into the page and each row's conversions.
fn rows_with_conversions(
    rows: Vec<QueryResult>,
) -> Result<(Vec<Conversation>, ConversionsOf), AppError> {
    let mut conversations: Vec<Conversation> = Vec::new();
    let mut conversions = ConversionsOf::new();
    for row in rows {
        let id: Uuid = row.try_get("", "c_id")?;
        if conversations.last().is_none_or(|c| c.id != id) {
            conversations.push(conversation::Model::from_query_result(&row, "c_")?.try_into()?);
            conversions.entry(id).or_default();
        }
        if row.try_get::<Option<Uuid>>("", "v_id")?.is_some() {
            let conversion: Conversion =
                conversion::Model::from_query_result(&row, "v_")?.try_into()?;
            conversions.entry(id).or_default().push(conversion);
        }
    }
    Ok((conversations, conversions))
}

/// Conversations with a visitor or AI message containing `text`, whatever
/// its case. `%`, `_` and `\` in `text` are literal.
fn search_condition(backend: DatabaseBackend, text: &str) -> SimpleExpr {
    let like = format!("%{}%", escape_like(text));
    match backend {
        // pg_trgm's GIN index serves ILIKE; the role predicate matches the
        // partial index's. The pattern is written into the statement as a
        // quoted literal, not bound: a statement prepared with a parameter
        // gets PostgreSQL's generic plan after a few runs, which cannot see
        // how rare the text is and walks the tenant's newest conversations
        // probing each (1M conversations, a rare word: 473 ms generic, 50 ms
        // planned for the literal). Each text is its own statement and plan.
        DatabaseBackend::Postgres => Expr::cust(format!(
            r#""conversation"."id" IN (SELECT "conversation_id" FROM "message" WHERE "role" <> 'TOOL' AND "content" ILIKE {} ESCAPE '\')"#,
            PostgresQueryBuilder.value_to_string(&like.into())
        )),
        // FTS5's trigram index matches a quoted phrase as a case-insensitive
        // substring; it needs at least three characters.
        _ if text.chars().count() >= TRIGRAM => Expr::cust_with_values(
            r#""conversation"."id" IN (SELECT "conversation_id" FROM "message_search" WHERE "message_search" MATCH ?)"#,
            [format!("\"{}\"", text.replace('"', "\"\""))],
        ),
        // Too short for trigrams: scan. SQLite's LIKE ignores case for ASCII.
        _ => Expr::cust_with_values(
            r#""conversation"."id" IN (SELECT "conversation_id" FROM "message" WHERE "role" <> 'TOOL' AND "content" LIKE ? ESCAPE '\')"#,
            [like],
        ),
    }
}

/// Makes `%`, `_` and the escape character itself literal in a LIKE pattern.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"50% off_now\x"), r"50\% off\_now\\x");
        assert_eq!(escape_like("plain"), "plain");
    }
}
