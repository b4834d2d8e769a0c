//! The targets `bench compare` checks, each as a ratio or figure of the run
//! it ends: the list against its peers and at two sizes, recordings, stats
//! and search, memory, and the CPU a list request costs.

use std::fmt::Write as _;

use crate::compare::Line;

/// Instructions per list request (50 rows, `bench instructions`, the 10k
/// PostgreSQL dataset of seed 1) before the one-statement list, the key
/// cache, plain-value rows and the kept documents: the figure the CPU
/// target halves.
pub const INSTRUCTIONS_BEFORE: f64 = 4_413_563.0;

/// What one `bench compare` run measured.
pub struct Measurements<'a> {
    pub lines: &'a [Line],
    /// Size labels of the two PostgreSQL datasets ("1M", "10k").
    pub large: &'a str,
    pub small: &'a str,
    /// convtrack's peak RSS after the list scenario, in MB.
    pub list_rss: Option<f64>,
    pub instructions: Option<f64>,
}

/// The targets table being written.
struct Table(String);

impl Table {
    /// One line; `met: None` is a figure shown for context, not a target.
    fn check(
        &mut self,
        what: String,
        value: Option<f64>,
        unit: &str,
        goal: &str,
        met: Option<fn(f64) -> bool>,
    ) {
        let (shown, ok) = match (value, met) {
            (Some(v), Some(met)) if v.is_finite() => {
                (format!("{v:.2}{unit}"), if met(v) { "yes" } else { "NO" })
            }
            (Some(v), None) if v.is_finite() => (format!("{v:.2}{unit}"), "-"),
            _ => ("not measured".to_owned(), "-"),
        };
        let _ = writeln!(self.0, "| {what} | {shown} | {goal} | {ok} |");
    }
}

impl Measurements<'_> {
    /// The targets, each as measured in this run.
    pub fn targets(&self) -> String {
        let mut table =
            Table("| target | measured | goal | met |\n| --- | ---: | ---: | :---: |\n".into());
        self.list(&mut table);
        self.record(&mut table);
        self.stats_and_search(&mut table);
        table.check(
            "(a) convtrack peak RSS".into(),
            self.list_rss,
            " MB",
            "≤ 100 MB",
            Some(|v| v <= 100.0),
        );
        table.0
    }

    fn find(&self, target: &str, dataset: &str, scenario: &str, c: usize) -> Option<&Line> {
        self.lines.iter().find(|l| {
            l.target == target
                && l.dataset == dataset
                && l.row.scenario == scenario
                && l.row.concurrency == c
        })
    }

    fn pg_large(&self) -> String {
        format!("PG {}", self.large)
    }

    fn sqlite(&self) -> String {
        self.lines
            .iter()
            .find(|l| l.dataset.starts_with("SQLite"))
            .map(|l| l.dataset.clone())
            .unwrap_or_default()
    }

    /// The concurrency levels of the compared runs (not the lone ones).
    fn concurrencies(&self) -> Vec<usize> {
        let mut c: Vec<usize> = self
            .lines
            .iter()
            .filter(|l| l.row.scenario == "list")
            .map(|l| l.row.concurrency)
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// convtrack's best throughput in `scenario` on `dataset`.
    fn best(&self, dataset: &str, scenario: &str) -> Option<f64> {
        self.lines
            .iter()
            .filter(|l| {
                l.target == "convtrack" && l.dataset == dataset && l.row.scenario == scenario
            })
            .map(|l| l.row.measured.per_second)
            .reduce(f64::max)
    }

    fn list(&self, table: &mut Table) {
        let pg_large = self.pg_large();
        let per_second = |target: &str, c: usize| {
            self.find(target, &pg_large, "list", c)
                .map(|l| l.row.measured.per_second)
        };
        for c in self.concurrencies() {
            let ours = per_second("convtrack", c);
            table.check(
                format!("(a) convtrack / PostGraphile req/s, c={c}"),
                ours.zip(per_second("PostGraphile", c)).map(|(a, b)| a / b),
                "×",
                "≥ 2×",
                Some(|v| v >= 2.0),
            );
            table.check(
                format!("(a) convtrack / raw SQL (pgbench, the statements of before) req/s, c={c}"),
                ours.zip(per_second("pgbench", c)).map(|(a, b)| a / b),
                "×",
                "≥ 0.3×",
                Some(|v| v >= 0.3),
            );
        }
        let most_statements = self
            .lines
            .iter()
            .filter(|l| l.target == "convtrack" && l.row.scenario == "list")
            .filter_map(|l| l.row.statements_per_request)
            .reduce(f64::max);
        table.check(
            "(a) SQL statements per list request (most seen)".into(),
            most_statements,
            "",
            "≤ 1",
            // The meter also counts the server's own periodic statements
            // (the keys' change counter twice a second): a few in 10,000.
            Some(|v| v < 1.005),
        );
        for c in self.concurrencies() {
            let p50 = |dataset: &str| {
                self.find("convtrack", dataset, "list", c)
                    .map(|l| l.row.measured.p50_ms)
            };
            table.check(
                format!("(a) p50 at {} / p50 at {}, c={c}", self.large, self.small),
                p50(&pg_large)
                    .zip(p50(&format!("PG {}", self.small)))
                    .map(|(a, b)| a / b),
                "×",
                "≤ 1.5×",
                Some(|v| v <= 1.5),
            );
        }
        table.check(
            format!(
                "(a) instructions per list request / {INSTRUCTIONS_BEFORE:.0} before (PG {})",
                self.small
            ),
            self.instructions.map(|n| n / INSTRUCTIONS_BEFORE),
            "×",
            "≤ 0.5×",
            Some(|v| v <= 0.5),
        );
    }

    fn record(&self, table: &mut Table) {
        let (pg_large, sqlite) = (self.pg_large(), self.sqlite());
        let at = |dataset: &str, c: usize| {
            self.find("convtrack", dataset, "record", c)
                .map(|l| &l.row.measured)
        };
        for c in [8, 32] {
            table.check(
                format!("(c) recordings/s, PostgreSQL c={c}"),
                at(&pg_large, c).map(|m| m.per_second),
                "",
                "≥ 2,000",
                Some(|v| v >= 2000.0),
            );
        }
        table.check(
            "(c) recordings/s at c=32 / at c=8, PostgreSQL".into(),
            at(&pg_large, 32)
                .zip(at(&pg_large, 8))
                .map(|(wide, narrow)| wide.per_second / narrow.per_second),
            "×",
            "≥ 1.0×",
            Some(|v| v >= 1.0),
        );
        table.check(
            "(c) recording p99 at c=32, PostgreSQL".into(),
            at(&pg_large, 32).map(|m| m.p99_ms),
            " ms",
            "≤ 50 ms",
            Some(|v| v <= 50.0),
        );
        let raw_record = self
            .lines
            .iter()
            .filter(|l| l.target == "pgbench" && l.row.scenario == "record")
            .map(|l| l.row.measured.per_second)
            .reduce(f64::max);
        table.check(
            "(c) convtrack / plain INSERT … SELECT (pgbench) recordings/s (best of each)".into(),
            self.best(&pg_large, "record")
                .zip(raw_record)
                .map(|(a, b)| a / b),
            "×",
            "≥ 0.25×",
            Some(|v| v >= 0.25),
        );
        for c in [8, 32] {
            table.check(
                format!("(c) recordings/s, SQLite c={c}"),
                at(&sqlite, c).map(|m| m.per_second),
                "",
                "≥ 1,000",
                Some(|v| v >= 1000.0),
            );
        }
    }

    fn stats_and_search(&self, table: &mut Table) {
        let (pg_large, sqlite) = (self.pg_large(), self.sqlite());
        let alone = |dataset: &str, scenario: &str| {
            self.find("convtrack", dataset, scenario, 1)
                .map(|l| &l.row.measured)
        };
        table.check(
            format!("stats, all time, p50 alone ({pg_large})"),
            alone(&pg_large, "stats").map(|m| m.p50_ms),
            " ms",
            "≤ 20 ms",
            Some(|v| v <= 20.0),
        );
        table.check(
            format!("stats, all time, req/s at c=8 ({pg_large})"),
            self.find("convtrack", &pg_large, "stats", 8)
                .map(|l| l.row.measured.per_second),
            "",
            "≥ 100",
            Some(|v| v >= 100.0),
        );
        table.check(
            format!("stats, all time, p50 alone ({sqlite})"),
            alone(&sqlite, "stats").map(|m| m.p50_ms),
            " ms",
            "≤ 50 ms",
            Some(|v| v <= 50.0),
        );
        table.check(
            format!("search, any term, p99 alone ({pg_large})"),
            alone(&pg_large, "search").map(|m| m.p99_ms),
            " ms",
            "≤ 150 ms",
            Some(|v| v <= 150.0),
        );
        table.check(
            format!("search, any term, p99 alone ({sqlite})"),
            alone(&sqlite, "search").map(|m| m.p99_ms),
            " ms",
            "≤ 300 ms",
            Some(|v| v <= 300.0),
        );
    }
}
