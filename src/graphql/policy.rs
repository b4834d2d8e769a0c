//! `channelPolicies`: the session rules in force for the caller's tenant.

use async_graphql::{Context, Object, Result, SimpleObject};

use super::context::request;
use super::enums::{Channel, SessionRule};
use crate::domain::channel::{Channel as DomainChannel, ChannelPolicy as DomainPolicy};
use crate::domain::role::Operation;
use crate::domain::settings::TenantSettings;

/// The session rules of one channel.
#[derive(SimpleObject)]
pub struct ChannelPolicy {
    /// The channel.
    pub channel: Channel,
    /// When `startSession` resumes an open conversation.
    pub session_rule: SessionRule,
    /// A conversation idle for longer than this many seconds has expired.
    pub inactivity_timeout_seconds: i64,
    /// How long a confirmation requested in this channel stays open, in seconds.
    pub confirmation_window_seconds: i64,
}

impl From<DomainPolicy> for ChannelPolicy {
    fn from(p: DomainPolicy) -> Self {
        ChannelPolicy {
            channel: p.channel.into(),
            session_rule: p.rule.into(),
            inactivity_timeout_seconds: p.inactivity_timeout.num_seconds(),
            confirmation_window_seconds: p.confirmation_window.num_seconds(),
        }
    }
}

/// Every channel's rules under a tenant's settings.
pub fn policies(settings: &TenantSettings) -> Vec<ChannelPolicy> {
    DomainChannel::ALL
        .into_iter()
        .map(|c| settings.policy(c).into())
        .collect()
}

#[derive(Default)]
pub struct PolicyQuery;

#[Object]
impl PolicyQuery {
    /// The session rules of every channel for this API key's tenant.
    async fn channel_policies(&self, ctx: &Context<'_>) -> Result<Vec<ChannelPolicy>> {
        let r = request(ctx)?;
        r.caller
            .require(Operation::ReadChannelPolicies, "read channel policies")?;
        Ok(policies(&*r.settings().await?))
    }
}
