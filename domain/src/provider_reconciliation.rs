//! A payment provider's reconciliation: what the provider (Moyasar) says about the payments of
//! one Riyadh day, against what the ledger recorded of them. One stream per provider and day
//! (`provider_reconciliation-moyasar:2026-12-06`); each run that finds something other than the
//! run before it is an event, [`ProviderReconciliationEvent::ReconciliationRecorded`], carrying
//! every finding.
//!
//! The rules are the comparison itself ([`compare`]), pure: the application lists the
//! provider's payments of the day (all pages) and the ledger's, and this decides what differs.
//! A payment is matched by its provider id. Kinds of finding ([`FindingKind`]):
//!
//! - `missing_in_ledger`: the provider has a payment the ledger never recorded (a webhook lost
//!   and not yet swept, or a payment that names no invoice of ours: then `invoice_id` is
//!   empty and the detail says so);
//! - `unknown_to_provider`: the ledger recorded a payment the provider does not know;
//! - `amount_differs`, `status_differs`, `fee_differs`, `refund_differs`: both know the
//!   payment and disagree on that one thing (each difference is a finding of its own).
//!
//! A run whose findings and counts equal the last recorded run's adds nothing, so a daily job
//! run again after a restart does not grow the stream. The clock is an input, as everywhere in
//! the domain.

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

/// Payments one run compares at most, on either side: a day of a B2B SaaS is tens of
/// payments; a bound keeps one event (which carries the findings) a bounded size.
pub const MAX_PAYMENTS_PER_RUN: usize = 10_000;

/// Characters of a provider name: `moyasar` today.
pub const MAX_PROVIDER_CHARS: usize = 32;

/// A payment as one side (the provider or the ledger) tells it. Amounts in halalas; the
/// status in the provider's words (`paid`, `refunded`, `failed`, ...), which are also the
/// ledger's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSnapshot {
    pub payment_id: String,
    pub status: String,
    pub amount_halalas: i64,
    pub fee_halalas: i64,
    pub refunded_halalas: i64,
    /// Our invoice the payment belongs to, when it names one we know.
    #[serde(default)]
    pub invoice_id: Option<String>,
}

/// What kind of difference a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    MissingInLedger,
    UnknownToProvider,
    AmountDiffers,
    StatusDiffers,
    FeeDiffers,
    RefundDiffers,
}

impl FindingKind {
    pub const ALL: [FindingKind; 6] = [
        FindingKind::MissingInLedger,
        FindingKind::UnknownToProvider,
        FindingKind::AmountDiffers,
        FindingKind::StatusDiffers,
        FindingKind::FeeDiffers,
        FindingKind::RefundDiffers,
    ];

    /// The wire name (`missing_in_ledger`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::MissingInLedger => "missing_in_ledger",
            FindingKind::UnknownToProvider => "unknown_to_provider",
            FindingKind::AmountDiffers => "amount_differs",
            FindingKind::StatusDiffers => "status_differs",
            FindingKind::FeeDiffers => "fee_differs",
            FindingKind::RefundDiffers => "refund_differs",
        }
    }
}

/// One difference between the provider and the ledger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub payment_id: String,
    pub invoice_id: Option<String>,
    /// What the ledger says (a status, or halalas as a number), when it knows the payment.
    pub ledger: Option<String>,
    /// What the provider says, when it knows the payment.
    pub provider: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderReconciliationCommand {
    /// Compare the provider's payments of `date` with the ledger's and record what differs.
    RecordRun {
        provider: String,
        /// The Riyadh day, `YYYY-MM-DD`.
        date: String,
        provider_payments: Vec<PaymentSnapshot>,
        ledger_payments: Vec<PaymentSnapshot>,
        at: OffsetDateTime,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderReconciliationEvent {
    ReconciliationRecorded {
        provider: String,
        date: String,
        /// 1 for the first recorded run of this provider and day, then 2, ...
        run: u32,
        provider_payments: u64,
        ledger_payments: u64,
        findings: Vec<Finding>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

crate::events::event_types!(ProviderReconciliationEvent {
    ReconciliationRecorded
});

/// The rules a run can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderReconciliationError {
    #[error("the provider must be 1 to 32 lower-case letters, found {provider:?}")]
    InvalidProvider { provider: String },
    #[error("the date must be a calendar day written YYYY-MM-DD, found {date:?}")]
    InvalidDate { date: String },
    #[error("this stream reconciles {recorded}, not {reported}")]
    OtherDay { recorded: String, reported: String },
    #[error("payment {payment_id} is listed twice by the {side}")]
    DuplicatePayment {
        payment_id: String,
        side: &'static str,
    },
    #[error("a payment with no id was listed by the {side}")]
    PaymentIdRequired { side: &'static str },
    #[error("a run compares at most 10000 payments per side, found {count}")]
    TooManyPayments { count: usize },
}

/// The aggregate id of a provider's day: `moyasar:2026-12-06`.
pub fn reconciliation_id(provider: &str, date: &str) -> String {
    format!("{provider}:{date}")
}

/// One provider's day, folded from its runs: the latest run's findings and counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderReconciliation {
    key: Option<(String, String)>,
    runs: u32,
    provider_payments: u64,
    ledger_payments: u64,
    findings: Vec<Finding>,
}

impl ProviderReconciliation {
    /// The latest run's findings.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// How many runs were recorded.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    pub fn decide(
        &self,
        command: ProviderReconciliationCommand,
    ) -> Result<Vec<ProviderReconciliationEvent>, ProviderReconciliationError> {
        let ProviderReconciliationCommand::RecordRun {
            provider,
            date,
            provider_payments,
            ledger_payments,
            at,
        } = command;
        check_provider(&provider)?;
        check_date(&date)?;
        if let Some((recorded_provider, recorded_date)) = &self.key {
            if (recorded_provider, recorded_date) != (&provider, &date) {
                return Err(ProviderReconciliationError::OtherDay {
                    recorded: reconciliation_id(recorded_provider, recorded_date),
                    reported: reconciliation_id(&provider, &date),
                });
            }
        }
        let findings = compare(&provider_payments, &ledger_payments)?;
        let counts = (provider_payments.len() as u64, ledger_payments.len() as u64);
        let unchanged = self.runs > 0
            && findings == self.findings
            && counts == (self.provider_payments, self.ledger_payments);
        if unchanged {
            return Ok(Vec::new());
        }
        Ok(vec![ProviderReconciliationEvent::ReconciliationRecorded {
            provider,
            date,
            run: self.runs + 1,
            provider_payments: counts.0,
            ledger_payments: counts.1,
            findings,
            at,
        }])
    }
}

fn check_provider(provider: &str) -> Result<(), ProviderReconciliationError> {
    let valid = !provider.is_empty()
        && provider.len() <= MAX_PROVIDER_CHARS
        && provider.bytes().all(|b| b.is_ascii_lowercase());
    if valid {
        Ok(())
    } else {
        Err(ProviderReconciliationError::InvalidProvider {
            provider: provider.chars().take(MAX_PROVIDER_CHARS + 1).collect(),
        })
    }
}

/// Whether `date` is a real calendar day written `YYYY-MM-DD`.
pub fn is_calendar_day(date: &str) -> bool {
    let bytes = date.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        date[..4].parse::<i32>(),
        date[5..7].parse::<u8>(),
        date[8..].parse::<u8>(),
    ) else {
        return false;
    };
    let Ok(month) = time::Month::try_from(month) else {
        return false;
    };
    time::Date::from_calendar_date(year, month, day).is_ok()
}

fn check_date(date: &str) -> Result<(), ProviderReconciliationError> {
    if is_calendar_day(date) {
        Ok(())
    } else {
        Err(ProviderReconciliationError::InvalidDate {
            date: date.chars().take(20).collect(),
        })
    }
}

fn by_id<'a>(
    payments: &'a [PaymentSnapshot],
    side: &'static str,
) -> Result<BTreeMap<&'a str, &'a PaymentSnapshot>, ProviderReconciliationError> {
    if payments.len() > MAX_PAYMENTS_PER_RUN {
        return Err(ProviderReconciliationError::TooManyPayments {
            count: payments.len(),
        });
    }
    let mut map = BTreeMap::new();
    for payment in payments {
        if payment.payment_id.trim().is_empty() {
            return Err(ProviderReconciliationError::PaymentIdRequired { side });
        }
        if map.insert(payment.payment_id.as_str(), payment).is_some() {
            return Err(ProviderReconciliationError::DuplicatePayment {
                payment_id: payment.payment_id.clone(),
                side,
            });
        }
    }
    Ok(map)
}

/// Every difference between the provider's payments and the ledger's, sorted (by kind, then
/// payment id).
pub fn compare(
    provider_payments: &[PaymentSnapshot],
    ledger_payments: &[PaymentSnapshot],
) -> Result<Vec<Finding>, ProviderReconciliationError> {
    let theirs = by_id(provider_payments, "provider")?;
    let ours = by_id(ledger_payments, "ledger")?;
    let ids: BTreeSet<&str> = theirs.keys().chain(ours.keys()).copied().collect();
    let mut findings = Vec::new();
    for id in ids {
        match (theirs.get(id), ours.get(id)) {
            (Some(provider), None) => findings.push(missing_in_ledger(provider)),
            (None, Some(ledger)) => findings.push(Finding {
                kind: FindingKind::UnknownToProvider,
                payment_id: id.to_owned(),
                invoice_id: ledger.invoice_id.clone(),
                ledger: Some(ledger.status.clone()),
                provider: None,
                detail: format!(
                    "the ledger recorded payment {id} ({}, {} halalas) and the provider does not know it",
                    ledger.status, ledger.amount_halalas
                ),
            }),
            (Some(provider), Some(ledger)) => differences(provider, ledger, &mut findings),
            (None, None) => {}
        }
    }
    findings.sort();
    Ok(findings)
}

fn missing_in_ledger(provider: &PaymentSnapshot) -> Finding {
    let id = &provider.payment_id;
    let detail = match &provider.invoice_id {
        Some(invoice_id) => format!(
            "the provider has payment {id} ({}, {} halalas) for invoice {invoice_id} and the ledger never recorded it",
            provider.status, provider.amount_halalas
        ),
        None => format!(
            "the provider has payment {id} ({}, {} halalas) that names no invoice of ours (unmatched)",
            provider.status, provider.amount_halalas
        ),
    };
    Finding {
        kind: FindingKind::MissingInLedger,
        payment_id: id.clone(),
        invoice_id: provider.invoice_id.clone(),
        ledger: None,
        provider: Some(provider.status.clone()),
        detail,
    }
}

fn differences(provider: &PaymentSnapshot, ledger: &PaymentSnapshot, out: &mut Vec<Finding>) {
    let id = &provider.payment_id;
    let invoice_id = ledger.invoice_id.clone().or(provider.invoice_id.clone());
    let mut differ = |kind: FindingKind,
                      what: &str,
                      ledger_value: String,
                      provider_value: String| {
        if ledger_value != provider_value {
            out.push(Finding {
                kind,
                payment_id: id.clone(),
                invoice_id: invoice_id.clone(),
                detail: format!(
                    "payment {id}: the ledger has {what} {ledger_value}, the provider {provider_value}"
                ),
                ledger: Some(ledger_value),
                provider: Some(provider_value),
            });
        }
    };
    differ(
        FindingKind::AmountDiffers,
        "amount",
        ledger.amount_halalas.to_string(),
        provider.amount_halalas.to_string(),
    );
    differ(
        FindingKind::StatusDiffers,
        "status",
        ledger.status.clone(),
        provider.status.clone(),
    );
    differ(
        FindingKind::FeeDiffers,
        "fee",
        ledger.fee_halalas.to_string(),
        provider.fee_halalas.to_string(),
    );
    differ(
        FindingKind::RefundDiffers,
        "refunded",
        ledger.refunded_halalas.to_string(),
        provider.refunded_halalas.to_string(),
    );
}

impl Aggregate for ProviderReconciliation {
    const TYPE: &'static str = "provider_reconciliation";
    type Command = ProviderReconciliationCommand;
    type Event = ProviderReconciliationEvent;
    type Error = ProviderReconciliationError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        let ProviderReconciliationEvent::ReconciliationRecorded {
            provider,
            date,
            run,
            provider_payments,
            ledger_payments,
            findings,
            ..
        } = event;
        self.key = Some((provider, date));
        self.runs = run;
        self.provider_payments = provider_payments;
        self.ledger_payments = ledger_payments;
        self.findings = findings;
    }
}

#[cfg(test)]
pub(crate) mod tests;
