//! One invoice as its readers need it: the aggregate's totals, its standing with refunds
//! (`refunded`, `partially_refunded`), its place in its ZATCA chain (ICV, PIH, hash), each
//! payment as the gateway last reported it, each credit note with its own place in the chain,
//! and under Phase 2 where each document stands with ZATCA; and a document's legal XML.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::invoice::Invoice;
use domain::payment::{Payment, PaymentStatus};
use projections::AsOf;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{aggregate, aggregate_as_of, ReadQuery};
use crate::auth::{Area, Principal};
use crate::finance::command_error;
use crate::{ApiError, AppState};

/// A payment recorded on the invoice, with what the gateway last reported of it.
#[derive(Serialize)]
struct InvoicePayment {
    payment_id: String,
    /// What the invoice recorded as paid by it.
    amount_halalas: i64,
    /// When the gateway reported it paid.
    paid_at: String,
    /// The gateway's last reported status (`paid`, `refunded`, …); `null` when the payment has
    /// no gateway stream (recorded on the invoice directly).
    status: Option<PaymentStatus>,
    /// The gateway's fee, when it reported one.
    fee_halalas: Option<i64>,
    /// What the gateway refunded of it so far.
    refunded_halalas: i64,
}

/// A credit note of one of the invoice's refunds, with its place in the invoice's chain.
#[derive(Serialize)]
struct InvoiceCreditNote {
    /// The refund it documents, also the credit note's document id.
    credit_note_id: String,
    document_type_code: u16,
    icv: u64,
    /// PIH: the hash of the document before it in the chain.
    previous_invoice_hash: String,
    /// Its own hash, the next document's PIH, as its chain recorded it (`null` only for a
    /// refund recorded without taking a place in the chain, which the app never does).
    invoice_hash: Option<String>,
    reason: String,
    /// The refunded amount, VAT included.
    amount_halalas: i64,
    subtotal_halalas: i64,
    vat_halalas: i64,
    issued_at: String,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The invoice's payments, each with its gateway stream as of the same moment.
async fn payments_of(
    state: &AppState,
    invoice: &Invoice,
    as_of: Option<AsOf>,
) -> Result<Vec<InvoicePayment>, ApiError> {
    let mut payments = Vec::with_capacity(invoice.payments().len());
    for recorded in invoice.payments() {
        let (payment, _): (Payment, u64) = match as_of {
            None => state
                .handlers
                .payments
                .load_aggregate(&recorded.payment_id)
                .await
                .map_err(command_error)?,
            Some(moment) => aggregate_as_of(state, &recorded.payment_id, moment).await?,
        };
        let reported = payment.snapshot();
        payments.push(InvoicePayment {
            payment_id: recorded.payment_id.clone(),
            amount_halalas: recorded.amount_halalas,
            paid_at: rfc3339(recorded.paid_at),
            status: payment.status(),
            fee_halalas: reported.map(|p| p.fee_halalas),
            refunded_halalas: reported.map_or(0, |p| p.refunded_halalas),
        });
    }
    Ok(payments)
}

/// The invoice's credit notes, each with the hash its chain recorded for it.
async fn credit_notes_of(
    state: &AppState,
    invoice: &Invoice,
) -> Result<Vec<InvoiceCreditNote>, ApiError> {
    let refund_ids: Vec<String> = invoice
        .credit_notes()
        .iter()
        .map(|note| note.refund_id.clone())
        .collect();
    let hashes: Vec<Option<String>> = if refund_ids.is_empty() {
        Vec::new()
    } else {
        state
            .handlers
            .sequences
            .inspect(invoice.chain(), |sequence, _| {
                refund_ids
                    .iter()
                    .map(|id| sequence.allocation(id).map(|(_, _, hash)| hash.to_owned()))
                    .collect()
            })
            .await
            .map_err(command_error)?
    };
    Ok(invoice
        .credit_notes()
        .iter()
        .zip(hashes)
        .map(|(note, invoice_hash)| InvoiceCreditNote {
            credit_note_id: note.refund_id.clone(),
            document_type_code: note.document_type_code,
            icv: note.credit_note_icv,
            previous_invoice_hash: note.credit_note_previous_hash.clone(),
            invoice_hash,
            reason: note.reason.clone(),
            amount_halalas: note.total_halalas,
            subtotal_halalas: note.subtotal_halalas,
            vat_halalas: note.vat_halalas,
            issued_at: rfc3339(note.issued_at),
        })
        .collect())
}

/// `GET /api/invoices/{id}`: the invoice aggregate (always current: it is read from its
/// stream, so `after_position` never has to wait).
pub(super) async fn invoice(
    State(state): State<AppState>,
    principal: Principal,
    Path(invoice_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Finance)?;
    let as_of = query.as_of()?;
    let (invoice, version): (Invoice, u64) = aggregate(
        &state,
        &state.handlers.invoices,
        &invoice_id,
        as_of,
        "invoice",
    )
    .await?;
    let mut view = crate::commands::invoice_view(&invoice);
    view["version"] = version.into();
    let payments = payments_of(&state, &invoice, as_of).await?;
    view["payments"] = serde_json::to_value(payments).map_err(ApiError::internal)?;
    let credit_notes = credit_notes_of(&state, &invoice).await?;
    view["credit_notes"] = serde_json::to_value(credit_notes).map_err(ApiError::internal)?;
    if invoice.phase2().is_some() && as_of.is_none() {
        let documents =
            projections::zatca::documents_of_invoice(&state.store.sql(), &invoice_id).await?;
        view["zatca"] = zatca_documents_view(&invoice_id, view["zatca"].take(), documents);
    }
    Ok(Json(view).into_response())
}

/// An invoice's ZATCA block with where each of its documents (the invoice, its credit notes)
/// stands with ZATCA, and, when the invoice's own document was rejected, how to correct it.
fn zatca_documents_view(
    invoice_id: &str,
    mut zatca: Value,
    documents: Vec<projections::zatca::ZatcaDocument>,
) -> Value {
    let own = documents.iter().find(|d| d.document_id == invoice_id);
    // Until the read model has it, the document is on its way to the submitter.
    zatca["status"] = own.map_or("pending", |d| d.status.as_str()).into();
    if own.is_some_and(|d| d.status == "rejected") {
        zatca["correction"] = json!({
            "method": "POST",
            "path": format!("/api/invoices/{invoice_id}/reissue"),
            "explains": "withdraws this invoice and issues a new one for the same lines at the \
                         next ICV (body: an optional corrected buyer and customer_name)",
        });
    }
    zatca["documents"] = documents
        .into_iter()
        .map(|document| {
            let xml = format!(
                "/api/invoices/{invoice_id}/xml?document={}",
                document.document_id
            );
            let mut view = serde_json::to_value(document).unwrap_or_default();
            view["xml"] = xml.into();
            view
        })
        .collect();
    zatca
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct XmlQuery {
    /// One of the invoice's documents (a credit note's refund id); the invoice's own when
    /// absent.
    document: Option<String>,
}

/// `GET /api/invoices/{id}/xml`: a Phase 2 document's legal XML, ZATCA's cleared copy for a
/// standard document and the stamped one for a simplified document, with its ZATCA status in
/// `X-Zatca-Status`.
pub(super) async fn invoice_xml(
    State(state): State<AppState>,
    principal: Principal,
    Path(invoice_id): Path<String>,
    Query(query): Query<XmlQuery>,
) -> Result<Response, ApiError> {
    principal.require_read(Area::Finance)?;
    let document_id = query.document.unwrap_or_else(|| invoice_id.clone());
    let (submission, _) = state
        .handlers
        .submissions
        .load_aggregate(&document_id)
        .await
        .map_err(command_error)?;
    if submission.status().is_none() || submission.invoice_id() != invoice_id {
        return Err(ApiError::NotFound(format!(
            "invoice {invoice_id} has no ZATCA Phase 2 document {document_id} (yet)"
        )));
    }
    let Some(xml) = submission.legal_xml() else {
        return Err(ApiError::NotFound(format!(
            "document {document_id} is not stamped yet: its XML exists once the submitter \
             has signed it (the EGS unit must be onboarded)"
        )));
    };
    let status = submission
        .status()
        .map_or("pending", |status| status.as_str());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/xml; charset=utf-8".to_owned(),
            ),
            (
                header::HeaderName::from_static("x-zatca-status"),
                status.to_owned(),
            ),
        ],
        xml.to_owned(),
    )
        .into_response())
}
