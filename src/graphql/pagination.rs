//! Paging shared by every connection: how many rows a client may ask for,
//! and the connection built from a page of rows.

use async_graphql::OutputType;
use async_graphql::connection::{Connection, Edge};

use crate::error::AppError;
use crate::service::Page;

/// The page sizes of one connection field.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    /// Rows when `first` is not given.
    pub default: u64,
    /// Most rows `first` may ask for.
    pub max: u64,
}

/// The AI Conversations list.
pub const CONVERSATIONS: PageLimits = PageLimits {
    default: 250,
    max: 250,
};
/// Unattributed conversions for review.
pub const UNATTRIBUTED: PageLimits = PageLimits {
    default: 50,
    max: 250,
};
/// `conversionsSince`, the polled event feed.
pub const FEED_EVENTS: PageLimits = PageLimits {
    default: 100,
    max: 500,
};
/// A webhook endpoint's delivery log.
pub const WEBHOOK_DELIVERIES: PageLimits = PageLimits {
    default: 50,
    max: 250,
};
/// The erasure audit log.
pub const ERASURES: PageLimits = PageLimits {
    default: 50,
    max: 250,
};
/// A conversation's thread.
pub const THREAD: PageLimits = PageLimits {
    default: 500,
    max: 500,
};

impl PageLimits {
    /// Checks a `first` argument: 1 to `max`, `default` when absent.
    pub fn first(self, first: Option<i32>) -> Result<u64, AppError> {
        match first {
            None => Ok(self.default),
            Some(n) if n >= 1 && (n as u64) <= self.max => Ok(n as u64),
            Some(n) => Err(AppError::BadInput(format!(
                "first must be between 1 and {}, not {n}",
                self.max
            ))),
        }
    }
}

/// A connection of `page`, each row made into its cursor and node.
pub fn connection<T, N: OutputType>(
    page: Page<T>,
    after_given: bool,
    edge: impl FnMut(T) -> (String, N),
) -> Connection<String, N> {
    let mut connection = Connection::new(after_given, page.has_next_page);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(edge)
            .map(|(cursor, node)| Edge::new(cursor, node)),
    );
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_one_to_the_maximum_and_defaults_when_absent() {
        assert_eq!(UNATTRIBUTED.first(None).expect("default"), 50);
        assert_eq!(UNATTRIBUTED.first(Some(250)).expect("max"), 250);
        assert_eq!(FEED_EVENTS.first(Some(1)).expect("one"), 1);
        for bad in [0, -1, 251, i32::MAX] {
            let refused = UNATTRIBUTED.first(Some(bad)).expect_err("out of range");
            assert!(
                refused.to_string().contains("between 1 and 250"),
                "{refused}"
            );
        }
    }
}
