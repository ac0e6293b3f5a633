//! The price list: what each subscription plan costs before VAT, and for how long.
//!
//! Prices are fixed in halalas here so that an invoice line, a proposal and a revenue
//! report all read the same number. VAT is added at document level by [`crate::vat`].

use serde::{Deserialize, Serialize};

use crate::money::MoneyError;
use crate::vat::DocumentTotals;

/// How long one payment of a plan lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingPeriod {
    /// A fixed number of days (the pilot).
    Days(u32),
    /// One calendar month.
    Month,
}

/// Length of the pilot, in days.
pub const PILOT_PERIOD_DAYS: u32 = 7;

/// A subscription plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// 1 SAR for a 7-day trial.
    Pilot,
    /// 999 SAR a month.
    Starter,
    /// 2,999 SAR a month.
    Growth,
    /// 7,999 SAR a month.
    Scale,
}

impl Plan {
    /// Every plan, cheapest first.
    pub const ALL: [Plan; 4] = [Plan::Pilot, Plan::Starter, Plan::Growth, Plan::Scale];

    /// Price of one billing period before VAT, in halalas.
    pub const fn price_halalas(self) -> i64 {
        match self {
            Plan::Pilot => 100,
            Plan::Starter => 99_900,
            Plan::Growth => 299_900,
            Plan::Scale => 799_900,
        }
    }

    /// How long one payment lasts.
    pub const fn billing_period(self) -> BillingPeriod {
        match self {
            Plan::Pilot => BillingPeriod::Days(PILOT_PERIOD_DAYS),
            Plan::Starter | Plan::Growth | Plan::Scale => BillingPeriod::Month,
        }
    }

    /// Subtotal, VAT and total of one period of this plan bought alone.
    pub fn price_with_vat(self) -> Result<DocumentTotals, MoneyError> {
        DocumentTotals::from_taxable_amount(self.price_halalas())
    }

    /// The plan's name as serialized (`"growth"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Plan::Pilot => "pilot",
            Plan::Starter => "starter",
            Plan::Growth => "growth",
            Plan::Scale => "scale",
        }
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_costs_2999_sar_plus_44985_halalas_of_vat() {
        let totals = Plan::Growth.price_with_vat().unwrap();
        assert_eq!(totals.subtotal_halalas, 299_900);
        assert_eq!(totals.vat_halalas, 44_985);
        assert_eq!(totals.total_halalas, 344_885);
    }

    #[test]
    fn the_price_list_matches_the_design() {
        assert_eq!(Plan::Pilot.price_halalas(), 100);
        assert_eq!(Plan::Pilot.billing_period(), BillingPeriod::Days(7));
        assert_eq!(Plan::Starter.price_halalas(), 99_900);
        assert_eq!(Plan::Scale.price_halalas(), 799_900);
        assert_eq!(Plan::Scale.billing_period(), BillingPeriod::Month);
        assert_eq!(Plan::Pilot.price_with_vat().unwrap().total_halalas, 115);
    }

    #[test]
    fn plans_serialize_in_snake_case() {
        for plan in Plan::ALL {
            assert_eq!(
                serde_json::to_string(&plan).unwrap(),
                format!("\"{}\"", plan.as_str())
            );
        }
    }
}
