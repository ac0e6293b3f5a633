//! The pure domain of revledger: money, VAT, the price list, and the aggregates whose
//! events make up the revenue ledger (leads, invoices, payments, partners, commissions,
//! and each seller's ZATCA document sequence).
//!
//! Nothing here performs I/O or reads a clock. Every command carries the time it happened
//! and every rule is a plain synchronous `decide(&self, command) -> Result<Vec<Event>, _>`
//! function on its aggregate, so the whole rule book can be tested without a database,
//! a network or a runtime. The aggregates implement [`cqrs_es::Aggregate`] only to give
//! the rest of the system (and the given/when/then tests) the shape cqrs-es users expect;
//! storage and dispatch live in other crates.
//!
//! Money is integer halalas everywhere (1 SAR = 100 halalas), arithmetic on it is
//! checked, and rounding is explicit: VAT once per document (ZATCA BR-S-09), half away
//! from zero.

pub mod commission;
mod events;
pub mod ids;
pub mod input;
pub mod invoice;
pub mod lead;
pub mod money;
pub mod partner;
pub mod payment;
pub mod payout;
pub mod personal;
pub mod phase2;
pub mod plan;
pub mod provider_reconciliation;
pub mod sequence;
pub mod submission;
pub mod upcast;
pub mod vat;
pub mod zatca;

pub use commission::{CommissionCommand, CommissionError, CommissionEvent, PartnerCommission};
pub use ids::stream_id;
pub use invoice::{Invoice, InvoiceCommand, InvoiceError, InvoiceEvent, IssueInvoice};
pub use lead::{Lead, LeadCommand, LeadError, LeadEvent};
pub use money::{Currency, Halalas, Money, MoneyError};
pub use partner::{
    Partner, PartnerCommand, PartnerError, PartnerEvent, PartnerProgram, PartnerProgramCommand,
    PartnerProgramError, PartnerProgramEvent,
};
pub use payment::{Payment, PaymentCommand, PaymentError, PaymentEvent};
pub use payout::{PayoutBatch, PayoutCommand, PayoutError, PayoutEvent};
pub use plan::Plan;
pub use sequence::{DocumentSequence, SequenceCommand, SequenceError, SequenceEvent};
pub use vat::{DocumentTotals, VAT_RATE_BPS};
