//! Labels: `startSession`'s and `setSessionLabels`' input, the labels a
//! conversation shows, and `byLabel`'s rows.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};

use super::context::request;
use super::money::Money;
use super::objects::Conversation;
use crate::domain::label;
use crate::domain::session_id::SessionId;
use crate::error::AppError;
use crate::service::stats::labels::LabelCount;

/// A label to put on a session, e.g. `prompt` = `v7`, `model` =
/// `gpt-4.1`, `experiment` = `checkout-cta-b`.
#[derive(InputObject, Clone)]
pub struct LabelInput {
    /// 1 to 40 characters of `a-z`, `0-9`, `_`, `.` and `-`.
    pub key: String,
    /// 1 to 100 characters, without control characters (line breaks,
    /// tabs); compared exactly, case included.
    pub value: String,
}

/// Checks labels given in a request (at most 10); `BAD_USER_INPUT` names
/// the rule broken.
pub fn parsed(labels: Option<Vec<LabelInput>>) -> Result<Vec<label::Label>, AppError> {
    let labels = labels.unwrap_or_default();
    if labels.len() > label::MAX_LABELS {
        return Err(AppError::BadInput(
            label::LabelError::TooMany(labels.len()).to_string(),
        ));
    }
    labels
        .iter()
        .map(|l| label::Label::new(&l.key, &l.value).map_err(|e| AppError::BadInput(e.to_string())))
        .collect()
}

/// A label of a conversation.
#[derive(SimpleObject)]
pub struct Label {
    /// Its key, e.g. `prompt`.
    pub key: String,
    /// Its value, e.g. `v7`.
    pub value: String,
}

impl From<label::Label> for Label {
    fn from(l: label::Label) -> Self {
        Label {
            key: l.key,
            value: l.value,
        }
    }
}

/// Labels to add to a session, or whose values to replace.
#[derive(InputObject)]
pub struct SetSessionLabelsInput {
    /// The session.
    pub session_id: SessionId,
    /// Each key at most once. Keys the session has keep their other
    /// values; the session may hold up to 10 labels in all.
    pub labels: Vec<LabelInput>,
}

/// The result of `setSessionLabels`.
#[derive(SimpleObject)]
pub struct SetSessionLabelsPayload {
    /// The conversation with its labels now.
    pub conversation: Conversation,
}

/// The conversations of one value of a label key, and how they converted.
#[derive(SimpleObject)]
pub struct LabelStats {
    /// The value, e.g. `v7`.
    pub value: String,
    /// Conversations in the range with this value now.
    pub conversations: i64,
    /// Of those, conversations with at least one attributed conversion.
    pub converted: i64,
    /// `converted / conversations`, 0 to 1.
    pub rate: f64,
    /// The lower end of the 95% Wilson score interval of `rate`: with
    /// few conversations the true rate may be anywhere from `rateLow` to
    /// `rateHigh`. Two values whose intervals do not overlap differ by
    /// more than chance would explain.
    pub rate_low: f64,
    /// The upper end of the 95% Wilson score interval of `rate`.
    pub rate_high: f64,
    /// What these conversations earned, per currency with a value (by
    /// code), net of restatements and retractions like
    /// `ConversionStats.revenue`.
    pub revenue: Vec<Money>,
}

impl From<LabelCount> for LabelStats {
    fn from(count: LabelCount) -> Self {
        let (rate_low, rate_high) = label::wilson_interval(count.converted, count.conversations);
        LabelStats {
            rate: crate::service::stats::rate(count.converted, count.conversations),
            value: count.value,
            conversations: count.conversations,
            converted: count.converted,
            rate_low,
            rate_high,
            revenue: count.revenue.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Default)]
pub struct LabelMutation;

#[Object]
impl LabelMutation {
    /// Adds labels to a session or replaces the values of its keys (roles
    /// AGENT, ADMIN), e.g. when the agent switches prompt mid-conversation.
    /// The conversation's outcomes, earlier ones included, count under its
    /// labels as they are now (`ConversionStats.byLabel`). Setting a value
    /// the session already has changes nothing.
    async fn set_session_labels(
        &self,
        ctx: &Context<'_>,
        input: SetSessionLabelsInput,
    ) -> Result<SetSessionLabelsPayload> {
        let r = request(ctx)?;
        let labels = parsed(Some(input.labels))?;
        let conversation = r
            .services
            .set_session_labels(&r.caller, &input.session_id, labels)
            .await?;
        Ok(SetSessionLabelsPayload {
            conversation: Conversation(conversation),
        })
    }
}
