//! Revenue in the stats: per currency, never converted between them, net
//! of restatements and retractions (the rollups hold what the active
//! attributed conversions are worth now).

use std::collections::BTreeMap;

use crate::domain::channel::Channel;
use crate::domain::conversion::ConversionKind;
use crate::domain::money::{Currency, average_minor};
use crate::domain::rollup::{Metric, split_revenue_key};
use crate::error::{AppError, stored};

/// What the range's conversations earned in one currency, in its minor
/// units.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrencyRevenue {
    pub currency: Currency,
    pub total: i64,
    /// Every kind, zeros included, in the product's order.
    pub by_kind: Vec<(ConversionKind, i64)>,
    /// Channels whose amount is not zero, in the product's order.
    pub by_channel: Vec<(Channel, i64)>,
    /// Conversations that earned in the currency.
    pub conversations: i64,
    /// `total / conversations`, rounded to the minor unit.
    pub per_converted_conversation: i64,
}

/// Revenue counters as they are read, added up per currency.
#[derive(Default)]
pub(super) struct RevenueTally {
    by_currency: BTreeMap<String, Sums>,
}

#[derive(Default)]
struct Sums {
    by_kind: BTreeMap<String, i64>,
    by_channel: BTreeMap<String, i64>,
    conversations: i64,
}

impl RevenueTally {
    /// Adds a `revenue` or `revenue_conversations` row.
    pub fn add(
        &mut self,
        channel: String,
        metric: Metric,
        key: &str,
        n: i64,
    ) -> Result<(), AppError> {
        if metric == Metric::RevenueConversations {
            self.by_currency
                .entry(key.to_owned())
                .or_default()
                .conversations += n;
            return Ok(());
        }
        let (kind, currency) = split_revenue_key(key)
            .ok_or_else(|| AppError::internal(format!("stored revenue key {key:?}")))?;
        let sums = self.by_currency.entry(currency.to_owned()).or_default();
        *sums.by_kind.entry(kind.to_owned()).or_default() += n;
        *sums.by_channel.entry(channel).or_default() += n;
        Ok(())
    }

    /// Every currency some conversation of the range earned in, by code.
    pub fn finish(self) -> Result<Vec<CurrencyRevenue>, AppError> {
        let mut revenue = Vec::new();
        for (code, sums) in self.by_currency {
            if sums.conversations == 0 {
                continue;
            }
            let currency: Currency = stored("stats_rollup.key", &code)?;
            let mut by_kind: Vec<(ConversionKind, i64)> =
                ConversionKind::ALL.into_iter().map(|k| (k, 0)).collect();
            for (kind, amount) in &sums.by_kind {
                let kind: ConversionKind = stored("stats_rollup.key", kind)?;
                if let Some(entry) = by_kind.iter_mut().find(|(k, _)| *k == kind) {
                    entry.1 += amount;
                }
            }
            let mut by_channel = Vec::new();
            for channel in Channel::ALL {
                match sums.by_channel.get(channel.as_str()) {
                    Some(&amount) if amount != 0 => by_channel.push((channel, amount)),
                    _ => continue,
                }
            }
            let total = by_kind.iter().map(|(_, amount)| amount).sum();
            revenue.push(CurrencyRevenue {
                currency,
                total,
                by_kind,
                by_channel,
                conversations: sums.conversations,
                per_converted_conversation: average_minor(total, sums.conversations)
                    .unwrap_or_default(),
            });
        }
        Ok(revenue)
    }
}
