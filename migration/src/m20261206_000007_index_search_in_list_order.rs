//! Search that answers from the text index instead of walking a tenant's
//! conversations newest first.
//!
//! PostgreSQL: pg_trgm cannot serve a text shorter than three characters,
//! so every searchable message also gets its one- and two-character pieces
//! (lower-cased) in a GIN index; a short text probes that.
//!
//! SQLite: `message_grams` indexes each message's characters and pairs
//! of characters (lower-cased, as hex words), for texts of one or two
//! characters; the application writes it with the message. The FTS5 index is rebuilt with each entry's rowid equal to its
//! message's rowid, read from the message table itself (external content,
//! no second copy of the text), and `search_watermark` keeps, per block of
//! 16 message rowids, the latest conversation start among the messages up
//! to that block. Reading matches newest rowid first, a search can stop as
//! soon as it holds a page of conversations that started after everything
//! it has not read yet.

use std::collections::BTreeSet;
use std::fmt::Write;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Message rowids per watermark block, as a shift.
pub const WATERMARK_BLOCK_BITS: u32 = 4;

/// A character as the grams index compares it: the first character of its
/// lower case, so that every character stays one character.
fn folded(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

fn push_word(word: &mut String, prefix: char, chars: &[char]) {
    word.push(prefix);
    for c in chars {
        let mut bytes = [0; 4];
        for b in c.encode_utf8(&mut bytes).bytes() {
            let _ = write!(word, "{b:02x}");
        }
    }
}

/// The grams words of a message: `u` + hex of each distinct character and
/// `b` + hex of each distinct pair of neighbours, space-separated.
pub fn message_grams(content: &str) -> String {
    let chars: Vec<char> = content.chars().map(folded).collect();
    let mut words = BTreeSet::new();
    for (i, c) in chars.iter().enumerate() {
        let mut word = String::new();
        push_word(&mut word, 'u', std::slice::from_ref(c));
        words.insert(word);
        if let Some(pair) = chars.get(i..i + 2) {
            let mut word = String::new();
            push_word(&mut word, 'b', pair);
            words.insert(word);
        }
    }
    words.into_iter().collect::<Vec<_>>().join(" ")
}

/// The one grams word a text of one or two characters matches; `None` for
/// longer (or empty) texts.
pub fn text_gram(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().map(folded).collect();
    let mut word = String::new();
    match chars.len() {
        1 => push_word(&mut word, 'u', &chars),
        2 => push_word(&mut word, 'b', &chars),
        _ => return None,
    }
    Some(word)
}

/// SQLite: writes the grams of every searchable message (after a bulk
/// load, or when the table is made). Returns how many were written.
pub async fn backfill_message_grams<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    const BATCH: i64 = 5_000;
    let mut after = i64::MIN;
    let mut written = 0;
    loop {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT rowid, content FROM message WHERE rowid > ? AND role <> 'TOOL' \
                 ORDER BY rowid LIMIT ?",
                [after.into(), BATCH.into()],
            ))
            .await?;
        let Some(last) = rows.last() else {
            return Ok(written);
        };
        after = last.try_get_by_index(0)?;
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 2);
        for row in &rows {
            let rowid: i64 = row.try_get_by_index(0)?;
            let content: String = row.try_get_by_index(1)?;
            values.push(rowid.into());
            values.push(message_grams(&content).into());
        }
        let sql = format!(
            "INSERT INTO message_grams (rowid, grams) VALUES {}",
            vec!["(?, ?)"; rows.len()].join(", ")
        );
        db.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
        written += rows.len() as u64;
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                // Three C functions, no per-row SQL loop: ~20 µs a message.
                // U+0001 cannot occur in content (control characters are
                // refused), so it only marks where the pairs are cut.
                db.execute_unprepared(
                    r"CREATE FUNCTION convtrack_message_grams(t text) RETURNS text[]
                      LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
                        SELECT regexp_split_to_array(lower(t), '')
                          || string_to_array(regexp_replace(lower(t), '(..)', E'\\1\x01', 'g'), E'\x01')
                          || string_to_array(regexp_replace(substr(lower(t), 2), '(..)', E'\\1\x01', 'g'), E'\x01')
                      $$",
                )
                .await?;
                db.execute_unprepared("SET LOCAL maintenance_work_mem = '256MB'")
                    .await?;
                db.execute_unprepared(
                    "CREATE INDEX message_content_grams ON message \
                     USING gin (convtrack_message_grams(content)) WHERE role <> 'TOOL'",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER message_search_insert")
                    .await?;
                db.execute_unprepared("DROP TABLE message_search").await?;
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE message_search USING fts5(\
                     content, conversation_id UNINDEXED, tokenize = 'trigram', \
                     content = 'message')",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TABLE search_watermark (\
                     block INTEGER PRIMARY KEY, started_at INTEGER NOT NULL)",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE message_grams USING fts5(\
                     grams, content = '', contentless_delete = 1, detail = 'none', \
                     tokenize = 'ascii')",
                )
                .await?;
                backfill_message_grams(db).await?;
                db.execute_unprepared(
                    "INSERT INTO message_search (rowid, content, conversation_id) \
                     SELECT rowid, content, conversation_id FROM message WHERE role <> 'TOOL'",
                )
                .await?;
                db.execute_unprepared(&format!(
                    "INSERT INTO search_watermark (block, started_at) \
                     SELECT block, max(started) OVER (ORDER BY block) FROM (\
                       SELECT m.rowid >> {WATERMARK_BLOCK_BITS} AS block, max(c.started_at) AS started \
                       FROM message m JOIN conversation c ON c.id = m.conversation_id \
                       WHERE m.role <> 'TOOL' GROUP BY 1)"
                ))
                .await?;
                // Rowids only grow, so the block written is always the last
                // one, and it starts from the previous block's value.
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER message_search_insert AFTER INSERT ON message \
                     WHEN new.role <> 'TOOL' BEGIN \
                     INSERT INTO message_search (rowid, content, conversation_id) \
                     VALUES (new.rowid, new.content, new.conversation_id); \
                     INSERT INTO search_watermark (block, started_at) \
                     SELECT new.rowid >> {WATERMARK_BLOCK_BITS}, max(c.started_at, coalesce(\
                       (SELECT w.started_at FROM search_watermark w ORDER BY w.block DESC LIMIT 1), \
                       c.started_at)) \
                     FROM conversation c WHERE c.id = new.conversation_id \
                     ON CONFLICT (block) DO UPDATE SET started_at = max(started_at, excluded.started_at); \
                     END"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared("DROP INDEX message_content_grams")
                    .await?;
                db.execute_unprepared("DROP FUNCTION convtrack_message_grams(text)")
                    .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER message_search_insert")
                    .await?;
                db.execute_unprepared("DROP TABLE search_watermark").await?;
                db.execute_unprepared("DROP TABLE message_grams").await?;
                db.execute_unprepared("DROP TABLE message_search").await?;
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE message_search USING fts5(\
                     content, conversation_id UNINDEXED, tokenize = 'trigram')",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER message_search_insert AFTER INSERT ON message \
                     WHEN new.role <> 'TOOL' BEGIN \
                     INSERT INTO message_search (content, conversation_id) \
                     VALUES (new.content, new.conversation_id); END",
                )
                .await?;
                db.execute_unprepared(
                    "INSERT INTO message_search (content, conversation_id) \
                     SELECT content, conversation_id FROM message WHERE role <> 'TOOL'",
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_are_each_character_and_each_pair_lower_cased() {
        assert_eq!(message_grams("Hi!"), "b6869 b6921 u21 u68 u69");
        assert_eq!(message_grams("ÉA"), "bc3a961 u61 uc3a9");
        assert_eq!(message_grams("aaa"), "b6161 u61");
    }

    #[test]
    fn a_short_text_matches_one_gram_word() {
        assert_eq!(text_gram("I").as_deref(), Some("u69"));
        assert_eq!(text_gram("hI").as_deref(), Some("b6869"));
        assert_eq!(text_gram("é!").as_deref(), Some("bc3a921"));
        assert_eq!(text_gram("abc"), None);
        assert_eq!(text_gram(""), None);
    }

    #[test]
    fn every_character_stays_one_character() {
        // U+0130 lowers to two characters; the grams keep the first.
        assert_eq!(text_gram("\u{130}").as_deref(), Some("u69"));
        assert!(message_grams("\u{130}x").contains("b6978"));
    }
}
