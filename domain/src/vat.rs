//! Saudi VAT at 15%, rounded once per document as ZATCA rule BR-S-09 requires.
//!
//! The rule: VAT is computed once, on the document's taxable amount (the sum of the
//! line net amounts), never per line and summed:
//!
//! ```text
//! vat_halalas = round_half_away_from_zero(subtotal_halalas * 1500 / 10000)
//! ```
//!
//! The product is formed in `i128` so it cannot overflow, and the rounding is done in
//! integers: 1.5 halalas becomes 2, 0.45 becomes 0, and a negative amount (a credit note)
//! rounds symmetrically (-1.5 becomes -2), so a credit note for a whole invoice mirrors
//! that invoice to the halala. Per-line rounding would drift by a halala per line and
//! disagree with what ZATCA recomputes from the XML.

use serde::{Deserialize, Serialize};

use crate::money::{div_round_half_away_from_zero, Halalas, MoneyError, BPS_DENOMINATOR};

/// The standard Saudi VAT rate, 15%, in basis points.
pub const VAT_RATE_BPS: u32 = 1_500;

/// VAT on a taxable amount, rounded half away from zero at document level.
///
/// The result never overflows: its magnitude is at most 15% of the input plus one half.
pub fn vat_halalas(taxable_halalas: i64) -> i64 {
    let numerator = i128::from(taxable_halalas) * i128::from(VAT_RATE_BPS);
    // |numerator / 10_000| <= 0.15 * |i64::MIN| + 1, which always fits in i64.
    div_round_half_away_from_zero(numerator, i128::from(BPS_DENOMINATOR)).unwrap_or(
        if taxable_halalas < 0 {
            i64::MIN
        } else {
            i64::MAX
        },
    )
}

/// The VAT part of a VAT-inclusive (gross) amount: `gross * 1500 / 11500`, rounded half
/// away from zero. Used when money is handed back (a refund) and the credit note must
/// show how much of it was VAT. For a gross amount that is some document's total this
/// gives back exactly that document's VAT, because the rounding error of the original
/// VAT shrinks when divided back.
pub fn vat_part_of_gross_halalas(gross_halalas: i64) -> i64 {
    let numerator = i128::from(gross_halalas) * i128::from(VAT_RATE_BPS);
    let denominator = i128::from(BPS_DENOMINATOR) + i128::from(VAT_RATE_BPS);
    div_round_half_away_from_zero(numerator, denominator).unwrap_or(if gross_halalas < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// One line of a document as VAT sees it: a quantity of something at a unit price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineAmount {
    /// How many units; never negative (a negative document is a credit note).
    pub quantity: i64,
    /// Price of one unit before VAT, in halalas; never negative.
    pub unit_price_halalas: i64,
}

impl LineAmount {
    /// The line net amount, `quantity * unit_price`, checked.
    pub fn net_halalas(self) -> Result<i64, MoneyError> {
        if self.quantity < 0 {
            return Err(MoneyError::NegativeQuantity {
                quantity: self.quantity,
            });
        }
        if self.unit_price_halalas < 0 {
            return Err(MoneyError::NegativeAmount {
                amount_halalas: self.unit_price_halalas,
            });
        }
        Halalas(self.unit_price_halalas)
            .checked_mul(self.quantity)
            .map(Halalas::get)
    }
}

/// The three amounts at the foot of an invoice or credit note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentTotals {
    /// Taxable amount: the sum of the line net amounts.
    pub subtotal_halalas: i64,
    /// VAT on the subtotal, rounded once (BR-S-09).
    pub vat_halalas: i64,
    /// `subtotal_halalas + vat_halalas`.
    pub total_halalas: i64,
}

impl DocumentTotals {
    /// Totals for a document whose taxable amount is known. Negative amounts are allowed
    /// (credit notes); the only failure is a total beyond `i64`.
    pub fn from_taxable_amount(subtotal_halalas: i64) -> Result<DocumentTotals, MoneyError> {
        let vat_halalas = vat_halalas(subtotal_halalas);
        let total_halalas = Halalas(subtotal_halalas)
            .checked_add(Halalas(vat_halalas))?
            .get();
        Ok(DocumentTotals {
            subtotal_halalas,
            vat_halalas,
            total_halalas,
        })
    }

    /// Totals for a document made of lines: line nets are summed (checked), then VAT is
    /// computed once on the sum.
    pub fn from_lines<I>(lines: I) -> Result<DocumentTotals, MoneyError>
    where
        I: IntoIterator<Item = LineAmount>,
    {
        let subtotal = lines.into_iter().try_fold(Halalas::ZERO, |sum, line| {
            sum.checked_add(Halalas(line.net_halalas()?))
        })?;
        DocumentTotals::from_taxable_amount(subtotal.get())
    }

    /// Splits a VAT-inclusive amount into net and VAT, for a credit note covering money
    /// handed back. The VAT part is [`vat_part_of_gross_halalas`] and the net is the rest,
    /// so `subtotal + vat == total` holds exactly, and a refund of a whole invoice's total
    /// reproduces that invoice's subtotal and VAT.
    pub fn from_gross(total_halalas: i64) -> Result<DocumentTotals, MoneyError> {
        let vat_halalas = vat_part_of_gross_halalas(total_halalas);
        let subtotal_halalas = Halalas(total_halalas)
            .checked_sub(Halalas(vat_halalas))?
            .get();
        Ok(DocumentTotals {
            subtotal_halalas,
            vat_halalas,
            total_halalas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vat_is_rounded_half_away_from_zero_at_the_midpoints() {
        assert_eq!(vat_halalas(10), 2, "1.5 rounds up");
        assert_eq!(vat_halalas(30), 5, "4.5 rounds up");
        assert_eq!(vat_halalas(1), 0, "0.15 rounds down");
        assert_eq!(vat_halalas(3), 0, "0.45 rounds down");
        assert_eq!(vat_halalas(4), 1, "0.6 rounds up");
        assert_eq!(vat_halalas(0), 0);
    }

    #[test]
    fn vat_on_a_credit_note_rounds_symmetrically_away_from_zero() {
        assert_eq!(vat_halalas(-10), -2);
        assert_eq!(vat_halalas(-30), -5);
        assert_eq!(vat_halalas(-1), 0);
        assert_eq!(vat_halalas(-3), 0);
        assert_eq!(vat_halalas(-4), -1);
    }

    #[test]
    fn growth_plan_totals_match_the_price_list() {
        let totals = DocumentTotals::from_taxable_amount(299_900).unwrap();
        assert_eq!(
            totals,
            DocumentTotals {
                subtotal_halalas: 299_900,
                vat_halalas: 44_985,
                total_halalas: 344_885,
            }
        );
    }

    #[test]
    fn vat_is_computed_once_on_the_sum_of_lines_not_per_line() {
        // Three lines of 10 halalas: per line 1.5 -> 2 each would give 6; on the sum,
        // 30 * 15% = 4.5 -> 5.
        let line = LineAmount {
            quantity: 1,
            unit_price_halalas: 10,
        };
        let totals = DocumentTotals::from_lines([line, line, line]).unwrap();
        assert_eq!(totals.subtotal_halalas, 30);
        assert_eq!(totals.vat_halalas, 5);
        assert_eq!(totals.total_halalas, 35);
    }

    #[test]
    fn a_negative_quantity_is_rejected() {
        let line = LineAmount {
            quantity: -1,
            unit_price_halalas: 10,
        };
        assert_eq!(
            DocumentTotals::from_lines([line]),
            Err(MoneyError::NegativeQuantity { quantity: -1 })
        );
    }

    #[test]
    fn a_negative_unit_price_is_rejected() {
        let line = LineAmount {
            quantity: 1,
            unit_price_halalas: -10,
        };
        assert_eq!(
            DocumentTotals::from_lines([line]),
            Err(MoneyError::NegativeAmount {
                amount_halalas: -10
            })
        );
    }

    #[test]
    fn lines_that_overflow_are_an_error_not_a_panic() {
        let line = LineAmount {
            quantity: 2,
            unit_price_halalas: i64::MAX,
        };
        assert_eq!(
            DocumentTotals::from_lines([line]),
            Err(MoneyError::Overflow)
        );
        let line = LineAmount {
            quantity: 1,
            unit_price_halalas: i64::MAX,
        };
        assert_eq!(
            DocumentTotals::from_lines([line, line]),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            DocumentTotals::from_taxable_amount(i64::MAX),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            DocumentTotals::from_taxable_amount(i64::MIN),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn a_full_refund_splits_back_into_the_invoice_subtotal_and_vat() {
        assert_eq!(
            DocumentTotals::from_gross(344_885),
            DocumentTotals::from_taxable_amount(299_900)
        );
    }

    proptest! {
        #[test]
        fn total_is_subtotal_plus_vat_for_every_amount(subtotal in any::<i64>()) {
            match DocumentTotals::from_taxable_amount(subtotal) {
                Ok(totals) => {
                    prop_assert_eq!(totals.subtotal_halalas, subtotal);
                    prop_assert_eq!(
                        i128::from(totals.total_halalas),
                        i128::from(totals.subtotal_halalas) + i128::from(totals.vat_halalas)
                    );
                }
                Err(error) => {
                    prop_assert_eq!(error, MoneyError::Overflow);
                    let exact = i128::from(subtotal) + i128::from(vat_halalas(subtotal));
                    prop_assert!(i64::try_from(exact).is_err());
                }
            }
        }

        #[test]
        fn vat_is_within_half_a_halala_of_fifteen_percent(subtotal in any::<i64>()) {
            // |vat * 10000 - subtotal * 1500| <= 5000 is "within half a halala".
            let error = i128::from(vat_halalas(subtotal)) * 10_000 - i128::from(subtotal) * 1_500;
            prop_assert!(error.abs() <= 5_000);
            // And exact halves go away from zero.
            if error.abs() == 5_000 {
                prop_assert_eq!(error.signum(), i128::from(subtotal.signum()));
            }
        }

        #[test]
        fn vat_is_symmetric_for_credit_notes(subtotal in (i64::MIN + 1)..=i64::MAX) {
            prop_assert_eq!(vat_halalas(-subtotal), -vat_halalas(subtotal));
        }

        #[test]
        fn refunding_a_whole_document_reproduces_its_split(subtotal in 0..=(i64::MAX / 2)) {
            let invoice = DocumentTotals::from_taxable_amount(subtotal).unwrap();
            prop_assert_eq!(DocumentTotals::from_gross(invoice.total_halalas), Ok(invoice));
        }

        #[test]
        fn a_gross_split_always_adds_up(total in any::<i64>()) {
            if let Ok(split) = DocumentTotals::from_gross(total) {
                prop_assert_eq!(
                    i128::from(split.subtotal_halalas) + i128::from(split.vat_halalas),
                    i128::from(total)
                );
            }
        }

        #[test]
        fn extreme_lines_never_panic(
            quantity in any::<i64>(),
            unit_price_halalas in any::<i64>(),
            count in 0usize..4,
        ) {
            let line = LineAmount { quantity, unit_price_halalas };
            let _ = DocumentTotals::from_lines(std::iter::repeat_n(line, count));
        }
    }
}
