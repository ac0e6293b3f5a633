//! The payment aggregate: our record of one Moyasar payment and the states it went
//! through.
//!
//! Moyasar reports a payment's whole current state (status and cumulative amounts) in
//! each webhook or API read, so the single command [`PaymentCommand::RecordGatewayStatus`]
//! carries that snapshot and the aggregate decides which fact it adds. Webhooks arrive
//! late, repeated and out of order, so the rules below make the recorded end state the
//! same whatever order the reports of one payment arrive in.
//!
//! # The transition graph
//!
//! ```text
//! initiated  -> authorized | paid | failed | verified
//! authorized -> captured | voided | failed
//! captured   -> paid | refunded
//! paid       -> refunded
//! refunded   -> refunded      (a further partial refund: the cumulative amount grows)
//! verified   -> paid | failed
//! ```
//!
//! `failed`, `voided` and a fully or partly `refunded` payment move nowhere else:
//! `failed` and `voided` are terminal, `refunded` only grows its cumulative amount.
//!
//! # Ahead, behind, contradictory
//!
//! The order over statuses is the graph's reachability, a partial order:
//! `a` **precedes** `b` ([`PaymentStatus::precedes`]) when a path of one or more legal
//! moves leads from `a` to `b` (the `refunded -> refunded` loop does not count). In full:
//!
//! ```text
//! initiated  precedes every other status
//! authorized precedes captured, paid, refunded, voided, failed
//! verified   precedes paid, refunded, failed
//! captured   precedes paid, refunded
//! paid       precedes refunded
//! refunded, failed, voided precede nothing
//! ```
//!
//! It is not a rank: `authorized` and `verified` sit on different paths, as do `paid`
//! and `failed`, so neither of such a pair is before the other. Against the recorded
//! status `current`, a report of status `reported` is
//!
//! - **behind** (stale) when `reported` precedes `current`, or both are `refunded` and
//!   the report's cumulative refunded amount is smaller than the recorded one. It is
//!   an older picture of the payment, arriving late: accepted, and it adds nothing.
//! - **the same** when `reported == current` with the same amounts: a redelivery, it
//!   adds nothing. A `refunded` report with a larger cumulative amount is a further
//!   refund; any other change of amounts in the same status is
//!   [`PaymentError::AmountsChangedWithoutTransition`].
//! - **ahead** when `current` precedes `reported`, whether by one legal move or by
//!   several, some of whose reports we have not seen (yet): the report's status is
//!   recorded, and a refund's delta is the growth of the cumulative refunded amount.
//! - **contradictory** otherwise: [`PaymentError::IllegalTransition`]. That is every
//!   move out of a terminal `failed` or `voided` other than to a status behind it
//!   (`paid` after `failed` is an error, `initiated` after `failed` is stale), and a
//!   `failed` or `voided` report after `captured`, `paid` or `refunded`: a payment that
//!   collected money cannot also have failed, and a late `failed` is not stale under
//!   this order because `failed` does not precede `paid`.
//!
//! Identity and amounts are checked on every report, stale ones included, because a
//! stale report must still describe the same payment: same payment id, same invoice
//! once one is known, same amount, SAR only, fee and captured and refunded amounts
//! between zero and the amount.
//!
//! # `PaymentPaid` is never missing
//!
//! Readers (the invoice process manager, the journal) learn that money was collected
//! from [`PaymentEvent::PaymentPaid`]. When a `refunded` report is recorded for a
//! payment whose history holds no collection yet (a first report, or one ahead of
//! `initiated`, `authorized` or `verified`), the `paid` report was missed or is still
//! on its way, so the decision records [`PaymentEvent::PaymentPaid`] first (the same
//! snapshot with the refunded amount as it stood before, `paid_at` the report's time)
//! and then [`PaymentEvent::PaymentRefunded`]. The late `paid` report is then stale.
//! A payment that was ever paid therefore has exactly one `PaymentPaid`, whatever the
//! arrival order. A history that already holds `captured` (the authorize-then-capture
//! flow, where Moyasar never reports `paid`) records only the refund, as before.
//!
//! A first report of `captured` (its `authorized` missed) records just
//! [`PaymentEvent::PaymentCaptured`]: capture is the collection fact of that flow, and
//! synthesising a `paid` Moyasar may still report would record it twice. Every other
//! first report records its own status's event.

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::money::{Currency, Halalas, MoneyError};

/// Moyasar payment statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Initiated,
    Authorized,
    Captured,
    Paid,
    Failed,
    Refunded,
    Voided,
    Verified,
}

impl PaymentStatus {
    /// Whether a payment in this status may next be reported in `next`: one legal
    /// move of the transition graph.
    pub const fn can_move_to(self, next: PaymentStatus) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, next),
            (Initiated, Authorized | Paid | Failed | Verified)
                | (Authorized, Captured | Voided | Failed)
                | (Captured, Paid | Refunded)
                | (Paid, Refunded)
                | (Refunded, Refunded)
                | (Verified, Paid | Failed)
        )
    }

    /// Whether a path of one or more legal moves leads from this status to `later`
    /// (the `refunded -> refunded` loop does not count): the partial order that tells a
    /// stale report from a contradictory one. See the module docs.
    pub const fn precedes(self, later: PaymentStatus) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, later),
            (
                Initiated,
                Authorized | Captured | Paid | Failed | Refunded | Voided | Verified
            ) | (Authorized, Captured | Paid | Refunded | Voided | Failed)
                | (Verified, Paid | Refunded | Failed)
                | (Captured, Paid | Refunded)
                | (Paid, Refunded)
        )
    }

    /// Whether a payment that reached this status collected money: a refund from here
    /// needs no `PaymentPaid` of its own.
    const fn has_collected(self) -> bool {
        matches!(
            self,
            PaymentStatus::Captured | PaymentStatus::Paid | PaymentStatus::Refunded
        )
    }

    /// The status as Moyasar spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Initiated => "initiated",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Verified => "verified",
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can be asked of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    /// Record the payment's state as the gateway reports it.
    RecordGatewayStatus {
        payment_id: String,
        /// Our invoice, when known.
        invoice_id: Option<String>,
        moyasar_invoice_id: Option<String>,
        status: PaymentStatus,
        amount_halalas: i64,
        fee_halalas: i64,
        captured_halalas: i64,
        /// Cumulative amount refunded so far.
        refunded_halalas: i64,
        /// ISO code as the gateway sent it; only `"SAR"` is accepted.
        currency: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// The payment as of one gateway report; every payment event carries it (flattened
/// into the event's JSON object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPayment {
    pub payment_id: String,
    pub invoice_id: Option<String>,
    pub moyasar_invoice_id: Option<String>,
    pub amount_halalas: i64,
    pub fee_halalas: i64,
    pub captured_halalas: i64,
    /// Cumulative.
    pub refunded_halalas: i64,
    pub currency: Currency,
}

/// What happened to a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentEvent {
    PaymentInitiated {
        #[serde(flatten)]
        payment: GatewayPayment,
        #[serde(with = "time::serde::rfc3339")]
        initiated_at: OffsetDateTime,
    },
    PaymentAuthorized {
        #[serde(flatten)]
        payment: GatewayPayment,
        #[serde(with = "time::serde::rfc3339")]
        authorized_at: OffsetDateTime,
    },
    PaymentCaptured {
        #[serde(flatten)]
        payment: GatewayPayment,
        #[serde(with = "time::serde::rfc3339")]
        captured_at: OffsetDateTime,
    },
    PaymentPaid {
        #[serde(flatten)]
        payment: GatewayPayment,
        #[serde(with = "time::serde::rfc3339")]
        paid_at: OffsetDateTime,
    },
    PaymentFailed {
        #[serde(flatten)]
        payment: GatewayPayment,
        #[serde(with = "time::serde::rfc3339")]
        failed_at: OffsetDateTime,
    },
    PaymentRefunded {
        #[serde(flatten)]
        payment: GatewayPayment,
        /// What this report added to the cumulative refunded amount.
        refund_delta_halalas: i64,
        #[serde(with = "time::serde::rfc3339")]
        refunded_at: OffsetDateTime,
    },
    PaymentVoided {
        #[serde(flatten)]
        payment: GatewayPayment,
        #[serde(with = "time::serde::rfc3339")]
        voided_at: OffsetDateTime,
    },
    PaymentVerified {
        #[serde(flatten)]
        payment: GatewayPayment,
        #[serde(with = "time::serde::rfc3339")]
        verified_at: OffsetDateTime,
    },
}

impl PaymentEvent {
    fn new(
        status: PaymentStatus,
        payment: GatewayPayment,
        refund_delta_halalas: i64,
        at: OffsetDateTime,
    ) -> PaymentEvent {
        match status {
            PaymentStatus::Initiated => PaymentEvent::PaymentInitiated {
                payment,
                initiated_at: at,
            },
            PaymentStatus::Authorized => PaymentEvent::PaymentAuthorized {
                payment,
                authorized_at: at,
            },
            PaymentStatus::Captured => PaymentEvent::PaymentCaptured {
                payment,
                captured_at: at,
            },
            PaymentStatus::Paid => PaymentEvent::PaymentPaid {
                payment,
                paid_at: at,
            },
            PaymentStatus::Failed => PaymentEvent::PaymentFailed {
                payment,
                failed_at: at,
            },
            PaymentStatus::Refunded => PaymentEvent::PaymentRefunded {
                payment,
                refund_delta_halalas,
                refunded_at: at,
            },
            PaymentStatus::Voided => PaymentEvent::PaymentVoided {
                payment,
                voided_at: at,
            },
            PaymentStatus::Verified => PaymentEvent::PaymentVerified {
                payment,
                verified_at: at,
            },
        }
    }

    /// The status this event puts the payment in.
    pub fn status(&self) -> PaymentStatus {
        match self {
            PaymentEvent::PaymentInitiated { .. } => PaymentStatus::Initiated,
            PaymentEvent::PaymentAuthorized { .. } => PaymentStatus::Authorized,
            PaymentEvent::PaymentCaptured { .. } => PaymentStatus::Captured,
            PaymentEvent::PaymentPaid { .. } => PaymentStatus::Paid,
            PaymentEvent::PaymentFailed { .. } => PaymentStatus::Failed,
            PaymentEvent::PaymentRefunded { .. } => PaymentStatus::Refunded,
            PaymentEvent::PaymentVoided { .. } => PaymentStatus::Voided,
            PaymentEvent::PaymentVerified { .. } => PaymentStatus::Verified,
        }
    }

    /// The payment snapshot the event carries.
    pub fn payment(&self) -> &GatewayPayment {
        match self {
            PaymentEvent::PaymentInitiated { payment, .. }
            | PaymentEvent::PaymentAuthorized { payment, .. }
            | PaymentEvent::PaymentCaptured { payment, .. }
            | PaymentEvent::PaymentPaid { payment, .. }
            | PaymentEvent::PaymentFailed { payment, .. }
            | PaymentEvent::PaymentRefunded { payment, .. }
            | PaymentEvent::PaymentVoided { payment, .. }
            | PaymentEvent::PaymentVerified { payment, .. } => payment,
        }
    }
}

crate::events::event_types!(PaymentEvent {
    PaymentInitiated,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentPaid,
    PaymentFailed,
    PaymentRefunded,
    PaymentVoided,
    PaymentVerified
});

/// The rules a gateway report can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentError {
    /// An amount beyond [`crate::money::MAX_AMOUNT_HALALAS`] (the error names it).
    /// Displayed as the money error itself, and its `source()` (so a caller can find which
    /// field was at fault).
    #[error("{0}")]
    Money(#[from] MoneyError),
    #[error("a payment id is required")]
    PaymentIdRequired,
    #[error("this stream records payment {recorded}, not {reported}")]
    PaymentIdMismatch { recorded: String, reported: String },
    #[error("payment belongs to invoice {recorded}, not {reported}")]
    InvoiceIdMismatch { recorded: String, reported: String },
    #[error("unsupported currency {currency:?}; only SAR is accepted")]
    UnsupportedCurrency { currency: String },
    #[error("a payment amount must be positive, got {amount_halalas} halalas")]
    AmountNotPositive { amount_halalas: i64 },
    #[error("fee {fee_halalas} is outside 0..={amount_halalas} halalas")]
    FeeOutOfRange {
        fee_halalas: i64,
        amount_halalas: i64,
    },
    #[error("captured {captured_halalas} is outside 0..={amount_halalas} halalas")]
    CapturedOutOfRange {
        captured_halalas: i64,
        amount_halalas: i64,
    },
    #[error("refunded {refunded_halalas} is outside 0..={amount_halalas} halalas")]
    RefundedOutOfRange {
        refunded_halalas: i64,
        amount_halalas: i64,
    },
    #[error("a refunded payment must report a refunded amount")]
    RefundedStatusWithoutRefund,
    #[error("the payment amount changed from {recorded_halalas} to {reported_halalas} halalas")]
    AmountChanged {
        recorded_halalas: i64,
        reported_halalas: i64,
    },
    #[error("the refunded amount cannot decrease from {recorded_halalas} to {reported_halalas}")]
    RefundedDecreased {
        recorded_halalas: i64,
        reported_halalas: i64,
    },
    #[error("the payment is still {status} but its amounts changed")]
    AmountsChangedWithoutTransition { status: PaymentStatus },
    #[error("a payment cannot go from {from} to {to}")]
    IllegalTransition {
        from: PaymentStatus,
        to: PaymentStatus,
    },
}

/// One payment, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    status: Option<PaymentStatus>,
    payment: Option<GatewayPayment>,
}

impl Payment {
    /// `None` before the first report.
    pub fn status(&self) -> Option<PaymentStatus> {
        self.status
    }

    /// The latest reported snapshot.
    pub fn snapshot(&self) -> Option<&GatewayPayment> {
        self.payment.as_ref()
    }

    /// Amount collected minus refunds; zero for payments that never completed.
    pub fn net_collected_halalas(&self) -> i64 {
        match (&self.payment, self.status) {
            (
                Some(p),
                Some(PaymentStatus::Paid | PaymentStatus::Captured | PaymentStatus::Refunded),
            ) => p.amount_halalas.saturating_sub(p.refunded_halalas),
            _ => 0,
        }
    }

    /// Decides what a gateway report adds to this payment's history: nothing for a
    /// stale or repeated report, the facts it adds otherwise (see the module docs).
    pub fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let (status, reported, at) = self.read_report(command)?;
        let (Some(current), Some(recorded)) = (self.status, &self.payment) else {
            let refunded_before = 0;
            return Ok(events_reaching(None, status, reported, refunded_before, at));
        };
        check_same_payment(recorded, &reported)?;
        if is_behind(status, &reported, current, recorded) {
            return Ok(Vec::new());
        }
        if reported.refunded_halalas < recorded.refunded_halalas {
            return Err(PaymentError::RefundedDecreased {
                recorded_halalas: recorded.refunded_halalas,
                reported_halalas: reported.refunded_halalas,
            });
        }
        if current == status {
            return same_status(status, recorded, reported, at);
        }
        if !current.precedes(status) {
            return Err(PaymentError::IllegalTransition {
                from: current,
                to: status,
            });
        }
        let refunded_before = recorded.refunded_halalas;
        Ok(events_reaching(
            Some(current),
            status,
            reported,
            refunded_before,
            at,
        ))
    }

    /// Parses the report into a snapshot, keeping the invoice ids already known when
    /// the report omits them, and checks it on its own.
    fn read_report(
        &self,
        command: PaymentCommand,
    ) -> Result<(PaymentStatus, GatewayPayment, OffsetDateTime), PaymentError> {
        let PaymentCommand::RecordGatewayStatus {
            payment_id,
            invoice_id,
            moyasar_invoice_id,
            status,
            amount_halalas,
            fee_halalas,
            captured_halalas,
            refunded_halalas,
            currency,
            at,
        } = command;
        let currency: Currency = currency
            .parse()
            .map_err(|_| PaymentError::UnsupportedCurrency { currency })?;
        let known = self.payment.as_ref();
        let reported = GatewayPayment {
            invoice_id: invoice_id.or_else(|| known?.invoice_id.clone()),
            moyasar_invoice_id: moyasar_invoice_id.or_else(|| known?.moyasar_invoice_id.clone()),
            payment_id,
            amount_halalas,
            fee_halalas,
            captured_halalas,
            refunded_halalas,
            currency,
        };
        check_snapshot(status, &reported)?;
        Ok((status, reported, at))
    }
}

/// Whether a report is an older picture of the payment than the one recorded.
fn is_behind(
    status: PaymentStatus,
    reported: &GatewayPayment,
    current: PaymentStatus,
    recorded: &GatewayPayment,
) -> bool {
    let an_earlier_refund = status == PaymentStatus::Refunded
        && current == PaymentStatus::Refunded
        && reported.refunded_halalas < recorded.refunded_halalas;
    status.precedes(current) || an_earlier_refund
}

/// A report in the recorded status: a redelivery adds nothing, a refund that grew adds
/// its delta, any other change of amounts is an error.
fn same_status(
    status: PaymentStatus,
    recorded: &GatewayPayment,
    reported: GatewayPayment,
    at: OffsetDateTime,
) -> Result<Vec<PaymentEvent>, PaymentError> {
    let refund_delta = reported.refunded_halalas - recorded.refunded_halalas;
    let same_fee_and_capture = recorded.fee_halalas == reported.fee_halalas
        && recorded.captured_halalas == reported.captured_halalas;
    if same_fee_and_capture && refund_delta == 0 {
        return Ok(Vec::new());
    }
    let a_further_refund = status == PaymentStatus::Refunded && refund_delta > 0;
    if !(same_fee_and_capture && a_further_refund) {
        return Err(PaymentError::AmountsChangedWithoutTransition { status });
    }
    Ok(vec![PaymentEvent::new(status, reported, refund_delta, at)])
}

/// The events that bring a payment from `current` (`None`: a first report) to
/// `status`: the status's own event, preceded by the missed `PaymentPaid` when a
/// refund reaches a payment whose history holds no collection.
fn events_reaching(
    current: Option<PaymentStatus>,
    status: PaymentStatus,
    reported: GatewayPayment,
    refunded_before: i64,
    at: OffsetDateTime,
) -> Vec<PaymentEvent> {
    let refund_delta = reported.refunded_halalas - refunded_before;
    let collected = current.is_some_and(PaymentStatus::has_collected);
    let mut events = Vec::with_capacity(2);
    if status == PaymentStatus::Refunded && !collected {
        let as_paid = GatewayPayment {
            refunded_halalas: refunded_before,
            ..reported.clone()
        };
        events.push(PaymentEvent::new(PaymentStatus::Paid, as_paid, 0, at));
    }
    events.push(PaymentEvent::new(status, reported, refund_delta, at));
    events
}

/// The rules every report must satisfy on its own.
fn check_snapshot(status: PaymentStatus, reported: &GatewayPayment) -> Result<(), PaymentError> {
    let amount_halalas = reported.amount_halalas;
    if reported.payment_id.trim().is_empty() {
        return Err(PaymentError::PaymentIdRequired);
    }
    if amount_halalas <= 0 {
        return Err(PaymentError::AmountNotPositive { amount_halalas });
    }
    Halalas(amount_halalas).within_ceiling("amount_halalas")?;
    let within = |value: i64| (0..=amount_halalas).contains(&value);
    if !within(reported.fee_halalas) {
        return Err(PaymentError::FeeOutOfRange {
            fee_halalas: reported.fee_halalas,
            amount_halalas,
        });
    }
    if !within(reported.captured_halalas) {
        return Err(PaymentError::CapturedOutOfRange {
            captured_halalas: reported.captured_halalas,
            amount_halalas,
        });
    }
    if !within(reported.refunded_halalas) {
        return Err(PaymentError::RefundedOutOfRange {
            refunded_halalas: reported.refunded_halalas,
            amount_halalas,
        });
    }
    if status == PaymentStatus::Refunded && reported.refunded_halalas == 0 {
        return Err(PaymentError::RefundedStatusWithoutRefund);
    }
    Ok(())
}

/// The rules every report, stale or not, must satisfy against what was recorded: it
/// describes the same payment, for the same invoice, of the same amount.
fn check_same_payment(
    recorded: &GatewayPayment,
    reported: &GatewayPayment,
) -> Result<(), PaymentError> {
    if recorded.payment_id != reported.payment_id {
        return Err(PaymentError::PaymentIdMismatch {
            recorded: recorded.payment_id.clone(),
            reported: reported.payment_id.clone(),
        });
    }
    if let (Some(recorded_invoice), Some(reported_invoice)) =
        (&recorded.invoice_id, &reported.invoice_id)
    {
        if recorded_invoice != reported_invoice {
            return Err(PaymentError::InvoiceIdMismatch {
                recorded: recorded_invoice.clone(),
                reported: reported_invoice.clone(),
            });
        }
    }
    if recorded.amount_halalas != reported.amount_halalas {
        return Err(PaymentError::AmountChanged {
            recorded_halalas: recorded.amount_halalas,
            reported_halalas: reported.amount_halalas,
        });
    }
    Ok(())
}

impl Aggregate for Payment {
    const TYPE: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        self.status = Some(event.status());
        self.payment = Some(event.payment().clone());
    }
}

#[cfg(test)]
pub(crate) mod tests;
