//! Payout batches: one payment to a partner covering many approved commissions.
//!
//! Finance gathers a partner's approved commissions into a batch once their total
//! reaches the program's minimum (PartnerStack and Rewardful pay above a threshold so
//! transfer fees do not eat small amounts). A batch lists each commission it pays
//! ([`PayoutItem`], positive) and each clawback it carries ([`CarriedItem`], negative):
//! a refund that arrived after an earlier payout is owed back by the partner, so it is
//! deducted from the next payment instead of being lost. The batch records its gross
//! (items), carried (clawbacks) and net (gross + carried) amounts once, at creation,
//! and the net must reach the minimum.
//!
//! A batch is created, then either paid (with the bank or gateway transfer reference)
//! or canceled with a reason before it is paid. Which commissions go into a batch, and
//! marking each of them paid out, is the job of the process manager that reads the
//! commission streams; this aggregate guards the batch's own arithmetic and lifecycle.
//! A commission appears at most once in a batch; that it is in no other batch is the
//! commission stream's rule (a commission is paid out once).

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::money::{Halalas, MoneyError};

/// Most lines (items and carried clawbacks together) one batch may hold, so a batch's
/// creation event stays a reasonable size for one row and one JSON body. A partner with
/// more commissions than this is paid in several batches.
pub const MAX_PAYOUT_LINES: usize = 10_000;

/// An approved commission paid in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutItem {
    pub commission_id: String,
    /// What the batch pays for this commission; positive.
    pub amount_halalas: i64,
}

/// A clawback owed back by the partner after an earlier payout, deducted from this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedItem {
    pub commission_id: String,
    /// Negative.
    pub amount_halalas: i64,
}

/// Where a payout batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// Created and waiting to be paid.
    Created,
    Paid,
    Canceled,
}

/// What can be asked of a payout batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayoutCommand {
    /// Put commissions (and clawbacks carried from earlier payouts) into a batch.
    /// Repeating an identical creation is accepted and changes nothing.
    Create {
        payout_id: String,
        partner_id: String,
        items: Vec<PayoutItem>,
        carried: Vec<CarriedItem>,
        /// The program's payout threshold; the net must reach it.
        minimum_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The money left: `reference` is the transfer's id at the bank or gateway.
    MarkPaid {
        reference: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Abandon the batch before it is paid; its commissions may go into another one.
    Cancel {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to a payout batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayoutEvent {
    PayoutCreated {
        payout_id: String,
        partner_id: String,
        items: Vec<PayoutItem>,
        carried: Vec<CarriedItem>,
        /// Sum of the items; positive.
        gross_halalas: i64,
        /// Sum of the carried clawbacks; zero or negative.
        carried_halalas: i64,
        /// `gross_halalas + carried_halalas`: what the partner is paid.
        net_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    PayoutPaid {
        payout_id: String,
        partner_id: String,
        net_halalas: i64,
        reference: String,
        #[serde(with = "time::serde::rfc3339")]
        paid_at: OffsetDateTime,
    },
    PayoutCanceled {
        payout_id: String,
        partner_id: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        canceled_at: OffsetDateTime,
    },
}

crate::events::event_types!(PayoutEvent {
    PayoutCreated,
    PayoutPaid,
    PayoutCanceled
});

/// The rules a payout command can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayoutError {
    #[error("the payout was already created with different contents")]
    PayoutAlreadyCreated,
    #[error("the payout has not been created")]
    PayoutNotCreated,
    #[error("a payout id is required")]
    PayoutIdRequired,
    #[error("a partner id is required")]
    PartnerIdRequired,
    #[error("a payout needs at least one commission")]
    NoCommissions,
    #[error("a payout holds at most {max} lines, got {lines}")]
    TooManyLines { lines: usize, max: usize },
    #[error("every line needs a commission id")]
    CommissionIdRequired,
    #[error(
        "commission {commission_id} must be paid a positive amount, got {amount_halalas} halalas"
    )]
    NonPositiveItem {
        commission_id: String,
        amount_halalas: i64,
    },
    #[error("carried clawback {commission_id} must be negative, got {amount_halalas} halalas")]
    NonNegativeCarried {
        commission_id: String,
        amount_halalas: i64,
    },
    #[error("commission {commission_id} appears more than once in the payout")]
    DuplicateCommission { commission_id: String },
    #[error("a payout minimum must not be negative, got {minimum_halalas} halalas")]
    NegativeMinimum { minimum_halalas: i64 },
    #[error("the payout nets {net_halalas} halalas, below the minimum of {minimum_halalas}")]
    BelowMinimum {
        net_halalas: i64,
        minimum_halalas: i64,
    },
    #[error("the payout nets {net_halalas} halalas: nothing to pay")]
    NothingToPay { net_halalas: i64 },
    #[error("the payout was already paid")]
    PayoutAlreadyPaid,
    #[error("the payout was canceled")]
    PayoutAlreadyCanceled,
    #[error("marking a payout paid needs the transfer reference")]
    PaymentReferenceRequired,
    #[error("canceling a payout needs a reason")]
    CancellationReasonRequired,
    /// Displayed as the money error itself, and its `source()` (so a caller can find which
    /// field was at fault).
    #[error("{0}")]
    Money(#[from] MoneyError),
}

/// One payout batch, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutBatch {
    payout_id: String,
    partner_id: String,
    status: Option<PayoutStatus>,
    items: Vec<PayoutItem>,
    carried: Vec<CarriedItem>,
    gross_halalas: i64,
    carried_halalas: i64,
    net_halalas: i64,
    /// The transfer reference, once paid.
    reference: Option<String>,
}

impl PayoutBatch {
    pub fn payout_id(&self) -> &str {
        &self.payout_id
    }

    pub fn partner_id(&self) -> &str {
        &self.partner_id
    }

    /// `None` before creation.
    pub fn status(&self) -> Option<PayoutStatus> {
        self.status
    }

    /// The commissions paid by this batch.
    pub fn items(&self) -> &[PayoutItem] {
        &self.items
    }

    /// The clawbacks deducted from this batch.
    pub fn carried(&self) -> &[CarriedItem] {
        &self.carried
    }

    /// Sum of the items.
    pub fn gross_halalas(&self) -> i64 {
        self.gross_halalas
    }

    /// Sum of the carried clawbacks (zero or negative).
    pub fn carried_halalas(&self) -> i64 {
        self.carried_halalas
    }

    /// What the partner is paid: gross + carried.
    pub fn net_halalas(&self) -> i64 {
        self.net_halalas
    }

    /// The transfer reference, once paid.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// Decides what a command means for this batch, without changing it.
    pub fn decide(&self, command: PayoutCommand) -> Result<Vec<PayoutEvent>, PayoutError> {
        match command {
            PayoutCommand::Create {
                payout_id,
                partner_id,
                items,
                carried,
                minimum_halalas,
                at,
            } => {
                if self.status.is_some() {
                    return self.repeat_creation(&payout_id, &partner_id, &items, &carried);
                }
                let batch = Batch {
                    payout_id,
                    partner_id,
                    items,
                    carried,
                };
                batch.create(minimum_halalas, at).map(|event| vec![event])
            }
            PayoutCommand::MarkPaid { reference, at } => {
                self.check_open()?;
                if reference.trim().is_empty() {
                    return Err(PayoutError::PaymentReferenceRequired);
                }
                Ok(vec![PayoutEvent::PayoutPaid {
                    payout_id: self.payout_id.clone(),
                    partner_id: self.partner_id.clone(),
                    net_halalas: self.net_halalas,
                    reference,
                    paid_at: at,
                }])
            }
            PayoutCommand::Cancel { reason, at } => {
                self.check_open()?;
                if reason.trim().is_empty() {
                    return Err(PayoutError::CancellationReasonRequired);
                }
                Ok(vec![PayoutEvent::PayoutCanceled {
                    payout_id: self.payout_id.clone(),
                    partner_id: self.partner_id.clone(),
                    reason,
                    canceled_at: at,
                }])
            }
        }
    }

    /// A creation repeated with the same batch (ids and lines, in order) is a retry and
    /// changes nothing, whatever happened to the batch since; anything else is a second,
    /// different batch under an id already taken. The time and the minimum are not
    /// compared: a retry may come later, after the threshold was reconfigured.
    fn repeat_creation(
        &self,
        payout_id: &str,
        partner_id: &str,
        items: &[PayoutItem],
        carried: &[CarriedItem],
    ) -> Result<Vec<PayoutEvent>, PayoutError> {
        let identical = payout_id == self.payout_id
            && partner_id == self.partner_id
            && items == self.items.as_slice()
            && carried == self.carried.as_slice();
        if identical {
            Ok(Vec::new())
        } else {
            Err(PayoutError::PayoutAlreadyCreated)
        }
    }

    /// Only a created batch that is neither paid nor canceled can be paid or canceled.
    fn check_open(&self) -> Result<(), PayoutError> {
        match self.status {
            None => Err(PayoutError::PayoutNotCreated),
            Some(PayoutStatus::Created) => Ok(()),
            Some(PayoutStatus::Paid) => Err(PayoutError::PayoutAlreadyPaid),
            Some(PayoutStatus::Canceled) => Err(PayoutError::PayoutAlreadyCanceled),
        }
    }
}

/// The contents of a batch being created, checked line by line.
struct Batch {
    payout_id: String,
    partner_id: String,
    items: Vec<PayoutItem>,
    carried: Vec<CarriedItem>,
}

impl Batch {
    fn create(self, minimum_halalas: i64, at: OffsetDateTime) -> Result<PayoutEvent, PayoutError> {
        if self.payout_id.trim().is_empty() {
            return Err(PayoutError::PayoutIdRequired);
        }
        if self.partner_id.trim().is_empty() {
            return Err(PayoutError::PartnerIdRequired);
        }
        if minimum_halalas < 0 {
            return Err(PayoutError::NegativeMinimum { minimum_halalas });
        }
        self.check_lines()?;
        let gross_halalas = self.items.iter().try_fold(Halalas::ZERO, |sum, item| {
            sum.checked_add(Halalas(item.amount_halalas))
        })?;
        let carried_halalas = self.carried.iter().try_fold(Halalas::ZERO, |sum, item| {
            sum.checked_add(Halalas(item.amount_halalas))
        })?;
        let net_halalas = gross_halalas.checked_add(carried_halalas)?.get();
        if net_halalas < minimum_halalas {
            return Err(PayoutError::BelowMinimum {
                net_halalas,
                minimum_halalas,
            });
        }
        // Reached only with a zero minimum: a batch must still pay something.
        if net_halalas <= 0 {
            return Err(PayoutError::NothingToPay { net_halalas });
        }
        Ok(PayoutEvent::PayoutCreated {
            payout_id: self.payout_id,
            partner_id: self.partner_id,
            items: self.items,
            carried: self.carried,
            gross_halalas: gross_halalas.get(),
            carried_halalas: carried_halalas.get(),
            net_halalas,
            created_at: at,
        })
    }

    /// At least one item, a bounded number of lines, each with a commission id and an
    /// amount of the right sign, and no commission twice.
    fn check_lines(&self) -> Result<(), PayoutError> {
        if self.items.is_empty() {
            return Err(PayoutError::NoCommissions);
        }
        let lines = self.items.len().saturating_add(self.carried.len());
        if lines > MAX_PAYOUT_LINES {
            return Err(PayoutError::TooManyLines {
                lines,
                max: MAX_PAYOUT_LINES,
            });
        }
        for item in &self.items {
            if item.amount_halalas <= 0 {
                return Err(PayoutError::NonPositiveItem {
                    commission_id: item.commission_id.clone(),
                    amount_halalas: item.amount_halalas,
                });
            }
        }
        for item in &self.carried {
            if item.amount_halalas >= 0 {
                return Err(PayoutError::NonNegativeCarried {
                    commission_id: item.commission_id.clone(),
                    amount_halalas: item.amount_halalas,
                });
            }
        }
        let commission_ids = self
            .items
            .iter()
            .map(|item| &item.commission_id)
            .chain(self.carried.iter().map(|item| &item.commission_id));
        let mut seen = BTreeSet::new();
        for commission_id in commission_ids {
            if commission_id.trim().is_empty() {
                return Err(PayoutError::CommissionIdRequired);
            }
            if !seen.insert(commission_id.as_str()) {
                return Err(PayoutError::DuplicateCommission {
                    commission_id: commission_id.clone(),
                });
            }
        }
        Ok(())
    }
}

impl Aggregate for PayoutBatch {
    const TYPE: &'static str = "payout";
    type Command = PayoutCommand;
    type Event = PayoutEvent;
    type Error = PayoutError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            PayoutEvent::PayoutCreated {
                payout_id,
                partner_id,
                items,
                carried,
                gross_halalas,
                carried_halalas,
                net_halalas,
                ..
            } => {
                self.payout_id = payout_id;
                self.partner_id = partner_id;
                self.items = items;
                self.carried = carried;
                self.gross_halalas = gross_halalas;
                self.carried_halalas = carried_halalas;
                self.net_halalas = net_halalas;
                self.status = Some(PayoutStatus::Created);
            }
            PayoutEvent::PayoutPaid { reference, .. } => {
                self.reference = Some(reference);
                self.status = Some(PayoutStatus::Paid);
            }
            PayoutEvent::PayoutCanceled { .. } => {
                self.status = Some(PayoutStatus::Canceled);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
