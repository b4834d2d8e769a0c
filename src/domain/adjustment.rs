//! Changes to a recorded sale after the fact, as attribution systems know
//! them: a restatement gives the conversion a new value (an upgrade, a
//! partial refund); a retraction withdraws it (cancelled, fully refunded).
//! Each is kept in the conversion's history and is an event of the feed.

use std::str::FromStr;

use super::InvalidInput;
use super::money::Money;

/// Whether a conversion still counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversionStatus {
    Active,
    /// Withdrawn (a cancelled sale): no badge, no longer "converted", not
    /// in the stats; kept in the detail with the value it had.
    Retracted,
}

impl ConversionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversionStatus::Active => "ACTIVE",
            ConversionStatus::Retracted => "RETRACTED",
        }
    }
}

impl FromStr for ConversionStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ACTIVE" => Ok(ConversionStatus::Active),
            "RETRACTED" => Ok(ConversionStatus::Retracted),
            _ => Err(InvalidInput::new(format!(
                "unknown conversion status {}",
                super::text::quoted(s)
            ))),
        }
    }
}

/// What a feed event reports about its conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversionChange {
    Recorded,
    Restated,
    Retracted,
    /// An operator credited an unattributed conversion anyway.
    Attributed,
    /// An operator took an unattributed conversion out of review.
    Dismissed,
}

impl ConversionChange {
    pub const ALL: [ConversionChange; 5] = [
        ConversionChange::Recorded,
        ConversionChange::Restated,
        ConversionChange::Retracted,
        ConversionChange::Attributed,
        ConversionChange::Dismissed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversionChange::Recorded => "RECORDED",
            ConversionChange::Restated => "RESTATED",
            ConversionChange::Retracted => "RETRACTED",
            ConversionChange::Attributed => "ATTRIBUTED",
            ConversionChange::Dismissed => "DISMISSED",
        }
    }
}

impl FromStr for ConversionChange {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConversionChange::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "unknown conversion change {}",
                    super::text::quoted(s)
                ))
            })
    }
}

/// Why a restatement cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestateRefused {
    #[error("the conversion was retracted; a withdrawn sale is not restated")]
    Retracted,
    #[error(
        "the conversion's value is in {was}, not {asked}: amounts are never converted between currencies"
    )]
    OtherCurrency {
        was: &'static str,
        asked: &'static str,
    },
}

/// Whether restating a conversion now worth `current` (and `status`) to
/// `new` changes anything: `Ok(false)` when it is already worth exactly
/// that. The currency is fixed by the first value it had.
pub fn restates(
    status: ConversionStatus,
    current: Option<Money>,
    new: Money,
) -> Result<bool, RestateRefused> {
    if status == ConversionStatus::Retracted {
        return Err(RestateRefused::Retracted);
    }
    match current {
        Some(current) if current.currency != new.currency => Err(RestateRefused::OtherCurrency {
            was: current.currency.code(),
            asked: new.currency.code(),
        }),
        Some(current) => Ok(current.minor != new.minor),
        None => Ok(true),
    }
}

/// Whether retracting a conversion in `status` changes anything: a
/// withdrawn sale stays withdrawn, and withdrawing it again is harmless.
pub fn retracts(status: ConversionStatus) -> bool {
    status == ConversionStatus::Active
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: &str) -> Money {
        Money::parse(amount, "EUR").expect("valid")
    }

    #[test]
    fn a_new_value_restates_and_the_same_value_changes_nothing() {
        let active = ConversionStatus::Active;
        assert_eq!(restates(active, Some(eur("25")), eur("30")), Ok(true));
        assert_eq!(restates(active, Some(eur("25")), eur("25.00")), Ok(false));
        assert_eq!(restates(active, None, eur("0")), Ok(true), "a first value");
        assert_eq!(restates(active, Some(eur("25")), eur("0")), Ok(true));
    }

    #[test]
    fn a_retracted_sale_or_another_currency_is_refused() {
        assert_eq!(
            restates(ConversionStatus::Retracted, Some(eur("25")), eur("30")),
            Err(RestateRefused::Retracted)
        );
        let usd = Money::parse("25", "USD").expect("valid");
        assert_eq!(
            restates(ConversionStatus::Active, Some(eur("25")), usd),
            Err(RestateRefused::OtherCurrency {
                was: "EUR",
                asked: "USD"
            })
        );
    }

    #[test]
    fn only_an_active_sale_is_retracted() {
        assert!(retracts(ConversionStatus::Active));
        assert!(!retracts(ConversionStatus::Retracted));
    }

    #[test]
    fn names_read_back() {
        for change in ConversionChange::ALL {
            assert_eq!(change.as_str().parse(), Ok(change));
        }
        for status in [ConversionStatus::Active, ConversionStatus::Retracted] {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
    }
}
