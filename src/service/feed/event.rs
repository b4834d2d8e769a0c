//! What the feed carries: one committed change of a conversion (recorded,
//! restated, retracted) with its conversation, and the filter a subscriber
//! narrows it with.

use crate::domain::adjustment::ConversionChange;
use crate::domain::channel::Channel;
use crate::domain::conversion::ConversionKind;
use crate::domain::cursor::FeedPosition;
use crate::service::read_model::{Conversation, Conversion};

/// Narrows the feed. The cursor still counts every conversion.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub kinds: Option<Vec<ConversionKind>>,
    pub channels: Option<Vec<Channel>>,
}

impl FeedFilter {
    /// Whether it leaves any event out.
    pub fn narrows(&self) -> bool {
        self.kinds.is_some() || self.channels.is_some()
    }

    /// Whether an event passes the filter (what `events_after` does in SQL).
    pub fn matches(&self, event: &FeedEvent) -> bool {
        let kind_ok = self
            .kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&event.conversion.kind));
        let channel_ok = self.channels.as_ref().is_none_or(|channels| {
            event
                .conversation
                .as_ref()
                .is_some_and(|c| channels.contains(&c.channel))
        });
        kind_ok && channel_ok
    }
}

/// What a subscriber that asked for progress is handed: an event, or word
/// that it has moved past events its filter left out, up to a position
/// (a cursor to resume from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Event(Box<FeedEvent>),
    Passed(FeedPosition),
}

/// One conversion with the conversation it belongs to (none for an
/// unattributed conversion without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// What happened to the conversion.
    pub change: ConversionChange,
    /// The event's own place in the feed (a recording's is its
    /// conversion's; each change has its own).
    pub position: FeedPosition,
    /// The conversion as the event left it (its value and status then).
    pub conversion: Conversion,
    pub conversation: Option<Conversation>,
}

impl FeedEvent {
    /// Its position in the tenant's feed.
    pub fn position(&self) -> FeedPosition {
        self.position
    }
}
