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

use std::collections::{BTreeSet, HashMap};

use adapters::personal::email_match_keys;
use adapters::sql::{in_list, SqlDb, SqlValue};
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

    /// Accrues the commission a paid invoice earns, if one of its lead's referrals
    /// attributes the lead.
    async fn accrue(
        &self,
        context: &Context,
        remembered: &mut Remembered,
        event: &RecordedEvent,
        paid: PaidInvoice,
        lead: &RememberedLead,
        mut referrals: Vec<Referral>,
    ) -> Result<(), ProjectionError> {
        let PaidInvoice {
            invoice_id,
            lead_id,
            base_halalas,
            paid_at,
        } = paid;
        let email = lead.email.clone().unwrap_or_default();
        let captured_at = from_micros(lead.captured_at_us);
        // The partner named at capture counts as a click at the capture, unless its own
        // recorded click says when the window started.
        if let Some(partner_id) = lead.partner_id.clone() {
            if !referrals
                .iter()
                .any(|referral| referral.partner_id == partner_id)
            {
                referrals.push(Referral {
                    partner_id,
                    lead_email: email,
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
        remembered.commission(&invoice_id, &commission_id, &partner_id);
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
        Self::send(context, event, &commission_id, command).await
    }

    /// Sends `command` to the commission, caused by `event` (one command per event).
    async fn send(
        context: &Context,
        event: &RecordedEvent,
        commission_id: &str,
        command: CommissionCommand,
    ) -> Result<(), ProjectionError> {
        let handler = &context.handlers.commissions;
        send(
            context,
            handler,
            Self::NAME,
            event,
            0,
            commission_id,
            command,
        )
        .await?;
        Ok(())
    }
}

/// What the process manager remembers of a lead (`pm_leads`): its email's match key, when it
/// was captured, and the partner named at capture.
#[derive(Clone, Debug)]
struct RememberedLead {
    email: Option<String>,
    captured_at_us: i64,
    partner_id: Option<String>,
}

/// An invoice paid: what its commission is accrued from.
struct PaidInvoice {
    invoice_id: String,
    lead_id: String,
    base_halalas: i64,
    paid_at: time::OffsetDateTime,
}

/// An event of a batch, as the process manager reads it.
enum Step {
    Referral {
        partner_id: String,
        email: String,
        clicked_at_us: i64,
    },
    Captured {
        lead_id: String,
        email: Option<String>,
        lead: RememberedLead,
    },
    Paid(PaidInvoice),
    Refunded {
        invoice_id: String,
        command: CommissionCommand,
    },
    Other,
}

impl Step {
    fn of(event: &RecordedEvent) -> Result<Step, ProjectionError> {
        Ok(match event.event_type.as_str() {
            "ReferralRecorded" => match decode(event)? {
                PartnerEvent::ReferralRecorded {
                    partner_id,
                    lead_email,
                    clicked_at,
                    ..
                } => Step::Referral {
                    partner_id,
                    email: lead_email,
                    clicked_at_us: micros(clicked_at),
                },
                _ => Step::Other,
            },
            "LeadCaptured" => match decode(event)? {
                LeadEvent::LeadCaptured {
                    lead_id,
                    email,
                    partner_id,
                    captured_at,
                    ..
                } => Step::Captured {
                    lead_id,
                    email,
                    lead: RememberedLead {
                        email: None,
                        captured_at_us: micros(captured_at),
                        partner_id,
                    },
                },
                _ => Step::Other,
            },
            "InvoicePaid" => match decode(event)? {
                InvoiceEvent::InvoicePaid {
                    invoice_id,
                    lead_id,
                    subtotal_halalas,
                    paid_at,
                    ..
                } => Step::Paid(PaidInvoice {
                    invoice_id,
                    lead_id,
                    base_halalas: subtotal_halalas,
                    paid_at,
                }),
                _ => Step::Other,
            },
            "InvoiceRefunded" => match decode(event)? {
                InvoiceEvent::InvoiceRefunded {
                    invoice_id,
                    refund_id,
                    invoice_subtotal_halalas,
                    credit_note,
                    refunded_at,
                    ..
                } => Step::Refunded {
                    invoice_id,
                    command: CommissionCommand::ClawBack {
                        refund_id,
                        refunded_base_halalas: credit_note.subtotal_halalas,
                        invoice_base_halalas: invoice_subtotal_halalas,
                        at: refunded_at,
                    },
                },
                _ => Step::Other,
            },
            _ => Step::Other,
        })
    }
}

/// A batch's view of `pm_leads` and `pm_referrals`: the rows stored when it began that its
/// paid invoices need (one read each), and the rows its own events add, each with its place in
/// the batch so that an event sees only what came before it, as one at a time would.
#[derive(Default)]
struct Remembered {
    stored_leads: HashMap<String, RememberedLead>,
    stored_referrals: HashMap<String, Vec<Referral>>,
    /// Lead id -> (place, row); the first capture wins, as `ON CONFLICT DO NOTHING` does.
    new_leads: HashMap<String, (usize, RememberedLead)>,
    /// (place, partner, email key, clicked at).
    new_referrals: Vec<(usize, String, String, i64)>,
    /// Invoice id -> commission id, of the invoices the batch's refunds name.
    stored_commissions: HashMap<String, String>,
    /// (invoice, commission, partner) accrued in this batch, in order.
    new_commissions: Vec<(String, String, String)>,
}

impl Remembered {
    /// The commission accrued on `invoice_id`, stored or accrued earlier in the batch.
    fn commission_of(&self, invoice_id: &str) -> Option<&str> {
        self.stored_commissions
            .get(invoice_id)
            .map(String::as_str)
            .or_else(|| {
                self.new_commissions
                    .iter()
                    .find(|(invoice, _, _)| invoice == invoice_id)
                    .map(|(_, commission, _)| commission.as_str())
            })
    }

    /// A commission accrued on `invoice_id`; the first one wins, as `ON CONFLICT DO NOTHING`
    /// does.
    fn commission(&mut self, invoice_id: &str, commission_id: &str, partner_id: &str) {
        if self.commission_of(invoice_id).is_none() {
            self.new_commissions.push((
                invoice_id.to_owned(),
                commission_id.to_owned(),
                partner_id.to_owned(),
            ));
        }
    }

    /// The commissions of the invoices the batch's refunds name, in one statement.
    async fn read_commissions(
        &mut self,
        db: &SqlDb,
        steps: &[Step],
    ) -> Result<(), ProjectionError> {
        let refunded: BTreeSet<&str> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Refunded { invoice_id, .. } => Some(invoice_id.as_str()),
                _ => None,
            })
            .collect();
        if refunded.is_empty() {
            return Ok(());
        }
        let (marks, params) = in_list(refunded.iter().copied());
        let sql = format!(
            "SELECT invoice_id, commission_id FROM pm_commissions WHERE invoice_id IN ({marks})"
        );
        for row in db.fetch_all(&sql, &params).await? {
            self.stored_commissions.insert(row.text(0)?, row.text(1)?);
        }
        Ok(())
    }

    /// The lead as event `place` finds it.
    fn lead(&self, lead_id: &str, place: usize) -> Option<&RememberedLead> {
        match self.new_leads.get(lead_id) {
            Some((at, lead)) if *at < place => Some(lead),
            _ => self.stored_leads.get(lead_id),
        }
    }

    /// The referrals of an email key as event `place` finds them.
    fn referrals(&self, email: &str, place: usize) -> Vec<Referral> {
        let mut referrals = self
            .stored_referrals
            .get(email)
            .cloned()
            .unwrap_or_default();
        for (at, partner_id, key, clicked_at_us) in &self.new_referrals {
            let clicked_at = from_micros(*clicked_at_us);
            let known = referrals
                .iter()
                .any(|r| r.partner_id == *partner_id && r.clicked_at == clicked_at);
            if *at < place && key == email && !known {
                referrals.push(Referral {
                    partner_id: partner_id.clone(),
                    lead_email: email.to_owned(),
                    clicked_at,
                });
            }
        }
        referrals
    }

    /// Reads the stored rows the batch's paid invoices need: their leads, then those leads'
    /// referrals.
    async fn read(&mut self, db: &SqlDb, steps: &[Step]) -> Result<(), ProjectionError> {
        let paid: BTreeSet<&str> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Paid(paid) => Some(paid.lead_id.as_str()),
                _ => None,
            })
            .collect();
        if paid.is_empty() {
            return Ok(());
        }
        let (marks, params) = in_list(paid.iter().copied());
        let sql = format!(
            "SELECT lead_id, email, captured_at_us, partner_id FROM pm_leads WHERE lead_id IN ({marks})"
        );
        for row in db.fetch_all(&sql, &params).await? {
            let lead = RememberedLead {
                email: row.opt_text(1)?,
                captured_at_us: row.i64(2)?,
                partner_id: row.opt_text(3)?,
            };
            self.stored_leads.insert(row.text(0)?, lead);
        }
        let emails: BTreeSet<&str> = paid
            .iter()
            .flat_map(|lead_id| {
                let new = self.new_leads.get(*lead_id).map(|(_, lead)| lead);
                [self.stored_leads.get(*lead_id), new]
            })
            .flatten()
            .filter_map(|lead| lead.email.as_deref())
            .filter(|email| !email.is_empty())
            .collect();
        if emails.is_empty() {
            return Ok(());
        }
        let (marks, params) = in_list(emails.iter().copied());
        let sql = format!(
            "SELECT lead_email, partner_id, clicked_at_us FROM pm_referrals WHERE lead_email IN ({marks})"
        );
        for row in db.fetch_all(&sql, &params).await? {
            let lead_email = row.text(0)?;
            let referral = Referral {
                partner_id: row.text(1)?,
                lead_email: lead_email.clone(),
                clicked_at: from_micros(row.i64(2)?),
            };
            self.stored_referrals
                .entry(lead_email)
                .or_default()
                .push(referral);
        }
        Ok(())
    }

    /// Stores the rows the batch's events add.
    async fn write(&self, db: &SqlDb) -> Result<(), ProjectionError> {
        let mut leads: Vec<(&usize, &String, &RememberedLead)> = self
            .new_leads
            .iter()
            .map(|(lead_id, (at, lead))| (at, lead_id, lead))
            .collect();
        leads.sort_by_key(|(at, _, _)| **at);
        let lead_rows = leads.iter().map(|(_, lead_id, lead)| {
            [
                lead_id.as_str().into(),
                lead.email.clone().into(),
                lead.captured_at_us.into(),
                lead.partner_id.clone().into(),
            ]
        });
        insert_rows(
            db,
            "INSERT INTO pm_leads (lead_id, email, captured_at_us, partner_id)",
            "ON CONFLICT (lead_id) DO NOTHING",
            lead_rows,
        )
        .await?;
        let referral_rows =
            self.new_referrals
                .iter()
                .map(|(_, partner_id, email, clicked_at_us)| {
                    [
                        partner_id.as_str().into(),
                        email.as_str().into(),
                        (*clicked_at_us).into(),
                    ]
                });
        insert_rows(
            db,
            "INSERT INTO pm_referrals (partner_id, lead_email, clicked_at_us)",
            "ON CONFLICT (partner_id, lead_email, clicked_at_us) DO NOTHING",
            referral_rows,
        )
        .await?;
        let commission_rows =
            self.new_commissions
                .iter()
                .map(|(invoice_id, commission_id, partner_id)| {
                    [
                        invoice_id.as_str().into(),
                        commission_id.as_str().into(),
                        partner_id.as_str().into(),
                    ]
                });
        insert_rows(
            db,
            "INSERT INTO pm_commissions (invoice_id, commission_id, partner_id)",
            "ON CONFLICT (invoice_id) DO NOTHING",
            commission_rows,
        )
        .await?;
        Ok(())
    }
}

/// Rows per insert statement (well under either engine's limit on parameters).
const WRITE_CHUNK: usize = 200;

/// `rows` written by `insert` (`INSERT INTO table (columns)`), [`WRITE_CHUNK`] rows a
/// statement, each statement ended by `conflict`; each row's values in the columns' order.
async fn insert_rows<const N: usize>(
    db: &SqlDb,
    insert: &str,
    conflict: &str,
    rows: impl Iterator<Item = [SqlValue; N]>,
) -> Result<(), ProjectionError> {
    let rows: Vec<[SqlValue; N]> = rows.collect();
    for chunk in rows.chunks(WRITE_CHUNK) {
        let values = adapters::sql::value_rows(N, chunk.len());
        let params: Vec<SqlValue> = chunk.iter().flatten().cloned().collect();
        db.execute_derived(&format!("{insert} VALUES {values} {conflict}"), &params)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl ProcessManager for Commissions {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.react_batch(context, std::slice::from_ref(event)).await
    }

    /// One read of the emails' match keys, one of the leads and one of the referrals the
    /// batch's paid invoices need, one of the commissions its refunds claw back, and one
    /// write of the leads, referrals and commissions it remembers, instead of those per event.
    async fn react_batch(
        &self,
        context: &Context,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut steps = events.iter().map(Step::of).collect::<Result<Vec<_>, _>>()?;
        // Sealed emails are compared by their index (`email_match_keys`); an erased person's
        // click no longer matches anyone.
        let emails: Vec<&str> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Referral { email, .. } => Some(email.as_str()),
                Step::Captured {
                    email: Some(email), ..
                } => Some(email.as_str()),
                _ => None,
            })
            .collect();
        let mut keys = if emails.is_empty() {
            Vec::new()
        } else {
            email_match_keys(&context.db, &emails).await?
        }
        .into_iter();
        let mut remembered = Remembered::default();
        for (place, step) in steps.iter_mut().enumerate() {
            match step {
                Step::Referral {
                    partner_id,
                    clicked_at_us,
                    ..
                } => {
                    if let Some(key) = keys.next().flatten() {
                        remembered.new_referrals.push((
                            place,
                            partner_id.clone(),
                            key,
                            *clicked_at_us,
                        ));
                    }
                }
                Step::Captured {
                    lead_id,
                    email,
                    lead,
                } => {
                    if email.is_some() {
                        lead.email = keys.next().flatten();
                    }
                    remembered
                        .new_leads
                        .entry(lead_id.clone())
                        .or_insert_with(|| (place, lead.clone()));
                }
                _ => {}
            }
        }
        remembered.read(&context.db, &steps).await?;
        remembered.read_commissions(&context.db, &steps).await?;
        for (place, (step, event)) in steps.into_iter().zip(events).enumerate() {
            match step {
                Step::Paid(paid) => {
                    let Some(lead) = remembered.lead(&paid.lead_id, place).cloned() else {
                        continue;
                    };
                    let referrals = match lead.email.as_deref() {
                        Some(email) if !email.is_empty() => remembered.referrals(email, place),
                        _ => Vec::new(),
                    };
                    self.accrue(context, &mut remembered, event, paid, &lead, referrals)
                        .await?;
                }
                Step::Refunded {
                    invoice_id,
                    command,
                } => {
                    let Some(commission_id) = remembered.commission_of(&invoice_id) else {
                        continue;
                    };
                    let commission_id = commission_id.to_owned();
                    Self::send(context, event, &commission_id, command).await?;
                }
                Step::Referral { .. } | Step::Captured { .. } | Step::Other => {}
            }
        }
        remembered.write(&context.db).await
    }
}
