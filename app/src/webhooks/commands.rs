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
use time::OffsetDateTime;
use uuid::Uuid;

use crate::command::{CommandEnvelope, CommandError, CommandHandler, CommandOutcome};

use super::{
    Deliveries, Delivery, DeliveryError, Outcome, Provider, Touched, EMAIL_LOOKUP_WAIT,
    INVOICE_LOOKUP_WAIT, UNMATCHED_INVOICE,
};

impl Deliveries {
    pub(super) async fn apply(
        &self,
        record: &mut InboxRecord,
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
        record: &mut InboxRecord,
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
        let ours = payment.our_invoice_reference();
        let theirs = payment.invoice_id.as_deref();
        let invoice = self.invoice_of_payment(ours, theirs).await?;
        let (invoice_id, lead_id) = invoice.unzip();
        Touched {
            lead_id,
            invoice_id,
            payment_id: Some(payment.id.clone()),
            partner_id: None,
        }
        .write_into(&mut record.response);
        if record.response["touched"]["invoice_id"].is_null() {
            record.response["status"] = UNMATCHED_INVOICE.into();
            record.response["reason"] = format!(
                "payment {} names no invoice we know (metadata.revledger_invoice_id: {}, Moyasar invoice: {}): \
                 it is kept on its payment stream, applied if that invoice is issued later, and listed \
                 by /api/reconciliation meanwhile",
                payment.id,
                ours.unwrap_or("none"),
                theirs.unwrap_or("none"),
            )
            .into();
            tracing::warn!(payment = %payment.id, ours, theirs, "Moyasar payment names no known invoice");
        }
        let command = moyasar_payment_command(payment, event.created_at);
        // A report that cannot follow what we know may be ahead of one still on its way.
        let out_of_order =
            |error: &PaymentError| matches!(error, PaymentError::IllegalTransition { .. });
        run_main(
            &self.handlers.payments,
            record,
            &payment.id,
            command,
            moyasar_payment_command_id(payment),
            out_of_order,
        )
        .await
    }

    pub(super) async fn apply_calendly(
        &self,
        record: &mut InboxRecord,
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
                // Not the email itself: the reason is kept in clear in the inbox row.
                return Ok(Outcome::Park(
                    "no lead with the invitee's email yet".to_owned(),
                ));
            }
        };
        Touched {
            lead_id: Some(lead_id.clone()),
            ..Touched::default()
        }
        .write_into(&mut record.response);
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
            record.command_id(),
            before_booking,
        )
        .await
    }

    pub(super) async fn apply_partner(
        &self,
        record: &mut InboxRecord,
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
                Touched {
                    lead_id: Some(lead_id.clone()),
                    partner_id: lead.partner_id.clone(),
                    ..Touched::default()
                }
                .write_into(&mut record.response);
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
                run_main(
                    &self.handlers.leads,
                    record,
                    &lead_id,
                    command,
                    record.command_id(),
                    |_| false,
                )
                .await
            }
            standard::PartnerSourceEventKind::PartnerApplied(applied) => {
                let partner_id =
                    derived_lead_id(&format!("partner:{}", applied.email.to_lowercase()));
                let requested_tier = match applied.requested_tier {
                    standard::RequestedTier::Referral => PartnerTier::Referral,
                    standard::RequestedTier::Certified => PartnerTier::Certified,
                    standard::RequestedTier::Strategic => PartnerTier::Strategic,
                };
                Touched {
                    partner_id: Some(partner_id.clone()),
                    ..Touched::default()
                }
                .write_into(&mut record.response);
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
                    record.command_id(),
                    |_| false,
                )
                .await
            }
        }
    }

    /// The invoice a Moyasar payment is for, and its lead: the one its metadata names if that
    /// was issued (read from its stream, so always current), else the one linked to its Moyasar
    /// invoice (given at issue, or linked when revledger created that Moyasar invoice), as the
    /// reconciliation's invoice facts know it. `None` when it names no invoice we know. The
    /// same order as the payments-to-invoices process manager's.
    pub(super) async fn invoice_of_payment(
        &self,
        ours: Option<&str>,
        theirs: Option<&str>,
    ) -> Result<Option<(String, String)>, DeliveryError> {
        if let Some(ours) = ours {
            if let Some(found) = self.issued_invoice(ours).await? {
                return Ok(Some(found));
            }
        }
        let Some(theirs) = theirs else {
            return Ok(None);
        };
        let db = self.store.sql();
        let mut linked =
            projections::reconciliation::invoice_of_moyasar_invoice(&db, theirs).await?;
        // Not found: the invoice may have been linked a moment ago. Wait (bounded) for the read
        // model to see everything committed before now, and look once more.
        if linked.is_none() && self.config.run_workers {
            self.reconciliation
                .wait_caught_up(INVOICE_LOOKUP_WAIT)
                .await?;
            linked = projections::reconciliation::invoice_of_moyasar_invoice(&db, theirs).await?;
        }
        match linked {
            Some(invoice_id) => self.issued_invoice(&invoice_id).await,
            None => Ok(None),
        }
    }

    /// `invoice_id` and its lead, if that invoice was issued.
    async fn issued_invoice(
        &self,
        invoice_id: &str,
    ) -> Result<Option<(String, String)>, DeliveryError> {
        // An issued invoice's lead never changes: a cached state answers without a read.
        let lead_id = self
            .handlers
            .invoices
            .inspect_settled(invoice_id, |invoice, version| {
                (version > 0).then(|| invoice.lead_id().to_owned())
            })
            .await
            .map_err(|error| DeliveryError::Command(error.to_string()))?;
        Ok(lead_id.map(|lead_id| (invoice_id.to_owned(), lead_id)))
    }

    /// The lead with this email, waiting (bounded) for the CRM board to see every lead captured
    /// before now. Leads whose email is sealed are found by its index ([`Vault`]); those
    /// captured before sealing, by the email the board holds in clear.
    pub(super) async fn lead_by_email(&self, email: &str) -> Result<Option<String>, DeliveryError> {
        if self.config.run_workers {
            self.crm_board.wait_caught_up(EMAIL_LOOKUP_WAIT).await?;
        }
        let sealed_leads: Vec<String> = match self.store.vault() {
            Some(vault) => vault
                .subjects_by_email(email)
                .await?
                .iter()
                .filter_map(|subject| subject.strip_prefix("lead-").map(str::to_owned))
                .collect(),
            None => Vec::new(),
        };
        Ok(
            projections::crm_board::lead_id_by_email(&self.store.sql(), email, &sealed_leads)
                .await?,
        )
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

/// The outcome of the delivery's main command, run under `command_id` with the delivery's
/// inbox row.
pub(super) async fn run_main<A>(
    handler: &CommandHandler<A>,
    record: &InboxRecord,
    aggregate_id: &str,
    command: A::Command,
    command_id: Uuid,
    park_when: impl Fn(&A::Error) -> bool,
) -> Result<Outcome, DeliveryError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    let envelope = envelope(record, aggregate_id, command, command_id, true);
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

/// What a Moyasar Payment object reports, as the command that records it: the one mapping
/// for a webhook's `data` and for the missed-payment sweep's API reads. `at` is when the
/// report was made (the webhook event's time, or when the sweep read the payment).
pub fn moyasar_payment_command(
    payment: &moyasar::MoyasarPayment,
    at: OffsetDateTime,
) -> PaymentCommand {
    PaymentCommand::RecordGatewayStatus {
        payment_id: payment.id.clone(),
        invoice_id: payment.our_invoice_reference().map(str::to_owned),
        moyasar_invoice_id: payment.invoice_id.clone(),
        status: payment_status(payment.status),
        amount_halalas: payment.amount_halalas,
        fee_halalas: payment.fee_halalas,
        captured_halalas: payment.captured_halalas,
        refunded_halalas: payment.refunded_halalas,
        currency: payment.currency.clone(),
        at,
    }
}

/// The command id of recording a Moyasar payment in the state it reports: derived from the
/// payment's id, status and cumulative refunded amount, never from who reported it. A webhook
/// and the sweep that saw the same state therefore send the same command, applied once:
/// whichever comes second is answered as already applied, and nothing is counted twice.
/// (Every further state, a later status or a further refund, is a new id.)
pub fn moyasar_payment_command_id(payment: &moyasar::MoyasarPayment) -> Uuid {
    Uuid::new_v5(
        &INBOX_NAMESPACE,
        format!(
            "command:moyasar-payment:{}:{}:{}",
            payment.id,
            payment_status(payment.status).as_str(),
            payment.refunded_halalas
        )
        .as_bytes(),
    )
}

/// Moyasar's payment status in the ledger's words (the same names).
pub fn payment_status(status: moyasar::MoyasarPaymentStatus) -> PaymentStatus {
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
