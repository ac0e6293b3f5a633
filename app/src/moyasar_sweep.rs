//! The missed-payment sweep and the daily reconciliation against Moyasar: the two places where
//! revledger asks Moyasar what happened instead of waiting to be told.
//!
//! **Why.** Moyasar sends a webhook once (and retries a few times); if every attempt is lost,
//! the payment confirmation is lost with it. The sweep, run by the leading replica every
//! [`SweepConfig::pass_interval`], looks at each open (issued or partly paid) invoice:
//!
//! - one with a Moyasar invoice is checked once [`SweepConfig::delay`] after the sweep first saw
//!   it open (default [`DEFAULT_DELAY`], `REVLEDGER_MOYASAR_SWEEP_DELAY_SECS`);
//! - every open invoice is checked again once a day ([`DAILY`]); one with no Moyasar invoice
//!   linked is looked up by our id in the Moyasar invoices' metadata.
//!
//! A check reads the Moyasar invoice with its payments (`GET /invoices/{id}`) and records each
//! payment **through the webhook's own mapping** ([`crate::webhooks::moyasar_payment_command`])
//! under the **webhook's own command id** ([`crate::webhooks::moyasar_payment_command_id`],
//! derived from the payment's id, status and refunded amount). A webhook arriving after the
//! sweep therefore sends a command already applied, and is answered as such; a sweep after a
//! webhook appends nothing; nothing is counted twice. The invoice becomes paid the usual way:
//! the payments process manager reacts to the recorded payment.
//!
//! **Reconciliation.** [`Sweeper::reconcile_day`] lists Moyasar's payments created in one Riyadh
//! day (every page), reads the ledger's payments first reported that day, asks Moyasar about
//! each of ours it did not list (`GET /payments/{id}`: listed on another day, or unknown to it),
//! and records the comparison as a run of the day's
//! [`domain::provider_reconciliation::ProviderReconciliation`] stream, which the
//! domain decides. The sweep runs it once for each finished Riyadh day (the day before today),
//! and `revledger reconcile --provider moyasar --date …` for any day.
//!
//! Moyasar's API answers the key's own mode: a live key (`sk_live_…`) sees live payments, a
//! test key test ones; the webhook's `live`/sandbox rule is the key's choice here.
//!
//! Settlements (what Moyasar paid out to the bank, against `gateway_clearing`/`cash`) are not
//! compared: the payment API revledger calls (invoices, payments) exposes no settlement or
//! payout object, only each payment's `fee`, which is compared.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::moyasar_api::{MoyasarApiError, MoyasarClient};
use adapters::sql::SqlDb;
use adapters::store::EventMetadata;
use adapters::webhooks::moyasar::MoyasarPayment;
use domain::provider_reconciliation::{
    compare, is_calendar_day, reconciliation_id, Finding, PaymentSnapshot,
    ProviderReconciliationCommand, ProviderReconciliationError,
};
use projections::reconciliation::provider;
use projections::ProjectionError;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use tokio::sync::watch;
use uuid::Uuid;

use crate::command::{CommandEnvelope, CommandError};
use crate::handlers::Handlers;
use crate::webhooks::{moyasar_payment_command, moyasar_payment_command_id, payment_status};

/// How long an invoice with a Moyasar invoice waits for its webhook before the sweep asks.
/// Moyasar's own retries of a failed delivery span minutes; ten minutes lets the ordinary path
/// win almost always and still confirms a lost payment the same quarter hour.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(10 * 60);

/// How often every open invoice is checked, whatever it has.
pub const DAILY: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest pause between two passes: a pass is a read of the open invoices and calls only
/// for those due, so a minute costs nothing and keeps the delay's promise to the minute.
pub const MAX_PASS_INTERVAL: Duration = Duration::from_secs(60);

/// Invoices checked with Moyasar per pass at most: at Moyasar's rate limits a pass stays short;
/// the rest are due again on the next pass.
pub const MAX_CHECKS_PER_PASS: usize = 200;

/// The provider name of this module's reconciliation runs.
pub const PROVIDER: &str = "moyasar";

/// Riyadh is UTC+3 all year (no daylight saving).
pub const RIYADH: UtcOffset = match UtcOffset::from_hms(3, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// When the sweep looks.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// How long an open invoice with a Moyasar invoice waits before it is checked.
    pub delay: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            delay: DEFAULT_DELAY,
        }
    }
}

impl SweepConfig {
    /// A quarter of the delay, between one second and [`MAX_PASS_INTERVAL`].
    pub fn pass_interval(&self) -> Duration {
        (self.delay / 4).clamp(Duration::from_secs(1), MAX_PASS_INTERVAL)
    }
}

/// Why a sweep step or a reconciliation did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Moyasar(#[from] MoyasarApiError),
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
    #[error(transparent)]
    Store(#[from] adapters::store::StoreError),
    #[error("the date must be a calendar day written YYYY-MM-DD, found {0:?}")]
    InvalidDate(String),
    #[error("recording the reconciliation: {0}")]
    Command(String),
}

/// What one sweep pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Invoices checked with Moyasar.
    pub checked: usize,
    /// Payment states recorded that the ledger did not have (a lost webhook recovered).
    pub recovered: usize,
    /// Checks that failed (Moyasar unavailable, a refusal); tried again on a later pass.
    pub failed: usize,
}

/// What the reconciliation of one day found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayReport {
    pub date: String,
    pub provider_payments: usize,
    pub ledger_payments: usize,
    pub findings: Vec<Finding>,
    /// False when the same findings were recorded by an earlier run (nothing appended).
    pub recorded: bool,
}

/// The sweep and the reconciliation, with one Moyasar client.
pub struct Sweeper {
    handlers: Arc<Handlers>,
    client: Arc<MoyasarClient>,
    config: SweepConfig,
}

impl Sweeper {
    pub fn new(handlers: Arc<Handlers>, client: Arc<MoyasarClient>, config: SweepConfig) -> Self {
        // Exported at 0 from the start, so that the first failure is an increase to
        // Prometheus (`RevledgerMoyasarSweepFailing`).
        for counter in [
            "revledger_moyasar_sweep_checks_total",
            "revledger_moyasar_sweep_recovered_total",
            "revledger_moyasar_sweep_failures_total",
            "revledger_moyasar_reconciliation_findings_total",
        ] {
            metrics::counter!(counter).increment(0);
        }
        Sweeper {
            handlers,
            client,
            config,
        }
    }

    fn db(&self) -> SqlDb {
        self.handlers.store.sql()
    }

    /// Runs passes until `stopped`: the sweep, then the reconciliation of yesterday (Riyadh)
    /// when it has no run yet.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let interval = self.config.pass_interval();
        loop {
            let now = adapters::clock::now_micros();
            match self.pass(now).await {
                Ok(report) if report.checked > 0 => {
                    tracing::info!(
                        checked = report.checked,
                        recovered = report.recovered,
                        failed = report.failed,
                        "Moyasar sweep pass"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "Moyasar sweep pass failed; trying again"),
            }
            let yesterday = riyadh_date(now - time::Duration::days(1));
            match provider::has_run(&self.db(), PROVIDER, &yesterday).await {
                Ok(true) => {}
                Ok(false) => match self.reconcile_day(&yesterday, now).await {
                    Ok(report) => {
                        tracing::info!(date = %report.date, findings = report.findings.len(), "Moyasar reconciliation recorded")
                    }
                    Err(error) => {
                        tracing::warn!(date = %yesterday, %error, "Moyasar reconciliation failed; trying again")
                    }
                },
                Err(error) => tracing::warn!(%error, "cannot read the reconciliation runs"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// One pass at `now`: every open invoice due is checked with Moyasar (at most
    /// [`MAX_CHECKS_PER_PASS`]). The sweep's state (`pm_moyasar_sweep`) gains the invoices newly
    /// open and loses those no longer open.
    pub async fn pass(&self, now: OffsetDateTime) -> Result<PassReport, SweepError> {
        let db = self.db();
        let now_us = adapters::clock::unix_micros(now);
        let open = provider::open_invoices(&db).await?;
        let mut seen: HashMap<String, (i64, Option<i64>)> = HashMap::new();
        for row in db
            .fetch_all(
                "SELECT invoice_id, first_seen_at_us, last_checked_at_us FROM pm_moyasar_sweep",
                &[],
            )
            .await?
        {
            seen.insert(row.text(0)?, (row.i64(1)?, row.opt_i64(2)?));
        }
        let mut report = PassReport::default();
        for invoice in &open {
            let Some(&(first_seen_us, last_checked_us)) = seen.get(&invoice.invoice_id) else {
                db.execute_derived(
                    "INSERT INTO pm_moyasar_sweep (invoice_id, first_seen_at_us, last_checked_at_us) \
                     VALUES (?, ?, NULL) ON CONFLICT (invoice_id) DO NOTHING",
                    &[invoice.invoice_id.as_str().into(), now_us.into()],
                )
                .await?;
                continue;
            };
            if report.checked + report.failed >= MAX_CHECKS_PER_PASS
                || !self.due(invoice, first_seen_us, last_checked_us, now_us)
            {
                continue;
            }
            metrics::counter!("revledger_moyasar_sweep_checks_total").increment(1);
            let checked = match self.check(invoice, now).await {
                Ok(recovered) => {
                    report.checked += 1;
                    report.recovered += recovered;
                    metrics::counter!("revledger_moyasar_sweep_recovered_total")
                        .increment(recovered as u64);
                    true
                }
                Err(error) => {
                    report.failed += 1;
                    metrics::counter!("revledger_moyasar_sweep_failures_total").increment(1);
                    tracing::warn!(invoice_id = %invoice.invoice_id, %error, "Moyasar sweep check failed");
                    // A refusal gives the same answer again: that check is done until the next
                    // day's. Anything else is tried again on the next pass.
                    matches!(error, SweepError::Moyasar(MoyasarApiError::Rejected { .. }))
                }
            };
            if checked {
                db.execute_derived(
                    "UPDATE pm_moyasar_sweep SET last_checked_at_us = ? WHERE invoice_id = ?",
                    &[now_us.into(), invoice.invoice_id.as_str().into()],
                )
                .await?;
            }
        }
        // Forget invoices no longer open (only when the open list was read whole).
        if open.len() < provider::MAX_OPEN_INVOICES as usize {
            let open_ids: std::collections::HashSet<&str> = open
                .iter()
                .map(|invoice| invoice.invoice_id.as_str())
                .collect();
            for closed in seen.keys().filter(|id| !open_ids.contains(id.as_str())) {
                db.execute_derived(
                    "DELETE FROM pm_moyasar_sweep WHERE invoice_id = ?",
                    &[closed.as_str().into()],
                )
                .await?;
            }
        }
        Ok(report)
    }

    /// Whether an open invoice is due for a check at `now_us`: one with a Moyasar invoice once
    /// the delay has passed since it was first seen open and it was never checked; any once a
    /// day.
    fn due(
        &self,
        invoice: &provider::OpenInvoice,
        first_seen_us: i64,
        last_checked_us: Option<i64>,
        now_us: i64,
    ) -> bool {
        let first_check_due = invoice.moyasar_invoice_id.is_some()
            && last_checked_us.is_none()
            && now_us - first_seen_us >= micros_of(self.config.delay);
        let daily_due = now_us - last_checked_us.unwrap_or(first_seen_us) >= micros_of(DAILY);
        first_check_due || daily_due
    }

    /// Asks Moyasar about one open invoice and records every payment it reports; returns how
    /// many payment states were new to the ledger.
    async fn check(
        &self,
        invoice: &provider::OpenInvoice,
        now: OffsetDateTime,
    ) -> Result<usize, SweepError> {
        let moyasar_invoice_id = match &invoice.moyasar_invoice_id {
            Some(id) => id.clone(),
            None => match self.client.find_invoice(&invoice.invoice_id).await? {
                Some(found) => found.id,
                None => return Ok(0),
            },
        };
        let found = self.client.get_invoice(&moyasar_invoice_id).await?;
        let mut recovered = 0;
        for payment in &found.payments {
            if self.record(payment, now).await? {
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Records what Moyasar reports of `payment` as its webhook would; true when the ledger did
    /// not have this state yet.
    pub async fn record(
        &self,
        payment: &MoyasarPayment,
        now: OffsetDateTime,
    ) -> Result<bool, SweepError> {
        let command_id = moyasar_payment_command_id(payment);
        // The state's own time, as a webhook would carry it, not the sweep's: a payment made at
        // 23:58 on the last day of a month belongs to that month's cash and revenue.
        let at = payment.updated_at.unwrap_or(payment.created_at).min(now);
        let envelope = CommandEnvelope {
            aggregate_id: payment.id.clone(),
            command_id,
            command: moyasar_payment_command(payment, at),
            metadata: EventMetadata {
                actor: Some("sweep:moyasar".into()),
                source: Some("sweep:moyasar".into()),
                correlation_id: Some(command_id),
                ..Default::default()
            },
            inbox: None,
            fresh_id: false,
        };
        match self.handlers.payments.execute(envelope).await {
            Ok(outcome) => Ok(!outcome.replayed && outcome.events_appended > 0),
            // What the payment's own rules refuse (a report contradicting what was recorded)
            // is a matter for the reconciliation, not a reason to stop the sweep.
            Err(CommandError::Rejected(rule)) => {
                tracing::warn!(payment_id = %payment.id, %rule, "Moyasar's report of a payment refused by its rules");
                Ok(false)
            }
            Err(other) => Err(SweepError::Command(other.to_string())),
        }
    }

    /// Compares Moyasar's payments of the Riyadh day `date` with the ledger's and records the
    /// run ([`domain::provider_reconciliation::ProviderReconciliation`]).
    pub async fn reconcile_day(
        &self,
        date: &str,
        now: OffsetDateTime,
    ) -> Result<DayReport, SweepError> {
        let (from, to) = riyadh_day(date).ok_or_else(|| SweepError::InvalidDate(date.into()))?;
        let db = self.db();
        let listed = self.client.list_payments_created(from, to).await?;
        let listed_ids: Vec<String> = listed.iter().map(|payment| payment.id.clone()).collect();
        let ledger = provider::ledger_payments(
            &db,
            adapters::clock::unix_micros(from),
            adapters::clock::unix_micros(to),
            &listed_ids,
        )
        .await?;
        let mut theirs = Vec::with_capacity(listed.len());
        for payment in &listed {
            theirs.push(self.snapshot(&db, payment).await?);
        }
        // Ours that Moyasar did not list that day: listed on another day, or unknown to it.
        for ours in &ledger {
            if listed_ids.contains(&ours.payment_id) {
                continue;
            }
            if let Some(payment) = self.client.get_payment(&ours.payment_id).await? {
                theirs.push(self.snapshot(&db, &payment).await?);
            }
        }
        let findings = compare(&theirs, &ledger).map_err(|e| SweepError::Command(e.to_string()))?;
        let command = ProviderReconciliationCommand::RecordRun {
            provider: PROVIDER.into(),
            date: date.into(),
            provider_payments: theirs.clone(),
            ledger_payments: ledger.clone(),
            at: now,
        };
        let outcome = self
            .handlers
            .provider_reconciliations
            .execute(CommandEnvelope {
                aggregate_id: reconciliation_id(PROVIDER, date),
                command_id: Uuid::new_v4(),
                command,
                metadata: EventMetadata {
                    actor: Some("reconcile:moyasar".into()),
                    source: Some("reconcile:moyasar".into()),
                    ..Default::default()
                },
                inbox: None,
                fresh_id: true,
            })
            .await
            .map_err(|error: CommandError<ProviderReconciliationError>| {
                SweepError::Command(error.to_string())
            })?;
        metrics::counter!("revledger_moyasar_reconciliation_findings_total")
            .increment(findings.len() as u64);
        Ok(DayReport {
            date: date.into(),
            provider_payments: theirs.len(),
            ledger_payments: ledger.len(),
            findings,
            recorded: outcome.events_appended > 0,
        })
    }

    /// A Moyasar payment as the reconciliation compares it, with our invoice it belongs to.
    async fn snapshot(
        &self,
        db: &SqlDb,
        payment: &MoyasarPayment,
    ) -> Result<PaymentSnapshot, SweepError> {
        let invoice_id = provider::invoice_of_payment(
            db,
            payment.our_invoice_reference(),
            payment.invoice_id.as_deref(),
        )
        .await?;
        Ok(PaymentSnapshot {
            payment_id: payment.id.clone(),
            status: payment_status(payment.status).as_str().to_owned(),
            amount_halalas: payment.amount_halalas,
            fee_halalas: payment.fee_halalas,
            refunded_halalas: payment.refunded_halalas,
            invoice_id,
        })
    }
}

fn micros_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The Riyadh day `at` falls in, `YYYY-MM-DD`.
pub fn riyadh_date(at: OffsetDateTime) -> String {
    let date = at.to_offset(RIYADH).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The instants `[start, end)` of the Riyadh day `date` (`YYYY-MM-DD`), or `None` when it is
/// not a calendar day.
pub fn riyadh_day(date: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    if !is_calendar_day(date) {
        return None;
    }
    let month = time::Month::try_from(date[5..7].parse::<u8>().ok()?).ok()?;
    let day =
        Date::from_calendar_date(date[..4].parse().ok()?, month, date[8..].parse().ok()?).ok()?;
    let start = PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_offset(RIYADH);
    Some((start, start + time::Duration::days(1)))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_riyadh_day_starts_at_nine_the_evening_before_in_utc() {
        let (start, end) = riyadh_day("2026-12-06").unwrap();
        assert_eq!(start, datetime!(2026-12-05 21:00 UTC));
        assert_eq!(end, datetime!(2026-12-06 21:00 UTC));
        assert_eq!(riyadh_day("2026-02-30"), None);
    }

    #[test]
    fn the_riyadh_date_of_an_instant_after_nine_in_the_evening_utc_is_the_next_day() {
        assert_eq!(riyadh_date(datetime!(2026-12-06 20:59 UTC)), "2026-12-06");
        assert_eq!(riyadh_date(datetime!(2026-12-06 21:00 UTC)), "2026-12-07");
    }

    #[test]
    fn the_pass_interval_is_a_quarter_of_the_delay_within_bounds() {
        let interval = |secs| {
            SweepConfig {
                delay: Duration::from_secs(secs),
            }
            .pass_interval()
        };
        assert_eq!(interval(1), Duration::from_secs(1));
        assert_eq!(interval(20), Duration::from_secs(5));
        assert_eq!(interval(600), MAX_PASS_INTERVAL);
    }
}
