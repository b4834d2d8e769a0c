//! Money in the API: decimal strings with an ISO 4217 currency code, never
//! floats (see README "Money").

use async_graphql::{InputObject, SimpleObject};

use crate::domain::money;
use crate::error::AppError;

/// An amount of money as the sale stated it.
#[derive(InputObject, Clone)]
pub struct MoneyInput {
    /// A plain decimal string, e.g. "1250.00", "500" (JPY) or "12.345"
    /// (KWD): digits, then optionally a point and at most the currency's
    /// decimals; at most 9 digits before the point. No sign, exponent,
    /// spaces or separators; more decimals than the currency has are
    /// refused (`BAD_USER_INPUT`), never rounded.
    pub amount: String,
    /// ISO 4217 code, e.g. "EUR".
    pub currency: String,
}

impl MoneyInput {
    /// The amount in the currency's minor units.
    pub fn parse(&self) -> Result<money::Money, AppError> {
        Ok(money::Money::parse(&self.amount, &self.currency)?)
    }
}

/// An amount of money. Amounts in different currencies are never added or
/// converted.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct Money {
    /// A decimal string written with exactly the currency's decimals:
    /// "1250.00", "500", "12.345".
    pub amount: String,
    /// ISO 4217 code, e.g. "EUR".
    pub currency: String,
}

impl From<money::Money> for Money {
    fn from(value: money::Money) -> Self {
        Money {
            amount: value.amount(),
            currency: value.currency.code().to_owned(),
        }
    }
}
