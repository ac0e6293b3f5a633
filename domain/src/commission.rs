//! The partner commission aggregate: what a partner earns from one paid invoice, from
//! accrual to payout, and what is taken back when the money is refunded.
//!
//! A commission accrues when an attributed invoice is paid, on the invoice's amount
//! before VAT at the partner's rate, which is locked at accrual so a later tier change
//! does not rewrite history. The amount is `base * rate_bps / 10_000` rounded half up
//! (exact integer arithmetic). It is held for a number of days (the refund window),
//! then approved or rejected with a reason, and an approved commission is paid out in a
//! payout batch. A refund of the invoice claws back the same share of the commission
//! as a negative entry, pro rata to the refunded base and rounded half away from zero,
//! before or after payout; all clawbacks together never exceed what was accrued.
//! Manual adjustments are signed entries with a reason and an actor.
//!
//! The amount owed to the partner is always accrued + clawbacks + adjustments; no
//! entry is ever edited.

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::money::{
    apply_bps, div_round_half_away_from_zero, Halalas, MoneyError, BPS_DENOMINATOR,
};

/// Commission on a base amount: `base * rate_bps / 10_000`, rounded half up for the
/// positive bases commissions accrue on (half away from zero in general).
pub fn commission_halalas(base_halalas: i64, rate_bps: u32) -> Result<i64, MoneyError> {
    apply_bps(base_halalas, rate_bps)
}

/// The clawback for a refund: `-(accrued * refunded_base / invoice_base)`, rounded half
/// away from zero. `None` when `invoice_base` is zero.
pub fn pro_rata_clawback_halalas(
    accrued_halalas: i64,
    refunded_base_halalas: i64,
    invoice_base_halalas: i64,
) -> Option<i64> {
    let numerator = i128::from(accrued_halalas) * i128::from(refunded_base_halalas);
    div_round_half_away_from_zero(-numerator, i128::from(invoice_base_halalas))
}

/// Where a commission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommissionStatus {
    /// Accrued and waiting out its hold.
    Held,
    Approved,
    Rejected,
    PaidOut,
}

/// What can be asked of a commission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommissionCommand {
    /// An attributed invoice was paid.
    Accrue {
        commission_id: String,
        partner_id: String,
        invoice_id: String,
        lead_id: String,
        /// The invoice amount before VAT.
        base_halalas: i64,
        rate_bps: u32,
        hold_days: u32,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Approve {
        actor: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Reject {
        actor: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The commission was included in a payout batch.
    MarkPaidOut {
        payout_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The invoice was (partly) refunded.
    ClawBack {
        refund_id: String,
        refunded_base_halalas: i64,
        invoice_base_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A manual correction, positive or negative.
    Adjust {
        amount_halalas: i64,
        reason: String,
        actor: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to a commission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommissionEvent {
    CommissionAccrued {
        commission_id: String,
        partner_id: String,
        invoice_id: String,
        lead_id: String,
        base_halalas: i64,
        /// The rate at accrual, locked.
        rate_bps: u32,
        amount_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        held_until: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        accrued_at: OffsetDateTime,
    },
    CommissionApproved {
        commission_id: String,
        partner_id: String,
        /// What is owed at approval (accrued + clawbacks + adjustments).
        amount_halalas: i64,
        actor: String,
        #[serde(with = "time::serde::rfc3339")]
        approved_at: OffsetDateTime,
    },
    CommissionRejected {
        commission_id: String,
        partner_id: String,
        /// What was owed and no longer is.
        amount_halalas: i64,
        actor: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        rejected_at: OffsetDateTime,
    },
    CommissionPaidOut {
        commission_id: String,
        partner_id: String,
        payout_id: String,
        amount_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        paid_out_at: OffsetDateTime,
    },
    CommissionClawedBack {
        commission_id: String,
        partner_id: String,
        invoice_id: String,
        refund_id: String,
        /// Negative.
        amount_halalas: i64,
        refunded_base_halalas: i64,
        invoice_base_halalas: i64,
        /// True when the partner was already paid: the amount is now owed back.
        after_payout: bool,
        #[serde(with = "time::serde::rfc3339")]
        clawed_back_at: OffsetDateTime,
    },
    CommissionAdjusted {
        commission_id: String,
        partner_id: String,
        /// Signed, never zero.
        amount_halalas: i64,
        reason: String,
        actor: String,
        #[serde(with = "time::serde::rfc3339")]
        adjusted_at: OffsetDateTime,
    },
}

crate::events::event_types!(CommissionEvent {
    CommissionAccrued,
    CommissionApproved,
    CommissionRejected,
    CommissionPaidOut,
    CommissionClawedBack,
    CommissionAdjusted
});

/// The rules a commission command can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommissionError {
    #[error("the commission was already accrued")]
    CommissionAlreadyAccrued,
    #[error("the commission has not been accrued")]
    CommissionNotAccrued,
    #[error("commission, partner, invoice and lead ids are required")]
    CommissionIdsRequired,
    #[error("the commission base must be positive, got {base_halalas} halalas")]
    BaseNotPositive { base_halalas: i64 },
    #[error("a commission rate must be between 1 and 10000 bps, got {rate_bps}")]
    RateOutOfRange { rate_bps: u32 },
    #[error("a hold of {hold_days} days ends beyond the supported calendar")]
    HoldPeriodOutOfRange { hold_days: u32 },
    #[error("the commission is held until {until}")]
    CommissionStillHeld { until: OffsetDateTime },
    #[error("the commission is already approved")]
    CommissionAlreadyApproved,
    #[error("the commission was rejected")]
    CommissionAlreadyRejected,
    #[error("the commission was already paid out")]
    CommissionAlreadyPaidOut,
    #[error("only an approved commission can be paid out")]
    CommissionNotApproved,
    #[error("an actor is required")]
    ActorRequired,
    #[error("rejecting a commission needs a reason")]
    RejectionReasonRequired,
    #[error("nothing to pay out: the commission nets {net_halalas} halalas")]
    NothingToPayOut { net_halalas: i64 },
    #[error("refund {refund_id} was already clawed back")]
    RefundAlreadyClawedBack { refund_id: String },
    #[error("the invoice base must be positive, got {invoice_base_halalas} halalas")]
    InvoiceBaseNotPositive { invoice_base_halalas: i64 },
    #[error("refunded base {refunded_base_halalas} is outside 1..={invoice_base_halalas}")]
    RefundedBaseOutOfRange {
        refunded_base_halalas: i64,
        invoice_base_halalas: i64,
    },
    #[error("everything accrued was already clawed back")]
    CommissionFullyClawedBack,
    #[error("an adjustment must not be zero")]
    AdjustmentAmountZero,
    #[error("an adjustment needs a reason")]
    AdjustmentReasonRequired,
    /// Displayed as the money error itself, and its `source()` (so a caller can find which
    /// field was at fault).
    #[error("{0}")]
    Money(#[from] MoneyError),
}

/// One commission, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerCommission {
    commission_id: String,
    partner_id: String,
    invoice_id: String,
    status: Option<CommissionStatus>,
    rate_bps: u32,
    accrued_halalas: i64,
    /// Sum of clawbacks, zero or negative.
    clawed_back_halalas: i64,
    /// Sum of adjustments, signed.
    adjusted_halalas: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    held_until: Option<OffsetDateTime>,
    clawed_back_refund_ids: BTreeSet<String>,
}

impl PartnerCommission {
    pub fn commission_id(&self) -> &str {
        &self.commission_id
    }

    pub fn partner_id(&self) -> &str {
        &self.partner_id
    }

    /// `None` before accrual.
    pub fn status(&self) -> Option<CommissionStatus> {
        self.status
    }

    pub fn rate_bps(&self) -> u32 {
        self.rate_bps
    }

    pub fn accrued_halalas(&self) -> i64 {
        self.accrued_halalas
    }

    /// Sum of clawbacks (zero or negative).
    pub fn clawed_back_halalas(&self) -> i64 {
        self.clawed_back_halalas
    }

    pub fn held_until(&self) -> Option<OffsetDateTime> {
        self.held_until
    }

    /// What the partner is owed in total: accrued + clawbacks + adjustments.
    pub fn net_halalas(&self) -> i64 {
        self.accrued_halalas
            .saturating_add(self.clawed_back_halalas)
            .saturating_add(self.adjusted_halalas)
    }

    /// Decides what a command means for this commission, without changing it.
    pub fn decide(
        &self,
        command: CommissionCommand,
    ) -> Result<Vec<CommissionEvent>, CommissionError> {
        if let CommissionCommand::Accrue {
            commission_id,
            partner_id,
            invoice_id,
            lead_id,
            base_halalas,
            rate_bps,
            hold_days,
            at,
        } = command
        {
            if self.status.is_some() {
                return Err(CommissionError::CommissionAlreadyAccrued);
            }
            let ids = [&commission_id, &partner_id, &invoice_id, &lead_id];
            if ids.iter().any(|id| id.trim().is_empty()) {
                return Err(CommissionError::CommissionIdsRequired);
            }
            let amount_halalas = accrual_amount(base_halalas, rate_bps)?;
            let held_until = at
                .checked_add(Duration::days(i64::from(hold_days)))
                .ok_or(CommissionError::HoldPeriodOutOfRange { hold_days })?;
            return Ok(vec![CommissionEvent::CommissionAccrued {
                commission_id,
                partner_id,
                invoice_id,
                lead_id,
                base_halalas,
                rate_bps,
                amount_halalas,
                held_until,
                accrued_at: at,
            }]);
        }
        let status = self.status.ok_or(CommissionError::CommissionNotAccrued)?;
        let event = match command {
            CommissionCommand::Accrue { .. } => {
                return Err(CommissionError::CommissionAlreadyAccrued)
            }
            CommissionCommand::Approve { actor, at } => {
                match status {
                    CommissionStatus::Held => {}
                    CommissionStatus::Approved => {
                        return Err(CommissionError::CommissionAlreadyApproved)
                    }
                    CommissionStatus::Rejected => {
                        return Err(CommissionError::CommissionAlreadyRejected)
                    }
                    CommissionStatus::PaidOut => {
                        return Err(CommissionError::CommissionAlreadyPaidOut)
                    }
                }
                require_actor(&actor)?;
                if let Some(until) = self.held_until.filter(|until| at < *until) {
                    return Err(CommissionError::CommissionStillHeld { until });
                }
                CommissionEvent::CommissionApproved {
                    commission_id: self.commission_id.clone(),
                    partner_id: self.partner_id.clone(),
                    amount_halalas: self.net_halalas(),
                    actor,
                    approved_at: at,
                }
            }
            CommissionCommand::Reject { actor, reason, at } => {
                check_not_closed(status)?;
                require_actor(&actor)?;
                if reason.trim().is_empty() {
                    return Err(CommissionError::RejectionReasonRequired);
                }
                CommissionEvent::CommissionRejected {
                    commission_id: self.commission_id.clone(),
                    partner_id: self.partner_id.clone(),
                    amount_halalas: self.net_halalas(),
                    actor,
                    reason,
                    rejected_at: at,
                }
            }
            CommissionCommand::MarkPaidOut { payout_id, at } => {
                check_not_closed(status)?;
                if status != CommissionStatus::Approved {
                    return Err(CommissionError::CommissionNotApproved);
                }
                let net_halalas = self.net_halalas();
                if net_halalas <= 0 {
                    return Err(CommissionError::NothingToPayOut { net_halalas });
                }
                CommissionEvent::CommissionPaidOut {
                    commission_id: self.commission_id.clone(),
                    partner_id: self.partner_id.clone(),
                    payout_id,
                    amount_halalas: net_halalas,
                    paid_out_at: at,
                }
            }
            CommissionCommand::ClawBack {
                refund_id,
                refunded_base_halalas,
                invoice_base_halalas,
                at,
            } => {
                if status == CommissionStatus::Rejected {
                    return Err(CommissionError::CommissionAlreadyRejected);
                }
                if self.clawed_back_refund_ids.contains(&refund_id) {
                    return Err(CommissionError::RefundAlreadyClawedBack { refund_id });
                }
                let amount_halalas =
                    self.clawback_amount(refunded_base_halalas, invoice_base_halalas)?;
                CommissionEvent::CommissionClawedBack {
                    commission_id: self.commission_id.clone(),
                    partner_id: self.partner_id.clone(),
                    invoice_id: self.invoice_id.clone(),
                    refund_id,
                    amount_halalas,
                    refunded_base_halalas,
                    invoice_base_halalas,
                    after_payout: status == CommissionStatus::PaidOut,
                    clawed_back_at: at,
                }
            }
            CommissionCommand::Adjust {
                amount_halalas,
                reason,
                actor,
                at,
            } => {
                if status == CommissionStatus::Rejected {
                    return Err(CommissionError::CommissionAlreadyRejected);
                }
                if amount_halalas == 0 {
                    return Err(CommissionError::AdjustmentAmountZero);
                }
                if reason.trim().is_empty() {
                    return Err(CommissionError::AdjustmentReasonRequired);
                }
                require_actor(&actor)?;
                // The running totals must stay representable.
                Halalas(self.adjusted_halalas).checked_add(Halalas(amount_halalas))?;
                Halalas(self.net_halalas()).checked_add(Halalas(amount_halalas))?;
                CommissionEvent::CommissionAdjusted {
                    commission_id: self.commission_id.clone(),
                    partner_id: self.partner_id.clone(),
                    amount_halalas,
                    reason,
                    actor,
                    adjusted_at: at,
                }
            }
        };
        Ok(vec![event])
    }

    /// The negative pro-rata share of the accrual for a refund, capped so that all
    /// clawbacks together never exceed the accrual.
    fn clawback_amount(
        &self,
        refunded_base_halalas: i64,
        invoice_base_halalas: i64,
    ) -> Result<i64, CommissionError> {
        if invoice_base_halalas <= 0 {
            return Err(CommissionError::InvoiceBaseNotPositive {
                invoice_base_halalas,
            });
        }
        if refunded_base_halalas <= 0 || refunded_base_halalas > invoice_base_halalas {
            return Err(CommissionError::RefundedBaseOutOfRange {
                refunded_base_halalas,
                invoice_base_halalas,
            });
        }
        let remaining = self
            .accrued_halalas
            .saturating_add(self.clawed_back_halalas);
        if remaining <= 0 {
            return Err(CommissionError::CommissionFullyClawedBack);
        }
        let pro_rata = pro_rata_clawback_halalas(
            self.accrued_halalas,
            refunded_base_halalas,
            invoice_base_halalas,
        )
        .ok_or(MoneyError::Overflow)?;
        Ok(pro_rata.max(-remaining))
    }
}

fn accrual_amount(base_halalas: i64, rate_bps: u32) -> Result<i64, CommissionError> {
    if base_halalas <= 0 {
        return Err(CommissionError::BaseNotPositive { base_halalas });
    }
    Halalas(base_halalas).within_ceiling("base_halalas")?;
    if rate_bps == 0 || i64::from(rate_bps) > BPS_DENOMINATOR {
        return Err(CommissionError::RateOutOfRange { rate_bps });
    }
    Ok(commission_halalas(base_halalas, rate_bps)?)
}

fn require_actor(actor: &str) -> Result<(), CommissionError> {
    if actor.trim().is_empty() {
        Err(CommissionError::ActorRequired)
    } else {
        Ok(())
    }
}

/// Rejected and paid-out commissions accept no decision about payment any more.
fn check_not_closed(status: CommissionStatus) -> Result<(), CommissionError> {
    match status {
        CommissionStatus::Rejected => Err(CommissionError::CommissionAlreadyRejected),
        CommissionStatus::PaidOut => Err(CommissionError::CommissionAlreadyPaidOut),
        CommissionStatus::Held | CommissionStatus::Approved => Ok(()),
    }
}

impl Aggregate for PartnerCommission {
    const TYPE: &'static str = "commission";
    type Command = CommissionCommand;
    type Event = CommissionEvent;
    type Error = CommissionError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            CommissionEvent::CommissionAccrued {
                commission_id,
                partner_id,
                invoice_id,
                rate_bps,
                amount_halalas,
                held_until,
                ..
            } => {
                self.commission_id = commission_id;
                self.partner_id = partner_id;
                self.invoice_id = invoice_id;
                self.rate_bps = rate_bps;
                self.accrued_halalas = amount_halalas;
                self.held_until = Some(held_until);
                self.status = Some(CommissionStatus::Held);
            }
            CommissionEvent::CommissionApproved { .. } => {
                self.status = Some(CommissionStatus::Approved);
            }
            CommissionEvent::CommissionRejected { .. } => {
                self.status = Some(CommissionStatus::Rejected);
            }
            CommissionEvent::CommissionPaidOut { .. } => {
                self.status = Some(CommissionStatus::PaidOut);
            }
            CommissionEvent::CommissionClawedBack {
                refund_id,
                amount_halalas,
                ..
            } => {
                self.clawed_back_refund_ids.insert(refund_id);
                self.clawed_back_halalas = self.clawed_back_halalas.saturating_add(amount_halalas);
            }
            CommissionEvent::CommissionAdjusted { amount_halalas, .. } => {
                self.adjusted_halalas = self.adjusted_halalas.saturating_add(amount_halalas);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
