//! The payment aggregate: our record of one Moyasar payment and the states it went
//! through.
//!
//! Moyasar reports a payment's whole current state (status and cumulative amounts) in
//! each webhook or API read, so the single command [`PaymentCommand::RecordGatewayStatus`]
//! carries that snapshot and the aggregate decides which fact it adds. The legal moves
//! are:
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
//! The first status we hear of may be any status (webhooks start at `paid` for a card
//! payment), anything else is [`PaymentError::IllegalTransition`], and the same snapshot
//! delivered again adds nothing, so redelivery is harmless. Amounts are validated on
//! every snapshot: positive amount, SAR only, fee between zero and the amount, refunded
//! never above the amount and never decreasing.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::money::Currency;

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
    /// Whether a payment in this status may next be reported in `next`.
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

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        let name = match self {
            PaymentEvent::PaymentInitiated { .. } => "PaymentInitiated",
            PaymentEvent::PaymentAuthorized { .. } => "PaymentAuthorized",
            PaymentEvent::PaymentCaptured { .. } => "PaymentCaptured",
            PaymentEvent::PaymentPaid { .. } => "PaymentPaid",
            PaymentEvent::PaymentFailed { .. } => "PaymentFailed",
            PaymentEvent::PaymentRefunded { .. } => "PaymentRefunded",
            PaymentEvent::PaymentVoided { .. } => "PaymentVoided",
            PaymentEvent::PaymentVerified { .. } => "PaymentVerified",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The rules a gateway report can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentError {
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

    /// Decides what a gateway report adds to this payment's history.
    pub fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
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
        let reported = GatewayPayment {
            invoice_id: invoice_id.or_else(|| self.payment.as_ref()?.invoice_id.clone()),
            moyasar_invoice_id: moyasar_invoice_id
                .or_else(|| self.payment.as_ref()?.moyasar_invoice_id.clone()),
            payment_id,
            amount_halalas,
            fee_halalas,
            captured_halalas,
            refunded_halalas,
            currency,
        };
        check_snapshot(status, &reported)?;
        let (Some(from), Some(recorded)) = (self.status, &self.payment) else {
            let delta = reported.refunded_halalas;
            return Ok(vec![PaymentEvent::new(status, reported, delta, at)]);
        };
        check_against_recorded(recorded, &reported)?;
        let refund_delta = reported.refunded_halalas - recorded.refunded_halalas;
        if from == status {
            let same_fee_and_capture = recorded.fee_halalas == reported.fee_halalas
                && recorded.captured_halalas == reported.captured_halalas;
            if same_fee_and_capture && refund_delta == 0 {
                return Ok(Vec::new());
            }
            let a_further_refund = status == PaymentStatus::Refunded && refund_delta > 0;
            if !(same_fee_and_capture && a_further_refund) {
                return Err(PaymentError::AmountsChangedWithoutTransition { status });
            }
        } else if !from.can_move_to(status) {
            return Err(PaymentError::IllegalTransition { from, to: status });
        }
        Ok(vec![PaymentEvent::new(status, reported, refund_delta, at)])
    }
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

/// The rules a report must satisfy against what was recorded before.
fn check_against_recorded(
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
    if reported.refunded_halalas < recorded.refunded_halalas {
        return Err(PaymentError::RefundedDecreased {
            recorded_halalas: recorded.refunded_halalas,
            reported_halalas: reported.refunded_halalas,
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

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.status = Some(event.status());
        self.payment = Some(event.payment().clone());
    }
}

#[cfg(test)]
mod tests;
