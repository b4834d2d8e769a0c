//! What a recording adds to the stats rollups. Some counts hold whatever
//! else happens (a conversion of a kind, one outside attribution); others
//! depend on being first — the conversation's first conversion, its first of
//! a kind, a link's first — and are decided under the rows' locks, so two
//! recordings that race never both count as first.

use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::plan::Plan;
use crate::domain::rollup::{Metric, revenue_key};
use crate::error::AppError;
use crate::service::rollups::{
    Counted, Delayed, RowKey, delay_upserts, save_delay, selected_per_row, upsert_selected,
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
    let mut counted = Counted::new(plan.tenant_id, channel).with_labels(plan.labels.clone());
    for &at in &plan.new_rows {
        let row = &plan.result[at];
        if row.attributed {
            counted.add(started_at, Metric::Kind, &row.kind);
            counted.add(started_at, Metric::Source, &row.source);
            if let (Some(minor), Some(currency)) = (row.value_minor, &row.currency) {
                let key = revenue_key(&row.kind, currency);
                counted.add_n(started_at, Metric::Revenue, &key, minor);
            }
        } else {
            counted.add_unattributed(row.recorded_at, started_at, 1);
        }
    }
    counted
}

/// What a conversation is marked with once, whoever races: the kinds it
/// converted to, the currencies it earned in. A recording counts a mark
/// when its insert is the one that made it.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Kind,
    Currency,
}

impl Mark {
    const ALL: [Mark; 2] = [Mark::Kind, Mark::Currency];

    /// The table, its column, the metric it counts and the CTE that
    /// writes it on PostgreSQL.
    fn names(self) -> (&'static str, &'static str, Metric, &'static str) {
        match self {
            Mark::Kind => (
                "conversation_kind",
                "kind",
                Metric::KindConversations,
                "kinds",
            ),
            Mark::Currency => (
                "conversation_currency",
                "currency",
                Metric::RevenueConversations,
                "curs",
            ),
        }
    }

    /// The marks of the new rows, each once: the kinds of attributed ones,
    /// the currencies of attributed ones with a value.
    fn of(self, plan: &Plan) -> Vec<&str> {
        let rows = plan.new_rows.iter().map(|&at| &plan.result[at]);
        let mut marks: Vec<&str> = match self {
            Mark::Kind => rows
                .filter(|row| row.attributed)
                .map(|row| row.kind.as_str())
                .collect(),
            Mark::Currency => rows
                .filter(|row| row.attributed && row.value_minor.is_some())
                .filter_map(|row| row.currency.as_deref())
                .collect(),
        };
        marks.sort_unstable();
        marks.dedup();
        marks
    }

    /// Records `marks` of the conversation; returns the new ones.
    fn insert(self, conversation_id: Uuid, marks: &[&str]) -> (String, Vec<Value>) {
        let (table, column, _, _) = self.names();
        let mut values = Vec::with_capacity(marks.len() * 2);
        for mark in marks {
            values.extend([conversation_id.into(), (*mark).to_owned().into()]);
        }
        let sql = format!(
            "INSERT INTO {table} (conversation_id, {column}) VALUES {} \
             ON CONFLICT DO NOTHING RETURNING {column}",
            vec!["(?, ?)"; marks.len()].join(", ")
        );
        (sql, values)
    }
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
        let delayed = Delayed {
            tenant_id: plan.tenant_id,
            channel,
            started_at,
            labels: &plan.labels,
        };
        save_delay(txn, &delayed, (plan.now - started_at, 1)).await?;
    }
    for mark in Mark::ALL {
        let marks = mark.of(plan);
        if marks.is_empty() {
            continue;
        }
        let (_, column, metric, _) = mark.names();
        let (sql, values) = mark.insert(plan.conversation_id, &marks);
        for row in txn.query_all_raw(statement(backend, &sql, values)).await? {
            counted.add(started_at, metric, &row.try_get::<String>("", column)?);
        }
    }
    if let Some((link_id, action)) = link(plan) {
        for (firsts, metric) in [
            (FIRST_LINK_CONVERSION, Metric::LinkConverted),
            (FIRST_LINK_REACH, Metric::Followed),
        ] {
            let marked = txn
                .execute_raw(statement(
                    backend,
                    firsts,
                    vec![plan.now.into(), link_id.into()],
                ))
                .await?;
            if marked.rows_affected() == 1 {
                counted.add(started_at, metric, action);
            }
        }
    }
    counted.save(txn).await
}

/// Marks a link's first conversion; changes nothing if it has one.
const FIRST_LINK_CONVERSION: &str = "UPDATE cta_link SET first_converted_at = ? \
     WHERE id = ? AND first_converted_at IS NULL";

/// Marks a link that converted as followed when no follow was counted: its
/// destination was reached (opened directly, or the redirect not taken), so
/// the funnel's steps never shrink — every converted link was followed.
const FIRST_LINK_REACH: &str = "UPDATE cta_link SET first_followed_at = ? \
     WHERE id = ? AND first_followed_at IS NULL";

/// PostgreSQL: both marks in one update (two CTEs may not update one row),
/// which says which of them were firsts. The row is locked before its old
/// values are read, so a follow committing meanwhile is seen.
const LINK_MARKS: &str = "UPDATE cta_link l SET \
     first_converted_at = COALESCE(o.first_converted_at, ?), \
     first_followed_at = COALESCE(o.first_followed_at, ?) \
     FROM (SELECT id, first_converted_at, first_followed_at FROM cta_link WHERE id = ? FOR UPDATE) o \
     WHERE l.id = o.id AND (o.first_converted_at IS NULL OR o.first_followed_at IS NULL) \
     RETURNING o.first_converted_at IS NULL AS converted_first, \
     o.first_followed_at IS NULL AS followed_first";

/// PostgreSQL: the CTEs that mark the firsts (`kinds`, `curs`, `linkc`); the
/// counts read them, so they are written first.
pub(super) fn marking_ctes(plan: &Plan, values: &mut Vec<Value>) -> Vec<String> {
    let mut parts = Vec::new();
    for mark in Mark::ALL {
        let marks = mark.of(plan);
        if !marks.is_empty() {
            let (sql, mark_values) = mark.insert(plan.conversation_id, &marks);
            parts.push(format!("{} AS ({sql})", mark.names().3));
            values.extend(mark_values);
        }
    }
    if let Some((link_id, _)) = link(plan) {
        parts.push(format!("linkc AS ({LINK_MARKS})"));
        values.extend([plan.now.into(), plan.now.into(), link_id.into()]);
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
    let counted = always_counted(plan, started_at, channel);
    let mut selected_values = Vec::new();
    let mut selects = counted.selected(&mut selected_values);
    // What every label gains besides: the same firsts.
    let mut labelled_values = Vec::new();
    let mut labelled = counted.labelled_selected(&mut labelled_values);
    let mut per_row = |cte: &str, metric: Metric, key: RowKey| {
        selects.extend(selected_per_row(
            cte,
            started_at,
            metric,
            key,
            &mut selected_values,
        ));
        labelled.extend(selected_per_row(
            cte,
            started_at,
            metric,
            key,
            &mut labelled_values,
        ));
    };
    if let Some(first) = first {
        per_row(first, Metric::Converted, RowKey::Text(""));
    }
    // `marking_ctes` wrote each mark's CTE exactly when it has marks.
    for mark in Mark::ALL {
        if !mark.of(plan).is_empty() {
            let (_, column, metric, cte) = mark.names();
            per_row(cte, metric, RowKey::Column(column));
        }
    }
    if let Some((_, action)) = link(plan) {
        for (firsts, metric) in [
            ("linkc WHERE converted_first", Metric::LinkConverted),
            ("linkc WHERE followed_first", Metric::Followed),
        ] {
            per_row(firsts, metric, RowKey::Text(action));
        }
    }
    if let Some(first) = first {
        for pair in &plan.labels {
            selects.extend(selected_per_row(
                first,
                started_at,
                Metric::LabelConverted,
                RowKey::Text(pair),
                &mut selected_values,
            ));
        }
    }
    let mut parts = vec![format!(
        "roll AS ({})",
        upsert_selected(
            plan.tenant_id,
            (channel, None),
            &selects,
            selected_values,
            "",
            values
        )
    )];
    if !plan.labels.is_empty() && !labelled.is_empty() {
        parts.push(format!(
            "lroll AS ({})",
            upsert_selected(
                plan.tenant_id,
                (channel, Some(&plan.labels)),
                &labelled,
                labelled_values,
                "",
                values
            )
        ));
    }
    if let Some(first) = first {
        let delayed = Delayed {
            tenant_id: plan.tenant_id,
            channel,
            started_at,
            labels: &plan.labels,
        };
        let upserts = delay_upserts(
            sea_orm::DatabaseBackend::Postgres,
            &delayed,
            (plan.now - started_at, 1),
            &format!(", {first}"),
        );
        for ((sql, upsert_values), name) in upserts.into_iter().zip(["dly", "ldly"]) {
            parts.push(format!("{name} AS ({sql})"));
            values.extend(upsert_values);
        }
    }
    parts
}
