//! What a recording adds to the stats rollups. Some counts hold whatever
//! else happens (a conversion of a kind, one outside attribution); others
//! depend on being first — the conversation's first conversion, its first of
//! a kind, a link's first — and are decided under the rows' locks, so two
//! recordings that race never both count as first.

use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::plan::Plan;
use crate::domain::rollup::Metric;
use crate::error::AppError;
use crate::service::rollups::{
    Counted, RowKey, delay_upsert, save_delay, selected_per_row, upsert_selected,
};
use crate::service::statement;

/// The conversation the new rows belong to: (start, channel).
fn cohort(plan: &Plan) -> Option<(i64, &str)> {
    let row = &plan.result[*plan.new_rows.first()?];
    Some((
        row.conversation_started_at?,
        row.conversation_channel.as_deref()?,
    ))
}

/// The counts that hold whatever else happens.
fn always_counted(plan: &Plan, started_at: i64, channel: &str) -> Counted {
    let mut counted = Counted::new(plan.tenant_id, channel);
    for &at in &plan.new_rows {
        let row = &plan.result[at];
        if row.attributed {
            counted.add(started_at, Metric::Kind, &row.kind);
        } else {
            counted.add(row.recorded_at, Metric::Unattributed, "");
        }
    }
    counted
}

/// The kinds of the new attributed rows, each once.
fn attributed_kinds(plan: &Plan) -> Vec<&str> {
    let mut kinds: Vec<&str> = plan
        .new_rows
        .iter()
        .map(|&at| &plan.result[at])
        .filter(|row| row.attributed)
        .map(|row| row.kind.as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// The link the new rows came through, with its action.
fn link(plan: &Plan) -> Option<(Uuid, &str)> {
    let row = &plan.result[*plan.new_rows.first()?];
    Some((row.link_id?, row.link_action.as_deref()?))
}

/// SQLite, inside the write transaction that inserted the rows: marks the
/// firsts and adds every count.
pub(super) async fn count_in_transaction<C: ConnectionTrait>(
    txn: &C,
    plan: &Plan,
    first_conversion: bool,
) -> Result<(), AppError> {
    let Some((started_at, channel)) = cohort(plan) else {
        return Ok(());
    };
    let backend = txn.get_database_backend();
    let mut counted = always_counted(plan, started_at, channel);
    if first_conversion {
        counted.add(started_at, Metric::Converted, "");
        save_delay(
            txn,
            plan.tenant_id,
            channel,
            started_at,
            plan.now - started_at,
        )
        .await?;
    }
    let kinds = attributed_kinds(plan);
    if !kinds.is_empty() {
        let (sql, values) = new_kinds(plan.conversation_id, &kinds);
        for row in txn.query_all_raw(statement(backend, &sql, values)).await? {
            counted.add(
                started_at,
                Metric::KindConversations,
                &row.try_get::<String>("", "kind")?,
            );
        }
    }
    if let Some((link_id, action)) = link(plan) {
        let marked = txn
            .execute_raw(statement(
                backend,
                FIRST_LINK_CONVERSION,
                vec![plan.now.into(), link_id.into()],
            ))
            .await?;
        if marked.rows_affected() == 1 {
            counted.add(started_at, Metric::LinkConverted, action);
        }
    }
    counted.save(txn).await
}

/// Marks a link's first conversion; changes nothing if it has one.
const FIRST_LINK_CONVERSION: &str = "UPDATE cta_link SET first_converted_at = ? \
     WHERE id = ? AND first_converted_at IS NULL";

/// Records which kinds the conversation converted to; returns the new ones.
fn new_kinds(conversation_id: Uuid, kinds: &[&str]) -> (String, Vec<Value>) {
    let mut values = Vec::with_capacity(kinds.len() * 2);
    for kind in kinds {
        values.extend([conversation_id.into(), (*kind).to_owned().into()]);
    }
    let sql = format!(
        "INSERT INTO conversation_kind (conversation_id, kind) VALUES {} \
         ON CONFLICT DO NOTHING RETURNING kind",
        vec!["(?, ?)"; kinds.len()].join(", ")
    );
    (sql, values)
}

/// PostgreSQL: the CTEs that mark the firsts (`kinds`, `linkc`); the
/// counts read them, so they are written first.
pub(super) fn marking_ctes(plan: &Plan, values: &mut Vec<Value>) -> Vec<String> {
    let mut parts = Vec::new();
    let kinds = attributed_kinds(plan);
    if !kinds.is_empty() {
        let (sql, kind_values) = new_kinds(plan.conversation_id, &kinds);
        parts.push(format!("kinds AS ({sql})"));
        values.extend(kind_values);
    }
    if let Some((link_id, _)) = link(plan) {
        parts.push(format!("linkc AS ({FIRST_LINK_CONVERSION} RETURNING id)"));
        values.extend([plan.now.into(), link_id.into()]);
    }
    parts
}

/// PostgreSQL: the CTEs that add the counts. `first` names the CTE that returns a row when this is the
/// conversation's first conversion, if one was tried.
pub(super) fn counting_ctes(
    plan: &Plan,
    first: Option<&str>,
    values: &mut Vec<Value>,
) -> Vec<String> {
    let Some((started_at, channel)) = cohort(plan) else {
        return Vec::new();
    };
    let mut selected_values = Vec::new();
    let mut selects = always_counted(plan, started_at, channel).selected(&mut selected_values);
    if let Some(first) = first {
        selects.extend(selected_per_row(
            first,
            started_at,
            Metric::Converted,
            RowKey::Text(""),
            &mut selected_values,
        ));
    }
    // `marking_ctes` wrote `kinds` exactly when there are attributed kinds.
    if !attributed_kinds(plan).is_empty() {
        selects.extend(selected_per_row(
            "kinds",
            started_at,
            Metric::KindConversations,
            RowKey::Column("kind"),
            &mut selected_values,
        ));
    }
    if let Some((_, action)) = link(plan) {
        selects.extend(selected_per_row(
            "linkc",
            started_at,
            Metric::LinkConverted,
            RowKey::Text(action),
            &mut selected_values,
        ));
    }
    let mut parts = vec![format!(
        "roll AS ({})",
        upsert_selected(
            plan.tenant_id,
            channel,
            &selects,
            selected_values,
            "",
            values
        )
    )];
    if let Some(first) = first {
        parts.push(format!(
            "dly AS ({})",
            delay_upsert(
                sea_orm::DatabaseBackend::Postgres,
                plan.tenant_id,
                channel,
                started_at,
                plan.now - started_at,
                &format!(", {first}"),
                values,
            )
        ));
    }
    parts
}
