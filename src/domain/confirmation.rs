//! Where a confirmation stands: waiting for the person, confirmed,
//! declined, or past its window unanswered.

use chrono::{DateTime, Utc};

/// A confirmation's state, as the admin detail shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmationState {
    /// Waiting for an answer, within its window.
    Open,
    /// Confirmed: its outcome is recorded.
    Confirmed,
    /// The person declined (`cancelConfirmation`).
    Cancelled,
    /// Its window passed unanswered.
    Expired,
}

impl ConfirmationState {
    /// The state at `now`. A confirmed or cancelled one stays so; only an
    /// unanswered one expires, once `now` is past `expires_at` (exactly at
    /// it, it can still be confirmed).
    pub fn at(
        confirmed: bool,
        cancelled: bool,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        if confirmed {
            ConfirmationState::Confirmed
        } else if cancelled {
            ConfirmationState::Cancelled
        } else if now > expires_at {
            ConfirmationState::Expired
        } else {
            ConfirmationState::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn an_answer_outlasts_the_window() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let later = t + TimeDelta::hours(1);
        assert_eq!(
            ConfirmationState::at(true, false, t, later),
            ConfirmationState::Confirmed
        );
        assert_eq!(
            ConfirmationState::at(false, true, t, later),
            ConfirmationState::Cancelled
        );
        assert_eq!(
            ConfirmationState::at(false, false, t, later),
            ConfirmationState::Expired
        );
    }

    #[test]
    fn an_unanswered_one_is_open_up_to_its_end() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        assert_eq!(
            ConfirmationState::at(false, false, t, t),
            ConfirmationState::Open
        );
        assert_eq!(
            ConfirmationState::at(false, false, t, t + TimeDelta::microseconds(1)),
            ConfirmationState::Expired
        );
    }
}
