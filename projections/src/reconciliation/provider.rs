//! The reconciliation against a payment provider (Moyasar), the part of the `reconciliation`
//! read model that the provider's answers feed:
//!
//! - `provider_payments`: each Moyasar payment as the ledger recorded it (its latest report:
//!   status, amount, fee, cumulative refund) and when it was first reported; what the
//!   reconciliation of a Riyadh day compares Moyasar's list with ([`ledger_payments_between`]).
//! - `provider_reconciliation_runs` and `…_findings`: the latest recorded run of each provider's
//!   day and its findings ([`domain::provider_reconciliation`] decides them), replaced as a whole
//!   by a later run of the same day.
//!
//! The findings are served with the ledger's own mismatches by [`super::report_page`], after
//! them and a page at a time ([`findings_after`]), each with its `source` (`moyasar`); their
//! count per kind is kept in `reconciliation_counts` under the provider's name.

use std::collections::BTreeMap;

use adapters::sql::{SqlDb, SqlTx};
use domain::payment::PaymentEvent;
use domain::provider_reconciliation::{PaymentSnapshot, ProviderReconciliationEvent};
use serde::Serialize;

use crate::{micros, ProjectionError};

/// Runs [`runs`] lists at most (newest first): a year of days and more.
pub const MAX_RUNS_LISTED: i64 = 400;

/// Folds one payment event into `provider_payments`.
pub(super) async fn apply_payment(
    tx: &mut SqlTx,
    event: &PaymentEvent,
    at: time::OffsetDateTime,
) -> Result<(), ProjectionError> {
    let payment = event.payment();
    tx.write(
        "INSERT INTO provider_payments (payment_id, invoice_id, moyasar_invoice_id, status, amount_halalas, \
         fee_halalas, refunded_halalas, first_reported_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (payment_id) DO UPDATE SET invoice_id = COALESCE(excluded.invoice_id, provider_payments.invoice_id), \
         moyasar_invoice_id = COALESCE(excluded.moyasar_invoice_id, provider_payments.moyasar_invoice_id), \
         status = excluded.status, amount_halalas = excluded.amount_halalas, fee_halalas = excluded.fee_halalas, \
         refunded_halalas = excluded.refunded_halalas",
        &[
            payment.payment_id.as_str().into(),
            payment.invoice_id.clone().into(),
            payment.moyasar_invoice_id.clone().into(),
            event.status().as_str().into(),
            payment.amount_halalas.into(),
            payment.fee_halalas.into(),
            payment.refunded_halalas.into(),
            micros(at).into(),
        ],
    )
    .await?;
    Ok(())
}

/// Folds one provider reconciliation event: its day's run and findings replace the last.
pub(super) async fn apply_run(
    tx: &mut SqlTx,
    event: ProviderReconciliationEvent,
) -> Result<(), ProjectionError> {
    let ProviderReconciliationEvent::ReconciliationRecorded {
        provider,
        date,
        run,
        provider_payments,
        ledger_payments,
        findings,
        at,
    } = event;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    tx.write(
        "INSERT INTO provider_reconciliation_runs (provider, day, run, recorded_at_us, provider_payments, \
         ledger_payments, finding_count) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider, day) DO UPDATE SET \
         run = excluded.run, recorded_at_us = excluded.recorded_at_us, provider_payments = excluded.provider_payments, \
         ledger_payments = excluded.ledger_payments, finding_count = excluded.finding_count",
        &[
            provider.as_str().into(),
            date.as_str().into(),
            i64::from(run).into(),
            micros(at).into(),
            count(provider_payments).into(),
            count(ledger_payments).into(),
            count(findings.len() as u64).into(),
        ],
    )
    .await?;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for row in tx
        .fetch_all(
            "SELECT kind, COUNT(*) FROM provider_reconciliation_findings WHERE provider = ? AND day = ? \
             GROUP BY kind",
            &[provider.as_str().into(), date.as_str().into()],
        )
        .await?
    {
        *counts.entry(row.text(0)?).or_default() -= row.i64(1)?;
    }
    for finding in &findings {
        *counts.entry(finding.kind.as_str().to_owned()).or_default() += 1;
    }
    for (kind, delta) in counts {
        super::maintained::add_to_count(tx, &provider, &kind, delta).await?;
    }
    tx.write(
        "DELETE FROM provider_reconciliation_findings WHERE provider = ? AND day = ?",
        &[provider.as_str().into(), date.as_str().into()],
    )
    .await?;
    for finding in findings {
        tx.write(
            "INSERT INTO provider_reconciliation_findings (provider, day, kind, payment_id, invoice_id, \
             ledger_value, provider_value, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                provider.as_str().into(),
                date.as_str().into(),
                finding.kind.as_str().into(),
                finding.payment_id.into(),
                finding.invoice_id.into(),
                finding.ledger.into(),
                finding.provider.into(),
                finding.detail.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The ledger's Moyasar payments first reported in `[from_us, to_us)`, and those with the
/// given ids whenever they were reported (a payment Moyasar lists on a day we first heard of
/// it on another).
pub async fn ledger_payments(
    db: &SqlDb,
    from_us: i64,
    to_us: i64,
    also_ids: &[String],
) -> Result<Vec<PaymentSnapshot>, ProjectionError> {
    let mut payments = std::collections::BTreeMap::new();
    let snapshot = |row: &adapters::sql::SqlRow| -> Result<PaymentSnapshot, ProjectionError> {
        Ok(PaymentSnapshot {
            payment_id: row.text(0)?,
            status: row.text(1)?,
            amount_halalas: row.i64(2)?,
            fee_halalas: row.i64(3)?,
            refunded_halalas: row.i64(4)?,
            invoice_id: row.opt_text(5)?,
        })
    };
    const COLUMNS: &str =
        "SELECT payment_id, status, amount_halalas, fee_halalas, refunded_halalas, invoice_id FROM provider_payments";
    for row in db
        .fetch_all(
            &format!("{COLUMNS} WHERE first_reported_at_us >= ? AND first_reported_at_us < ?"),
            &[from_us.into(), to_us.into()],
        )
        .await?
    {
        let payment = snapshot(&row)?;
        payments.insert(payment.payment_id.clone(), payment);
    }
    for id in also_ids {
        if payments.contains_key(id) {
            continue;
        }
        if let Some(row) = db
            .fetch_optional(
                &format!("{COLUMNS} WHERE payment_id = ?"),
                &[id.as_str().into()],
            )
            .await?
        {
            let payment = snapshot(&row)?;
            payments.insert(payment.payment_id.clone(), payment);
        }
    }
    Ok(payments.into_values().collect())
}

/// The latest run of one provider's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderRun {
    pub provider: String,
    pub date: String,
    pub run: i64,
    /// RFC 3339.
    pub recorded_at: String,
    pub provider_payments: i64,
    pub ledger_payments: i64,
    pub finding_count: i64,
}

/// The latest run of each provider's day, newest day first (at most [`MAX_RUNS_LISTED`]).
pub async fn runs(db: &SqlDb) -> Result<Vec<ProviderRun>, ProjectionError> {
    db.fetch_all(
        "SELECT provider, day, run, recorded_at_us, provider_payments, ledger_payments, finding_count \
         FROM provider_reconciliation_runs ORDER BY day DESC, provider LIMIT ?",
        &[MAX_RUNS_LISTED.into()],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(ProviderRun {
            provider: row.text(0)?,
            date: row.text(1)?,
            run: row.i64(2)?,
            recorded_at: crate::rfc3339(row.i64(3)?),
            provider_payments: row.i64(4)?,
            ledger_payments: row.i64(5)?,
            finding_count: row.i64(6)?,
        })
    })
    .collect()
}

/// Whether a run of `provider`'s `date` was recorded.
pub async fn has_run(db: &SqlDb, provider: &str, date: &str) -> Result<bool, ProjectionError> {
    Ok(db
        .fetch_optional(
            "SELECT 1 FROM provider_reconciliation_runs WHERE provider = ? AND day = ?",
            &[provider.into(), date.into()],
        )
        .await?
        .is_some())
}

/// One finding of a provider's day, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFinding {
    pub provider: String,
    pub date: String,
    pub kind: String,
    pub payment_id: String,
    pub invoice_id: Option<String>,
    pub ledger_value: Option<String>,
    pub provider_value: Option<String>,
    pub detail: String,
}

/// How many findings the latest runs hold, per provider and kind (the metrics' gauge).
pub async fn finding_counts(db: &SqlDb) -> Result<Vec<(String, String, i64)>, ProjectionError> {
    db.fetch_all(
        "SELECT provider, kind, COUNT(*) FROM provider_reconciliation_findings GROUP BY provider, kind",
        &[],
    )
    .await?
    .iter()
    .map(|row| Ok((row.text(0)?, row.text(1)?, row.i64(2)?)))
    .collect()
}

/// Where a finding stands in the list: newest day first, then provider, kind and payment id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingKey {
    pub provider: String,
    pub date: String,
    pub kind: String,
    pub payment_id: String,
}

impl StoredFinding {
    pub fn key(&self) -> FindingKey {
        FindingKey {
            provider: self.provider.clone(),
            date: self.date.clone(),
            kind: self.kind.clone(),
            payment_id: self.payment_id.clone(),
        }
    }
}

/// At most `limit` findings of the latest runs after `after` (from the first without), newest
/// day first, then provider, kind and payment id (index `provider_reconciliation_findings_listed`).
pub async fn findings_after(
    db: &SqlDb,
    after: Option<&FindingKey>,
    limit: i64,
) -> Result<Vec<StoredFinding>, ProjectionError> {
    const SELECT: &str =
        "SELECT provider, day, kind, payment_id, invoice_id, ledger_value, provider_value, \
         detail FROM provider_reconciliation_findings";
    const ORDER: &str = "ORDER BY day DESC, provider, kind, payment_id LIMIT ?";
    let rows = match after {
        None => {
            db.fetch_all(&format!("{SELECT} {ORDER}"), &[limit.into()])
                .await?
        }
        Some(key) => {
            let sql = format!(
                "{SELECT} WHERE day < ? OR (day = ? AND (provider > ? OR (provider = ? AND \
                 (kind > ? OR (kind = ? AND payment_id > ?))))) {ORDER}"
            );
            let params = [
                key.date.as_str().into(),
                key.date.as_str().into(),
                key.provider.as_str().into(),
                key.provider.as_str().into(),
                key.kind.as_str().into(),
                key.kind.as_str().into(),
                key.payment_id.as_str().into(),
                limit.into(),
            ];
            db.fetch_all(&sql, &params).await?
        }
    };
    rows.iter()
        .map(|row| {
            Ok(StoredFinding {
                provider: row.text(0)?,
                date: row.text(1)?,
                kind: row.text(2)?,
                payment_id: row.text(3)?,
                invoice_id: row.opt_text(4)?,
                ledger_value: row.opt_text(5)?,
                provider_value: row.opt_text(6)?,
                detail: row.text(7)?,
            })
        })
        .collect()
}

/// Open invoices the sweep takes per pass at most (the oldest-seen first is the sweep's
/// business; this bounds one read).
pub const MAX_OPEN_INVOICES: i64 = 5_000;

/// An invoice still waiting for (part of) its payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInvoice {
    pub invoice_id: String,
    pub moyasar_invoice_id: Option<String>,
}

/// Issued or partly paid invoices, with their Moyasar invoice id when one is linked (at most
/// [`MAX_OPEN_INVOICES`]).
pub async fn open_invoices(db: &SqlDb) -> Result<Vec<OpenInvoice>, ProjectionError> {
    db.fetch_all(
        "SELECT invoice_id, moyasar_invoice_id FROM reconciliation_invoices \
         WHERE status IN ('issued', 'partially_paid') ORDER BY invoice_id LIMIT ?",
        &[MAX_OPEN_INVOICES.into()],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(OpenInvoice {
            invoice_id: row.text(0)?,
            moyasar_invoice_id: row.opt_text(1)?,
        })
    })
    .collect()
}

/// Our invoice a provider's payment belongs to: the one its metadata names, if we issued it,
/// else the one linked to its Moyasar invoice id.
pub async fn invoice_of_payment(
    db: &SqlDb,
    our_reference: Option<&str>,
    moyasar_invoice_id: Option<&str>,
) -> Result<Option<String>, ProjectionError> {
    if let Some(reference) = our_reference {
        if let Some(row) = db
            .fetch_optional(
                "SELECT invoice_id FROM reconciliation_invoices WHERE invoice_id = ?",
                &[reference.into()],
            )
            .await?
        {
            return Ok(Some(row.text(0)?));
        }
    }
    let Some(theirs) = moyasar_invoice_id else {
        return Ok(None);
    };
    Ok(db
        .fetch_optional(
            "SELECT invoice_id FROM reconciliation_invoices WHERE moyasar_invoice_id = ? ORDER BY invoice_id LIMIT 1",
            &[theirs.into()],
        )
        .await?
        .map(|row| row.text(0))
        .transpose()?)
}
