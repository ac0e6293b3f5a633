//! Leads moved by what happens elsewhere: paid when their invoice is, activated partners, and
//! the sweep that archives leads gone cold.

use std::sync::Arc;
use std::time::Duration;

use crate::command::{CommandEnvelope, CommandError};
use crate::handlers::Handlers;
use adapters::store::{EventMetadata, RecordedEvent};
use async_trait::async_trait;
use domain::invoice::InvoiceEvent;
use domain::lead::{LeadCommand, LeadEvent};
use domain::partner::PartnerCommand;
use time::OffsetDateTime;
use tokio::sync::watch;

use projections::{decode, micros, ProjectionError};

use super::{command_id, send, Context, ProcessManager};

/// Invoice paid -> lead marked paid.
pub struct LeadPaidOnInvoicePaid;

#[async_trait]
impl ProcessManager for LeadPaidOnInvoicePaid {
    fn name(&self) -> &'static str {
        "lead_paid"
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type != "InvoicePaid" {
            return Ok(());
        }
        let InvoiceEvent::InvoicePaid {
            invoice_id,
            lead_id,
            paid_at,
            ..
        } = decode::<InvoiceEvent>(event)?
        else {
            return Ok(());
        };
        let command = LeadCommand::MarkPaid {
            invoice_id,
            at: paid_at,
        };
        send(
            context,
            &context.handlers.leads,
            self.name(),
            event,
            0,
            &lead_id,
            command,
        )
        .await?;
        Ok(())
    }
}

/// A lead a partner referred became active -> the partner's activation count (and, at the
/// third, the upgrade to Certified, decided by the Partner aggregate).
pub struct PartnerActivations;

#[async_trait]
impl ProcessManager for PartnerActivations {
    fn name(&self) -> &'static str {
        "partner_activations"
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type != "LeadActivated" {
            return Ok(());
        }
        let LeadEvent::LeadActivated {
            lead_id,
            partner_id: Some(partner_id),
            activated_at,
        } = decode::<LeadEvent>(event)?
        else {
            return Ok(());
        };
        let command = PartnerCommand::RecordCustomerActivated {
            lead_id,
            at: activated_at,
        };
        send(
            context,
            &context.handlers.partners,
            self.name(),
            event,
            0,
            &partner_id,
            command,
        )
        .await?;
        Ok(())
    }
}

/// Archives leads silent for 14 days: not a reaction to an event but to time passing, so it is
/// a sweep over the CRM board, run every [`FOLLOW_UP_SWEEP`]. The lead aggregate checks the
/// silence itself (`ArchiveIfCold`), so a board that lags can never archive a lead that
/// answered; the command id is derived from the lead and the start of its silence, so one
/// silence archives at most once.
pub const FOLLOW_UP_SWEEP: Duration = Duration::from_secs(60);

/// Leads archived per sweep at most; the next sweep takes the rest.
pub const FOLLOW_UP_SWEEP_LIMIT: i64 = 500;

pub async fn archive_cold_leads(
    handlers: &Handlers,
    now: OffsetDateTime,
) -> Result<usize, ProjectionError> {
    let db = handlers.store.sql();
    let cutoff = micros(now - time::Duration::days(domain::lead::COLD_AFTER_DAYS));
    let rows = db
        .fetch_all(
            "SELECT lead_id, silence_started_at_us FROM crm_board \
             WHERE stage IN ('new', 'qualified', 'demo_booked', 'proposal') AND silence_started_at_us <= ? \
             ORDER BY silence_started_at_us LIMIT ?",
            &[cutoff.into(), FOLLOW_UP_SWEEP_LIMIT.into()],
        )
        .await?;
    let mut archived = 0;
    for row in rows {
        let lead_id = row.text(0)?;
        let silence = row.i64(1)?;
        let envelope = CommandEnvelope {
            aggregate_id: lead_id.clone(),
            command_id: command_id("follow_up", &format!("{lead_id}:{silence}"), 0),
            command: LeadCommand::ArchiveIfCold { at: now },
            metadata: EventMetadata {
                actor: Some("process:follow_up".into()),
                source: Some("process:follow_up".into()),
                ..Default::default()
            },
            inbox: None,
            fresh_id: false,
        };
        match handlers.leads.execute(envelope).await {
            Ok(outcome) if !outcome.replayed && outcome.events_appended > 0 => archived += 1,
            Ok(_) => {}
            Err(CommandError::Rejected(rule)) => {
                tracing::debug!(%lead_id, reason = %rule, "lead not archived as cold");
            }
            Err(CommandError::Store(error)) => return Err(error.into()),
            Err(other) => return Err(ProjectionError::Command(other.to_string())),
        }
    }
    Ok(archived)
}

/// Runs [`archive_cold_leads`] every [`FOLLOW_UP_SWEEP`] until shutdown.
pub async fn run_follow_up_sweeps(handlers: Arc<Handlers>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = adapters::clock::now_micros();
        match archive_cold_leads(&handlers, now).await {
            Ok(0) => {}
            Ok(archived) => tracing::info!(archived, "cold leads archived"),
            Err(error) => tracing::warn!(%error, "follow-up sweep failed; retrying later"),
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_UP_SWEEP) => {}
            _ = shutdown.changed() => return,
        }
    }
}
