//! Invoices moved by payments and allocations: gateway payments and refunds recorded on their
//! invoice (a refund with its credit note on the invoice's own chain), and every allocation
//! issued as its invoice.

use adapters::sql::SqlDb;
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::invoice::{InvoiceCommand, InvoiceEvent};
use domain::payment::{GatewayPayment, PaymentEvent};
use domain::sequence::{SequenceCommand, SequenceEvent};
use time::OffsetDateTime;

use projections::{decode, micros, ProjectionError};

use super::{command_id, send_with_id, Context, ProcessManager};

/// Payment paid -> invoice payment recorded; payment refunded -> credit note allocated and
/// invoice refunded. A payment or refund for an invoice not issued yet is parked and applied
/// when the invoice's `InvoiceIssued` (or its Moyasar link) comes by; command ids are derived
/// from the payment event either way, so each is applied once.
pub struct PaymentsToInvoices;

/// A money movement waiting for, or applied to, an invoice.
struct Movement {
    kind: &'static str,
    payment_event_id: String,
    payment_id: String,
    amount_halalas: i64,
    cumulative_halalas: i64,
    at: OffsetDateTime,
}

/// Why gateway refunds carry no reason of their own.
pub const GATEWAY_REFUND_REASON: &str = "refunded through the payment gateway";

impl PaymentsToInvoices {
    const NAME: &'static str = "payments_to_invoices";

    async fn apply_movement(
        context: &Context,
        cause: &RecordedEvent,
        invoice_id: &str,
        seller_vat_number: &str,
        movement: &Movement,
    ) -> Result<(), ProjectionError> {
        let handlers = &context.handlers;
        if movement.kind == "payment" {
            let command = InvoiceCommand::RecordPayment {
                payment_id: movement.payment_id.clone(),
                amount_halalas: movement.amount_halalas,
                at: movement.at,
            };
            let id = command_id(Self::NAME, &movement.payment_event_id, 0);
            send_with_id(
                context,
                &handlers.invoices,
                Self::NAME,
                cause,
                id,
                invoice_id,
                command,
            )
            .await?;
            return Ok(());
        }
        let refund_id = format!(
            "{}:refund:{}",
            movement.payment_id, movement.cumulative_halalas
        );
        // Take an ICV only for a refund the invoice can accept, so no credit-note number is
        // left without its document.
        let (invoice, _) = handlers
            .invoices
            .load_aggregate(invoice_id)
            .await
            .map_err(|e| ProjectionError::Command(e.to_string()))?;
        let refundable = invoice.paid_halalas() - invoice.refunded_halalas();
        // The credit note takes its place in the invoice's own chain: its EGS unit's under
        // ZATCA Phase 2, its seller's under Phase 1.
        let sequence = invoice
            .phase2()
            .map_or(seller_vat_number, |details| details.egs_unit.as_str());
        if movement.amount_halalas > refundable {
            tracing::warn!(%invoice_id, %refund_id, refundable, "gateway refund larger than what the invoice can refund");
        }
        let allocate = SequenceCommand::AllocateCreditNote {
            invoice_id: invoice_id.to_owned(),
            refund_id: refund_id.clone(),
            amount_halalas: movement.amount_halalas,
            reason: GATEWAY_REFUND_REASON.to_owned(),
            at: movement.at,
        };
        let id = command_id(Self::NAME, &movement.payment_event_id, 1);
        if movement.amount_halalas > refundable
            || send_with_id(
                context,
                &handlers.sequences,
                Self::NAME,
                cause,
                id,
                sequence,
                allocate,
            )
            .await?
            .is_none()
        {
            return Ok(());
        }
        let allocation = handlers
            .sequences
            .inspect(sequence, |sequence, _| {
                sequence
                    .allocation(&refund_id)
                    .map(|(icv, previous_hash, _)| (icv, previous_hash.to_owned()))
            })
            .await
            .map_err(|e| ProjectionError::Command(e.to_string()))?;
        let Some((icv, previous_hash)) = allocation else {
            return Err(ProjectionError::Command(format!(
                "credit note {refund_id} was allocated but is not in the sequence"
            )));
        };
        let command = InvoiceCommand::Refund {
            refund_id,
            amount_halalas: movement.amount_halalas,
            reason: GATEWAY_REFUND_REASON.to_owned(),
            credit_note_icv: icv,
            credit_note_previous_hash: previous_hash,
            at: movement.at,
        };
        let id = command_id(Self::NAME, &movement.payment_event_id, 2);
        send_with_id(
            context,
            &handlers.invoices,
            Self::NAME,
            cause,
            id,
            invoice_id,
            command,
        )
        .await?;
        Ok(())
    }

    /// Our invoice id and its seller for a payment's references, if that invoice was issued.
    async fn resolve(
        db: &SqlDb,
        invoice_id: Option<&str>,
        moyasar_invoice_id: Option<&str>,
    ) -> Result<Option<(String, String)>, ProjectionError> {
        if let Some(ours) = invoice_id {
            let row = db
                .fetch_optional(
                    "SELECT invoice_id, seller_vat_number FROM pm_invoices WHERE invoice_id = ?",
                    &[ours.into()],
                )
                .await?;
            if let Some(row) = row {
                return Ok(Some((row.text(0)?, row.text(1)?)));
            }
        }
        if let Some(theirs) = moyasar_invoice_id {
            let row = db
                .fetch_optional(
                    "SELECT invoice_id, seller_vat_number FROM pm_invoices WHERE moyasar_invoice_id = ?",
                    &[theirs.into()],
                )
                .await?;
            if let Some(row) = row {
                return Ok(Some((row.text(0)?, row.text(1)?)));
            }
        }
        Ok(None)
    }

    /// Applies what was parked under `keys` now that the invoice is known (issued by
    /// `seller`).
    async fn release(
        context: &Context,
        cause: &RecordedEvent,
        invoice_id: &str,
        seller: &str,
        keys: &[String],
    ) -> Result<(), ProjectionError> {
        for key in keys {
            let parked = context
                .db
                .fetch_all(
                    "SELECT payment_event_id, kind, payment_id, amount_halalas, cumulative_halalas, at_us                      FROM pm_parked_payments WHERE invoice_key = ? ORDER BY position",
                    &[key.as_str().into()],
                )
                .await?;
            // Nearly always nothing: a payment usually comes after its invoice.
            let parked_any = !parked.is_empty();
            for row in parked {
                let movement = Movement {
                    payment_event_id: row.text(0)?,
                    kind: if row.text(1)? == "refund" {
                        "refund"
                    } else {
                        "payment"
                    },
                    payment_id: row.text(2)?,
                    amount_halalas: row.i64(3)?,
                    cumulative_halalas: row.i64(4)?,
                    at: projections::from_micros(row.i64(5)?),
                };
                Self::apply_movement(context, cause, invoice_id, seller, &movement).await?;
            }
            if !parked_any {
                continue;
            }
            context
                .db
                .execute_derived(
                    "DELETE FROM pm_parked_payments WHERE invoice_key = ?",
                    &[key.as_str().into()],
                )
                .await?;
        }
        Ok(())
    }

    async fn on_movement(
        context: &Context,
        event: &RecordedEvent,
        payment: &GatewayPayment,
        movement: Movement,
    ) -> Result<(), ProjectionError> {
        let ours = payment.invoice_id.as_deref();
        let theirs = payment.moyasar_invoice_id.as_deref();
        if let Some((invoice_id, seller)) = Self::resolve(&context.db, ours, theirs).await? {
            return Self::apply_movement(context, event, &invoice_id, &seller, &movement).await;
        }
        let key = match (ours, theirs) {
            (Some(ours), _) => format!("ours:{ours}"),
            (None, Some(theirs)) => format!("moyasar:{theirs}"),
            (None, None) => {
                tracing::warn!(payment = %payment.payment_id, "payment names no invoice; nothing to record");
                return Ok(());
            }
        };
        tracing::info!(payment = %payment.payment_id, %key, kind = movement.kind, "parked until its invoice is issued");
        context
            .db
            .execute_derived(
                "INSERT INTO pm_parked_payments (invoice_key, payment_event_id, kind, payment_id, amount_halalas,                  cumulative_halalas, at_us, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)                  ON CONFLICT (invoice_key, payment_event_id) DO NOTHING",
                &[
                    key.into(),
                    movement.payment_event_id.into(),
                    movement.kind.into(),
                    movement.payment_id.into(),
                    movement.amount_halalas.into(),
                    movement.cumulative_halalas.into(),
                    micros(movement.at).into(),
                    event.position.into(),
                ],
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ProcessManager for PaymentsToInvoices {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        match event.event_type.as_str() {
            "InvoiceIssued" => {
                let InvoiceEvent::InvoiceIssued {
                    invoice_id,
                    moyasar_invoice_id,
                    seller,
                    ..
                } = decode(event)?
                else {
                    return Ok(());
                };
                context
                    .db
                    .execute_derived(
                        "INSERT INTO pm_invoices (invoice_id, moyasar_invoice_id, seller_vat_number) VALUES (?, ?, ?) \
                         ON CONFLICT (invoice_id) DO NOTHING",
                        &[invoice_id.as_str().into(), moyasar_invoice_id.clone().into(), seller.vat_number.as_str().into()],
                    )
                    .await?;
                let mut keys = vec![format!("ours:{invoice_id}")];
                keys.extend(moyasar_invoice_id.map(|m| format!("moyasar:{m}")));
                // The row just written names this seller (an invoice is issued once, so a row
                // already there does too).
                Self::release(context, event, &invoice_id, &seller.vat_number, &keys).await
            }
            "MoyasarInvoiceLinked" => {
                let InvoiceEvent::MoyasarInvoiceLinked {
                    invoice_id,
                    moyasar_invoice_id,
                    ..
                } = decode(event)?
                else {
                    return Ok(());
                };
                context
                    .db
                    .execute_derived(
                        "UPDATE pm_invoices SET moyasar_invoice_id = ? WHERE invoice_id = ?",
                        &[
                            moyasar_invoice_id.as_str().into(),
                            invoice_id.as_str().into(),
                        ],
                    )
                    .await?;
                let Some((_, seller)) = Self::resolve(&context.db, Some(&invoice_id), None).await?
                else {
                    return Ok(());
                };
                Self::release(
                    context,
                    event,
                    &invoice_id,
                    &seller,
                    &[format!("moyasar:{moyasar_invoice_id}")],
                )
                .await
            }
            "PaymentPaid" => {
                let PaymentEvent::PaymentPaid { payment, paid_at } = decode(event)? else {
                    return Ok(());
                };
                let movement = Movement {
                    kind: "payment",
                    payment_event_id: event.event_id.to_string(),
                    payment_id: payment.payment_id.clone(),
                    amount_halalas: payment.amount_halalas,
                    cumulative_halalas: payment.amount_halalas,
                    at: paid_at,
                };
                Self::on_movement(context, event, &payment, movement).await
            }
            "PaymentRefunded" => {
                let PaymentEvent::PaymentRefunded {
                    payment,
                    refund_delta_halalas,
                    refunded_at,
                } = decode(event)?
                else {
                    return Ok(());
                };
                let movement = Movement {
                    kind: "refund",
                    payment_event_id: event.event_id.to_string(),
                    payment_id: payment.payment_id.clone(),
                    amount_halalas: refund_delta_halalas,
                    cumulative_halalas: payment.refunded_halalas,
                    at: refunded_at,
                };
                Self::on_movement(context, event, &payment, movement).await
            }
            _ => Ok(()),
        }
    }
}

/// A document allocated in the seller's sequence -> the invoice issued from it. The API issues
/// the invoice right after allocating; this catches the case where it stopped in between, so
/// no ICV is ever left without its invoice. Both use [`issue_command_id`], so it is issued once.
pub struct InvoicesFromAllocations;

#[async_trait]
impl ProcessManager for InvoicesFromAllocations {
    fn name(&self) -> &'static str {
        "invoice_issuer"
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type != "DocumentAllocated" {
            return Ok(());
        }
        let SequenceEvent::DocumentAllocated {
            icv,
            previous_invoice_hash,
            issue: Some(issue),
            phase2,
            ..
        } = decode(event)?
        else {
            return Ok(());
        };
        let invoice_id = issue.invoice_id.clone();
        // Nearly always the API issued it right after allocating: then there is nothing to do,
        // and an issued invoice stays issued, so its cached state says so without a read (the
        // command would be refused on it, the refusal confirmed by a read and the command log
        // looked up, to append nothing).
        let issued = context
            .handlers
            .invoices
            .inspect_settled(&invoice_id, |_, version| (version > 0).then_some(()))
            .await
            .map_err(|e| ProjectionError::Command(e.to_string()))?;
        if issued.is_some() {
            return Ok(());
        }
        let (id, command) =
            crate::invoices::issue_allocated(issue, icv, previous_invoice_hash, phase2);
        send_with_id(
            context,
            &context.handlers.invoices,
            self.name(),
            event,
            id,
            &invoice_id,
            command,
        )
        .await?;
        Ok(())
    }
}
