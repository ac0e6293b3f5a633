//! The Moyasar invoices process manager: every invoice issued without a Moyasar invoice gets
//! one, created through Moyasar's API, and its id and payment URL are recorded on the invoice
//! (`LinkMoyasarInvoice`, an event of its own). It runs only when an API key is configured;
//! without one, the Moyasar invoice id may be given when issuing, as before.
//!
//! What happens on each answer:
//! - **created**: `LinkMoyasarInvoice` is sent with a command id derived from the
//!   `InvoiceIssued` event, so a replay or a restart links once.
//! - **refused** (a 4xx, [`MoyasarApiError::Rejected`]): sending it again would give the same
//!   answer, so the refusal is recorded in `process_rejections` (under the link's command id,
//!   with Moyasar's message) for finance to see, and the process manager moves on. The invoice
//!   stays issued, payable by other means or linked by hand.
//! - **unavailable** (5xx, 408, 429, a timeout, no connection) or an unreadable answer: the
//!   reaction returns an error, the runner retries the step later and the checkpoint does not
//!   move past the invoice, so no invoice is left without its Moyasar invoice.
//!
//! The one effect outside our store that a command id cannot make idempotent is the creation
//! itself: when Moyasar creates the invoice but its answer is lost (a timeout after the work
//! was done), a plain retry would create a second one. Each attempt therefore first asks
//! Moyasar for an invoice carrying our invoice id in its metadata (`GET /invoices` filtered by
//! `metadata[revledger_invoice_id]`) and links that one if it exists. What remains: if Moyasar
//! has not made the lost invoice visible to the list yet when the retry looks (the retry comes
//! a second or more later), or if the filter were ignored and the invoice not on the first
//! page, a second Moyasar invoice is created; the first is never linked, so no payment can be
//! recorded twice against ours, and it can be voided in Moyasar's dashboard.
//!
//! Nothing is created for an invoice already linked, closed, or with anything paid (a Moyasar
//! invoice for the full total would overcharge), nor for one whose creation Moyasar refused
//! before: a rebuild of this process manager from zero calls Moyasar only for invoices still
//! waiting for one. Enabling the API key on an existing ledger therefore creates Moyasar
//! invoices for the open, unpaid invoices issued before that have none.

use std::sync::Arc;

use crate::command::CommandHandler;
use adapters::clock::now_micros;
use adapters::moyasar_api::{CreateInvoice, MoyasarApiError, MoyasarClient, MoyasarInvoice};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::invoice::{Invoice, InvoiceCommand, InvoiceEvent, InvoiceLine, InvoiceStatus};

use crate::process::{command_id, record_rejection, send_with_id, Context, ProcessManager};
use projections::{decode, ProjectionError};

/// Creates the Moyasar invoice of each issued invoice that has none.
pub struct MoyasarInvoices {
    client: Arc<MoyasarClient>,
}

impl MoyasarInvoices {
    pub const NAME: &'static str = "moyasar_invoices";

    pub fn new(client: Arc<MoyasarClient>) -> MoyasarInvoices {
        MoyasarInvoices { client }
    }

    /// Whether the invoice still needs a Moyasar invoice: issued, nothing paid, none linked.
    async fn needs_moyasar_invoice(
        context: &Context,
        invoice_id: &str,
    ) -> Result<bool, ProjectionError> {
        let (invoice, _) = context
            .handlers
            .invoices
            .load_aggregate(invoice_id)
            .await
            .map_err(|e| ProjectionError::Command(e.to_string()))?;
        Ok(invoice.moyasar_invoice_id().is_none()
            && invoice.status() == Some(InvoiceStatus::Issued))
    }

    async fn refused_before(
        context: &Context,
        link_command_id: &str,
    ) -> Result<bool, ProjectionError> {
        Ok(context
            .db
            .fetch_optional(
                "SELECT 1 FROM process_rejections WHERE process = ? AND command_id = ?",
                &[Self::NAME.into(), link_command_id.into()],
            )
            .await?
            .is_some())
    }

    /// The Moyasar invoice created for `request` before, or a new one.
    async fn find_or_create(
        &self,
        request: &CreateInvoice,
    ) -> Result<MoyasarInvoice, MoyasarApiError> {
        let invoice_id = &request.metadata.revledger_invoice_id;
        match self.client.find_invoice(invoice_id).await {
            Ok(Some(found)) => {
                tracing::info!(%invoice_id, moyasar_invoice_id = %found.id, "found the Moyasar invoice an earlier attempt created");
                return Ok(found);
            }
            Ok(None) => {}
            // A refused look-up (a list filter this account cannot use) must not stop the
            // creation; a refused key refuses the creation too, and that is recorded.
            Err(error @ MoyasarApiError::Rejected { .. }) => {
                tracing::warn!(%invoice_id, %error, "cannot look up an earlier Moyasar invoice; creating one");
            }
            Err(error) => return Err(error),
        }
        self.client.create_invoice(request).await
    }
}

/// What the payer sees on Moyasar's checkout page: the seller, the invoice number and the lines.
fn description(seller_name: &str, icv: u64, lines: &[InvoiceLine]) -> String {
    let lines: Vec<&str> = lines.iter().map(|line| line.description.as_str()).collect();
    format!("{seller_name} invoice {icv}: {}", lines.join(", "))
}

#[async_trait]
impl ProcessManager for MoyasarInvoices {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn calls_outside(&self) -> bool {
        true
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type != "InvoiceIssued" {
            return Ok(());
        }
        let InvoiceEvent::InvoiceIssued {
            invoice_id,
            seller,
            lines,
            total_halalas,
            icv,
            moyasar_invoice_id: None,
            ..
        } = decode(event)?
        else {
            return Ok(());
        };
        let link_command_id = command_id(Self::NAME, &event.event_id.to_string(), 0);
        if Self::refused_before(context, &link_command_id.to_string()).await?
            || !Self::needs_moyasar_invoice(context, &invoice_id).await?
        {
            return Ok(());
        }
        let request = CreateInvoice::new(
            &invoice_id,
            total_halalas,
            &description(&seller.name, icv, &lines),
            self.client.callback_url().map(str::to_owned),
        );
        let created = match self.find_or_create(&request).await {
            Ok(created) => created,
            Err(error @ MoyasarApiError::Rejected { .. }) => {
                let reason = match error.field_errors() {
                    Some(fields) => format!("{error} ({fields})"),
                    None => error.to_string(),
                };
                tracing::warn!(%invoice_id, %reason, "Moyasar refused to create the invoice; recorded, not retried");
                let target = CommandHandler::<Invoice>::stream_id(&invoice_id);
                return record_rejection(
                    context,
                    Self::NAME,
                    event,
                    link_command_id,
                    &target,
                    &reason,
                )
                .await;
            }
            Err(error) => {
                return Err(ProjectionError::External(format!(
                    "creating the Moyasar invoice of {invoice_id}: {error}"
                )));
            }
        };
        tracing::info!(%invoice_id, moyasar_invoice_id = %created.id, "Moyasar invoice created");
        let command = InvoiceCommand::LinkMoyasarInvoice {
            moyasar_invoice_id: created.id,
            payment_url: created.url,
            at: now_micros(),
        };
        send_with_id(
            context,
            &context.handlers.invoices,
            Self::NAME,
            event,
            link_command_id,
            &invoice_id,
            command,
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use domain::plan::Plan;

    use super::*;

    #[test]
    fn the_description_names_the_seller_the_invoice_number_and_the_lines() {
        let line = |description: &str| InvoiceLine {
            description: description.into(),
            quantity: 1,
            unit_price_halalas: 299_900,
            plan: Some(Plan::Growth),
        };
        assert_eq!(
            description(
                "Dealix",
                42,
                &[line("Growth plan, one month"), line("Onboarding")]
            ),
            "Dealix invoice 42: Growth plan, one month, Onboarding"
        );
    }
}
