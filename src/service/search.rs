//! Search: the newest conversations with a visitor or AI message containing
//! a text, found from the text index in bounded steps, never by testing a
//! tenant's conversations one by one back to its first.
//!
//! - SQLite reads the index's matches (trigrams; for one or two characters,
//!   the grams index) newest message first and stops once
//!   it holds a page of conversations that started after every message it
//!   has not read (the search watermark bounds those), so a common text
//!   costs a few hundred matches and a rare one all of its matches.
//! - PostgreSQL's GIN indexes cannot hand out matches in any order, so the
//!   newest conversations (at most [`SearchSteps::window`]) are tested first,
//!   which settles every text common enough to fill a page there; otherwise
//!   the index is probed for all matches older than that window.

use std::collections::HashSet;

use entity::conversation;
use migration::{WATERMARK_BLOCK_BITS, text_gram};
use sea_orm::sea_query::{
    Alias, Expr, PostgresQueryBuilder, Query, QueryBuilder, SelectStatement, SqliteQueryBuilder,
};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
    TransactionTrait, Value,
};
use uuid::Uuid;

use super::listing::{ConversationFilter, list_query, list_query_among};
use super::{Caller, Services};
use crate::domain::clock::to_micros;
use crate::domain::cursor::ConversationCursor;
use crate::error::AppError;

/// SQLite's trigram index matches texts of at least this many characters.
const TRIGRAM: usize = 3;

/// How much a search reads in each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchSteps {
    /// PostgreSQL: newest conversations tested before the index is probed.
    pub window: u64,
    /// PostgreSQL: widest second window, when the first found some matches
    /// but not a page.
    pub largest_window: u64,
    /// SQLite: matches read in the first batch; each next batch reads four
    /// times more, up to `largest_batch`.
    pub first_batch: u64,
    pub largest_batch: u64,
}

impl Default for SearchSteps {
    fn default() -> Self {
        Self {
            window: 2_000,
            largest_window: 20_000,
            first_batch: 256,
            largest_batch: 16_384,
        }
    }
}

/// A conversation found by a search: its list position and id.
type Found = (i64, Uuid);

/// What a search looks for: the caller's conversations passing `filter`
/// (its search left out) with a message containing `text`.
#[derive(Clone, Copy)]
struct Sought<'a> {
    caller: &'a Caller,
    filter: &'a ConversationFilter,
    text: &'a str,
}

impl Services {
    /// The ids of up to `first + 1` conversations matching `filter` (whose
    /// search is `text`) after `after`, in list order.
    pub(super) async fn search_page(
        &self,
        caller: &Caller,
        first: u64,
        after: Option<ConversationCursor>,
        filter: &ConversationFilter,
        text: &str,
    ) -> Result<Vec<Uuid>, AppError> {
        let unsearched = ConversationFilter {
            search: None,
            ..filter.clone()
        };
        let sought = Sought {
            caller,
            filter: &unsearched,
            text,
        };
        let mut found = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => self.search_postgres(sought, first, after).await?,
            _ => self.search_sqlite(sought, first, after).await?,
        };
        found.extend(
            self.people_matching(caller, first, after, &unsearched, text)
                .await?,
        );
        found.sort_unstable_by(|a, b| b.cmp(a));
        found.dedup();
        found.truncate(first as usize + 1);
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    async fn search_postgres(
        &self,
        sought: Sought<'_>,
        first: u64,
        after: Option<ConversationCursor>,
    ) -> Result<Vec<Found>, AppError> {
        let steps = self.search_steps;
        let want = first + 1;
        let (mut found, mut end) = self
            .postgres_window(sought, after, want, steps.window)
            .await?;
        let Some(mut rest_after) = end.filter(|_| (found.len() as u64) < want) else {
            return Ok(found);
        };
        if !found.is_empty() {
            // Matches this dense among the newest: a wider window expected
            // to hold the rest of the page costs less than every match from
            // the index, as long as it stays within `largest_window`.
            let missing = want - found.len() as u64;
            let wider = (missing * steps.window * 3).div_ceil(2 * found.len() as u64);
            if wider <= steps.largest_window {
                let more;
                (more, end) = self
                    .postgres_window(sought, Some(rest_after), missing, wider)
                    .await?;
                found.extend(more);
                match end.filter(|_| (found.len() as u64) < want) {
                    Some(next) => rest_after = next,
                    None => return Ok(found),
                }
            }
        }
        let missing = want - found.len() as u64;
        found.extend(self.postgres_probe(sought, rest_after, missing).await?);
        Ok(found)
    }

    /// Up to `want` matches among the `window` newest conversations after
    /// `after`, tested one by one (or, when the planner sees the text is
    /// rare, from the index), and the window's last conversation when the
    /// window was full.
    async fn postgres_window(
        &self,
        sought: Sought<'_>,
        after: Option<ConversationCursor>,
        want: u64,
        window: u64,
    ) -> Result<(Vec<Found>, Option<ConversationCursor>), AppError> {
        let backend = DatabaseBackend::Postgres;
        let window = window.max(1);
        let newest = newest_first(list_query(sought.caller, after, sought.filter)?)
            .limit(window)
            .build(backend);
        let sql = format!(
            "WITH win AS MATERIALIZED ({newest}), \
             hit AS (SELECT id, started_at FROM win WHERE EXISTS (SELECT 1 FROM message m \
               WHERE m.conversation_id = win.id AND m.role <> 'TOOL' AND m.content ILIKE {like} ESCAPE '\\') \
               ORDER BY started_at DESC, id DESC LIMIT {want}) \
             SELECT id, started_at, true AS hit FROM hit \
             UNION ALL (SELECT id, started_at, false FROM win \
               ORDER BY started_at DESC, id DESC OFFSET {last} LIMIT 1)",
            newest = newest.sql,
            like = quoted(&like_pattern(sought.text)),
            last = window - 1,
        );
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                newest.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await?;
        let mut found = Vec::new();
        let mut end = None;
        for row in rows {
            let id: Uuid = row.try_get_by_index(0)?;
            let started_at: i64 = row.try_get_by_index(1)?;
            if row.try_get_by_index::<bool>(2)? {
                found.push((started_at, id));
            } else {
                end = Some(ConversationCursor { started_at, id });
            }
        }
        Ok((found, end))
    }

    /// Up to `want` matches after `after`, from every match in the index:
    /// the cost follows the text's matches, not the tenant's size.
    async fn postgres_probe(
        &self,
        sought: Sought<'_>,
        after: ConversationCursor,
        want: u64,
    ) -> Result<Vec<Found>, AppError> {
        let backend = DatabaseBackend::Postgres;
        let older = newest_first(list_query(sought.caller, Some(after), sought.filter)?)
            .filter(Expr::cust(
                r#""conversation"."id" IN (SELECT "conversation_id" FROM hits)"#,
            ))
            .limit(want)
            .build(backend);
        let sql = format!(
            "WITH hits AS MATERIALIZED (SELECT DISTINCT conversation_id FROM message \
             WHERE role <> 'TOOL' AND {probe}content ILIKE {like} ESCAPE '\\') {older}",
            probe = grams_probe(sought.text),
            like = quoted(&like_pattern(sought.text)),
            older = older.sql,
        );
        let txn = self.db.begin().await?;
        // Only an index may answer: a sequential scan is the walk this
        // avoids, whatever the planner estimates.
        txn.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                older.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await?;
        txn.commit().await?;
        rows.iter()
            .map(|row| Ok((row.try_get_by_index(1)?, row.try_get_by_index(0)?)))
            .collect()
    }

    async fn search_sqlite(
        &self,
        sought: Sought<'_>,
        first: u64,
        after: Option<ConversationCursor>,
    ) -> Result<Vec<Found>, AppError> {
        let Sought {
            caller,
            filter,
            text,
        } = sought;
        let steps = self.search_steps;
        let oldest_wanted = filter.started_after.map(to_micros);
        let mut below = i64::MAX;
        let mut batch = steps.first_batch.max(1);
        // Only the best `first + 1` are kept, so memory stays within a page
        // and a batch however many matches are read.
        let mut found: Vec<Found> = Vec::new();
        loop {
            let matches = self.sqlite_matches(text, below, batch).await?;
            let Some(&(last, _)) = matches.last() else {
                return Ok(found);
            };
            let kept: HashSet<Uuid> = found.iter().map(|&(_, id)| id).collect();
            let mut new: Vec<Uuid> = matches.iter().map(|&(_, id)| id).collect();
            new.sort_unstable();
            new.dedup();
            new.retain(|id| !kept.contains(id));
            if !new.is_empty() {
                let rows = list_query_among(DatabaseBackend::Sqlite, caller, after, filter, new)?
                    .select_only()
                    .column(conversation::Column::Id)
                    .column(conversation::Column::StartedAt)
                    .into_tuple::<(Uuid, i64)>()
                    .all(&self.db)
                    .await?;
                found.extend(rows.into_iter().map(|(id, started_at)| (started_at, id)));
                found.sort_unstable_by(|a, b| b.cmp(a));
                found.truncate(first as usize + 1);
            }
            if (matches.len() as u64) < batch {
                return Ok(found);
            }
            // Every match not read yet belongs to a conversation that
            // started at or before `unread_started`.
            let unread_started = self.watermark_at(last).await?;
            let settled = found.iter().filter(|f| f.0 > unread_started).count();
            if settled as u64 > first || oldest_wanted.is_some_and(|t| unread_started < t) {
                return Ok(found);
            }
            below = last;
            batch = (batch * 4).min(steps.largest_batch.max(batch));
        }
    }

    /// Up to `limit` matches of `text` among messages with a rowid below
    /// `below`, newest first, as (message rowid, conversation).
    async fn sqlite_matches(
        &self,
        text: &str,
        below: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Uuid)>, AppError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let statement = if text.chars().count() >= TRIGRAM {
            // FTS5's trigram index matches a quoted phrase as a
            // case-insensitive substring.
            Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT rowid, conversation_id FROM message_search \
                 WHERE message_search MATCH ? AND rowid < ? ORDER BY rowid DESC LIMIT ?",
                [
                    Value::from(format!("\"{}\"", text.replace('"', "\"\""))),
                    below.into(),
                    limit.into(),
                ],
            )
        } else {
            // One or two characters: their word in the grams index.
            let Some(word) = text_gram(text) else {
                return Ok(Vec::new());
            };
            Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT m.rowid, m.conversation_id FROM (SELECT rowid AS r FROM message_grams \
                 WHERE message_grams MATCH ? AND rowid < ? ORDER BY rowid DESC LIMIT ?) g \
                 JOIN message m ON m.rowid = g.r ORDER BY m.rowid DESC",
                [word.into(), below.into(), limit.into()],
            )
        };
        let rows = self.db.query_all_raw(statement).await?;
        rows.iter()
            .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
            .collect()
    }

    /// The latest start of a conversation with a searchable message at or
    /// below `rowid`'s block; `i64::MIN` when there is none.
    async fn watermark_at(&self, rowid: i64) -> Result<i64, AppError> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT started_at FROM search_watermark WHERE block <= ? \
                 ORDER BY block DESC LIMIT 1",
                [(rowid >> WATERMARK_BLOCK_BITS).into()],
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get_by_index(0)?,
            None => i64::MIN,
        })
    }
}

/// The conversations with a visitor or AI message containing `text`, for
/// counting every match (the stats): the ids of the messages the text index
/// matches at or after `floor` (see [`Services::search_floor`]); none when
/// no message can match. The text is written into the statement:
/// PostgreSQL plans for how common it is, and SQLite's FTS5 reads it as a
/// phrase.
pub(super) fn message_matches(
    backend: DatabaseBackend,
    text: &str,
    floor: Option<i64>,
) -> Option<SelectStatement> {
    let literal = |text: String| SqliteQueryBuilder.value_to_string(&text.into());
    let (table, condition) = match backend {
        DatabaseBackend::Postgres => (
            "message",
            format!(
                "role <> 'TOOL' AND {probe}content ILIKE {like} ESCAPE '\\'{since}",
                probe = grams_probe(text),
                like = quoted(&like_pattern(text)),
                since = floor.map_or(String::new(), |at| format!(" AND created_at >= {at}")),
            ),
        ),
        _ if text.chars().count() >= TRIGRAM => (
            "message_search",
            format!(
                "message_search MATCH {}{}",
                literal(format!("\"{}\"", text.replace('"', "\"\""))),
                floor.map_or(String::new(), |rowid| format!(" AND rowid >= {rowid}")),
            ),
        ),
        _ => (
            "message",
            format!(
                "rowid IN (SELECT rowid FROM message_grams WHERE message_grams MATCH {}{})",
                literal(text_gram(text)?),
                floor.map_or(String::new(), |rowid| format!(" AND rowid >= {rowid}")),
            ),
        ),
    };
    Some(
        Query::select()
            .expr(Expr::cust("conversation_id"))
            .from(Alias::new(table))
            .and_where(Expr::cust(condition))
            .to_owned(),
    )
}

impl Services {
    /// Where the messages of conversations started at or after `micros`
    /// begin, for [`message_condition`]: on PostgreSQL that time itself (a
    /// message is never older than its conversation; its `created_at` is
    /// indexed), on SQLite the first rowid of the first watermark block
    /// that reaches it (every block before holds messages of earlier
    /// conversations only; `i64::MAX` when none does).
    pub(super) async fn search_floor(&self, micros: i64) -> Result<i64, AppError> {
        if self.db.get_database_backend() == DatabaseBackend::Postgres {
            return Ok(micros);
        }
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT block FROM search_watermark WHERE started_at >= ? \
                 ORDER BY started_at, block LIMIT 1",
                [micros.into()],
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get_by_index::<i64>(0)? << WATERMARK_BLOCK_BITS,
            None => i64::MAX,
        })
    }
}

/// The list's order, with only the columns a search needs.
fn newest_first(
    query: sea_orm::Select<conversation::Entity>,
) -> sea_orm::Select<conversation::Entity> {
    query
        .select_only()
        .column(conversation::Column::Id)
        .column(conversation::Column::StartedAt)
        .order_by_desc(conversation::Column::StartedAt)
        .order_by_desc(conversation::Column::Id)
}

/// Most pairs of characters a grams probe names: any of them narrows the
/// index's answer, all of them only cost more posting lists.
const MOST_PROBED_PAIRS: usize = 8;

/// PostgreSQL: a text pg_trgm cannot probe (shorter than three characters,
/// or without three letters or digits in a row: pg_trgm only indexes
/// words) probes the message grams index instead: its one piece, or its
/// pairs of characters, each lowered by `lower` as the index's are.
fn grams_probe(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = if chars.len() < TRIGRAM {
        vec![text.to_owned()]
    } else if chars
        .windows(TRIGRAM)
        .any(|w| w.iter().all(|c| c.is_alphanumeric()))
    {
        return String::new();
    } else {
        let mut pairs: Vec<String> = chars.windows(2).map(|w| w.iter().collect()).collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs.truncate(MOST_PROBED_PAIRS);
        pairs
    };
    let lowered: Vec<String> = pieces
        .iter()
        .map(|p| format!("lower({})", quoted(p)))
        .collect();
    format!(
        "convtrack_message_grams(content) @> ARRAY[{}] AND ",
        lowered.join(", ")
    )
}

/// A PostgreSQL string literal. Texts are written into the statement, not
/// bound: a prepared statement gets PostgreSQL's generic plan after a few
/// runs, which cannot see how rare the text is (1M conversations, a rare
/// word: 473 ms generic, 50 ms planned for the literal).
fn quoted(text: &str) -> String {
    PostgresQueryBuilder.value_to_string(&text.into())
}

/// `%text%`, with `%`, `_` and `\` in `text` literal.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_pattern(r"50% off_now\x"), r"%50\% off\_now\\x%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }

    #[test]
    fn texts_pg_trgm_cannot_probe_probe_the_grams() {
        assert_eq!(grams_probe("abc"), "");
        assert_eq!(grams_probe("a b?c1d"), "");
        assert_eq!(
            grams_probe("Zq"),
            "convtrack_message_grams(content) @> ARRAY[lower('Zq')] AND "
        );
        assert_eq!(
            grams_probe("?!?!"),
            "convtrack_message_grams(content) @> ARRAY[lower('!?'), lower('?!')] AND "
        );
        assert!(
            grams_probe("'").contains(r"lower(E'\'')"),
            "{}",
            grams_probe("'")
        );
    }
}
