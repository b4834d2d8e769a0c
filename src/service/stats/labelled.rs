//! Stats of the conversations with one label: whole days and months from
//! the label's rollups (`label_rollup`, `label_delay_rollup`, kept like the
//! overall ones per `key=value` pair), the parts of days at either end
//! from the rows of that label's conversations.

use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::{StatsRange, filtered, rollup_filter, whole_periods};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::label::Label;
use crate::domain::rollup;
use crate::error::AppError;
use crate::service::listing::ConversationFilter;
use crate::service::{Caller, Services, statement};

impl Services {
    /// The counter rows (as [`super::Tally`] adds them up) of the
    /// conversations started in `range` with `label`.
    pub(super) async fn labelled_rows(
        &self,
        caller: &Caller,
        range: &StatsRange,
        label: &Label,
    ) -> Result<Vec<QueryResult>, AppError> {
        let backend = self.db.get_database_backend();
        let cover = rollup::cover(range.from.map(to_micros), range.to.map(to_micros));
        let mut rows = Vec::new();
        let periods = whole_periods(&cover);
        if !periods.is_empty() {
            let mut values = Vec::new();
            let sql = rollups_statement(caller, range, &periods, &label.pair(), &mut values);
            rows = self
                .db
                .query_all_raw(statement(backend, &sql, values))
                .await?;
        }
        for &(from, to) in &cover.edges {
            let filter = ConversationFilter {
                started_after: (from != i64::MIN).then(|| from_micros(from)),
                started_before: (to != i64::MAX).then(|| from_micros(to)),
                channels: range.channels.clone(),
                labels: vec![label.clone()],
                ..ConversationFilter::default()
            };
            let query = filtered::stats_statement(backend, caller, &filter, None)?;
            rows.extend(self.cohort_rows(query).await?);
        }
        Ok(rows)
    }
}

/// The label's counters in `periods`, as rows (channel, metric, key, n,
/// representative); its values go to `values`.
fn rollups_statement(
    caller: &Caller,
    range: &StatsRange,
    periods: &[(rollup::Span, rollup::Interval)],
    pair: &str,
    values: &mut Vec<Value>,
) -> String {
    let of_label = |values: &mut Vec<Value>| {
        let filter = rollup_filter(caller.tenant_id, range.channels(), periods, values);
        values.push(pair.to_owned().into());
        format!("{filter} AND r.label = ?")
    };
    let counters = of_label(values);
    let delays = of_label(values);
    format!(
        "SELECT r.channel, r.metric, r.key, CAST(SUM(r.n) AS BIGINT) AS n, \
         CAST(NULL AS DOUBLE PRECISION) AS representative \
         FROM label_rollup r WHERE {counters} GROUP BY r.channel, r.metric, r.key \
         UNION ALL SELECT '', 'delay', '', CAST(SUM(r.n) AS BIGINT), b.representative_micros \
         FROM label_delay_rollup r JOIN delay_bucket b ON b.bucket = r.bucket \
         WHERE {delays} GROUP BY b.bucket, b.representative_micros"
    )
}
