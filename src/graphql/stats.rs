//! `conversionStats`: the list's companion figures.

use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::context::request;
use super::conversation::ConversationFilter;
use super::enums::{Channel, ConversionKind, ConversionSource, CtaAction};
use super::label::LabelStats;
use crate::domain::money::format_minor;
use crate::service::listing;
use crate::service::stats::{self, StatsRange, rate};

/// Conversion figures for the conversations started in a date range (and
/// passing the list's filter, when one is given). A conversation counts as
/// converted when it has any attributed conversion, whenever that was
/// recorded. Every conversion counts once: attributed ones in `byKind`
/// (split by how they came in `bySource`), the others in `unattributed`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ConversionStats {
    /// Conversations started in the range.
    pub conversations: i64,
    /// Of those, conversations with at least one attributed conversion.
    pub converted_conversations: i64,
    /// `convertedConversations / conversations`, 0 to 1 (0 without conversations).
    pub conversion_rate: f64,
    /// Per outcome kind, every kind listed. The counts add up to the badges
    /// the list shows for the same filter.
    pub by_kind: Vec<KindStats>,
    /// Attributed conversions by how they reached convtrack (through a
    /// call-to-action link, by session ID, by a confirmation), every
    /// source listed; they add up to `byKind`'s counts.
    pub by_source: Vec<SourceStats>,
    /// Per channel with conversations in the range.
    pub by_channel: Vec<ChannelStats>,
    /// Median seconds from session start to the first attributed conversion,
    /// over converted conversations; null when there are none.
    pub median_seconds_to_convert: Option<f64>,
    /// Unattributed conversions recorded in the range (for review). With a
    /// filter on more than dates and channels, only those of the matching
    /// conversations (an unattributed conversion without a conversation
    /// matches no such filter).
    pub unattributed: i64,
    /// Call-to-action links of the range's conversations, per action:
    /// issued → followed → converted. A link that led to a conversion
    /// counts as followed even when it was opened without the redirect, so
    /// no step is larger than the one before.
    pub funnel: Vec<FunnelStep>,
    /// What the range's conversations earned, per currency (by code; only
    /// currencies some conversation earned in). Amounts in different
    /// currencies are never added or converted. Net of restatements and
    /// retractions: the values the active attributed conversions have now,
    /// counted by their conversation's start, like `byKind`.
    pub revenue: Vec<CurrencyRevenue>,
    #[graphql(skip)]
    pub range: StatsRange,
    #[graphql(skip)]
    pub filter: listing::ConversationFilter,
}

#[ComplexObject]
impl ConversionStats {
    /// The range's conversations (those passing the filter, when one is
    /// given) split by the value of one label key (`prompt`, `model`, …),
    /// one row per value by value: how many, how many converted, the rate
    /// with its 95% interval, and revenue. A conversation counts under the
    /// labels it has now; conversations without the key are left out.
    async fn by_label(&self, ctx: &Context<'_>, key: String) -> Result<Vec<LabelStats>> {
        let r = request(ctx)?;
        let counts = r
            .services
            .label_stats(&r.caller, &self.range, &self.filter, &key)
            .await?;
        Ok(counts.into_iter().map(Into::into).collect())
    }
}

/// What the range's conversations earned in one currency. Amounts are
/// decimal strings written with the currency's decimals, like
/// `Money.amount`.
#[derive(SimpleObject)]
pub struct CurrencyRevenue {
    /// ISO 4217 code, e.g. "EUR".
    pub currency: String,
    /// Everything earned in it.
    pub total: String,
    /// Per outcome kind, every kind listed.
    pub by_kind: Vec<KindRevenue>,
    /// Per channel whose amount is not zero.
    pub by_channel: Vec<ChannelRevenue>,
    /// Conversations with at least one active attributed conversion valued
    /// in this currency.
    pub converted_conversations: i64,
    /// `total / convertedConversations`, rounded to the currency's minor
    /// unit (halves away from zero).
    pub per_converted_conversation: String,
}

/// What one outcome kind earned.
#[derive(SimpleObject)]
pub struct KindRevenue {
    /// The outcome.
    pub kind: ConversionKind,
    /// What its conversions earned.
    pub amount: String,
}

/// What one channel's conversations earned.
#[derive(SimpleObject)]
pub struct ChannelRevenue {
    /// The channel.
    pub channel: Channel,
    /// What its conversations earned.
    pub amount: String,
}

impl From<stats::CurrencyRevenue> for CurrencyRevenue {
    fn from(revenue: stats::CurrencyRevenue) -> Self {
        let currency = revenue.currency;
        let amount = |minor| format_minor(minor, currency);
        CurrencyRevenue {
            currency: currency.code().to_owned(),
            total: amount(revenue.total),
            by_kind: revenue
                .by_kind
                .into_iter()
                .map(|(kind, minor)| KindRevenue {
                    kind: kind.into(),
                    amount: amount(minor),
                })
                .collect(),
            by_channel: revenue
                .by_channel
                .into_iter()
                .map(|(channel, minor)| ChannelRevenue {
                    channel: channel.into(),
                    amount: amount(minor),
                })
                .collect(),
            converted_conversations: revenue.conversations,
            per_converted_conversation: amount(revenue.per_converted_conversation),
        }
    }
}

/// The link funnel of one call to action.
#[derive(SimpleObject)]
pub struct FunnelStep {
    /// The call to action.
    pub action: CtaAction,
    /// Links issued.
    pub issued: i64,
    /// Links followed at least once.
    pub followed: i64,
    /// Links that led to at least one conversion (attributed or not).
    pub converted: i64,
}

/// Figures for one outcome kind.
#[derive(SimpleObject)]
pub struct KindStats {
    /// The outcome.
    pub kind: ConversionKind,
    /// Attributed conversions of this kind.
    pub count: i64,
    /// Share of the range's conversations with this kind, 0 to 1.
    pub rate: f64,
}

/// Attributed conversions that reached convtrack one way.
#[derive(SimpleObject)]
pub struct SourceStats {
    /// How they reached it.
    pub source: ConversionSource,
    /// How many.
    pub count: i64,
}

/// Figures for one channel.
#[derive(SimpleObject)]
pub struct ChannelStats {
    /// The channel.
    pub channel: Channel,
    /// Conversations started on it in the range.
    pub conversations: i64,
    /// Of those, the converted ones.
    pub converted: i64,
    /// `converted / conversations`, 0 to 1.
    pub rate: f64,
}

#[derive(Default)]
pub struct StatsQuery;

#[Object]
impl StatsQuery {
    /// Conversion figures over conversations started in `[from, to)`
    /// (both optional), on one channel if given, and passing `filter` —
    /// the AI Conversations list's, so the figures are those of the rows
    /// it shows (its dates and channels apply together with `from`, `to`
    /// and `channel`). Dates and channels are read from counters kept as
    /// outcomes are recorded; any other filter counts the matching
    /// conversations.
    async fn conversion_stats(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        channel: Option<Channel>,
        filter: Option<ConversationFilter>,
    ) -> Result<ConversionStats> {
        let r = request(ctx)?;
        let range = StatsRange {
            from,
            to,
            channels: channel.map(|c| vec![c.into()]),
        };
        let filter = filter.unwrap_or_default().parse()?;
        let stats = r
            .services
            .conversion_stats(&r.caller, range.clone(), &filter)
            .await?;
        Ok(ConversionStats {
            conversations: stats.conversations,
            converted_conversations: stats.converted,
            conversion_rate: rate(stats.converted, stats.conversations),
            by_kind: stats
                .by_kind
                .into_iter()
                .map(|k| KindStats {
                    kind: k.kind.into(),
                    count: k.count,
                    rate: rate(k.conversations, stats.conversations),
                })
                .collect(),
            by_channel: stats
                .by_channel
                .into_iter()
                .map(|c| ChannelStats {
                    channel: c.channel.into(),
                    conversations: c.conversations,
                    converted: c.converted,
                    rate: rate(c.converted, c.conversations),
                })
                .collect(),
            median_seconds_to_convert: stats.median_seconds_to_convert,
            unattributed: stats.unattributed,
            funnel: stats
                .funnel
                .into_iter()
                .map(|f| FunnelStep {
                    action: f.action.into(),
                    issued: f.issued,
                    followed: f.followed,
                    converted: f.converted,
                })
                .collect(),
            revenue: stats.revenue.into_iter().map(Into::into).collect(),
            by_source: stats
                .by_source
                .into_iter()
                .map(|s| SourceStats {
                    source: s.source.into(),
                    count: s.count,
                })
                .collect(),
            range,
            filter,
        })
    }
}
