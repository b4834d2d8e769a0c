//! The rows of the exports, one layout written two ways: NDJSON (one JSON
//! object per line) and CSV with the same names as its header. The names
//! are a contract (README "Privacy"): add columns at the end, never rename.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::clock::rfc3339;
use crate::domain::csv::{BYTE_ORDER_MARK, Cell, write_record};
use crate::domain::cursor::{NodeType, global_id};
use crate::domain::money::format_minor;
use crate::service::export::ExportedConversion;
use crate::service::read_model::{Conversation, Conversion};

/// The two file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

pub const CONVERSATION_COLUMNS: [&str; 17] = [
    "id",
    "sessionId",
    "channel",
    "startedAt",
    "lastActivityAt",
    "closedAt",
    "contact",
    "userId",
    "userName",
    "threadKey",
    "openingMessage",
    "messageCount",
    "converted",
    "badges",
    "revenue",
    "erasedAt",
    "labels",
];

pub const CONVERSION_COLUMNS: [&str; 15] = [
    "id",
    "kind",
    "recordType",
    "recordId",
    "recordedAt",
    "status",
    "attributed",
    "unattributedReason",
    "source",
    "linkAction",
    "value",
    "currency",
    "conversationId",
    "sessionId",
    "channel",
];

/// What goes before the first row: the CSV header (after the byte order
/// mark spreadsheets need to read UTF-8); nothing for NDJSON.
pub fn preamble(format: Format, columns: &[&str], out: &mut String) {
    if format == Format::Csv {
        out.push_str(BYTE_ORDER_MARK);
        write_record(out, columns.iter().map(|c| Cell::Value(c)));
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationRow<'a> {
    id: String,
    session_id: &'a str,
    channel: &'static str,
    started_at: String,
    last_activity_at: String,
    closed_at: Option<String>,
    contact: Option<&'a str>,
    user_id: Option<&'a str>,
    user_name: Option<&'a str>,
    thread_key: Option<&'a str>,
    opening_message: Option<&'a str>,
    message_count: i32,
    converted: bool,
    badges: Vec<&'static str>,
    revenue: Vec<Amount>,
    erased_at: Option<String>,
    labels: Vec<LabelCell<'a>>,
}

/// A label as the NDJSON export writes it.
#[derive(Serialize)]
struct LabelCell<'a> {
    key: &'a str,
    value: &'a str,
}

/// An amount of one currency, written with the currency's decimals.
#[derive(Serialize)]
struct Amount {
    amount: String,
    currency: &'static str,
}

/// Appends a conversation with its conversions (oldest first).
pub fn write_conversation(
    format: Format,
    conversation: &Conversation,
    conversions: &[Conversion],
    out: &mut String,
) {
    let credited: Vec<&Conversion> = conversions.iter().filter(|c| c.has_badge()).collect();
    let mut revenue: BTreeMap<&'static str, (i64, crate::domain::money::Currency)> =
        BTreeMap::new();
    for value in credited.iter().filter_map(|c| c.value) {
        let entry = revenue
            .entry(value.currency.code())
            .or_insert((0, value.currency));
        entry.0 = entry.0.saturating_add(value.minor);
    }
    let row = ConversationRow {
        id: global_id(NodeType::Conversation, conversation.id),
        session_id: conversation.session_id.as_str(),
        channel: conversation.channel.as_str(),
        started_at: rfc3339(conversation.started_at),
        last_activity_at: rfc3339(conversation.last_activity_at),
        closed_at: conversation.closed_at.map(rfc3339),
        contact: conversation.contact.as_deref(),
        user_id: conversation.user_id.as_deref(),
        user_name: conversation.user_name.as_deref(),
        thread_key: conversation.thread_key.as_deref(),
        opening_message: conversation.opening_message.as_deref(),
        message_count: conversation.message_count,
        converted: !credited.is_empty(),
        badges: credited.iter().map(|c| c.kind.as_str()).collect(),
        revenue: revenue
            .into_values()
            .map(|(minor, currency)| Amount {
                amount: format_minor(minor, currency),
                currency: currency.code(),
            })
            .collect(),
        erased_at: conversation.erased_at.map(rfc3339),
        labels: conversation
            .labels
            .iter()
            .map(|l| LabelCell {
                key: &l.key,
                value: &l.value,
            })
            .collect(),
    };
    match format {
        Format::Ndjson => write_json_line(&row, out),
        Format::Csv => write_conversation_csv(&row, out),
    }
}

fn write_conversation_csv(row: &ConversationRow<'_>, out: &mut String) {
    let count = row.message_count.to_string();
    let badges = row.badges.join(" ");
    let revenue = row
        .revenue
        .iter()
        .map(|a| format!("{} {}", a.amount, a.currency))
        .collect::<Vec<_>>()
        .join("; ");
    let labels = row
        .labels
        .iter()
        .map(|l| format!("{}={}", l.key, l.value))
        .collect::<Vec<_>>()
        .join("; ");
    write_record(
        out,
        [
            Cell::Value(&row.id),
            Cell::Value(row.session_id),
            Cell::Value(row.channel),
            Cell::Value(&row.started_at),
            Cell::Value(&row.last_activity_at),
            Cell::Value(row.closed_at.as_deref().unwrap_or("")),
            Cell::Text(row.contact.unwrap_or("")),
            Cell::Text(row.user_id.unwrap_or("")),
            Cell::Text(row.user_name.unwrap_or("")),
            Cell::Text(row.thread_key.unwrap_or("")),
            Cell::Text(row.opening_message.unwrap_or("")),
            Cell::Value(&count),
            Cell::Value(boolean(row.converted)),
            Cell::Value(&badges),
            Cell::Value(&revenue),
            Cell::Value(row.erased_at.as_deref().unwrap_or("")),
            Cell::Text(&labels),
        ],
    );
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversionRow<'a> {
    id: String,
    kind: &'static str,
    record_type: &'static str,
    record_id: &'a str,
    recorded_at: String,
    status: &'static str,
    attributed: bool,
    unattributed_reason: Option<&'a str>,
    source: &'static str,
    link_action: Option<&'static str>,
    value: Option<String>,
    currency: Option<&'static str>,
    conversation_id: Option<String>,
    session_id: Option<&'a str>,
    channel: Option<&'a str>,
}

/// Appends a conversion with the session it belongs to.
pub fn write_conversion(format: Format, exported: &ExportedConversion, out: &mut String) {
    let c = &exported.conversion;
    let row = ConversionRow {
        id: global_id(NodeType::Conversion, c.id),
        kind: c.kind.as_str(),
        record_type: c.record_type.as_str(),
        record_id: &c.record_id,
        recorded_at: rfc3339(c.recorded_at),
        status: c.status.as_str(),
        attributed: c.attributed,
        unattributed_reason: c.unattributed_reason.as_deref(),
        source: c.source.as_str(),
        link_action: c.link_action.map(|a| a.as_str()),
        value: c.value.map(|v| v.amount()),
        currency: c.value.map(|v| v.currency.code()),
        conversation_id: c
            .conversation_id
            .map(|id| global_id(NodeType::Conversation, id)),
        session_id: exported.session_id.as_ref().map(|s| s.as_str()),
        channel: exported.channel.map(|ch| ch.as_str()),
    };
    match format {
        Format::Ndjson => write_json_line(&row, out),
        Format::Csv => write_record(
            out,
            [
                Cell::Value(&row.id),
                Cell::Value(row.kind),
                Cell::Value(row.record_type),
                Cell::Text(row.record_id),
                Cell::Value(&row.recorded_at),
                Cell::Value(row.status),
                Cell::Value(boolean(row.attributed)),
                Cell::Value(row.unattributed_reason.unwrap_or("")),
                Cell::Value(row.source),
                Cell::Value(row.link_action.unwrap_or("")),
                Cell::Value(row.value.as_deref().unwrap_or("")),
                Cell::Value(row.currency.unwrap_or("")),
                Cell::Value(row.conversation_id.as_deref().unwrap_or("")),
                Cell::Value(row.session_id.unwrap_or("")),
                Cell::Value(row.channel.unwrap_or("")),
            ],
        ),
    }
}

fn boolean(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

fn write_json_line(row: &impl Serialize, out: &mut String) {
    // Serialising plain strings, numbers and booleans cannot fail.
    if let Ok(line) = serde_json::to_string(row) {
        out.push_str(&line);
        out.push('\n');
    }
}
