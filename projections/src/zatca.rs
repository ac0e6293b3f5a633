//! ZATCA Phase 2 documents and where each stands with ZATCA: pending (not yet answered for
//! good), cleared, reported or rejected, with its place in its EGS unit's chain, its UUID and
//! hash, its attempts and ZATCA's messages. One row per document (`zatca_documents`), folded
//! from its submission's events ([`domain::submission`]); the legal XML stays in those events.
//!
//! The submitter reads [`due`] to know what to send next; the API reads
//! [`documents_of_invoice`]; the dashboard's finance page reads [`status_counts`] and
//! [`not_accepted`]; the metrics read [`oldest_pending`] (the 24-hour reporting deadline).

use adapters::sql::{SqlDb, SqlRow, SqlTx};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::submission::{SubmissionEvent, ZatcaMessage};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{decode, micros, Projection, ProjectionError};

/// Documents the submitter takes per pass at most.
pub const MAX_DUE: i64 = 100;

/// Documents [`not_accepted`] lists at most: a page of them is tens of KiB, and more than a
/// few hundred waiting or rejected is an outage to look at in the metrics, not row by row.
pub const MAX_NOT_ACCEPTED_LISTED: i64 = 500;

pub struct Zatca;

fn as_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn messages_json(messages: &[ZatcaMessage]) -> String {
    serde_json::to_string(messages).unwrap_or_else(|_| "[]".into())
}

async fn apply_one(tx: &mut SqlTx, event: &RecordedEvent) -> Result<(), ProjectionError> {
    match decode::<SubmissionEvent>(event)? {
        SubmissionEvent::SubmissionPrepared {
            document_id,
            invoice_id,
            kind,
            flow,
            egs_unit,
            icv,
            uuid,
            invoice_hash,
            previous_invoice_hash,
            issued_at,
        } => {
            tx.write(
                "INSERT INTO zatca_documents (document_id, invoice_id, kind, flow, egs_unit, icv, \
                 uuid, invoice_hash, previous_invoice_hash, status, issued_at_us, signed_at_us, attempts, \
                 next_attempt_at_us, last_reason, messages, final_at_us) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, NULL, 0, ?, NULL, '[]', NULL) \
                 ON CONFLICT (document_id) DO NOTHING",
                &[
                    document_id.into(),
                    invoice_id.into(),
                    as_text(&kind).into(),
                    as_text(&flow).into(),
                    egs_unit.into(),
                    i64::try_from(icv).unwrap_or(i64::MAX).into(),
                    uuid.into(),
                    invoice_hash.into(),
                    previous_invoice_hash.into(),
                    micros(issued_at).into(),
                    micros(issued_at).into(),
                ],
            )
            .await?;
        }
        SubmissionEvent::DocumentSigned {
            document_id,
            signed_at,
            ..
        } => {
            tx.write(
                "UPDATE zatca_documents SET signed_at_us = ? WHERE document_id = ?",
                &[micros(signed_at).into(), document_id.into()],
            )
            .await?;
        }
        SubmissionEvent::SubmissionDeferred {
            document_id,
            attempt,
            reason,
            next_attempt_at,
            ..
        } => {
            tx.write(
                "UPDATE zatca_documents SET attempts = ?, next_attempt_at_us = ?, last_reason = ? \
                 WHERE document_id = ?",
                &[
                    i64::from(attempt).into(),
                    micros(next_attempt_at).into(),
                    reason.into(),
                    document_id.into(),
                ],
            )
            .await?;
        }
        SubmissionEvent::DocumentCleared {
            document_id,
            attempt,
            warnings,
            cleared_at,
            ..
        } => {
            finish(
                tx,
                &document_id,
                "cleared",
                attempt,
                &warnings,
                micros(cleared_at),
            )
            .await?
        }
        SubmissionEvent::DocumentReported {
            document_id,
            attempt,
            warnings,
            reported_at,
        } => {
            finish(
                tx,
                &document_id,
                "reported",
                attempt,
                &warnings,
                micros(reported_at),
            )
            .await?
        }
        SubmissionEvent::DocumentRejected {
            document_id,
            attempt,
            errors,
            warnings,
            rejected_at,
        } => {
            let messages: Vec<ZatcaMessage> = errors.into_iter().chain(warnings).collect();
            finish(
                tx,
                &document_id,
                "rejected",
                attempt,
                &messages,
                micros(rejected_at),
            )
            .await?;
        }
    }
    Ok(())
}

async fn finish(
    tx: &mut SqlTx,
    document_id: &str,
    status: &str,
    attempt: u32,
    messages: &[ZatcaMessage],
    at_us: i64,
) -> Result<(), ProjectionError> {
    tx.write(
        "UPDATE zatca_documents SET status = ?, attempts = ?, next_attempt_at_us = NULL, \
         messages = ?, final_at_us = ? WHERE document_id = ?",
        &[
            status.into(),
            i64::from(attempt).into(),
            messages_json(messages).into(),
            at_us.into(),
            document_id.into(),
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for Zatca {
    fn name(&self) -> &'static str {
        "zatca"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["zatca_documents"]
    }

    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events
            .iter()
            .filter(|e| e.stream_type == "zatca_submission")
        {
            apply_one(tx, event).await?;
        }
        Ok(())
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        Ok(json!({"documents": status_counts(db).await?}))
    }
}

/// A document and where it stands with ZATCA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZatcaDocument {
    pub document_id: String,
    pub invoice_id: String,
    pub kind: String,
    pub flow: String,
    pub egs_unit: String,
    pub icv: i64,
    pub uuid: String,
    pub invoice_hash: String,
    /// PIH: the hash of the document before it in the unit's chain.
    pub previous_invoice_hash: String,
    pub status: String,
    /// RFC 3339.
    pub issued_at: String,
    pub signed_at: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_reason: Option<String>,
    pub messages: Vec<ZatcaMessage>,
    pub answered_at: Option<String>,
    /// Unix microseconds of `issued_at` and `next_attempt_at` (the dashboard formats them).
    #[serde(skip)]
    pub issued_at_us: i64,
    #[serde(skip)]
    pub next_attempt_at_us: Option<i64>,
}

const COLUMNS: &str = "document_id, invoice_id, kind, flow, egs_unit, icv, uuid, invoice_hash, \
     previous_invoice_hash, status, issued_at_us, signed_at_us, attempts, next_attempt_at_us, last_reason, messages, final_at_us";

fn document(row: &SqlRow) -> Result<ZatcaDocument, ProjectionError> {
    Ok(ZatcaDocument {
        document_id: row.text(0)?,
        invoice_id: row.text(1)?,
        kind: row.text(2)?,
        flow: row.text(3)?,
        egs_unit: row.text(4)?,
        icv: row.i64(5)?,
        uuid: row.text(6)?,
        invoice_hash: row.text(7)?,
        previous_invoice_hash: row.text(8)?,
        status: row.text(9)?,
        issued_at: crate::rfc3339(row.i64(10)?),
        signed_at: row.opt_i64(11)?.map(crate::rfc3339),
        attempts: row.i64(12)?,
        next_attempt_at: row.opt_i64(13)?.map(crate::rfc3339),
        last_reason: row.opt_text(14)?,
        messages: serde_json::from_str(&row.text(15)?).unwrap_or_default(),
        answered_at: row.opt_i64(16)?.map(crate::rfc3339),
        issued_at_us: row.i64(10)?,
        next_attempt_at_us: row.opt_i64(13)?,
    })
}

/// The documents of an invoice (the invoice itself, its credit notes), in chain order.
pub async fn documents_of_invoice(
    db: &SqlDb,
    invoice_id: &str,
) -> Result<Vec<ZatcaDocument>, ProjectionError> {
    let sql = format!("SELECT {COLUMNS} FROM zatca_documents WHERE invoice_id = ? ORDER BY icv");
    db.fetch_all(&sql, &[invoice_id.into()])
        .await?
        .iter()
        .map(document)
        .collect()
}

/// The documents issued from `from_us` (included) to `to_us` (excluded), chain by chain in ICV
/// order: what an audit export of a period holds.
pub async fn issued_between(
    db: &SqlDb,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<ZatcaDocument>, ProjectionError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM zatca_documents WHERE issued_at_us >= ? AND issued_at_us < ? \
         ORDER BY egs_unit, icv"
    );
    db.fetch_all(&sql, &[from_us.into(), to_us.into()])
        .await?
        .iter()
        .map(document)
        .collect()
}

/// Pending documents whose next attempt is due at `now_us`, the longest waiting first.
pub async fn due(
    db: &SqlDb,
    now_us: i64,
    limit: i64,
) -> Result<Vec<ZatcaDocument>, ProjectionError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM zatca_documents WHERE status = 'pending' \
         AND next_attempt_at_us <= ? ORDER BY next_attempt_at_us, icv LIMIT ?"
    );
    db.fetch_all(&sql, &[now_us.into(), limit.clamp(1, MAX_DUE).into()])
        .await?
        .iter()
        .map(document)
        .collect()
}

/// When the oldest document not yet answered for good was issued (Unix microseconds), with its
/// flow; `None` when every document is answered.
pub async fn oldest_pending(db: &SqlDb) -> Result<Option<(i64, String)>, ProjectionError> {
    let row = db
        .fetch_optional(
            "SELECT issued_at_us, flow FROM zatca_documents WHERE status = 'pending' \
             ORDER BY issued_at_us LIMIT 1",
            &[],
        )
        .await?;
    row.map(|row| Ok((row.i64(0)?, row.text(1)?))).transpose()
}

/// How many documents ZATCA rejected.
pub async fn rejected_count(db: &SqlDb) -> Result<i64, ProjectionError> {
    let row = db
        .fetch_optional(
            "SELECT COUNT(*) FROM zatca_documents WHERE status = 'rejected'",
            &[],
        )
        .await?;
    Ok(row.map(|row| row.i64(0)).transpose()?.unwrap_or(0))
}

/// How many documents stand at one status in one flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    /// `pending`, `cleared`, `reported` or `rejected`.
    pub status: String,
    /// `clearance` or `reporting`.
    pub flow: String,
    pub documents: i64,
}

/// The documents at each status in each flow, in status then flow order; only the pairs that
/// have documents.
pub async fn status_counts(db: &SqlDb) -> Result<Vec<StatusCount>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT status, flow, COUNT(*) FROM zatca_documents GROUP BY status, flow \
             ORDER BY status, flow",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StatusCount {
                status: row.text(0)?,
                flow: row.text(1)?,
                documents: row.i64(2)?,
            })
        })
        .collect()
}

/// The documents ZATCA has not accepted: those not answered for good (pending) and those it
/// rejected, the earliest issued first, `limit` at most ([`MAX_NOT_ACCEPTED_LISTED`]).
pub async fn not_accepted(db: &SqlDb, limit: i64) -> Result<Vec<ZatcaDocument>, ProjectionError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM zatca_documents WHERE status IN ('pending', 'rejected') \
         ORDER BY issued_at_us, egs_unit, icv LIMIT ?"
    );
    db.fetch_all(&sql, &[limit.clamp(1, MAX_NOT_ACCEPTED_LISTED).into()])
        .await?
        .iter()
        .map(document)
        .collect()
}
