//! The double-entry journal: every money-moving event posted as a balanced journal entry.
//!
//! The posting rules are one pure function, [`postings`]: an event (decoded into a
//! [`MoneyEvent`]) and the little the journal must remember across events ([`Known`]: who owes
//! each invoice and how it was posted, how much of each payment was collected and at what fee)
//! give the entries. The projection only loads that memory from its tables, calls
//! [`postings`], writes the entries and stores what the event adds to the memory
//! ([`memory_of`]). So the rules can be checked, by proptest, without a database.
//!
//! # Accounts
//!
//! | account | kind | holds |
//! |---|---|---|
//! | `accounts_receivable:<lead_id>` | asset | what a customer owes; negative is a customer credit (overpayment) |
//! | `revenue:<plan>`, `revenue:other` | revenue | invoice lines before VAT, by the plan they sell |
//! | `vat_payable` | liability | output VAT invoiced minus VAT given back on credit notes |
//! | `gateway_clearing` | asset | money the gateway took that has not been settled to us yet |
//! | `gateway_fees` | expense | the gateway's fees |
//! | `cash` | asset | money in the bank |
//! | `unapplied_payments` | liability | money received and not yet applied to an invoice (or handed back and not yet credited) |
//! | `refunds` | contra-revenue | the net part of credit notes |
//! | `commission_expense` | expense | partner commissions earned |
//! | `commission_payable:<partner_id>` | liability | what we owe a partner; negative after a clawback of a paid commission |
//! | `suspense` | — | never expected: takes the difference of an entry whose event did not add up |
//!
//! # Rules
//!
//! Amounts on a line are never negative: a negative amount is posted on the other side; a zero
//! amount is not posted; an entry with no lines is not written. Each entry's id is
//! `<event_id>/<index>` with a fixed index per kind of entry, so a rebuild writes the same ids.
//!
//! - **InvoiceIssued**: Dr `accounts_receivable:<lead>` total; Cr `revenue:<plan>` each line's
//!   net (quantity × unit price); Cr `vat_payable` the document's VAT (rounded once per
//!   document, so the credits add up to the total exactly).
//! - **PaymentCaptured / PaymentPaid**, amount A, fee F, the first report that says the gateway
//!   took the money: entry 0, the capture, Dr `gateway_clearing` A / Cr `unapplied_payments` A;
//!   entry 1, the settlement, Dr `cash` A − F, Dr `gateway_fees` F / Cr `gateway_clearing` A. So
//!   the clearing account is back at zero once a payment settles (Stripe's clearing-account
//!   check). `captured` counts as collected because it is the money-taking state of Moyasar's
//!   authorize/capture flow, which may never report `paid`. A later `paid` for a captured
//!   payment posts only what changed (a larger amount than the capture, a different fee), by
//!   the same two entries on the differences; usually nothing.
//! - **PaymentRecorded** (the invoice applies the money): Dr `unapplied_payments` amount / Cr
//!   `accounts_receivable:<lead>` amount. An overpayment leaves the receivable negative: the
//!   customer's credit.
//! - **InvoiceRefunded** (credit note, gross R of which V is VAT): Dr `refunds` R − V, Dr
//!   `vat_payable` V / Cr `unapplied_payments` R.
//! - **PaymentRefunded** (the gateway handed back D more): Dr `unapplied_payments` D / Cr `cash`
//!   D. Together with the credit note, `unapplied_payments` returns to where it was.
//! - **InvoiceCanceled / InvoiceExpired** (only an unpaid invoice can be): the issue entry
//!   reversed, from what was remembered of it.
//! - **CommissionAccrued** C: Dr `commission_expense` C / Cr `commission_payable:<partner>` C.
//! - **CommissionRejected** (what was owed, N): Dr `commission_payable:<partner>` N / Cr
//!   `commission_expense` N.
//! - **CommissionPaidOut** P: Dr `commission_payable:<partner>` P / Cr `cash` P.
//! - **CommissionClawedBack** (−X) and **CommissionAdjusted** (signed): posted like an accrual
//!   of the signed amount, so a clawback is Dr `commission_payable:<partner>` X / Cr
//!   `commission_expense` X. After a payout the payable goes negative and is carried against
//!   the next payout.
//!
//! Every other event moves no money and posts nothing.

use std::collections::{BTreeMap, BTreeSet};

use adapters::sql::{in_list, SqlDb, SqlTx};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::invoice::InvoiceEvent;
use domain::payment::PaymentEvent;
use serde_json::{json, Value};

use crate::{micros, rfc3339, Projection, ProjectionError, SnapshotKeep};

pub mod balances;
mod postings;

pub use balances::{trial_balance, MAX_TRIAL_BALANCE_ACCOUNTS};
pub use postings::*;

pub struct Ledger;

/// Lines `account()` returns at most: an account statement is paged from the newest line.
pub const MAX_ACCOUNT_LINES: i64 = 1_000;

/// What a snapshot keeps of the journal's lines: the newest [`MAX_ACCOUNT_LINES`] of each
/// account, in the order [`account`] reads them (position, entry, line: a total order, since a
/// line is one of an entry's and an entry one of an event's). No other query of an as-of copy
/// reads a line: the trial balance ([`Projection::render`], `GET /api/ledger/trial-balance`)
/// and an account's totals are read from `ledger_accounts`, and the fold never reads the
/// journal back ([`Ledger::apply_batch`] reads only its memory tables). The lines of all time are
/// read only from the live tables (`revledger verify --ledger`, the monthly charts).
pub const SNAPSHOT_LINES: SnapshotKeep = SnapshotKeep::Newest {
    per: &["account"],
    by: &["position", "entry_index", "line_no"],
    rows: MAX_ACCOUNT_LINES,
};

/// What a snapshot keeps of the journal's entries: those of the lines it keeps, which
/// [`account`] joins to them.
pub const SNAPSHOT_ENTRIES: SnapshotKeep = SnapshotKeep::NamedBy {
    column: "entry_id",
    table: "ledger_lines",
};

/// Account names.
pub mod accounts {
    pub const VAT_PAYABLE: &str = "vat_payable";
    pub const GATEWAY_CLEARING: &str = "gateway_clearing";
    pub const GATEWAY_FEES: &str = "gateway_fees";
    pub const CASH: &str = "cash";
    pub const UNAPPLIED_PAYMENTS: &str = "unapplied_payments";
    pub const REFUNDS: &str = "refunds";
    pub const COMMISSION_EXPENSE: &str = "commission_expense";
    /// Takes the difference of an entry that does not balance by itself; never expected.
    pub const SUSPENSE: &str = "suspense";
    /// Revenue of lines that sell no plan.
    pub const REVENUE_OTHER: &str = "revenue:other";

    pub fn receivable(lead_id: &str) -> String {
        format!("accounts_receivable:{lead_id}")
    }

    pub fn revenue(plan: Option<domain::plan::Plan>) -> String {
        plan.map_or_else(
            || REVENUE_OTHER.to_owned(),
            |plan| format!("revenue:{}", plan.as_str()),
        )
    }

    pub fn commission_payable(partner_id: &str) -> String {
        format!("commission_payable:{partner_id}")
    }

    /// What kind of account a name is, for the trial balance.
    pub fn kind(account: &str) -> &'static str {
        let prefix = account.split(':').next().unwrap_or(account);
        match prefix {
            "accounts_receivable" | "gateway_clearing" | "cash" => "asset",
            "vat_payable" | "unapplied_payments" | "commission_payable" => "liability",
            "revenue" => "revenue",
            "refunds" => "contra_revenue",
            "gateway_fees" | "commission_expense" => "expense",
            _ => "suspense",
        }
    }
}

/// Loads into `known`, with one read per table for the whole batch, the memory its events
/// need: the invoices payments are recorded on or that are canceled or expire, and the
/// payments collected. The batch's own writes wait until it is folded, so what the tables hold
/// now is what each event would have read; what an earlier event of the batch remembers is
/// put in `known` over it, as before.
async fn load_known<'a>(
    tx: &mut SqlTx,
    events: impl Iterator<Item = &'a MoneyEvent>,
    known: &mut Known,
) -> Result<(), ProjectionError> {
    let mut invoice_ids = BTreeSet::new();
    let mut payment_ids = BTreeSet::new();
    for event in events {
        match event {
            MoneyEvent::Invoice(
                InvoiceEvent::PaymentRecorded { invoice_id, .. }
                | InvoiceEvent::InvoiceCanceled { invoice_id, .. }
                | InvoiceEvent::InvoiceExpired { invoice_id, .. },
            ) => {
                invoice_ids.insert(invoice_id.as_str());
            }
            MoneyEvent::Payment(
                payment_event @ (PaymentEvent::PaymentCaptured { .. }
                | PaymentEvent::PaymentPaid { .. }),
            ) => {
                payment_ids.insert(payment_event.payment().payment_id.as_str());
            }
            _ => {}
        }
    }
    if !invoice_ids.is_empty() {
        let (marks, params) = in_list(invoice_ids);
        let sql = format!(
            "SELECT invoice_id, lead_id, vat_halalas, total_halalas FROM ledger_invoices \
             WHERE invoice_id IN ({marks})"
        );
        for row in tx.fetch_all(&sql, &params).await? {
            let invoice = KnownInvoice {
                lead_id: row.text(1)?,
                vat_halalas: row.i64(2)?,
                total_halalas: row.i64(3)?,
                revenue: BTreeMap::new(),
            };
            known.invoices.insert(row.text(0)?, invoice);
        }
        let sql = format!(
            "SELECT invoice_id, account, net_halalas FROM ledger_invoice_revenue \
             WHERE invoice_id IN ({marks})"
        );
        for row in tx.fetch_all(&sql, &params).await? {
            if let Some(invoice) = known.invoices.get_mut(&row.text(0)?) {
                invoice.revenue.insert(row.text(1)?, row.i64(2)?);
            }
        }
    }
    if !payment_ids.is_empty() {
        let (marks, params) = in_list(payment_ids);
        let sql = format!(
            "SELECT payment_id, collected_halalas, fee_halalas FROM ledger_payments \
             WHERE payment_id IN ({marks})"
        );
        for row in tx.fetch_all(&sql, &params).await? {
            let collection = Collection {
                collected_halalas: row.i64(1)?,
                fee_halalas: row.i64(2)?,
            };
            known.collections.insert(row.text(0)?, collection);
        }
    }
    Ok(())
}

/// Stores what an event adds to the memory (the SQL twin of [`Known::remember`]).
async fn store_memory(tx: &mut SqlTx, memory: Memory) -> Result<(), ProjectionError> {
    match memory {
        Memory::Invoice {
            invoice_id,
            invoice,
        } => {
            tx.write(
                "INSERT INTO ledger_invoices (invoice_id, lead_id, vat_halalas, total_halalas) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (invoice_id) DO UPDATE SET lead_id = excluded.lead_id, \
                 vat_halalas = excluded.vat_halalas, total_halalas = excluded.total_halalas",
                &[
                    invoice_id.as_str().into(),
                    invoice.lead_id.into(),
                    invoice.vat_halalas.into(),
                    invoice.total_halalas.into(),
                ],
            )
            .await?;
            tx.write(
                "DELETE FROM ledger_invoice_revenue WHERE invoice_id = ?",
                &[invoice_id.as_str().into()],
            )
            .await?;
            for (account, net) in invoice.revenue {
                tx.write(
                    "INSERT INTO ledger_invoice_revenue (invoice_id, account, net_halalas) VALUES (?, ?, ?)",
                    &[invoice_id.as_str().into(), account.into(), net.into()],
                )
                .await?;
            }
        }
        Memory::Collection {
            payment_id,
            collection,
        } => {
            tx.write(
                "INSERT INTO ledger_payments (payment_id, collected_halalas, fee_halalas) VALUES (?, ?, ?) \
                 ON CONFLICT (payment_id) DO UPDATE SET collected_halalas = excluded.collected_halalas, \
                 fee_halalas = excluded.fee_halalas",
                &[
                    payment_id.into(),
                    collection.collected_halalas.into(),
                    collection.fee_halalas.into(),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

/// Writes the entries (each with the event it posts), all entry rows first, then all lines:
/// each table's rows in one run, which PostgreSQL takes as one statement per table.
async fn write_entries(
    tx: &mut SqlTx,
    entries: Vec<(&RecordedEvent, JournalEntry)>,
) -> Result<(), ProjectionError> {
    let mut totals = balances::Totals::default();
    for (event, entry) in &entries {
        write_entry_row(tx, event, entry).await?;
        totals.add(&event.event_type, entry);
    }
    for (event, entry) in entries {
        write_lines(tx, event, entry).await?;
    }
    totals.write(tx).await
}

async fn write_entry_row(
    tx: &mut SqlTx,
    event: &RecordedEvent,
    entry: &JournalEntry,
) -> Result<(), ProjectionError> {
    tx.write(
        "INSERT INTO ledger_entries (entry_id, position, entry_index, event_id, event_type, stream_id, \
         occurred_at_us, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            entry.entry_id.as_str().into(),
            event.position.into(),
            i64::from(entry.index).into(),
            event.event_id.to_string().into(),
            event.event_type.as_str().into(),
            event.stream_id.as_str().into(),
            micros(entry.occurred_at).into(),
            entry.description.as_str().into(),
        ],
    )
    .await?;
    Ok(())
}

async fn write_lines(
    tx: &mut SqlTx,
    event: &RecordedEvent,
    entry: JournalEntry,
) -> Result<(), ProjectionError> {
    for (line_no, line) in entry.lines.into_iter().enumerate() {
        tx.write(
            "INSERT INTO ledger_lines (entry_id, line_no, account, debit_halalas, credit_halalas, \
             position, entry_index) VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[
                entry.entry_id.as_str().into(),
                (line_no as i64).into(),
                line.account.into(),
                line.debit_halalas.into(),
                line.credit_halalas.into(),
                event.position.into(),
                i64::from(entry.index).into(),
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Projection for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "ledger_entries",
            "ledger_lines",
            "ledger_invoices",
            "ledger_invoice_revenue",
            "ledger_payments",
            "ledger_accounts",
            "ledger_account_days",
            "ledger_counters",
            "ledger_collection_days",
        ]
    }

    fn folds_money(&self) -> bool {
        true
    }

    /// The journal's lines and entries grow with history; a snapshot keeps what an account's
    /// page reads ([`SNAPSHOT_LINES`], [`SNAPSHOT_ENTRIES`]) and every row of the rest.
    fn snapshot_keeps(&self, table: &str) -> SnapshotKeep {
        match table {
            "ledger_lines" => SNAPSHOT_LINES,
            "ledger_entries" => SNAPSHOT_ENTRIES,
            _ => SnapshotKeep::Every,
        }
    }

    /// Reads the memory the batch needs once (one read per table), and keeps what the batch
    /// makes, so an event whose invoice or payment came earlier in the batch (most payments
    /// follow their invoice closely) posts without reading it back: a read is a round trip,
    /// and on PostgreSQL one that first sends every write queued before it.
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut money_events = Vec::new();
        for event in events {
            if let Some(money) = MoneyEvent::from_recorded(event)? {
                money_events.push((event, money));
            }
        }
        let mut known = Known::default();
        load_known(tx, money_events.iter().map(|(_, money)| money), &mut known).await?;
        let mut entries = Vec::new();
        let mut memories = Vec::new();
        for (event, money) in money_events {
            let posted = postings(&event.event_id.to_string(), &money, &known);
            entries.extend(posted.into_iter().map(|entry| (event, entry)));
            if let Some(memory) = memory_of(&money) {
                memories.push(memory.clone());
                known.remember(memory);
            }
        }
        // Written once the batch is folded: nothing above reads the journal, and a memory it
        // wrote is in `known`, which is looked up before the tables.
        write_entries(tx, entries).await?;
        for memory in memories {
            store_memory(tx, memory).await?;
        }
        Ok(())
    }

    /// The trial balance, every account.
    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        trial_balance(db, None, None).await
    }
}

/// One account's lines, the newest `limit` (at most [`MAX_ACCOUNT_LINES`]) in posting order,
/// each with the running balance (debit minus credit) after it, for
/// `GET /api/ledger/accounts/{account}`.
pub async fn account(db: &SqlDb, account: &str, limit: i64) -> Result<Value, ProjectionError> {
    let limit = limit.clamp(1, MAX_ACCOUNT_LINES);
    let totals = balances::account_sums(db, account)
        .await?
        .unwrap_or_default();
    let (line_count, debit, credit) = (totals.lines, totals.debit_halalas, totals.credit_halalas);
    let mut rows = db
        .fetch_all(
            "SELECT l.entry_id, l.line_no, e.position, e.event_type, e.stream_id, e.occurred_at_us, \
             e.description, l.debit_halalas, l.credit_halalas \
             FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id \
             WHERE l.account = ? ORDER BY l.position DESC, l.entry_index DESC, l.line_no DESC LIMIT ?",
            &[account.into(), limit.into()],
        )
        .await?;
    rows.reverse();
    let balance = debit.saturating_sub(credit);
    let shown: i64 = rows
        .iter()
        .map(|row| Ok(row.i64(7)? - row.i64(8)?))
        .sum::<Result<i64, adapters::store::StoreError>>()?;
    let opening = balance.saturating_sub(shown);
    let mut running = opening;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let (line_debit, line_credit) = (row.i64(7)?, row.i64(8)?);
        running = running.saturating_add(line_debit - line_credit);
        lines.push(json!({
            "entry_id": row.text(0)?,
            "line_no": row.i64(1)?,
            "position": row.i64(2)?,
            "event_type": row.text(3)?,
            "stream_id": row.text(4)?,
            "occurred_at": rfc3339(row.i64(5)?),
            "description": row.text(6)?,
            "debit_halalas": line_debit,
            "credit_halalas": line_credit,
            "balance_halalas": running,
        }));
    }
    Ok(json!({
        "account": account,
        "kind": accounts::kind(account),
        "currency": "SAR",
        "lines_total": line_count,
        "debit_halalas": debit,
        "credit_halalas": credit,
        "balance_halalas": balance,
        "opening_balance_halalas": opening,
        "truncated": line_count > lines.len() as i64,
        "lines": lines,
    }))
}

#[cfg(test)]
mod tests;
