//! The commissions process manager: attribution, accrual and clawback.
//!
//! - A referral click (`ReferralRecorded`) and a lead's capture are remembered.
//! - When an invoice is paid, the lead's referrals (and the partner named at capture, which
//!   counts as a click at the capture time) are run through `domain::partner::attribute` with
//!   the program's attribution model (first touch by default): a click within 30 days before
//!   the capture earns the commission. It accrues on the amount before VAT at the partner's
//!   rate *at that moment* (the rate is locked into `CommissionAccrued`); a Strategic partner's
//!   5% revenue share is added to its 20%. The commission is held for the configured days.
//! - When an invoice is refunded, the commission is clawed back pro rata (the credit note's
//!   amount before VAT over the invoice's), also after it was paid out.
//!
//! The commission id is derived from the invoice id, and every command id from the causing
//! event, so a replay accrues and claws back nothing twice.

use async_trait::async_trait;
use domain::commission::CommissionCommand;
use domain::invoice::InvoiceEvent;
use domain::lead::LeadEvent;
use domain::partner::{attribute, AttributionModel, PartnerEvent, PartnerStatus, Referral};
use uuid::Uuid;

use adapters::personal::email_match_key;
use adapters::store::RecordedEvent;

use crate::process::{send, Context, ProcessManager, COMMAND_NAMESPACE};
use projections::{decode, from_micros, micros, ProjectionError};

/// How the partner program runs; from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramConfig {
    /// Days a commission is held before it can be approved (refund window).
    pub hold_days: u32,
    pub attribution: AttributionModel,
    /// A partner is paid out only when its approved total reaches this.
    pub payout_minimum_halalas: i64,
}

impl Default for ProgramConfig {
    fn default() -> Self {
        ProgramConfig {
            hold_days: 30,
            attribution: AttributionModel::FirstTouch,
            payout_minimum_halalas: 50_000,
        }
    }
}

/// The commission an invoice earns.
pub fn commission_id_for(invoice_id: &str) -> String {
    Uuid::new_v5(
        &COMMAND_NAMESPACE,
        format!("commission:{invoice_id}").as_bytes(),
    )
    .to_string()
}

pub struct Commissions {
    pub config: ProgramConfig,
}

impl Commissions {
    const NAME: &'static str = "commissions";

    async fn referrals_of(
        context: &Context,
        email: &str,
    ) -> Result<Vec<Referral>, ProjectionError> {
        let rows = context
            .db
            .fetch_all(
                "SELECT partner_id, clicked_at_us FROM pm_referrals WHERE lead_email = ?",
                &[email.into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Referral {
                    partner_id: row.text(0)?,
                    lead_email: email.to_owned(),
                    clicked_at: from_micros(row.i64(1)?),
                })
            })
            .collect()
    }

    async fn accrue(
        &self,
        context: &Context,
        event: &RecordedEvent,
        invoice_id: String,
        lead_id: String,
        base_halalas: i64,
        paid_at: time::OffsetDateTime,
    ) -> Result<(), ProjectionError> {
        let Some(lead) = context
            .db
            .fetch_optional(
                "SELECT email, captured_at_us, partner_id FROM pm_leads WHERE lead_id = ?",
                &[lead_id.as_str().into()],
            )
            .await?
        else {
            return Ok(());
        };
        let email = lead.opt_text(0)?.unwrap_or_default();
        let captured_at = from_micros(lead.i64(1)?);
        let mut referrals = if email.is_empty() {
            Vec::new()
        } else {
            Self::referrals_of(context, &email).await?
        };
        // The partner named at capture counts as a click at the capture, unless its own
        // recorded click says when the window started.
        if let Some(partner_id) = lead.opt_text(2)? {
            if !referrals
                .iter()
                .any(|referral| referral.partner_id == partner_id)
            {
                referrals.push(Referral {
                    partner_id,
                    lead_email: email.clone(),
                    clicked_at: captured_at,
                });
            }
        }
        let Some(winner) = attribute(&referrals, captured_at, self.config.attribution) else {
            return Ok(());
        };
        let partner_id = winner.partner_id.clone();
        let (partner, _) = context
            .handlers
            .partners
            .load_aggregate(&partner_id)
            .await
            .map_err(|e| ProjectionError::Command(e.to_string()))?;
        let (Some(tier), Some(PartnerStatus::Active)) = (partner.tier(), partner.status()) else {
            tracing::info!(%partner_id, %invoice_id, "attributed partner is not an active member; no commission");
            return Ok(());
        };
        let commission_id = commission_id_for(&invoice_id);
        context
            .db
            .execute_derived(
                "INSERT INTO pm_commissions (invoice_id, commission_id, partner_id) VALUES (?, ?, ?) \
                 ON CONFLICT (invoice_id) DO NOTHING",
                &[invoice_id.as_str().into(), commission_id.as_str().into(), partner_id.as_str().into()],
            )
            .await?;
        let command = CommissionCommand::Accrue {
            commission_id: commission_id.clone(),
            partner_id,
            invoice_id,
            lead_id,
            base_halalas,
            rate_bps: tier.commission_rate_bps() + tier.revenue_share_bps(),
            hold_days: self.config.hold_days,
            at: paid_at,
        };
        send(
            context,
            &context.handlers.commissions,
            Self::NAME,
            event,
            0,
            &commission_id,
            command,
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl ProcessManager for Commissions {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        match event.event_type.as_str() {
            "ReferralRecorded" => {
                let PartnerEvent::ReferralRecorded {
                    partner_id,
                    lead_email,
                    clicked_at,
                    ..
                } = decode(event)?
                else {
                    return Ok(());
                };
                // Sealed emails are compared by their index (`email_match_key`); an erased
                // person's click no longer matches anyone.
                let Some(lead_email) = email_match_key(&context.db, &lead_email).await? else {
                    return Ok(());
                };
                context
                    .db
                    .execute_derived(
                        "INSERT INTO pm_referrals (partner_id, lead_email, clicked_at_us) VALUES (?, ?, ?) \
                         ON CONFLICT (partner_id, lead_email, clicked_at_us) DO NOTHING",
                        &[partner_id.into(), lead_email.into(), micros(clicked_at).into()],
                    )
                    .await?;
            }
            "LeadCaptured" => {
                let LeadEvent::LeadCaptured {
                    lead_id,
                    email,
                    partner_id,
                    captured_at,
                    ..
                } = decode(event)?
                else {
                    return Ok(());
                };
                let email = match email {
                    Some(email) => email_match_key(&context.db, &email).await?,
                    None => None,
                };
                context
                    .db
                    .execute_derived(
                        "INSERT INTO pm_leads (lead_id, email, captured_at_us, partner_id) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (lead_id) DO NOTHING",
                        &[
                            lead_id.into(),
                            email.into(),
                            micros(captured_at).into(),
                            partner_id.into(),
                        ],
                    )
                    .await?;
            }
            "InvoicePaid" => {
                let InvoiceEvent::InvoicePaid {
                    invoice_id,
                    lead_id,
                    subtotal_halalas,
                    paid_at,
                    ..
                } = decode(event)?
                else {
                    return Ok(());
                };
                self.accrue(
                    context,
                    event,
                    invoice_id,
                    lead_id,
                    subtotal_halalas,
                    paid_at,
                )
                .await?;
            }
            "InvoiceRefunded" => {
                let InvoiceEvent::InvoiceRefunded {
                    invoice_id,
                    refund_id,
                    invoice_subtotal_halalas,
                    credit_note,
                    refunded_at,
                    ..
                } = decode(event)?
                else {
                    return Ok(());
                };
                let Some(row) = context
                    .db
                    .fetch_optional(
                        "SELECT commission_id FROM pm_commissions WHERE invoice_id = ?",
                        &[invoice_id.as_str().into()],
                    )
                    .await?
                else {
                    return Ok(());
                };
                let commission_id = row.text(0)?;
                let command = CommissionCommand::ClawBack {
                    refund_id,
                    refunded_base_halalas: credit_note.subtotal_halalas,
                    invoice_base_halalas: invoice_subtotal_halalas,
                    at: refunded_at,
                };
                send(
                    context,
                    &context.handlers.commissions,
                    Self::NAME,
                    event,
                    0,
                    &commission_id,
                    command,
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
