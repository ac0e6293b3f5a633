//! The invoice routes: issue (by plan or lines, with a buyer under ZATCA Phase 2), cancel, and
//! reissue an invoice ZATCA rejected.

use crate::auth::Area;
use crate::finance::{command_answer, command_error, idempotent, metadata, RequestId};
use crate::input::parse_body as parse;
use crate::{ApiError, AppState};
use app::command::CommandHandler;
use app::zatca::ZatcaConfig;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use domain::invoice::{Customer, Invoice, InvoiceCommand, InvoiceLine, IssueInvoice};
use domain::lead::{Lead, LeadEvent};
use domain::phase2::{BuyerRegistration, NationalAddress, Phase2Details};
use domain::plan::Plan;
use serde::Deserialize;
use serde_json::{json, Value};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LineRequest {
    description: String,
    quantity: u32,
    unit_price_halalas: i64,
    plan: Option<Plan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InvoiceRequest {
    lead_id: String,
    plan: Option<Plan>,
    lines: Option<Vec<LineRequest>>,
    customer_name: Option<String>,
    due_days: Option<i64>,
    moyasar_invoice_id: Option<String>,
    /// A business buyer (ZATCA Phase 2): the invoice is then a standard tax invoice, cleared
    /// by ZATCA before the buyer gets it; without one, a simplified invoice, reported.
    buyer: Option<BuyerRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BuyerRequest {
    /// 15 digits, first and last 3.
    vat_number: String,
    address: AddressRequest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddressRequest {
    street: String,
    building_number: String,
    district: String,
    city: String,
    postal_code: String,
    /// ISO 3166-1 alpha-2; `SA` when absent.
    country_code: Option<String>,
}

impl BuyerRequest {
    fn registration(&self) -> Result<BuyerRegistration, ApiError> {
        if !domain::invoice::is_saudi_vat_number(&self.vat_number) {
            return Err(bad_field(
                "buyer.vat_number",
                format!(
                    "{:?} is not a Saudi VAT number (15 digits, first and last 3)",
                    self.vat_number
                ),
            ));
        }
        let address = &self.address;
        let country_code = address.country_code.clone().unwrap_or_else(|| "SA".into());
        if country_code.len() != 2 || !country_code.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(bad_field(
                "buyer.address.country_code",
                format!("{country_code:?} is not an ISO 3166-1 alpha-2 code"),
            ));
        }
        Ok(BuyerRegistration {
            vat_number: self.vat_number.clone(),
            address: NationalAddress {
                street: address.street.clone(),
                building_number: address.building_number.clone(),
                district: address.district.clone(),
                city: address.city.clone(),
                postal_code: address.postal_code.clone(),
                country_code,
            },
        })
    }
}

impl InvoiceRequest {
    /// The Phase 2 details the invoice is issued with: `None` under Phase 1, where a buyer
    /// cannot be named (a standard invoice needs ZATCA's clearance).
    fn phase2(&self, zatca: Option<&ZatcaConfig>) -> Result<Option<Phase2Details>, ApiError> {
        let buyer = self
            .buyer
            .as_ref()
            .map(BuyerRequest::registration)
            .transpose()?;
        match (zatca, buyer) {
            (Some(zatca), buyer) => Ok(Some(zatca.details(buyer))),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ApiError::Unprocessable {
                code: "zatca_phase2_off",
                detail: "a buyer makes a standard (B2B) invoice, which ZATCA must clear; this \
                         service runs without ZATCA Phase 2 (REVLEDGER_ZATCA_ENVIRONMENT)"
                    .into(),
                field: Some("buyer".into()),
            }),
        }
    }

    fn lines(&self) -> Result<Vec<InvoiceLine>, ApiError> {
        match (&self.plan, &self.lines) {
            (Some(plan), None) => Ok(vec![InvoiceLine {
                description: format!("{} plan, one month", plan.as_str()),
                quantity: 1,
                unit_price_halalas: plan.price_halalas(),
                plan: Some(*plan),
            }]),
            (None, Some(lines)) if lines.len() > MAX_INVOICE_LINES => Err(bad_field(
                "lines",
                format!(
                    "{} lines; an invoice carries at most {MAX_INVOICE_LINES}",
                    lines.len()
                ),
            )),
            (None, Some(lines)) => Ok(lines
                .iter()
                .map(|line| InvoiceLine {
                    description: line.description.clone(),
                    quantity: line.quantity,
                    unit_price_halalas: line.unit_price_halalas,
                    plan: line.plan,
                })
                .collect()),
            _ => Err(ApiError::BadRequest {
                code: "missing_field",
                detail: "an invoice takes either \"plan\" or \"lines\" (one of them)".into(),
                field: Some("plan".into()),
            }),
        }
    }

    fn due_days(&self) -> Result<i64, ApiError> {
        let days = self.due_days.unwrap_or(DEFAULT_DUE_DAYS);
        if (0..=MAX_DUE_DAYS).contains(&days) {
            Ok(days)
        } else {
            Err(bad_field(
                "due_days",
                format!("due_days {days} is outside 0..={MAX_DUE_DAYS}"),
            ))
        }
    }
}

/// The name a customer is billed under when the request gives none: the captured lead's
/// company, else its name (from the lead's first event, so it never waits for a projection).
pub(super) async fn captured_customer_name(
    state: &AppState,
    lead_id: &str,
) -> Result<String, ApiError> {
    let stream = CommandHandler::<Lead>::stream_id(lead_id);
    let first = state.store.read_stream(&stream, 1, 1).await?;
    let captured = first
        .first()
        .map(app::command::decode_event::<Lead>)
        .transpose()
        .map_err(command_error)?;
    match captured {
        Some(LeadEvent::LeadCaptured { company, name, .. }) => Ok(company
            .filter(|company| !company.trim().is_empty())
            .unwrap_or(name)),
        _ => Err(not_found("lead", lead_id)),
    }
}

/// `POST /api/invoices`: allocate the next place in the seller's ZATCA chain, then issue the
/// invoice there (201). The issue runs under the command id the invoice-issuer process
/// manager would use, so an allocation is turned into its invoice exactly once whoever gets
/// there first.
pub(super) async fn create_invoice(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: InvoiceRequest = parse(&body)?;
    let lines = request.lines()?;
    let due_days = request.due_days()?;
    let phase2 = request.phase2(state.config.zatca.as_ref())?;
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        "POST /api/invoices",
        &body,
        |id: RequestId| async move {
            let invoice_id = id.assigned_id();
            // Reading the captured name answers whether the lead exists, too.
            let name = match request.customer_name.clone() {
                Some(name) => {
                    require_existing(&state.handlers.leads, &request.lead_id, "lead").await?;
                    name
                }
                None => captured_customer_name(state, &request.lead_id).await?,
            };
            let issued_at = adapters::clock::now_micros();
            let issue = IssueInvoice {
                invoice_id,
                customer: Customer {
                    lead_id: request.lead_id.clone(),
                    name,
                },
                lines,
                issued_at,
                due_at: issued_at + time::Duration::days(due_days),
                seller: state.config.seller.clone(),
                moyasar_invoice_id: request.moyasar_invoice_id.clone(),
            };
            let request = app::invoices::IssueRequest {
                command_id: id.command_id,
                fresh: id.fresh,
            };
            let (outcome, invoice) = app::invoices::issue_with(
                &state.handlers,
                request,
                issue,
                phase2,
                metadata(principal, headers),
            )
            .await?;
            let mut answer = invoice_view(&invoice);
            for (key, value) in command_answer(&outcome).as_object().into_iter().flatten() {
                answer[key] = value.clone();
            }
            Ok((StatusCode::CREATED, answer))
        },
    )
    .await
}

impl From<app::invoices::IssueError> for ApiError {
    fn from(error: app::invoices::IssueError) -> Self {
        use app::invoices::IssueError;
        match error {
            IssueError::Allocation(error) => command_error(error),
            IssueError::Issue(error) => command_error(error),
            IssueError::BeingIssued { .. } => ApiError::Conflict(error.to_string()),
            IssueError::NotAllocated { .. } => ApiError::internal(error),
        }
    }
}

/// What an invoice is now: the API's one view of it.
pub fn invoice_view(invoice: &Invoice) -> Value {
    json!({
        "invoice_id": invoice.invoice_id(),
        "lead_id": invoice.lead_id(),
        "status": invoice.standing(),
        "collection_status": invoice.status(),
        "currency": "SAR",
        "subtotal_halalas": invoice.subtotal_halalas(),
        "vat_halalas": invoice.vat_halalas(),
        "total_halalas": invoice.total_halalas(),
        "paid_halalas": invoice.paid_halalas(),
        "refunded_halalas": invoice.refunded_halalas(),
        "outstanding_halalas": invoice.outstanding_halalas(),
        "due_at": invoice.due_at().and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()),
        "icv": invoice.icv(),
        "invoice_hash": invoice.invoice_hash(),
        "previous_invoice_hash": invoice.previous_invoice_hash(),
        "qr_code": invoice.qr_code(),
        "zatca": zatca_view(invoice),
        "moyasar_invoice_id": invoice.moyasar_invoice_id(),
        "payment_url": invoice.payment_url(),
    })
}

/// The invoice's ZATCA phase, and under Phase 2 its EGS unit, UUID and kind.
pub(super) fn zatca_view(invoice: &Invoice) -> Value {
    match invoice.phase2() {
        None => json!({"phase": 1}),
        Some(details) => json!({
            "phase": 2,
            "egs_unit": details.egs_unit,
            "uuid": domain::phase2::document_uuid(invoice.invoice_id()).to_string(),
            "type": if details.is_standard() { "standard" } else { "simplified" },
        }),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ReissueRequest {
    /// The corrected buyer; the rejected invoice's when absent.
    buyer: Option<BuyerRequest>,
    /// The corrected name; the rejected invoice's when absent.
    customer_name: Option<String>,
}

/// `POST /api/invoices/{id}/reissue`: corrects an invoice whose ZATCA document was rejected by
/// withdrawing it and issuing a new one at the next ICV (201 with the new invoice, whose
/// `replaces` names the old one). Asked again, it answers the same correction.
pub(super) async fn reissue_invoice(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(invoice_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: ReissueRequest = if body.is_empty() {
        ReissueRequest::default()
    } else {
        parse(&body)?
    };
    let Some(zatca) = state.config.zatca.as_ref() else {
        return Err(ApiError::Unprocessable {
            code: "zatca_phase2_off",
            detail: "only a ZATCA Phase 2 document can be rejected, and this service runs \
                     without Phase 2"
                .into(),
            field: None,
        });
    };
    let correction = app::invoices::Correction {
        buyer: request
            .buyer
            .as_ref()
            .map(BuyerRequest::registration)
            .transpose()?,
        customer_name: request.customer_name.clone(),
    };
    let (outcome, invoice) = app::invoices::reissue(
        &state.handlers,
        zatca,
        &invoice_id,
        correction,
        metadata(&principal, &headers),
    )
    .await
    .map_err(|error| reissue_error(&invoice_id, error))?;
    let mut answer = invoice_view(&invoice);
    for (key, value) in command_answer(&outcome).as_object().into_iter().flatten() {
        answer[key] = value.clone();
    }
    answer["replaces"] = invoice_id.into();
    Ok(axum::response::IntoResponse::into_response((
        StatusCode::CREATED,
        axum::Json(answer),
    )))
}

pub(super) fn reissue_error(invoice_id: &str, error: app::invoices::ReissueError) -> ApiError {
    use app::invoices::ReissueError;
    match error {
        ReissueError::NotPhase2 { .. } | ReissueError::NotRejected { .. } => {
            ApiError::Unprocessable {
                code: "not_rejected",
                detail: error.to_string(),
                field: None,
            }
        }
        ReissueError::Cancel { source, .. } => match source {
            app::CommandError::Rejected(rule) => ApiError::Unprocessable {
                code: "cannot_withdraw",
                detail: format!("invoice {invoice_id} cannot be withdrawn: {rule}"),
                field: None,
            },
            other => command_error(other),
        },
        ReissueError::Submission(error) => command_error(error),
        ReissueError::Issue(error) => error.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelRequest {
    reason: String,
}

/// `POST /api/invoices/{id}/cancel`: withdraw an unpaid invoice.
pub(super) async fn cancel_invoice(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(invoice_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_change(Area::Finance)?;
    let request: CancelRequest = parse(&body)?;
    let path = format!("POST /api/invoices/{invoice_id}/cancel");
    let (state, principal, headers) = (&state, &principal, &headers);
    idempotent(
        state,
        principal,
        headers,
        &path,
        &body,
        |id: RequestId| async move {
            let envelope = id.envelope(
                invoice_id.clone(),
                InvoiceCommand::Cancel {
                    reason: request.reason,
                    at: adapters::clock::now_micros(),
                },
                metadata(principal, headers),
            );
            let outcome = state
                .handlers
                .invoices
                .execute_existing(envelope)
                .await
                .map_err(command_error)?
                .ok_or_else(|| not_found("invoice", &invoice_id))?;
            Ok((StatusCode::OK, with_id("invoice_id", &invoice_id, &outcome)))
        },
    )
    .await
}
