//! Channels and their session rules: when `startSession` resumes an open
//! conversation, when a conversation times out, and how long a confirmation
//! stays open. Defaults from the product contract; tenants may override them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};

use super::InvalidInput;

/// Where a conversation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Chat,
    Email,
    Whatsapp,
    Voice,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Chat,
        Channel::Email,
        Channel::Whatsapp,
        Channel::Voice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Chat => "CHAT",
            Channel::Email => "EMAIL",
            Channel::Whatsapp => "WHATSAPP",
            Channel::Voice => "VOICE",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| InvalidInput::new(format!("unknown channel {}", super::text::quoted(s))))
    }
}

/// How `startSession` decides between a new conversation and an open one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRule {
    /// Every start is a new conversation (a chat window, a phone call).
    NewEveryStart,
    /// Resume the open conversation with the same sender and thread.
    SameSenderAndThread,
    /// Resume the open conversation with the same phone number.
    SamePhoneNumber,
}

/// The timing rules of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPolicy {
    pub channel: Channel,
    pub rule: SessionRule,
    /// A conversation with no activity for longer than this has expired: it
    /// takes no more messages and is never resumed.
    pub inactivity_timeout: TimeDelta,
    /// How long a confirmation requested in this channel stays open.
    pub confirmation_window: TimeDelta,
}

impl ChannelPolicy {
    /// The product defaults. CHAT and VOICE have no resume rule; they expire
    /// after a day without activity so an abandoned window does not stay
    /// "active" forever.
    pub fn default_for(channel: Channel) -> Self {
        let (rule, inactivity_timeout, confirmation_window) = match channel {
            Channel::Chat => (
                SessionRule::NewEveryStart,
                TimeDelta::hours(24),
                TimeDelta::minutes(10),
            ),
            Channel::Email => (
                SessionRule::SameSenderAndThread,
                TimeDelta::hours(48),
                TimeDelta::hours(4),
            ),
            Channel::Whatsapp => (
                SessionRule::SamePhoneNumber,
                TimeDelta::hours(24),
                TimeDelta::hours(1),
            ),
            Channel::Voice => (
                SessionRule::NewEveryStart,
                TimeDelta::hours(24),
                TimeDelta::minutes(10),
            ),
        };
        Self {
            channel,
            rule,
            inactivity_timeout,
            confirmation_window,
        }
    }

    pub fn defaults() -> Vec<ChannelPolicy> {
        Channel::ALL.into_iter().map(Self::default_for).collect()
    }

    /// True once the conversation has gone longer than the timeout without
    /// activity. Exactly at the timeout it is still alive.
    pub fn has_expired(&self, last_activity: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now - last_activity > self.inactivity_timeout
    }

    /// Whether an open conversation last active at `last_activity` is the one
    /// a new start should continue.
    pub fn resumes(&self, last_activity: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.rule != SessionRule::NewEveryStart && !self.has_expired(last_activity, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64, minutes: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = DateTime::from_timestamp(1_750_000_000, 0).expect("valid");
        (
            start,
            start + TimeDelta::hours(hours) + TimeDelta::minutes(minutes),
        )
    }

    #[test]
    fn email_resumes_until_48_hours_without_activity() {
        let email = ChannelPolicy::default_for(Channel::Email);
        let (last, now) = at(47, 59);
        assert!(email.resumes(last, now));
        let (last, now) = at(48, 0);
        assert!(email.resumes(last, now));
        let (last, now) = at(48, 1);
        assert!(!email.resumes(last, now));
        assert!(email.has_expired(last, now));
    }

    #[test]
    fn whatsapp_resumes_until_24_hours_without_activity() {
        let whatsapp = ChannelPolicy::default_for(Channel::Whatsapp);
        let (last, now) = at(23, 59);
        assert!(whatsapp.resumes(last, now));
        let (last, now) = at(24, 1);
        assert!(!whatsapp.resumes(last, now));
    }

    #[test]
    fn chat_and_voice_never_resume() {
        for channel in [Channel::Chat, Channel::Voice] {
            let policy = ChannelPolicy::default_for(channel);
            let (last, now) = at(0, 1);
            assert!(!policy.resumes(last, now), "{channel}");
            assert!(!policy.has_expired(last, now), "{channel}");
        }
    }

    #[test]
    fn confirmation_windows_follow_the_contract() {
        let window = |c| ChannelPolicy::default_for(c).confirmation_window;
        assert_eq!(window(Channel::Chat), TimeDelta::minutes(10));
        assert_eq!(window(Channel::Email), TimeDelta::hours(4));
        assert_eq!(window(Channel::Whatsapp), TimeDelta::hours(1));
        assert_eq!(window(Channel::Voice), TimeDelta::minutes(10));
    }

    #[test]
    fn channel_names_round_trip() {
        for channel in Channel::ALL {
            assert_eq!(channel.as_str().parse::<Channel>(), Ok(channel));
        }
        assert!("SMS".parse::<Channel>().is_err());
    }
}
