//! Money as integrators send it: a decimal string and an ISO 4217 currency
//! code, kept exactly as an integer count of the currency's minor units
//! (cents for EUR, yen for JPY, fils for KWD), never as a float. Amounts in
//! different currencies are never added together or converted.

use std::fmt;

use super::InvalidInput;

/// Most digits before the decimal point: amounts up to 999,999,999 in the
/// major unit, so that sums of millions of them still fit an `i64` of
/// minor units.
pub const MAX_WHOLE_DIGITS: usize = 9;

/// An ISO 4217 currency that has minor units defined (not gold or SDRs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    decimals: u8,
}

impl Currency {
    /// The currency an ISO 4217 code names (letters in any case).
    pub fn parse(code: &str) -> Result<Self, InvalidInput> {
        let known = (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| iso_currency::Currency::from_code(&code.to_ascii_uppercase()))
            .flatten();
        let Some(currency) = known else {
            return Err(InvalidInput::new(format!(
                "currency {}: not an ISO 4217 code (such as EUR, USD, JPY)",
                super::text::quoted(code)
            )));
        };
        let decimals = currency
            .exponent()
            .and_then(|e| u8::try_from(e).ok())
            .filter(|&e| e <= 4)
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "currency {}: has no minor units (not money one pays with)",
                    currency.code()
                ))
            })?;
        Ok(Self {
            code: currency.code(),
            decimals,
        })
    }

    /// Its code, upper case.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point (0 for JPY, 2 for EUR, 3 for KWD).
    pub fn decimals(self) -> u8 {
        self.decimals
    }

    fn minor_per_major(self) -> i64 {
        10_i64.pow(u32::from(self.decimals))
    }
}

impl std::str::FromStr for Currency {
    type Err = InvalidInput;
    fn from_str(code: &str) -> Result<Self, InvalidInput> {
        Currency::parse(code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// A non-negative amount of one currency, in its minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    /// `amount` (a plain decimal: digits, then optionally a point and at
    /// most the currency's decimals) in `currency`. Signs, exponents,
    /// spaces, leading zeros and more decimals than the currency has are
    /// refused, never rounded.
    pub fn parse(amount: &str, currency: &str) -> Result<Self, InvalidInput> {
        let currency = Currency::parse(currency)?;
        let minor = parse_minor(amount, currency)?;
        Ok(Self { minor, currency })
    }

    /// A stored amount: `minor` units of the currency coded `currency`.
    pub fn from_stored(minor: i64, currency: &str) -> Result<Self, InvalidInput> {
        if minor < 0 {
            return Err(InvalidInput::new(format!(
                "stored amount {minor} is negative"
            )));
        }
        Ok(Self {
            minor,
            currency: Currency::parse(currency)?,
        })
    }

    /// The amount written with exactly the currency's decimals: "1250.00",
    /// "500", "12.345".
    pub fn amount(&self) -> String {
        format_minor(self.minor, self.currency)
    }
}

/// `total` minor units shared equally over `count`, rounded to the nearest
/// minor unit (halves away from zero); none when `count` is not positive.
pub fn average_minor(total: i64, count: i64) -> Option<i64> {
    if count <= 0 {
        return None;
    }
    let (total, count) = (i128::from(total), i128::from(count));
    // Division truncates toward zero, so adding half the divisor away
    // from zero first rounds halves away from zero.
    let half_away = if total < 0 { -(count / 2) } else { count / 2 };
    i64::try_from((total + half_away) / count).ok()
}

/// `minor` units of `currency` written with exactly its decimals (negative
/// amounts too, for differences).
pub fn format_minor(minor: i64, currency: Currency) -> String {
    let per = currency.minor_per_major();
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, fraction) = (
        minor.unsigned_abs() / per.unsigned_abs(),
        minor.unsigned_abs() % per.unsigned_abs(),
    );
    match currency.decimals {
        0 => format!("{sign}{whole}"),
        d => format!("{sign}{whole}.{fraction:0width$}", width = usize::from(d)),
    }
}

fn parse_minor(amount: &str, currency: Currency) -> Result<i64, InvalidInput> {
    let refuse = |why: &str| {
        Err(InvalidInput::new(format!(
            "amount {}: {why}",
            super::text::quoted(amount)
        )))
    };
    let (whole, fraction) = match amount.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (amount, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return refuse(
            "write a plain decimal such as \"1250.00\" (digits, an optional point and decimals; no sign, exponent or spaces)",
        );
    }
    if whole.len() > 1 && whole.starts_with('0') {
        return refuse("no leading zeros");
    }
    if whole.len() > MAX_WHOLE_DIGITS {
        return refuse(&format!(
            "at most {MAX_WHOLE_DIGITS} digits before the point"
        ));
    }
    let fraction = fraction.unwrap_or("");
    let decimals = usize::from(currency.decimals);
    if fraction.len() > decimals {
        return refuse(&format!(
            "{} has {decimals} decimal{} (not rounded)",
            currency.code,
            if decimals == 1 { "" } else { "s" }
        ));
    }
    // At most 9 + 4 digits: every step fits an i64.
    let mut minor: i64 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        minor = minor * 10 + i64::from(b - b'0');
    }
    for _ in fraction.len()..decimals {
        minor *= 10;
    }
    Ok(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_round_to_the_nearest_minor_unit_halves_away_from_zero() {
        assert_eq!(average_minor(5, 3), Some(2));
        assert_eq!(average_minor(4, 3), Some(1));
        assert_eq!(average_minor(3, 2), Some(2));
        assert_eq!(average_minor(5, 4), Some(1));
        assert_eq!(average_minor(6, 4), Some(2));
        assert_eq!(average_minor(-3, 2), Some(-2));
        assert_eq!(average_minor(0, 7), Some(0));
        assert_eq!(average_minor(i64::MAX, 1), Some(i64::MAX));
        assert_eq!(average_minor(10, 0), None);
    }

    fn minor(amount: &str, currency: &str) -> Result<i64, InvalidInput> {
        Money::parse(amount, currency).map(|m| m.minor)
    }

    #[test]
    fn amounts_are_kept_in_the_currencys_minor_units() {
        assert_eq!(minor("1250.00", "EUR"), Ok(125_000));
        assert_eq!(minor("1250", "EUR"), Ok(125_000));
        assert_eq!(minor("12.5", "EUR"), Ok(1_250));
        assert_eq!(minor("0.01", "EUR"), Ok(1));
        assert_eq!(minor("0", "EUR"), Ok(0));
        assert_eq!(minor("500", "JPY"), Ok(500));
        assert_eq!(minor("12.345", "KWD"), Ok(12_345));
        assert_eq!(minor("12.3", "KWD"), Ok(12_300));
        assert_eq!(minor("999999999.99", "EUR"), Ok(99_999_999_999));
        assert_eq!(minor("999999999.999", "KWD"), Ok(999_999_999_999));
        assert_eq!(minor("999999999", "JPY"), Ok(999_999_999));
        assert_eq!(minor("10", "eur"), Ok(1_000), "codes in any case");
    }

    #[test]
    fn more_decimals_than_the_currency_has_are_refused_not_rounded() {
        assert!(minor("1.5", "JPY").is_err());
        assert!(minor("1.", "JPY").is_err());
        assert!(minor("12.345", "EUR").is_err());
        assert!(minor("12.340", "EUR").is_err(), "even a trailing zero");
        assert!(minor("12.3456", "KWD").is_err());
        let message = minor("12.345", "EUR").expect_err("too many decimals").0;
        assert!(message.contains("EUR has 2 decimals"), "{message}");
    }

    #[test]
    fn float_looking_and_malformed_amounts_are_refused() {
        for amount in [
            "1e3",
            "1E3",
            "0.1+0.2",
            "NaN",
            "nan",
            "Infinity",
            "-0",
            "-1.00",
            "+1.00",
            " 1.00",
            "1.00 ",
            "1,00",
            "1_000",
            ".5",
            "5.",
            "",
            ".",
            "01.00",
            "00",
            "0x10",
            "１２",
            "1000000000",
            "123456789012345678901234567890",
        ] {
            assert!(minor(amount, "EUR").is_err(), "{amount:?} was accepted");
        }
    }

    #[test]
    fn currencies_are_iso_4217_codes_with_minor_units() {
        for code in ["EU", "EURO", "XYZ", "", "€", "E1R", "XAU", "XDR"] {
            assert!(Currency::parse(code).is_err(), "{code:?} was accepted");
        }
        assert_eq!(Currency::parse("JPY").map(Currency::decimals), Ok(0));
        assert_eq!(Currency::parse("EUR").map(Currency::decimals), Ok(2));
        assert_eq!(Currency::parse("KWD").map(Currency::decimals), Ok(3));
        assert_eq!(Currency::parse("usd").map(Currency::code), Ok("USD"));
    }

    #[test]
    fn amounts_are_written_with_exactly_the_currencys_decimals() {
        let write =
            |amount: &str, currency: &str| Money::parse(amount, currency).expect("valid").amount();
        assert_eq!(write("1250", "EUR"), "1250.00");
        assert_eq!(write("0.5", "EUR"), "0.50");
        assert_eq!(write("0", "EUR"), "0.00");
        assert_eq!(write("500", "JPY"), "500");
        assert_eq!(write("12.3", "KWD"), "12.300");
        assert_eq!(write("0.001", "KWD"), "0.001");
        let eur = Currency::parse("EUR").expect("EUR");
        assert_eq!(format_minor(-1_250, eur), "-12.50");
        assert_eq!(format_minor(-5, eur), "-0.05");
    }

    #[test]
    fn every_written_amount_reads_back_the_same() {
        for code in ["JPY", "EUR", "KWD"] {
            let currency = Currency::parse(code).expect("known");
            let largest = 10_i64.pow(MAX_WHOLE_DIGITS as u32 + u32::from(currency.decimals())) - 1;
            for minor in [0, 1, 9, 10, 99, 100, 101, 12_345, largest] {
                let written = format_minor(minor, currency);
                assert_eq!(
                    Money::parse(&written, code).map(|m| m.minor),
                    Ok(minor),
                    "{written} {code}"
                );
            }
            let too_large = format_minor(
                10_i64.pow(MAX_WHOLE_DIGITS as u32 + u32::from(currency.decimals())),
                currency,
            );
            assert!(
                Money::parse(&too_large, code).is_err(),
                "{too_large} {code}"
            );
        }
    }
}
