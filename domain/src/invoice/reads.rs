//! What an invoice shows its readers beyond what its rules need: its standing with refunds, the
//! payments it recorded and the credit notes of its refunds.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CreditNote, Invoice, InvoiceStatus};

/// What an invoice's own answer calls it: its [`InvoiceStatus`], except that once money went
/// back it says so. The aggregate's rules (may it take a payment? be canceled?) and the sales
/// read models (a lead is "paid") keep reading [`InvoiceStatus`]; this is only what the
/// invoice is now, for the people and systems that read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStanding {
    Issued,
    PartiallyPaid,
    Paid,
    /// Some, not all, of what was paid went back.
    PartiallyRefunded,
    /// Everything paid went back.
    Refunded,
    Canceled,
    Expired,
}

impl InvoiceStanding {
    /// The standing of an invoice with this status that was paid and refunded these amounts.
    pub fn of(status: InvoiceStatus, paid_halalas: i64, refunded_halalas: i64) -> InvoiceStanding {
        if refunded_halalas > 0 {
            return if refunded_halalas >= paid_halalas {
                InvoiceStanding::Refunded
            } else {
                InvoiceStanding::PartiallyRefunded
            };
        }
        match status {
            InvoiceStatus::Issued => InvoiceStanding::Issued,
            InvoiceStatus::PartiallyPaid => InvoiceStanding::PartiallyPaid,
            InvoiceStatus::Paid => InvoiceStanding::Paid,
            InvoiceStatus::Canceled => InvoiceStanding::Canceled,
            InvoiceStatus::Expired => InvoiceStanding::Expired,
        }
    }
}

/// A payment as the invoice recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedPayment {
    pub payment_id: String,
    pub amount_halalas: i64,
    /// When the gateway reported it paid.
    #[serde(with = "time::serde::rfc3339")]
    pub paid_at: OffsetDateTime,
}

impl Invoice {
    /// Its status as its readers see it, refunds included; `None` before it is issued.
    pub fn standing(&self) -> Option<InvoiceStanding> {
        self.status
            .map(|status| InvoiceStanding::of(status, self.paid_halalas, self.refunded_halalas))
    }

    /// The payments recorded against it, oldest first.
    pub fn payments(&self) -> &[RecordedPayment] {
        &self.payments
    }

    /// The credit notes of its refunds, oldest first.
    pub fn credit_notes(&self) -> &[CreditNote] {
        &self.credit_notes
    }

    /// The id of the document chain it sits in (its EGS unit, or its seller's VAT number).
    pub fn chain(&self) -> &str {
        &self.chain
    }
}
