//! Money as integer halalas, the Saudi riyal's minor unit (1 SAR = 100 halalas).
//!
//! Every amount in revledger is an `i64` count of halalas: no binary fractions ever
//! touch an amount, so sums are exact and replays give identical results. Arithmetic is
//! checked and returns [`MoneyError::Overflow`] instead of wrapping or panicking. This
//! module also owns the two conversions people see: formatting halalas as a SAR decimal
//! string and parsing such a string back, both done on digits, never through a binary
//! fraction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Halalas in one Saudi riyal.
pub const HALALAS_PER_SAR: i64 = 100;

/// Basis points in a whole (100% = 10,000 bps).
pub const BPS_DENOMINATOR: i64 = 10_000;

/// The largest amount one line, document, payment, fee, refund, commission or payout may
/// carry: 1,000,000,000,000 halalas, ten billion riyals. No invoice of a Saudi SaaS comes near
/// it, and it keeps every sum the ledger forms far inside `i64`: nine million documents at the
/// ceiling still add up without overflow. An amount above it is refused where it enters (the
/// API, a webhook, a command), so a mistyped or hostile amount never becomes a permanent event
/// that no read model can add up.
pub const MAX_AMOUNT_HALALAS: i64 = 1_000_000_000_000;

/// The largest quantity on one invoice line: a seat count or a number of months, never more.
/// With [`MAX_AMOUNT_HALALAS`] as the unit price it keeps `quantity * price` inside `i64`.
pub const MAX_LINE_QUANTITY: u32 = 1_000_000;

/// Longest SAR string [`Halalas::parse_sar`] accepts; `i64::MAX` halalas needs 20
/// characters, so anything longer is malformed and is refused before any work.
pub const MAX_SAR_STRING_LEN: usize = 32;

/// What can go wrong with an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum MoneyError {
    /// The result does not fit in an `i64` count of halalas.
    #[error("amount overflows the range of i64 halalas")]
    Overflow,
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    /// A currency other than SAR was given.
    #[error("unsupported currency {currency:?}; only SAR is supported")]
    UnsupportedCurrency { currency: String },
    /// An amount (its field named) is beyond [`MAX_AMOUNT_HALALAS`] either way.
    #[error(
        "{field} is {amount_halalas} halalas, beyond the ceiling of ±{MAX_AMOUNT_HALALAS} halalas \
         (ten billion SAR) that every amount must stay within"
    )]
    AboveCeiling { field: String, amount_halalas: i128 },
    /// An amount that must not be negative was negative.
    #[error("amount must not be negative, got {amount_halalas} halalas")]
    NegativeAmount { amount_halalas: i64 },
    /// A quantity that must not be negative was negative.
    #[error("quantity must not be negative, got {quantity}")]
    NegativeQuantity { quantity: i64 },
    /// A SAR string had more than two decimals (halalas are the smallest unit).
    #[error("{input:?} has more than two decimals; the smallest unit is one halala")]
    TooManyDecimals { input: String },
    /// A SAR string was not a decimal number.
    #[error("{input:?} is not a SAR amount like \"999\", \"999.5\" or \"999.50\"")]
    InvalidAmount { input: String },
}

/// The currencies revledger accepts. Only the Saudi riyal today; the type exists so
/// that every amount crossing a boundary states its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Currency {
    /// Saudi riyal, serialized as `"SAR"`.
    #[default]
    #[serde(rename = "SAR")]
    Sar,
}

impl Currency {
    /// The ISO 4217 code.
    pub const fn code(self) -> &'static str {
        match self {
            Currency::Sar => "SAR",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        match code {
            "SAR" => Ok(Currency::Sar),
            other => Err(MoneyError::UnsupportedCurrency {
                currency: other.to_owned(),
            }),
        }
    }
}

/// A signed count of halalas. Negative amounts exist (credit notes, clawbacks).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Halalas(pub i64);

impl Halalas {
    /// Zero halalas.
    pub const ZERO: Halalas = Halalas(0);

    /// Whole riyals as halalas, checked.
    pub fn from_sar(riyals: i64) -> Result<Halalas, MoneyError> {
        riyals
            .checked_mul(HALALAS_PER_SAR)
            .map(Halalas)
            .ok_or(MoneyError::Overflow)
    }

    /// The raw count of halalas.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// `self` when it is within ±[`MAX_AMOUNT_HALALAS`]; else [`MoneyError::AboveCeiling`]
    /// naming `field`.
    pub fn within_ceiling(self, field: &str) -> Result<Halalas, MoneyError> {
        check_ceiling(field, i128::from(self.0))?;
        Ok(self)
    }

    /// `self + other`, or [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Halalas) -> Result<Halalas, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Halalas)
            .ok_or(MoneyError::Overflow)
    }

    /// `self - other`, or [`MoneyError::Overflow`].
    pub fn checked_sub(self, other: Halalas) -> Result<Halalas, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(Halalas)
            .ok_or(MoneyError::Overflow)
    }

    /// `self * factor` (a quantity), or [`MoneyError::Overflow`].
    pub fn checked_mul(self, factor: i64) -> Result<Halalas, MoneyError> {
        self.0
            .checked_mul(factor)
            .map(Halalas)
            .ok_or(MoneyError::Overflow)
    }

    /// The amount as a plain SAR decimal with exactly two decimals and no grouping,
    /// e.g. `"3448.85"` or `"-0.50"`: the form ZATCA QR codes and Moyasar expect.
    pub fn to_sar_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
    }

    /// The amount for people: thousands grouped and the currency after it,
    /// e.g. `"3,448.85 SAR"`.
    pub fn to_display_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let riyals = (magnitude / 100).to_string();
        let mut grouped = String::with_capacity(riyals.len() + riyals.len() / 3);
        for (index, digit) in riyals.chars().enumerate() {
            if index > 0 && (riyals.len() - index).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        format!("{sign}{grouped}.{:02} SAR", magnitude % 100)
    }

    /// Parses a SAR decimal (`"999"`, `"999.5"`, `"999.50"`, `"-12.30"`) into halalas
    /// using only digit arithmetic. More than two decimals is refused, not rounded,
    /// because a silently rounded amount is a wrong amount.
    pub fn parse_sar(input: &str) -> Result<Halalas, MoneyError> {
        let invalid = || MoneyError::InvalidAmount {
            input: input.to_owned(),
        };
        if input.len() > MAX_SAR_STRING_LEN {
            return Err(invalid());
        }
        let (negative, unsigned) = match input.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let all_digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(invalid());
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > 2 {
            return Err(MoneyError::TooManyDecimals {
                input: input.to_owned(),
            });
        }
        let whole_riyals: i64 = whole.parse().map_err(|_| MoneyError::Overflow)?;
        let fraction_halalas: i64 = match fraction.len() {
            0 => 0,
            1 => i64::from(fraction.as_bytes()[0] - b'0') * 10,
            _ => fraction.parse().map_err(|_| invalid())?,
        };
        let magnitude = Halalas::from_sar(whole_riyals)?.checked_add(Halalas(fraction_halalas))?;
        if negative {
            Ok(Halalas(-magnitude.0))
        } else {
            Ok(magnitude)
        }
    }
}

/// Whether `amount_halalas` (wide, so a product that overflowed `i64` can be named too) is
/// within ±[`MAX_AMOUNT_HALALAS`]; [`MoneyError::AboveCeiling`] naming `field` if not.
pub fn check_ceiling(field: &str, amount_halalas: i128) -> Result<(), MoneyError> {
    if amount_halalas.unsigned_abs() > MAX_AMOUNT_HALALAS.unsigned_abs() as u128 {
        return Err(MoneyError::AboveCeiling {
            field: field.to_owned(),
            amount_halalas,
        });
    }
    Ok(())
}

impl fmt::Display for Halalas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_display_string())
    }
}

impl From<i64> for Halalas {
    fn from(amount_halalas: i64) -> Self {
        Halalas(amount_halalas)
    }
}

impl From<Halalas> for i64 {
    fn from(amount: Halalas) -> Self {
        amount.0
    }
}

/// An amount with its currency, for the places where both travel together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount in the currency's minor unit.
    pub amount_halalas: i64,
    /// The currency of the amount.
    pub currency: Currency,
}

impl Money {
    /// An amount in Saudi riyals' halalas.
    pub const fn sar(amount_halalas: i64) -> Money {
        Money {
            amount_halalas,
            currency: Currency::Sar,
        }
    }

    /// `self + other` when both are in the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = Halalas(self.amount_halalas).checked_add(Halalas(other.amount_halalas))?;
        Ok(Money {
            amount_halalas: sum.0,
            currency: self.currency,
        })
    }

    /// `self - other` when both are in the same currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let difference = Halalas(self.amount_halalas).checked_sub(Halalas(other.amount_halalas))?;
        Ok(Money {
            amount_halalas: difference.0,
            currency: self.currency,
        })
    }

    /// `self * factor`, checked.
    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let product = Halalas(self.amount_halalas).checked_mul(factor)?;
        Ok(Money {
            amount_halalas: product.0,
            currency: self.currency,
        })
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount_halalas < 0 { "-" } else { "" };
        let magnitude = self.amount_halalas.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:02} {}",
            magnitude / 100,
            magnitude % 100,
            self.currency
        )
    }
}

/// Divides `numerator / denominator` and rounds the exact quotient half away from zero
/// (2.5 -> 3, -2.5 -> -3, 0.45 -> 0), all in integers. Returns `None` for a zero
/// denominator or a result outside `i64`.
///
/// Callers use `i128` numerators so that `amount * rate` never overflows before the
/// division; the rounding is symmetric so a credit note mirrors its invoice exactly.
pub fn div_round_half_away_from_zero(numerator: i128, denominator: i128) -> Option<i64> {
    if denominator == 0 {
        return None;
    }
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    // |remainder| * 2 >= |denominator| means the dropped fraction is at least one half.
    let rounds_away = remainder.unsigned_abs() * 2 >= denominator.unsigned_abs();
    let rounded = if rounds_away {
        if (numerator < 0) == (denominator < 0) {
            quotient + 1
        } else {
            quotient - 1
        }
    } else {
        quotient
    };
    i64::try_from(rounded).ok()
}

/// `amount * rate_bps / 10_000`, rounded half away from zero, checked.
pub fn apply_bps(amount_halalas: i64, rate_bps: u32) -> Result<i64, MoneyError> {
    let numerator = i128::from(amount_halalas) * i128::from(rate_bps);
    div_round_half_away_from_zero(numerator, i128::from(BPS_DENOMINATOR))
        .ok_or(MoneyError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn halalas_format_as_sar_with_two_decimals() {
        assert_eq!(Halalas(344_885).to_sar_string(), "3448.85");
        assert_eq!(Halalas(100).to_sar_string(), "1.00");
        assert_eq!(Halalas(5).to_sar_string(), "0.05");
        assert_eq!(Halalas(-50).to_sar_string(), "-0.50");
        assert_eq!(Halalas(0).to_sar_string(), "0.00");
        assert_eq!(Halalas(i64::MIN).to_sar_string(), "-92233720368547758.08");
    }

    #[test]
    fn halalas_display_groups_thousands_and_names_the_currency() {
        assert_eq!(Halalas(344_885).to_string(), "3,448.85 SAR");
        assert_eq!(Halalas(123_456_789).to_string(), "1,234,567.89 SAR");
        assert_eq!(Halalas(99_900).to_string(), "999.00 SAR");
        assert_eq!(Halalas(-100_000).to_string(), "-1,000.00 SAR");
        assert_eq!(Money::sar(344_885).to_string(), "3448.85 SAR");
    }

    #[test]
    fn sar_strings_parse_into_halalas_without_rounding() {
        assert_eq!(Halalas::parse_sar("999"), Ok(Halalas(99_900)));
        assert_eq!(Halalas::parse_sar("999.5"), Ok(Halalas(99_950)));
        assert_eq!(Halalas::parse_sar("999.50"), Ok(Halalas(99_950)));
        assert_eq!(Halalas::parse_sar("0.05"), Ok(Halalas(5)));
        assert_eq!(Halalas::parse_sar("-12.30"), Ok(Halalas(-1_230)));
    }

    #[test]
    fn a_sar_string_with_three_decimals_is_rejected() {
        assert_eq!(
            Halalas::parse_sar("999.505"),
            Err(MoneyError::TooManyDecimals {
                input: "999.505".into()
            })
        );
    }

    #[test]
    fn malformed_sar_strings_are_rejected() {
        for input in [
            "", "-", ".5", "1.", "1.2.3", "abc", "1,000", " 1", "+1", "1e3",
        ] {
            assert_eq!(
                Halalas::parse_sar(input),
                Err(MoneyError::InvalidAmount {
                    input: input.into()
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_sar_string_beyond_i64_is_an_overflow() {
        assert_eq!(
            Halalas::parse_sar("92233720368547758.08"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Halalas::parse_sar("92233720368547758.07"),
            Ok(Halalas(i64::MAX))
        );
        assert_eq!(
            Halalas::parse_sar("99999999999999999999"),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn currency_serializes_as_its_iso_code() {
        assert_eq!(serde_json::to_string(&Currency::Sar).unwrap(), "\"SAR\"");
        assert_eq!("SAR".parse::<Currency>(), Ok(Currency::Sar));
        assert_eq!(
            "USD".parse::<Currency>(),
            Err(MoneyError::UnsupportedCurrency {
                currency: "USD".into()
            })
        );
    }

    #[test]
    fn checked_arithmetic_reports_overflow_instead_of_panicking() {
        assert_eq!(
            Halalas(i64::MAX).checked_add(Halalas(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Halalas(i64::MIN).checked_sub(Halalas(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Halalas(i64::MAX).checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(Halalas::from_sar(i64::MAX), Err(MoneyError::Overflow));
        assert_eq!(Money::sar(1).checked_add(Money::sar(2)), Ok(Money::sar(3)));
        assert_eq!(
            Money::sar(i64::MIN).checked_sub(Money::sar(1)),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn rounding_half_away_from_zero_is_symmetric() {
        assert_eq!(div_round_half_away_from_zero(15, 10), Some(2));
        assert_eq!(div_round_half_away_from_zero(-15, 10), Some(-2));
        assert_eq!(div_round_half_away_from_zero(14, 10), Some(1));
        assert_eq!(div_round_half_away_from_zero(-14, 10), Some(-1));
        assert_eq!(div_round_half_away_from_zero(15, -10), Some(-2));
        assert_eq!(div_round_half_away_from_zero(1, 0), None);
        assert_eq!(apply_bps(299_900, 1_000), Ok(29_990));
        assert_eq!(apply_bps(i64::MAX, u32::MAX), Err(MoneyError::Overflow));
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_gives_back_the_same_amount(amount in any::<i64>()) {
            prop_assume!(amount != i64::MIN);
            let text = Halalas(amount).to_sar_string();
            prop_assert_eq!(Halalas::parse_sar(&text), Ok(Halalas(amount)));
        }

        #[test]
        fn checked_add_matches_i128_arithmetic(left in any::<i64>(), right in any::<i64>()) {
            let exact = i128::from(left) + i128::from(right);
            match Halalas(left).checked_add(Halalas(right)) {
                Ok(sum) => prop_assert_eq!(i128::from(sum.0), exact),
                Err(error) => {
                    prop_assert_eq!(error, MoneyError::Overflow);
                    prop_assert!(i64::try_from(exact).is_err());
                }
            }
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(input in ".{0,40}") {
            let _ = Halalas::parse_sar(&input);
        }

        #[test]
        fn applying_a_rate_never_panics(amount in any::<i64>(), rate_bps in any::<u32>()) {
            let _ = apply_bps(amount, rate_bps);
        }
    }
}
