//! What each provider's delivery means as commands: a Moyasar payment event to the payment's
//! gateway status, a Calendly booking to the lead's demo, a partner source's lead or
//! application to the lead or the partner; and the helpers that run them.

use adapters::inbox::{self, InboxRecord, INBOX_NAMESPACE};
use adapters::store::EventMetadata;
use adapters::webhooks::{calendly, moyasar, standard};
use cqrs_es::Aggregate;
use domain::lead::{LeadCommand, LeadError, Utm};
use domain::partner::{PartnerCommand, PartnerTier};
use domain::payment::{PaymentCommand, PaymentError, PaymentStatus};
use uuid::Uuid;

use crate::command::{CommandEnvelope, CommandError, CommandHandler, CommandOutcome};

use super::{Deliveries, Delivery, DeliveryError, Outcome, Provider, EMAIL_LOOKUP_WAIT};

impl Deliveries {
    pub(super) async fn apply(
        &self,
        record: &InboxRecord,
        delivery: Delivery,
    ) -> Result<Outcome, DeliveryError> {
        match delivery {
            Delivery::Moyasar(event) => self.apply_moyasar(record, event).await,
            Delivery::Calendly(event) => self.apply_calendly(record, event).await,
            Delivery::Partner(event) => self.apply_partner(record, event).await,
        }
    }

    pub(super) async fn apply_moyasar(
        &self,
        record: &InboxRecord,
        event: moyasar::MoyasarEvent,
    ) -> Result<Outcome, DeliveryError> {
        let Some(payment) = event.payment() else {
            return Ok(Outcome::Acknowledged("webhook verification"));
        };
        match (event.live, self.config.sandbox) {
            (false, false) => {
                return Ok(Outcome::Ignored {
                    status: "ignored_test_mode",
                    reason: "a test-mode payment (live: false) never changes a live ledger",
                })
            }
            (true, true) => {
                return Ok(Outcome::Ignored {
                    status: "ignored_live_mode",
                    reason:
                        "a live payment is not recorded in a sandbox ledger (REVLEDGER_SANDBOX)",
                })
            }
            _ => {}
        }
        let command = PaymentCommand::RecordGatewayStatus {
            payment_id: payment.id.clone(),
            invoice_id: payment.our_invoice_reference().map(str::to_owned),
            moyasar_invoice_id: payment.invoice_id.clone(),
            status: payment_status(payment.status),
            amount_halalas: payment.amount_halalas,
            fee_halalas: payment.fee_halalas,
            captured_halalas: payment.captured_halalas,
            refunded_halalas: payment.refunded_halalas,
            currency: payment.currency.clone(),
            at: event.created_at,
        };
        // A report that cannot follow what we know may be ahead of one still on its way.
        let out_of_order =
            |error: &PaymentError| matches!(error, PaymentError::IllegalTransition { .. });
        run_main(
            &self.handlers.payments,
            record,
            &payment.id,
            command,
            out_of_order,
        )
        .await
    }

    pub(super) async fn apply_calendly(
        &self,
        record: &InboxRecord,
        event: calendly::CalendlyEvent,
    ) -> Result<Outcome, DeliveryError> {
        let invitee = &event.invitee;
        let known = self.lead_by_email(&invitee.email).await?;
        let lead_id = match (&event.kind, known) {
            (_, Some(lead_id)) => lead_id,
            (calendly::CalendlyEventKind::InviteeCreated, None) => {
                let lead_id = derived_lead_id(&format!("email:{}", invitee.email));
                let tracking = &invitee.tracking;
                let utm = (tracking.utm_source.is_some()
                    || tracking.utm_medium.is_some()
                    || tracking.utm_campaign.is_some())
                .then(|| Utm {
                    source: tracking.utm_source.clone(),
                    medium: tracking.utm_medium.clone(),
                    campaign: tracking.utm_campaign.clone(),
                });
                let capture = LeadCommand::Capture {
                    lead_id: lead_id.clone(),
                    name: invitee.name.clone(),
                    company: None,
                    email: Some(invitee.email.clone()),
                    phone: None,
                    source: Provider::Calendly.as_str().to_owned(),
                    partner_id: None,
                    utm,
                    owner: None,
                    at: event.created_at,
                };
                let capture_id = Uuid::new_v5(
                    &INBOX_NAMESPACE,
                    format!("capture:{}", record.command_id()).as_bytes(),
                );
                match self
                    .handlers
                    .leads
                    .execute(envelope(record, &lead_id, capture, capture_id, false))
                    .await
                {
                    Ok(_) | Err(CommandError::Rejected(LeadError::LeadAlreadyCaptured)) => {}
                    Err(CommandError::Rejected(rule)) => {
                        return Ok(Outcome::Refused(rule.to_string()))
                    }
                    Err(other) => return Err(DeliveryError::Command(other.to_string())),
                }
                lead_id
            }
            (_, None) => {
                return Ok(Outcome::Park(format!(
                    "no lead with email {} yet",
                    invitee.email
                )))
            }
        };
        let (command, waits_for_booking) = match &event.kind {
            calendly::CalendlyEventKind::InviteeCreated => (
                LeadCommand::BookDemo {
                    booking_id: invitee.uri.clone(),
                    scheduled_for: invitee.start_time,
                    at: event.created_at,
                },
                false,
            ),
            calendly::CalendlyEventKind::InviteeCanceled {
                rescheduled,
                reason,
            } => (
                LeadCommand::CancelDemo {
                    booking_id: invitee.uri.clone(),
                    reason: reason
                        .clone()
                        .unwrap_or_else(|| "canceled by the invitee".to_owned()),
                    rescheduled: *rescheduled,
                    at: event.created_at,
                },
                true,
            ),
            calendly::CalendlyEventKind::InviteeNoShowCreated => (
                LeadCommand::RecordNoShow {
                    booking_id: invitee.uri.clone(),
                    at: event.created_at,
                },
                true,
            ),
        };
        // A cancel or no-show for a booking we have not seen yet waits for its invitee.created.
        let before_booking = move |error: &LeadError| {
            waits_for_booking
                && matches!(
                    error,
                    LeadError::NoDemoBooked { .. } | LeadError::DemoBookingMismatch { .. }
                )
        };
        run_main(
            &self.handlers.leads,
            record,
            &lead_id,
            command,
            before_booking,
        )
        .await
    }

    pub(super) async fn apply_partner(
        &self,
        record: &InboxRecord,
        event: standard::PartnerSourceEvent,
    ) -> Result<Outcome, DeliveryError> {
        match event.kind {
            standard::PartnerSourceEventKind::LeadCaptured(lead) => {
                let lead_id = derived_lead_id(&format!("partners:{}", record.delivery_id));
                // The click that brought the lead is a referral of its own: the 30-day attribution
                // window runs from it, not from when the form was posted.
                if let (Some(partner_id), Some(clicked_at), false) =
                    (&lead.partner_id, lead.referred_at, lead.email.is_empty())
                {
                    let referral = PartnerCommand::RecordReferral {
                        lead_email: lead.email.clone(),
                        clicked_at,
                        at: event.occurred_at,
                    };
                    let id = Uuid::new_v5(
                        &INBOX_NAMESPACE,
                        format!("referral:{}", record.command_id()).as_bytes(),
                    );
                    match self
                        .handlers
                        .partners
                        .execute(envelope(record, partner_id, referral, id, false))
                        .await
                    {
                        Ok(_) | Err(CommandError::Rejected(_)) => {}
                        Err(other) => return Err(DeliveryError::Command(other.to_string())),
                    }
                }
                let command = LeadCommand::Capture {
                    lead_id: lead_id.clone(),
                    name: lead.name,
                    company: Some(lead.company).filter(|c| !c.is_empty()),
                    email: Some(lead.email).filter(|e| !e.is_empty()),
                    phone: Some(lead.phone).filter(|p| !p.is_empty()),
                    source: lead.source,
                    partner_id: lead.partner_id,
                    utm: None,
                    owner: None,
                    at: event
                        .occurred_at
                        .max(lead.referred_at.unwrap_or(event.occurred_at)),
                };
                run_main(&self.handlers.leads, record, &lead_id, command, |_| false).await
            }
            standard::PartnerSourceEventKind::PartnerApplied(applied) => {
                let partner_id =
                    derived_lead_id(&format!("partner:{}", applied.email.to_lowercase()));
                let requested_tier = match applied.requested_tier {
                    standard::RequestedTier::Referral => PartnerTier::Referral,
                    standard::RequestedTier::Certified => PartnerTier::Certified,
                    standard::RequestedTier::Strategic => PartnerTier::Strategic,
                };
                let command = PartnerCommand::Apply {
                    partner_id: partner_id.clone(),
                    name: applied.name,
                    email: applied.email,
                    requested_tier,
                    at: event.occurred_at,
                };
                run_main(
                    &self.handlers.partners,
                    record,
                    &partner_id,
                    command,
                    |_| false,
                )
                .await
            }
        }
    }

    /// The lead with this email, waiting (bounded) for the CRM board to see every lead captured
    /// before now.
    pub(super) async fn lead_by_email(&self, email: &str) -> Result<Option<String>, DeliveryError> {
        if self.config.run_workers {
            self.crm_board.wait_caught_up(EMAIL_LOOKUP_WAIT).await?;
        }
        Ok(projections::crm_board::lead_id_by_email(&self.store.sql(), email).await?)
    }
}

pub(super) fn envelope<C>(
    record: &InboxRecord,
    aggregate_id: &str,
    command: C,
    command_id: Uuid,
    with_inbox: bool,
) -> CommandEnvelope<C> {
    CommandEnvelope {
        aggregate_id: aggregate_id.to_owned(),
        command_id,
        command,
        metadata: EventMetadata {
            actor: Some(
                record
                    .replayed_by
                    .clone()
                    .unwrap_or_else(|| format!("webhook:{}", record.provider)),
            ),
            source: Some(match record.replayed_by {
                Some(_) => format!("replay:webhook:{}", record.provider),
                None => format!("webhook:{}", record.provider),
            }),
            delivery_id: Some(record.delivery_id.clone()),
            correlation_id: Some(record.command_id()),
            ..Default::default()
        },
        inbox: with_inbox.then(|| record.clone()),
        fresh_id: false,
    }
}

/// The outcome of the delivery's main command.
pub(super) async fn run_main<A>(
    handler: &CommandHandler<A>,
    record: &InboxRecord,
    aggregate_id: &str,
    command: A::Command,
    park_when: impl Fn(&A::Error) -> bool,
) -> Result<Outcome, DeliveryError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    let envelope = envelope(record, aggregate_id, command, record.command_id(), true);
    match handler.execute(envelope).await {
        Ok(outcome) if outcome.replayed => Ok(Outcome::Accepted(None)),
        Ok(CommandOutcome {
            stream_id,
            version,
            first_position: Some(first_position),
            last_position: Some(last_position),
            ..
        }) => Ok(Outcome::Accepted(Some(inbox::accepted_response(
            &record.response,
            &stream_id,
            version,
            first_position,
            last_position,
        )))),
        Ok(_) => Ok(Outcome::Acknowledged("no change")),
        Err(CommandError::Rejected(rule)) if park_when(&rule) => {
            Ok(Outcome::Park(rule.to_string()))
        }
        Err(CommandError::Rejected(rule)) => Ok(Outcome::Refused(rule.to_string())),
        Err(CommandError::Conflict { stream_id }) => Err(DeliveryError::Busy { stream_id }),
        Err(other) => Err(DeliveryError::Command(other.to_string())),
    }
}

pub(super) fn payment_status(status: moyasar::MoyasarPaymentStatus) -> PaymentStatus {
    use moyasar::MoyasarPaymentStatus as M;
    match status {
        M::Initiated => PaymentStatus::Initiated,
        M::Authorized => PaymentStatus::Authorized,
        M::Captured => PaymentStatus::Captured,
        M::Paid => PaymentStatus::Paid,
        M::Failed => PaymentStatus::Failed,
        M::Refunded => PaymentStatus::Refunded,
        M::Voided => PaymentStatus::Voided,
        M::Verified => PaymentStatus::Verified,
    }
}

/// The id a lead captured from a webhook gets: derived from what identifies it, so a repeat or
/// a concurrent delivery about the same person lands on the same lead.
pub(super) fn derived_lead_id(key: &str) -> String {
    Uuid::new_v5(&INBOX_NAMESPACE, format!("lead:{key}").as_bytes()).to_string()
}
