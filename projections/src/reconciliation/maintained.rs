//! The open mismatch set, kept as the events arrive: `reconciliation_mismatches` holds exactly
//! what [`find_mismatches`] finds over every fact, and `reconciliation_counts` how many facts
//! were checked and how many mismatches are open of each kind, so a report reads neither every
//! fact nor every mismatch.
//!
//! After a batch folds its facts, the pure rules run again for the owners the batch may have
//! changed ([`Owner`]: whose rule found a mismatch), and for no one else:
//!
//! - each invoice, payment and commission the batch wrote;
//! - the invoices that recorded a payment it wrote; the payments naming an invoice it wrote, by
//!   our id or by a Moyasar invoice id that invoice had before or has after; the commissions on
//!   an invoice it wrote; the payouts a commission it wrote was or is paid out under;
//! - the invoices whose due time the batch's clock passed ([`rules::due_window`]; which of
//!   them the clock matters to is the rules' business, so all are checked, each once).
//!
//! Their facts and what those refer to are read back ([`load_facts_of`]), the rules run over
//! them, and each owner's stored rows are replaced where they differ, the counts moved by the
//! difference. The result does not depend on how the log is cut into batches, so a rebuild
//! writes the same rows as the live projector.
//!
//! Every lookup goes through a key or a unique index (migration 0018): a rebuild drops the
//! secondary indexes while it refills the tables ([`crate::deferred_indexes`]), and a batch
//! must never scan.

use std::collections::{BTreeMap, BTreeSet};

use adapters::sql::{SqlRow, SqlTx, SqlValue};
use domain::commission::CommissionEvent;
use domain::invoice::InvoiceEvent;

use super::rules::{self, mismatches_of, Owner, Owners};
use super::*;

/// Keys per `IN (…)` list: far below SQLite's bound on parameters, and a rebuild's batch of
/// 5,000 events still needs only a few statements per lookup.
const LOOKUP_CHUNK: usize = 500;

/// The `scope` of the facts-compared counts in `reconciliation_counts`.
pub(super) const CHECKED: &str = "checked";

/// What a batch wrote, by id, and the references it gave.
#[derive(Debug, Default)]
pub(super) struct Touched {
    invoices: BTreeSet<String>,
    payments: BTreeSet<String>,
    commissions: BTreeSet<String>,
    /// Moyasar invoice ids given to an invoice (at issue or linked later).
    moyasar_invoice_ids: BTreeSet<String>,
    /// Payouts a commission was paid out under.
    payouts: BTreeSet<String>,
}

impl Touched {
    pub(super) fn note(&mut self, money: &MoneyEvent) {
        match money {
            MoneyEvent::Invoice(event) => self.note_invoice(event),
            MoneyEvent::Payment(event) => {
                self.payments.insert(event.payment().payment_id.clone());
            }
            MoneyEvent::Commission(event) => self.note_commission(event),
            MoneyEvent::Payout(_) => {}
        }
    }

    fn note_invoice(&mut self, event: &InvoiceEvent) {
        let invoice_id = match event {
            InvoiceEvent::InvoiceIssued {
                invoice_id,
                moyasar_invoice_id,
                ..
            } => {
                self.moyasar_invoice_ids.extend(moyasar_invoice_id.clone());
                invoice_id
            }
            InvoiceEvent::MoyasarInvoiceLinked {
                invoice_id,
                moyasar_invoice_id,
                ..
            } => {
                self.moyasar_invoice_ids.insert(moyasar_invoice_id.clone());
                invoice_id
            }
            InvoiceEvent::PaymentRecorded {
                invoice_id,
                payment_id,
                ..
            } => {
                self.payments.insert(payment_id.clone());
                invoice_id
            }
            InvoiceEvent::InvoicePaid { invoice_id, .. }
            | InvoiceEvent::InvoiceRefunded { invoice_id, .. }
            | InvoiceEvent::InvoiceCanceled { invoice_id, .. }
            | InvoiceEvent::InvoiceExpired { invoice_id, .. } => invoice_id,
            // Folds nothing.
            InvoiceEvent::InvoiceOverpaid { .. } => return,
        };
        self.invoices.insert(invoice_id.clone());
    }

    fn note_commission(&mut self, event: &CommissionEvent) {
        let commission_id = match event {
            CommissionEvent::CommissionPaidOut {
                commission_id,
                payout_id,
                ..
            } => {
                self.payouts.insert(payout_id.clone());
                commission_id
            }
            CommissionEvent::CommissionAccrued { commission_id, .. }
            | CommissionEvent::CommissionApproved { commission_id, .. }
            | CommissionEvent::CommissionRejected { commission_id, .. }
            | CommissionEvent::CommissionClawedBack { commission_id, .. }
            | CommissionEvent::CommissionAdjusted { commission_id, .. } => commission_id,
        };
        self.commissions.insert(commission_id.clone());
    }
}

/// What the batch is about to change, read before it folds: which of the facts it writes
/// exist already, the references they hold now, and the log's clock.
#[derive(Debug, Default)]
pub(super) struct Before {
    invoices: BTreeSet<String>,
    payments: BTreeSet<String>,
    commissions: BTreeSet<String>,
    moyasar_invoice_ids: BTreeSet<String>,
    payouts: BTreeSet<String>,
    pub(super) now_us: i64,
}

pub(super) async fn before(tx: &mut SqlTx, touched: &Touched) -> Result<Before, ProjectionError> {
    let mut before = Before::default();
    let sql =
        "SELECT invoice_id, moyasar_invoice_id FROM reconciliation_invoices WHERE invoice_id IN";
    for row in fetch_in(tx, sql, &touched.invoices).await? {
        before.invoices.insert(row.text(0)?);
        before.moyasar_invoice_ids.extend(row.opt_text(1)?);
    }
    let sql = "SELECT payment_id FROM reconciliation_payments WHERE payment_id IN";
    for row in fetch_in(tx, sql, &touched.payments).await? {
        before.payments.insert(row.text(0)?);
    }
    let sql =
        "SELECT commission_id, payout_id FROM reconciliation_commissions WHERE commission_id IN";
    for row in fetch_in(tx, sql, &touched.commissions).await? {
        before.commissions.insert(row.text(0)?);
        before.payouts.extend(row.opt_text(1)?);
    }
    before.now_us = tx
        .fetch_optional(CLOCK, &[])
        .await?
        .map(|row| row.i64(0))
        .transpose()?
        .unwrap_or(0);
    Ok(before)
}

/// Brings the stored mismatches and counts up to the batch just folded (the clock now at
/// `now_us`).
pub(super) async fn refresh(
    tx: &mut SqlTx,
    touched: &Touched,
    before: &Before,
    now_us: i64,
) -> Result<(), ProjectionError> {
    let owners = owners_to_check(tx, touched, before, now_us).await?;
    if owners.is_empty() {
        return Ok(());
    }
    let facts = load_facts_of(tx, &owners, now_us).await?;
    let found = mismatches_of(&facts, &owners);
    replace(tx, &owners, found).await?;
    // Facts are never removed: the batch added those it wrote that exist now and did not before.
    let checked = [
        (
            "invoices",
            added(&touched.invoices, &before.invoices, &facts.invoices),
        ),
        (
            "payments",
            added(&touched.payments, &before.payments, &facts.payments),
        ),
        (
            "commissions",
            added(
                &touched.commissions,
                &before.commissions,
                &facts.commissions,
            ),
        ),
    ];
    for (name, delta) in checked {
        add_to_count(tx, CHECKED, name, delta).await?;
    }
    Ok(())
}

/// How many of `written` exist now (in `now`) that did not before (`existed`).
fn added<T>(
    written: &BTreeSet<String>,
    existed: &BTreeSet<String>,
    now: &BTreeMap<String, T>,
) -> i64 {
    let present = written.iter().filter(|id| now.contains_key(*id)).count();
    present as i64 - existed.len() as i64
}

/// Whose mismatches the batch may have changed (the module's list).
async fn owners_to_check(
    tx: &mut SqlTx,
    touched: &Touched,
    before: &Before,
    now_us: i64,
) -> Result<Owners, ProjectionError> {
    let mut owners = Owners {
        invoices: touched.invoices.clone(),
        payments: touched.payments.clone(),
        commissions: touched.commissions.clone(),
        payouts: touched.payouts.union(&before.payouts).cloned().collect(),
    };
    let sql = "SELECT invoice_id FROM reconciliation_invoice_payments WHERE payment_id IN";
    owners
        .invoices
        .extend(ids_in(tx, sql, &touched.payments).await?);
    let due = rules::due_window(before.now_us, now_us);
    if !due.is_empty() {
        let rows = tx
            .fetch_all(
                "SELECT invoice_id FROM reconciliation_invoices WHERE due_at_us >= ? AND due_at_us < ?",
                &[due.start.into(), due.end.into()],
            )
            .await?;
        for row in rows {
            owners.invoices.insert(row.text(0)?);
        }
    }
    let sql = "SELECT payment_id FROM reconciliation_payments WHERE invoice_id IN";
    owners
        .payments
        .extend(ids_in(tx, sql, &touched.invoices).await?);
    let moyasar_ids: BTreeSet<String> = touched
        .moyasar_invoice_ids
        .union(&before.moyasar_invoice_ids)
        .cloned()
        .collect();
    let sql = "SELECT payment_id FROM reconciliation_payments WHERE moyasar_invoice_id IN";
    owners.payments.extend(ids_in(tx, sql, &moyasar_ids).await?);
    let sql = "SELECT commission_id FROM reconciliation_commissions WHERE invoice_id IN";
    owners
        .commissions
        .extend(ids_in(tx, sql, &touched.invoices).await?);
    Ok(owners)
}

/// The facts `owners`' rules read: the owners themselves, the invoices their payments and
/// commissions name (by our id, or by Moyasar's), the invoices that recorded their payments,
/// the payments their invoices recorded, and every commission of their payouts.
async fn load_facts_of(
    tx: &mut SqlTx,
    owners: &Owners,
    now_us: i64,
) -> Result<Facts, ProjectionError> {
    let mut facts = Facts {
        now_us,
        ..Facts::default()
    };
    let commissions = format!("{COMMISSION_COLUMNS} WHERE commission_id IN");
    for row in fetch_in(tx, &commissions, &owners.commissions).await? {
        let (id, commission) = commission_fact(&row)?;
        facts.commissions.insert(id, commission);
    }
    let members = format!("{COMMISSION_COLUMNS} WHERE payout_id IN");
    for row in fetch_in(tx, &members, &owners.payouts).await? {
        let (id, commission) = commission_fact(&row)?;
        facts.commissions.insert(id, commission);
    }
    let payments = format!("{PAYMENT_COLUMNS} WHERE payment_id IN");
    for row in fetch_in(tx, &payments, &owners.payments).await? {
        let (id, payment) = payment_fact(&row)?;
        facts.payments.insert(id, payment);
    }

    let sql = "SELECT invoice_id FROM reconciliation_invoice_payments WHERE payment_id IN";
    let mut invoice_ids = ids_in(tx, sql, &owners.payments).await?;
    invoice_ids.extend(owners.invoices.iter().cloned());
    invoice_ids.extend(
        owners
            .payments
            .iter()
            .filter_map(|id| facts.payments.get(id)?.invoice_id.clone()),
    );
    invoice_ids.extend(
        owners
            .commissions
            .iter()
            .filter_map(|id| Some(facts.commissions.get(id)?.invoice_id.clone())),
    );
    let moyasar_ids: BTreeSet<String> = owners
        .payments
        .iter()
        .filter_map(|id| facts.payments.get(id)?.moyasar_invoice_id.clone())
        .collect();
    let by_id = format!("{INVOICE_COLUMNS} WHERE invoice_id IN");
    let by_moyasar_id = format!("{INVOICE_COLUMNS} WHERE moyasar_invoice_id IN");
    let mut rows = fetch_in(tx, &by_id, &invoice_ids).await?;
    rows.extend(fetch_in(tx, &by_moyasar_id, &moyasar_ids).await?);
    for row in rows {
        let (id, invoice) = invoice_fact(&row)?;
        facts.invoices.insert(id, invoice);
    }
    let loaded: BTreeSet<String> = facts.invoices.keys().cloned().collect();
    let recorded = format!("{INVOICE_PAYMENT_COLUMNS} WHERE invoice_id IN");
    for row in fetch_in(tx, &recorded, &loaded).await? {
        let (invoice_id, payment_id, amount_halalas) = invoice_payment(&row)?;
        if let Some(invoice) = facts.invoices.get_mut(&invoice_id) {
            invoice.payments.insert(payment_id, amount_halalas);
        }
    }

    let missing: BTreeSet<String> = owners
        .invoices
        .iter()
        .filter_map(|id| facts.invoices.get(id))
        .flat_map(|invoice| invoice.payments.keys())
        .filter(|id| !facts.payments.contains_key(*id))
        .cloned()
        .collect();
    for row in fetch_in(tx, &payments, &missing).await? {
        let (id, payment) = payment_fact(&row)?;
        facts.payments.insert(id, payment);
    }
    Ok(facts)
}

/// One stored mismatch row's key: its owner and kind.
type RowKey = (Owner, &'static str);

/// Replaces the stored mismatches of `owners` with `found` where they differ, and moves the
/// `ledger` counts by the difference.
async fn replace(
    tx: &mut SqlTx,
    owners: &Owners,
    found: Vec<(Owner, Mismatch)>,
) -> Result<(), ProjectionError> {
    let mut stored: BTreeMap<RowKey, Mismatch> = BTreeMap::new();
    let by_kind = [
        (
            "invoice",
            &owners.invoices,
            Owner::Invoice as fn(String) -> Owner,
        ),
        ("payment", &owners.payments, Owner::Payment),
        ("commission", &owners.commissions, Owner::Commission),
        ("payout", &owners.payouts, Owner::Payout),
    ];
    let sql = format!(
        "SELECT owner_id, {STORED_COLUMNS} FROM reconciliation_mismatches \
         WHERE owner_kind = ? AND owner_id IN"
    );
    for (owner_kind, ids, owner) in by_kind {
        for row in fetch_in_after(tx, &sql, &[owner_kind.into()], ids).await? {
            let mismatch = stored_mismatch(&row, 1)?;
            stored.insert((owner(row.text(0)?), mismatch.kind), mismatch);
        }
    }
    let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
    for (owner, mismatch) in found {
        let key = (owner, mismatch.kind);
        match stored.remove(&key) {
            Some(before) if before == mismatch => {}
            Some(_) => {
                tx.write(
                    "UPDATE reconciliation_mismatches SET order_key = ?, streams = ?, detail = ?, \
                     expected_halalas = ?, actual_halalas = ? WHERE owner_kind = ? AND owner_id = ? AND kind = ?",
                    &row_values(&key.0, &mismatch),
                )
                .await?;
            }
            None => {
                tx.write(
                    "INSERT INTO reconciliation_mismatches (order_key, streams, detail, expected_halalas, \
                     actual_halalas, owner_kind, owner_id, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    &row_values(&key.0, &mismatch),
                )
                .await?;
                *counts.entry(mismatch.kind).or_default() += 1;
            }
        }
    }
    for ((owner, kind), _) in stored {
        tx.write(
            "DELETE FROM reconciliation_mismatches WHERE owner_kind = ? AND owner_id = ? AND kind = ?",
            &[owner.kind().into(), owner.id().into(), kind.into()],
        )
        .await?;
        *counts.entry(kind).or_default() -= 1;
    }
    for (kind, delta) in counts {
        add_to_count(tx, LEDGER_SOURCE, kind, delta).await?;
    }
    Ok(())
}

/// A row's values in the order the statements of [`replace`] name them: what may change,
/// then the key.
fn row_values(owner: &Owner, mismatch: &Mismatch) -> [SqlValue; 8] {
    [
        order_key(owner, mismatch).into(),
        serde_json::Value::from(mismatch.streams.clone())
            .to_string()
            .into(),
        mismatch.detail.as_str().into(),
        mismatch.expected_halalas.into(),
        mismatch.actual_halalas.into(),
        owner.kind().into(),
        owner.id().into(),
        mismatch.kind.into(),
    ]
}

/// Where a ledger mismatch stands in the report: by kind, then streams (the order
/// [`Mismatch`] sorts in; no two mismatches share both), then owner. Each part is ended by a
/// byte below any character of a kind or stream id (0 after a stream, 1 before the owner), so
/// a shorter list of streams sorts first, and the bytes are written in hex, which compares the
/// same on both engines whatever the database's collation.
pub(super) fn order_key(owner: &Owner, mismatch: &Mismatch) -> String {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(mismatch.kind.as_bytes());
    bytes.push(0);
    for stream in &mismatch.streams {
        bytes.extend_from_slice(stream.as_bytes());
        bytes.push(0);
    }
    bytes.push(1);
    bytes.extend_from_slice(owner.kind().as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(owner.id().as_bytes());
    hex::encode(bytes)
}

/// The columns [`stored_mismatch`] reads, from `reconciliation_mismatches`.
pub(super) const STORED_COLUMNS: &str = "kind, streams, detail, expected_halalas, actual_halalas";

/// A stored ledger mismatch, its [`STORED_COLUMNS`] starting at column `first`.
pub(super) fn stored_mismatch(row: &SqlRow, first: usize) -> Result<Mismatch, ProjectionError> {
    let name = row.text(first)?;
    let kind = rules::KINDS
        .into_iter()
        .find(|kind| *kind == name)
        .ok_or_else(|| unreadable(format!("unknown mismatch kind {name:?}")))?;
    let streams = row.text(first + 1)?;
    let streams: Vec<String> = serde_json::from_str(&streams)
        .map_err(|error| unreadable(format!("streams {streams:?}: {error}")))?;
    let mut mismatch = Mismatch::new(kind, streams, row.text(first + 2)?);
    mismatch.expected_halalas = row.opt_i64(first + 3)?;
    mismatch.actual_halalas = row.opt_i64(first + 4)?;
    Ok(mismatch)
}

fn unreadable(reason: String) -> ProjectionError {
    adapters::store::StoreError::InvalidValue(format!("reconciliation_mismatches: {reason}")).into()
}

/// Adds `delta` to a count, leaving no row at zero (a rebuild, cut into other batches, never
/// writes a count that went up and back down within one).
pub(super) async fn add_to_count(
    tx: &mut SqlTx,
    scope: &str,
    name: &str,
    delta: i64,
) -> Result<(), ProjectionError> {
    if delta == 0 {
        return Ok(());
    }
    tx.write(
        "INSERT INTO reconciliation_counts (scope, name, tally) VALUES (?, ?, ?) \
         ON CONFLICT (scope, name) DO UPDATE SET tally = reconciliation_counts.tally + excluded.tally",
        &[scope.into(), name.into(), delta.into()],
    )
    .await?;
    tx.write(
        "DELETE FROM reconciliation_counts WHERE scope = ? AND name = ? AND tally = 0",
        &[scope.into(), name.into()],
    )
    .await?;
    Ok(())
}

/// The rows of `select` (ending in `… IN`) for each of `keys`, a chunk of keys per statement.
async fn fetch_in(
    tx: &mut SqlTx,
    select: &str,
    keys: &BTreeSet<String>,
) -> Result<Vec<SqlRow>, ProjectionError> {
    fetch_in_after(tx, select, &[], keys).await
}

/// [`fetch_in`] for a `select` whose own parameters (`leading`) come before the list.
async fn fetch_in_after(
    tx: &mut SqlTx,
    select: &str,
    leading: &[SqlValue],
    keys: &BTreeSet<String>,
) -> Result<Vec<SqlRow>, ProjectionError> {
    let keys: Vec<&String> = keys.iter().collect();
    let mut rows = Vec::new();
    for chunk in keys.chunks(LOOKUP_CHUNK) {
        let (marks, keyed) = adapters::sql::in_list(chunk.iter().map(|key| key.as_str()));
        let mut params = leading.to_vec();
        params.extend(keyed);
        rows.extend(
            tx.fetch_all(&format!("{select} ({marks})"), &params)
                .await?,
        );
    }
    Ok(rows)
}

/// The first column of [`fetch_in`]'s rows.
async fn ids_in(
    tx: &mut SqlTx,
    select: &str,
    keys: &BTreeSet<String>,
) -> Result<BTreeSet<String>, ProjectionError> {
    fetch_in(tx, select, keys)
        .await?
        .iter()
        .map(|row| Ok(row.text(0)?))
        .collect()
}
