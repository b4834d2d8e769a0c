//! How stats are kept in rollups: counters per UTC day and per UTC month,
//! which of them answer a range exactly, and the median from a histogram.

use chrono::{DateTime, Datelike, Months, NaiveTime, TimeZone, Utc};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The length of the period a rollup row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Span {
    Day,
    Month,
}

impl Span {
    pub const ALL: [Span; 2] = [Span::Day, Span::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Span::Day => "day",
            Span::Month => "month",
        }
    }

    /// The start of the UTC period holding `micros`.
    pub fn start_of(self, micros: i64) -> i64 {
        match self {
            Span::Day => micros - micros.rem_euclid(MICROS_PER_DAY),
            Span::Month => {
                let Some(at) = DateTime::from_timestamp_micros(micros) else {
                    return micros;
                };
                let first = at.date_naive().with_day(1).unwrap_or(at.date_naive());
                Utc.from_utc_datetime(&first.and_time(NaiveTime::MIN))
                    .timestamp_micros()
            }
        }
    }

    /// The start of the first period that begins at or after `micros`.
    fn first_start_from(self, micros: i64) -> i64 {
        let start = self.start_of(micros);
        if start == micros {
            return start;
        }
        match self {
            Span::Day => start.saturating_add(MICROS_PER_DAY),
            Span::Month => DateTime::from_timestamp_micros(start)
                .and_then(|at| at.checked_add_months(Months::new(1)))
                .map_or(i64::MAX, |next| next.timestamp_micros()),
        }
    }
}

/// What a rollup row counts. Each is kept per tenant × period × channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Conversations started in the period.
    Conversations,
    /// Of those, the ones with an attributed conversion.
    Converted,
    /// Attributed conversions of a kind (key: the kind), by their
    /// conversation's start.
    Kind,
    /// Conversations with at least one attributed conversion of a kind.
    KindConversations,
    /// Links issued for an action (key: the action), by their
    /// conversation's start; then those followed, and those converted.
    Issued,
    Followed,
    LinkConverted,
    /// Attributed conversions by how they reached convtrack (key: the
    /// source, `LINK`, `DIRECT` or `CONFIRMATION`), by their
    /// conversation's start: with `Unattributed`, every conversion once.
    Source,
    /// Conversions recorded in the period outside attribution.
    Unattributed,
    /// What the active attributed conversions of a kind are worth now, in
    /// a currency's minor units (key: `KIND CURRENCY`), by their
    /// conversation's start.
    Revenue,
    /// Conversations with at least one of them (key: the currency).
    RevenueConversations,
    /// `Conversations`, `Converted` and `Revenue` again for each label the
    /// conversation has now (key: `key=value`; for revenue
    /// `CURRENCY key=value`). A change of labels moves them.
    LabelConversations,
    LabelConverted,
    LabelRevenue,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::Conversations,
        Metric::Converted,
        Metric::Kind,
        Metric::KindConversations,
        Metric::Issued,
        Metric::Followed,
        Metric::LinkConverted,
        Metric::Source,
        Metric::Unattributed,
        Metric::Revenue,
        Metric::RevenueConversations,
        Metric::LabelConversations,
        Metric::LabelConverted,
        Metric::LabelRevenue,
    ];

    /// The metrics only `byLabel` reads; the overall stats leave them out.
    pub const OF_LABELS: [Metric; 3] = [
        Metric::LabelConversations,
        Metric::LabelConverted,
        Metric::LabelRevenue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Conversations => "conversations",
            Metric::Converted => "converted",
            Metric::Kind => "kind",
            Metric::KindConversations => "kind_conversations",
            Metric::Issued => "issued",
            Metric::Followed => "followed",
            Metric::LinkConverted => "link_converted",
            Metric::Source => "source",
            Metric::Unattributed => "unattributed",
            Metric::Revenue => "revenue",
            Metric::RevenueConversations => "revenue_conversations",
            Metric::LabelConversations => "label_conversations",
            Metric::LabelConverted => "label_converted",
            Metric::LabelRevenue => "label_revenue",
        }
    }

    pub fn parse(stored: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == stored)
    }
}

/// The key of a revenue counter: the kind and the currency.
pub fn revenue_key(kind: &str, currency: &str) -> String {
    format!("{kind} {currency}")
}

/// The kind and the currency of a revenue counter's key.
pub fn split_revenue_key(key: &str) -> Option<(&str, &str)> {
    key.split_once(' ')
}

/// What a count of `metric` with `key` also adds for the label `pair`:
/// conversations, converted and revenue are kept per label too.
pub fn label_counterpart(metric: Metric, key: &str, pair: &str) -> Option<(Metric, String)> {
    match metric {
        Metric::Conversations => Some((Metric::LabelConversations, pair.to_owned())),
        Metric::Converted => Some((Metric::LabelConverted, pair.to_owned())),
        Metric::Revenue => {
            let (_, currency) = split_revenue_key(key)?;
            Some((Metric::LabelRevenue, label_revenue_key(currency, pair)))
        }
        _ => None,
    }
}

/// The key of a label's revenue counter: the currency, then the pair
/// (which may hold spaces itself).
pub fn label_revenue_key(currency: &str, pair: &str) -> String {
    format!("{currency} {pair}")
}

/// `[from, to)` in µs; `i64::MIN` / `i64::MAX` stand for no bound.
pub type Interval = (i64, i64);

/// How a range `[from, to)` is answered: whole months from month rows,
/// whole days around them from day rows, and the parts of days at either
/// end from the rows themselves (at most two partial days).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cover {
    pub months: Option<Interval>,
    pub days: Vec<Interval>,
    pub edges: Vec<Interval>,
}

/// Splits `[from, to)` (no bound where `None`) into what answers it.
pub fn cover(from: Option<i64>, to: Option<i64>) -> Cover {
    let mut cover = Cover::default();
    let first_day = from.map(|f| Span::Day.first_start_from(f));
    let days_end = to.map(|t| Span::Day.start_of(t));
    if let (Some(first), Some(end)) = (first_day, days_end)
        && first >= end
    {
        if let (Some(f), Some(t)) = (from, to)
            && f < t
        {
            cover.edges.push((f, t));
        }
        return cover;
    }
    if let (Some(f), Some(first)) = (from, first_day)
        && f < first
    {
        cover.edges.push((f, first));
    }
    if let (Some(end), Some(t)) = (days_end, to)
        && end < t
    {
        cover.edges.push((end, t));
    }
    let first_month = first_day.map(|d| Span::Month.first_start_from(d));
    let months_end = days_end.map(|d| Span::Month.start_of(d));
    match (first_day, days_end, first_month, months_end) {
        (Some(first), Some(end), Some(m1), Some(m2)) if m1 >= m2 => cover.days.push((first, end)),
        _ => {
            cover.months = Some((
                first_month.unwrap_or(i64::MIN),
                months_end.unwrap_or(i64::MAX),
            ));
            if let (Some(first), Some(m1)) = (first_day, first_month)
                && first < m1
            {
                cover.days.push((first, m1));
            }
            if let (Some(m2), Some(end)) = (months_end, days_end)
                && m2 < end
            {
                cover.days.push((m2, end));
            }
        }
    }
    cover
}

/// The median of a histogram given as (representative value, count) in
/// ascending order of value: the middle value, or the mean of the middle
/// two. `None` when it counts nothing.
pub fn median(histogram: &[(f64, i64)]) -> Option<f64> {
    let total: i64 = histogram.iter().map(|&(_, n)| n.max(0)).sum();
    if total == 0 {
        return None;
    }
    let at_rank = |rank: i64| {
        let mut seen = 0;
        for &(value, n) in histogram {
            seen += n.max(0);
            if rank < seen {
                return value;
            }
        }
        histogram[histogram.len() - 1].0
    };
    Some((at_rank((total - 1) / 2) + at_rank(total / 2)) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn periods_start_at_utc_midnight_and_the_first_of_the_month() {
        assert_eq!(Span::Day.start_of(at(2026, 3, 15, 13)), at(2026, 3, 15, 0));
        assert_eq!(Span::Month.start_of(at(2026, 3, 15, 13)), at(2026, 3, 1, 0));
        assert_eq!(Span::Month.start_of(at(2026, 3, 1, 0)), at(2026, 3, 1, 0));
        assert_eq!(
            Span::Day.first_start_from(at(2026, 3, 15, 1)),
            at(2026, 3, 16, 0)
        );
        assert_eq!(
            Span::Month.first_start_from(at(2026, 12, 2, 0)),
            at(2027, 1, 1, 0)
        );
        assert_eq!(Span::Day.start_of(-1), -MICROS_PER_DAY);
    }

    #[test]
    fn all_time_is_every_month() {
        assert_eq!(
            cover(None, None),
            Cover {
                months: Some((i64::MIN, i64::MAX)),
                ..Cover::default()
            }
        );
    }

    #[test]
    fn a_range_inside_one_day_is_one_edge() {
        let (from, to) = (at(2026, 3, 15, 1), at(2026, 3, 15, 5));
        assert_eq!(
            cover(Some(from), Some(to)),
            Cover {
                edges: vec![(from, to)],
                ..Cover::default()
            }
        );
        let midnight = at(2026, 3, 15, 0);
        assert_eq!(cover(Some(midnight), Some(to)).edges, vec![(midnight, to)]);
    }

    #[test]
    fn whole_days_without_a_whole_month_are_days() {
        let (from, to) = (at(2026, 3, 10, 6), at(2026, 3, 20, 6));
        assert_eq!(
            cover(Some(from), Some(to)),
            Cover {
                months: None,
                days: vec![(at(2026, 3, 11, 0), at(2026, 3, 20, 0))],
                edges: vec![(from, at(2026, 3, 11, 0)), (at(2026, 3, 20, 0), to)],
            }
        );
    }

    #[test]
    fn months_in_the_middle_days_around_them_and_edges_outside() {
        let (from, to) = (at(2026, 1, 20, 6), at(2026, 4, 3, 0));
        assert_eq!(
            cover(Some(from), Some(to)),
            Cover {
                months: Some((at(2026, 2, 1, 0), at(2026, 4, 1, 0))),
                days: vec![
                    (at(2026, 1, 21, 0), at(2026, 2, 1, 0)),
                    (at(2026, 4, 1, 0), at(2026, 4, 3, 0))
                ],
                edges: vec![(from, at(2026, 1, 21, 0))],
            }
        );
    }

    #[test]
    fn open_ends_are_months_up_to_the_bound() {
        let from = at(2026, 1, 20, 6);
        assert_eq!(
            cover(Some(from), None),
            Cover {
                months: Some((at(2026, 2, 1, 0), i64::MAX)),
                days: vec![(at(2026, 1, 21, 0), at(2026, 2, 1, 0))],
                edges: vec![(from, at(2026, 1, 21, 0))],
            }
        );
        let to = at(2026, 1, 1, 0);
        assert_eq!(
            cover(None, Some(to)),
            Cover {
                months: Some((i64::MIN, to)),
                ..Cover::default()
            }
        );
    }

    #[test]
    fn the_pieces_of_a_cover_tile_the_range() {
        let hour = 3_600_000_000;
        let base = at(2025, 11, 28, 0);
        for (a, b) in [
            (1, 2),
            (5, 30),
            (13, 24 * 70 + 3),
            (0, 24 * 400),
            (7, 24 * 33),
        ] {
            let (from, to) = (base + a * hour, base + b * hour);
            let c = cover(Some(from), Some(to));
            let mut pieces: Vec<Interval> = c.edges.clone();
            pieces.extend(c.days.iter().copied());
            pieces.extend(c.months);
            pieces.sort();
            assert_eq!(pieces.first().map(|p| p.0), Some(from), "{c:?}");
            assert_eq!(pieces.last().map(|p| p.1), Some(to), "{c:?}");
            for pair in pieces.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "{c:?}");
            }
            let scanned: i64 = c.edges.iter().map(|&(f, t)| t - f).sum();
            assert!(scanned < 2 * MICROS_PER_DAY, "{c:?}");
        }
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[(5.0, 0)]), None);
        assert_eq!(median(&[(1.0, 1), (3.0, 1), (9.0, 1)]), Some(3.0));
        assert_eq!(median(&[(1.0, 1), (3.0, 1)]), Some(2.0));
        assert_eq!(median(&[(1.0, 2), (3.0, 2)]), Some(2.0));
        assert_eq!(median(&[(1.0, 3), (3.0, 1)]), Some(1.0));
    }

    #[test]
    fn metrics_read_back_as_stored() {
        for metric in Metric::ALL {
            assert_eq!(Metric::parse(metric.as_str()), Some(metric));
        }
        assert_eq!(Metric::parse("visits"), None);
        let key = revenue_key("DAY_PASS_PURCHASED", "EUR");
        assert_eq!(split_revenue_key(&key), Some(("DAY_PASS_PURCHASED", "EUR")));
    }

    #[test]
    fn labels_count_conversations_converted_and_revenue_again() {
        let pair = "prompt=v 7";
        assert_eq!(
            label_counterpart(Metric::Conversations, "", pair),
            Some((Metric::LabelConversations, pair.to_owned()))
        );
        assert_eq!(
            label_counterpart(Metric::Converted, "", pair),
            Some((Metric::LabelConverted, pair.to_owned()))
        );
        assert_eq!(
            label_counterpart(Metric::Revenue, "MEMBERSHIP_CONTRACT EUR", pair),
            Some((Metric::LabelRevenue, "EUR prompt=v 7".to_owned()))
        );
        assert_eq!(label_counterpart(Metric::Kind, "TOUR_BOOKED", pair), None);
        assert_eq!(label_counterpart(Metric::LabelConverted, "", pair), None);
    }
}
