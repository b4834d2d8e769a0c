//! What happened to a conversation, as the live list hears of it.

use std::str::FromStr;

use super::InvalidInput;

/// A change to a conversation the operator's list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityChange {
    /// A new conversation.
    Started,
    /// A visitor or AI message (its opening and count may have changed).
    Message,
    /// The session was closed.
    Closed,
}

impl ActivityChange {
    pub const ALL: [ActivityChange; 3] = [
        ActivityChange::Started,
        ActivityChange::Message,
        ActivityChange::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActivityChange::Started => "STARTED",
            ActivityChange::Message => "MESSAGE",
            ActivityChange::Closed => "CLOSED",
        }
    }
}

impl FromStr for ActivityChange {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActivityChange::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(format!("unknown activity {}", super::text::quoted(s)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_by_name() {
        for change in ActivityChange::ALL {
            assert_eq!(change.as_str().parse::<ActivityChange>(), Ok(change));
        }
        assert!("OPENED".parse::<ActivityChange>().is_err());
    }
}
