//! Invoices moved by payments and allocations: gateway payments and refunds recorded on their
//! invoice (a refund with its credit note on the invoice's own chain), and every allocation
//! issued as its invoice.

use std::collections::HashMap;

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

    /// Applies what was parked under `keys` now that the invoice is known (issued by
    /// `seller`).
    async fn release(
        context: &Context,
        known: &mut Known,
        cause: &RecordedEvent,
        invoice_id: &str,
        seller: &str,
        keys: &[String],
    ) -> Result<(), ProjectionError> {
        for key in keys {
            // Nearly always nothing: a payment usually comes after its invoice.
            let Some(parked) = known.parked.remove(key) else {
                continue;
            };
            for movement in &parked {
                Self::apply_movement(context, cause, invoice_id, seller, movement).await?;
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
        known: &mut Known,
        event: &RecordedEvent,
        payment: &GatewayPayment,
        movement: Movement,
    ) -> Result<(), ProjectionError> {
        let ours = payment.invoice_id.as_deref();
        let theirs = payment.moyasar_invoice_id.as_deref();
        if let Some((invoice_id, seller)) = known.resolve(ours, theirs) {
            return Self::apply_movement(context, event, &invoice_id, &seller, &movement).await;
        }
        let key = match (ours, theirs) {
            (Some(ours), _) => ours_key(ours),
            (None, Some(theirs)) => moyasar_key(theirs),
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
                    key.as_str().into(),
                    movement.payment_event_id.as_str().into(),
                    movement.kind.into(),
                    movement.payment_id.as_str().into(),
                    movement.amount_halalas.into(),
                    movement.cumulative_halalas.into(),
                    micros(movement.at).into(),
                    event.position.into(),
                ],
            )
            .await?;
        let parked = known.parked.entry(key).or_default();
        if !parked
            .iter()
            .any(|p| p.payment_event_id == movement.payment_event_id)
        {
            parked.push(movement);
        }
        Ok(())
    }

    /// Reacts to one event of a batch, with what the batch knows so far.
    async fn react_in(
        context: &Context,
        known: &mut Known,
        event: &RecordedEvent,
        reaction: Reaction,
    ) -> Result<(), ProjectionError> {
        match reaction {
            Reaction::Issued {
                invoice_id,
                moyasar_invoice_id,
                seller,
            } => {
                let keys = parking_keys(&invoice_id, moyasar_invoice_id.as_deref());
                // An invoice is issued once, so one already known names this seller too.
                known.issued(&invoice_id, moyasar_invoice_id, &seller);
                Self::release(context, known, event, &invoice_id, &seller, &keys).await
            }
            Reaction::Linked {
                invoice_id,
                moyasar_invoice_id,
            } => {
                if !known.link(&invoice_id, &moyasar_invoice_id) {
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
                }
                let Some((_, seller)) = known.resolve(Some(&invoice_id), None) else {
                    return Ok(());
                };
                let key = moyasar_key(&moyasar_invoice_id);
                Self::release(context, known, event, &invoice_id, &seller, &[key]).await
            }
            Reaction::Moved { payment, movement } => {
                Self::on_movement(context, known, event, &payment, movement).await
            }
            Reaction::Other => Ok(()),
        }
    }
}

/// The keys a payment for this invoice is parked under.
fn parking_keys(invoice_id: &str, moyasar_invoice_id: Option<&str>) -> Vec<String> {
    let mut keys = vec![ours_key(invoice_id)];
    keys.extend(moyasar_invoice_id.map(moyasar_key));
    keys
}

/// The key a payment naming our invoice id is parked under.
fn ours_key(invoice_id: &str) -> String {
    format!("ours:{invoice_id}")
}

/// The key a payment naming only Moyasar's invoice id is parked under.
fn moyasar_key(moyasar_invoice_id: &str) -> String {
    format!("moyasar:{moyasar_invoice_id}")
}

/// An event of a batch as [`PaymentsToInvoices`] reads it: decoded once, for the batch's read
/// of what it names and for the reaction.
enum Reaction {
    Issued {
        invoice_id: String,
        moyasar_invoice_id: Option<String>,
        seller: String,
    },
    Linked {
        invoice_id: String,
        moyasar_invoice_id: String,
    },
    Moved {
        payment: GatewayPayment,
        movement: Movement,
    },
    Other,
}

impl Reaction {
    fn of(event: &RecordedEvent) -> Result<Reaction, ProjectionError> {
        Ok(match event.event_type.as_str() {
            "InvoiceIssued" => match decode(event)? {
                InvoiceEvent::InvoiceIssued {
                    invoice_id,
                    moyasar_invoice_id,
                    seller,
                    ..
                } => Reaction::Issued {
                    invoice_id,
                    moyasar_invoice_id,
                    seller: seller.vat_number,
                },
                _ => Reaction::Other,
            },
            "MoyasarInvoiceLinked" => match decode(event)? {
                InvoiceEvent::MoyasarInvoiceLinked {
                    invoice_id,
                    moyasar_invoice_id,
                    ..
                } => Reaction::Linked {
                    invoice_id,
                    moyasar_invoice_id,
                },
                _ => Reaction::Other,
            },
            "PaymentPaid" | "PaymentRefunded" => match decode(event)? {
                PaymentEvent::PaymentPaid { payment, paid_at } => Reaction::Moved {
                    movement: Movement {
                        kind: "payment",
                        payment_event_id: event.event_id.to_string(),
                        payment_id: payment.payment_id.clone(),
                        amount_halalas: payment.amount_halalas,
                        cumulative_halalas: payment.amount_halalas,
                        at: paid_at,
                    },
                    payment,
                },
                PaymentEvent::PaymentRefunded {
                    payment,
                    refund_delta_halalas,
                    refunded_at,
                } => Reaction::Moved {
                    movement: Movement {
                        kind: "refund",
                        payment_event_id: event.event_id.to_string(),
                        payment_id: payment.payment_id.clone(),
                        amount_halalas: refund_delta_halalas,
                        cumulative_halalas: payment.refunded_halalas,
                        at: refunded_at,
                    },
                    payment,
                },
                _ => Reaction::Other,
            },
            _ => Reaction::Other,
        })
    }
}

/// What a batch of [`PaymentsToInvoices`] knows of the invoices and parked payments its events
/// name: read once for the batch (one statement for the invoices, one for what is parked),
/// then kept up to date as each event is reacted to, so each sees what came before it. The
/// invoices the batch issues are written once, at its end.
#[derive(Default)]
struct Known {
    /// Invoice id -> (its Moyasar invoice id, its seller's VAT number).
    invoices: HashMap<String, (Option<String>, String)>,
    /// Moyasar invoice id -> our invoice id.
    by_moyasar: HashMap<String, String>,
    /// Parking key -> the movements parked under it, in log order.
    parked: HashMap<String, Vec<Movement>>,
    /// Invoices issued in this batch and not written yet, in order.
    issued: Vec<String>,
}

impl Known {
    /// What the stored state says of everything `reactions` name.
    async fn read(db: &SqlDb, reactions: &[Reaction]) -> Result<Known, ProjectionError> {
        let (mut ours, mut theirs, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for reaction in reactions {
            match reaction {
                Reaction::Issued {
                    invoice_id,
                    moyasar_invoice_id,
                    ..
                } => {
                    keys.extend(parking_keys(invoice_id, moyasar_invoice_id.as_deref()));
                    ours.push(invoice_id.as_str());
                }
                Reaction::Linked {
                    invoice_id,
                    moyasar_invoice_id,
                } => {
                    keys.push(moyasar_key(moyasar_invoice_id));
                    ours.push(invoice_id.as_str());
                }
                Reaction::Moved { payment, .. } => {
                    ours.extend(payment.invoice_id.as_deref());
                    theirs.extend(payment.moyasar_invoice_id.as_deref());
                }
                Reaction::Other => {}
            }
        }
        let mut known = Known::default();
        if !ours.is_empty() || !theirs.is_empty() {
            // An empty list is one NULL, which matches nothing.
            let (our_marks, mut params) = adapters::sql::in_list(ours);
            let (their_marks, their_params) = adapters::sql::in_list(theirs);
            params.extend(their_params);
            let rows = db
                .fetch_all(
                    &format!(
                        "SELECT invoice_id, moyasar_invoice_id, seller_vat_number FROM pm_invoices \
                         WHERE invoice_id IN ({}) OR moyasar_invoice_id IN ({})",
                        or_null(&our_marks),
                        or_null(&their_marks)
                    ),
                    &params,
                )
                .await?;
            for row in rows {
                known.remember(row.text(0)?, row.opt_text(1)?, row.text(2)?);
            }
        }
        if !keys.is_empty() {
            let (marks, params) = adapters::sql::in_list(keys.iter().map(String::as_str));
            let rows = db
                .fetch_all(
                    &format!(
                        "SELECT invoice_key, payment_event_id, kind, payment_id, amount_halalas, \
                         cumulative_halalas, at_us FROM pm_parked_payments \
                         WHERE invoice_key IN ({marks}) ORDER BY position"
                    ),
                    &params,
                )
                .await?;
            for row in rows {
                let movement = Movement {
                    payment_event_id: row.text(1)?,
                    kind: if row.text(2)? == "refund" {
                        "refund"
                    } else {
                        "payment"
                    },
                    payment_id: row.text(3)?,
                    amount_halalas: row.i64(4)?,
                    cumulative_halalas: row.i64(5)?,
                    at: projections::from_micros(row.i64(6)?),
                };
                known.parked.entry(row.text(0)?).or_default().push(movement);
            }
        }
        Ok(known)
    }

    fn remember(&mut self, invoice_id: String, moyasar_invoice_id: Option<String>, seller: String) {
        if let Some(theirs) = &moyasar_invoice_id {
            self.by_moyasar.insert(theirs.clone(), invoice_id.clone());
        }
        self.invoices
            .insert(invoice_id, (moyasar_invoice_id, seller));
    }

    /// An invoice issued in this batch: known from now on, and written at the batch's end
    /// unless it was stored already.
    fn issued(&mut self, invoice_id: &str, moyasar_invoice_id: Option<String>, seller: &str) {
        if self.invoices.contains_key(invoice_id) {
            return;
        }
        self.remember(invoice_id.to_owned(), moyasar_invoice_id, seller.to_owned());
        self.issued.push(invoice_id.to_owned());
    }

    /// Links an invoice to its Moyasar invoice; true when the invoice is one this batch has
    /// yet to write (its row will carry the link), false when the stored row must be updated.
    fn link(&mut self, invoice_id: &str, moyasar_invoice_id: &str) -> bool {
        let Some((theirs, _)) = self.invoices.get_mut(invoice_id) else {
            return false;
        };
        *theirs = Some(moyasar_invoice_id.to_owned());
        self.by_moyasar
            .insert(moyasar_invoice_id.to_owned(), invoice_id.to_owned());
        self.issued.iter().any(|issued| issued == invoice_id)
    }

    /// Our invoice id and its seller for a payment's references, if that invoice was issued.
    fn resolve(&self, ours: Option<&str>, theirs: Option<&str>) -> Option<(String, String)> {
        let invoice_id = ours
            .filter(|ours| self.invoices.contains_key(*ours))
            .or_else(|| {
                theirs.and_then(|theirs| self.by_moyasar.get(theirs).map(String::as_str))
            })?;
        let (_, seller) = self.invoices.get(invoice_id)?;
        Some((invoice_id.to_owned(), seller.clone()))
    }

    /// Writes the invoices this batch issued, in one statement.
    async fn write(&self, db: &SqlDb) -> Result<(), ProjectionError> {
        if self.issued.is_empty() {
            return Ok(());
        }
        let mut params = Vec::with_capacity(self.issued.len() * 3);
        for invoice_id in &self.issued {
            let (theirs, seller) = &self.invoices[invoice_id];
            params.push(invoice_id.as_str().into());
            params.push(theirs.clone().into());
            params.push(seller.as_str().into());
        }
        let rows = adapters::sql::value_rows(3, self.issued.len());
        db.execute_derived(
            &format!(
                "INSERT INTO pm_invoices (invoice_id, moyasar_invoice_id, seller_vat_number) \
                 VALUES {rows} ON CONFLICT (invoice_id) DO NOTHING"
            ),
            &params,
        )
        .await?;
        Ok(())
    }
}

/// An `IN` list's marks, or `NULL` when the list is empty (`IN ()` is not SQL).
fn or_null(marks: &str) -> &str {
    if marks.is_empty() {
        "NULL"
    } else {
        marks
    }
}

#[async_trait]
impl ProcessManager for PaymentsToInvoices {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.react_batch(context, std::slice::from_ref(event)).await
    }

    async fn react_batch(
        &self,
        context: &Context,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let reactions = events
            .iter()
            .map(Reaction::of)
            .collect::<Result<Vec<_>, _>>()?;
        let mut known = Known::read(&context.db, &reactions).await?;
        for (event, reaction) in events.iter().zip(reactions) {
            Self::react_in(context, &mut known, event, reaction).await?;
        }
        known.write(&context.db).await
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
