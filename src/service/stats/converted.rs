//! Stats of the converted (or the not converted) conversations of a range.
//! Every attributed conversion belongs to a converted conversation, so the
//! kinds, sources, revenue and delays of the converted ones are the
//! range's, read from the rollups; only their links and the unattributed
//! conversions of the conversations asked for are counted from rows, and
//! the not converted ones' links are the range's minus those.

use sea_orm::Value;

use super::{ChannelCount, ConversionStats, FunnelStep, StatsRange, edge_filter};
use crate::domain::clock::to_micros;

/// The rows part: the links of the range's converted conversations
/// (issued, followed, converted, per channel and action) and the
/// unattributed conversions of its `converted` (or not converted)
/// conversations, as rollup-shaped rows.
pub(super) fn rows_statement(
    tenant_id: uuid::Uuid,
    range: &StatsRange,
    converted: bool,
) -> (String, Vec<Value>) {
    let interval = (
        range.from.map_or(i64::MIN, to_micros),
        range.to.map_or(i64::MAX, to_micros),
    );
    let mut values: Vec<Value> = Vec::new();
    let within = |values: &mut Vec<Value>| {
        edge_filter(
            tenant_id,
            range.channels(),
            interval,
            ("c.started_at", "c.channel"),
            values,
        )
    };
    // The converted conversations' links, joined once.
    let conversations = within(&mut values);
    let links = format!(
        "cl AS MATERIALIZED (SELECT c.channel, l.action, l.first_followed_at, l.first_converted_at \
         FROM cta_link l JOIN conversation c ON c.id = l.conversation_id \
         WHERE {conversations} AND c.first_converted_at IS NOT NULL)"
    );
    let mut parts = Vec::new();
    for (metric, filter) in [
        ("issued", "1 = 1"),
        ("followed", "cl.first_followed_at IS NOT NULL"),
        ("link_converted", "cl.first_converted_at IS NOT NULL"),
    ] {
        parts.push(format!(
            "SELECT cl.channel, '{metric}', cl.action, COUNT(*), CAST(NULL AS DOUBLE PRECISION) \
             FROM cl WHERE {filter} GROUP BY cl.channel, cl.action"
        ));
    }
    values.push(tenant_id.into());
    let conversations = within(&mut values);
    let state = if converted { "IS NOT NULL" } else { "IS NULL" };
    parts.push(format!(
        "SELECT c.channel, 'unattributed', '', COUNT(*), CAST(NULL AS DOUBLE PRECISION) \
         FROM conversion v JOIN conversation c ON c.id = v.conversation_id \
         WHERE v.tenant_id = ? AND NOT v.attributed AND v.status = 'ACTIVE' \
         AND {conversations} AND c.first_converted_at {state} GROUP BY c.channel"
    ));
    (
        format!("WITH {links} {}", parts.join(" UNION ALL ")),
        values,
    )
}

/// The stats of the `converted` (or not converted) conversations, from
/// those of the whole range (`all`) and the rows part (`part`).
pub(super) fn narrowed(
    all: ConversionStats,
    part: ConversionStats,
    converted: bool,
) -> ConversionStats {
    let by_channel: Vec<ChannelCount> = all
        .by_channel
        .iter()
        .map(|c| {
            let conversations = if converted {
                c.converted
            } else {
                c.conversations - c.converted
            };
            ChannelCount {
                channel: c.channel,
                conversations,
                converted: if converted { c.converted } else { 0 },
            }
        })
        .filter(|c| c.conversations > 0)
        .collect();
    let conversations = by_channel.iter().map(|c| c.conversations).sum();
    if converted {
        return ConversionStats {
            conversations,
            by_channel,
            funnel: part.funnel,
            unattributed: part.unattributed,
            ..all
        };
    }
    let funnel = all
        .funnel
        .iter()
        .zip(&part.funnel)
        .map(|(all, of_converted)| FunnelStep {
            action: all.action,
            issued: all.issued - of_converted.issued,
            followed: all.followed - of_converted.followed,
            converted: all.converted - of_converted.converted,
        })
        .collect();
    let mut none = all;
    for kind in &mut none.by_kind {
        kind.count = 0;
        kind.conversations = 0;
    }
    for source in &mut none.by_source {
        source.count = 0;
    }
    ConversionStats {
        conversations,
        converted: 0,
        by_channel,
        median_seconds_to_convert: None,
        unattributed: part.unattributed,
        funnel,
        revenue: Vec::new(),
        ..none
    }
}
