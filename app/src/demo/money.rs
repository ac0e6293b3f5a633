//! The demo's money: each invoice issued through the seller's sequence and its payment story
//! (paid, failed, refunded, left overdue), onboarding the paid customers, and commissions
//! decided and paid out in payout batches.

use std::collections::BTreeMap;

use domain::commission::{CommissionCommand, CommissionStatus};
use domain::invoice::{Customer, InvoiceCommand, InvoiceLine, IssueInvoice};
use domain::lead::{LeadCommand, LeadStage};
use domain::payment::{Payment, PaymentCommand, PaymentStatus};
use domain::payout::{PayoutCommand, PayoutItem};
use domain::plan::Plan;
use time::{Duration, OffsetDateTime};

use crate::command::CommandHandler;

use super::{demo_command_id, failed, send, Actor, Demo, DemoError, Invoiced, OWNERS};

impl Demo {
    /// Issues the lead's invoice through the seller's sequence and plays its payment story;
    /// true when it ends paid (and not fully refunded).
    pub(super) async fn invoice(
        &mut self,
        lead_id: &str,
        company: &str,
        plan: Plan,
        issued_at: OffsetDateTime,
    ) -> Result<bool, DemoError> {
        let h = self.handlers.clone();
        let invoice_id = format!("inv-{lead_id}");
        let moyasar_invoice_id = format!("moyasar-{lead_id}");
        let due_at = issued_at + Duration::days(if plan == Plan::Pilot { 3 } else { 14 });
        let issue = IssueInvoice {
            invoice_id: invoice_id.clone(),
            customer: Customer {
                lead_id: lead_id.to_owned(),
                name: company.to_owned(),
            },
            lines: vec![InvoiceLine {
                description: format!("{} plan, one month", plan.as_str()),
                quantity: 1,
                unit_price_halalas: plan.price_halalas(),
                plan: Some(plan),
            }],
            issued_at,
            due_at,
            seller: self.seller.clone(),
            moyasar_invoice_id: Some(moyasar_invoice_id.clone()),
        };
        self.issue_through_sequence(issue).await?;
        self.summary.invoices += 1;
        self.invoiced.push(Invoiced {
            invoice_id: invoice_id.clone(),
            lead_id: lead_id.to_owned(),
        });
        let (invoice, _) = h
            .invoices
            .load_aggregate(&invoice_id)
            .await
            .map_err(|e| failed(&invoice_id, e))?;
        let total = invoice.total_halalas();
        let moyasar = MoyasarReports {
            invoice_id: &invoice_id,
            moyasar_invoice_id: &moyasar_invoice_id,
            total,
        };
        let finance = Actor::Finance;
        let story = self.rng.below(100);
        if story < 5 {
            if let Some(at) = self.later(issued_at, 2, 48) {
                let cancel = InvoiceCommand::Cancel {
                    reason: "customer asked for another plan".into(),
                    at,
                };
                send(
                    &h.invoices,
                    &invoice_id,
                    &format!("cancel:{invoice_id}"),
                    finance,
                    cancel,
                )
                .await?;
            }
            return Ok(false);
        }
        if story < 20 {
            // Not paid: expired when long past due, otherwise open (overdue once past due).
            let expire_at = due_at + Duration::days(21);
            if story < 9 && expire_at < self.now {
                let expire = InvoiceCommand::Expire { at: expire_at };
                send(
                    &h.invoices,
                    &invoice_id,
                    &format!("expire:{invoice_id}"),
                    finance,
                    expire,
                )
                .await?;
            } else if due_at < self.now {
                self.summary.overdue_invoices += 1;
            }
            return Ok(false);
        }
        let mut at = issued_at;
        let mut attempt = 1;
        if story < 30 {
            // A declined card first; most customers try again.
            let Some(next) = self.later(at, 1, 72) else {
                return Ok(false);
            };
            at = next;
            let payment_id = format!("pay-{lead_id}-{attempt}");
            for (step, status) in [PaymentStatus::Initiated, PaymentStatus::Failed]
                .into_iter()
                .enumerate()
            {
                moyasar
                    .send(
                        &h.payments,
                        &payment_id,
                        &format!("{payment_id}:{step}"),
                        status,
                        0,
                        at + Duration::minutes(step as i64),
                    )
                    .await?;
            }
            self.summary.payments += 1;
            self.summary.failed_payments += 1;
            if story < 24 {
                if due_at < self.now {
                    self.summary.overdue_invoices += 1;
                }
                return Ok(false);
            }
            attempt += 1;
        }
        let Some(paid_at) = self.later(at, 1, 120) else {
            return Ok(false);
        };
        let payment_id = format!("pay-{lead_id}-{attempt}");
        let flow: &[PaymentStatus] = match self.rng.below(4) {
            0 => &[
                PaymentStatus::Initiated,
                PaymentStatus::Authorized,
                PaymentStatus::Captured,
                PaymentStatus::Paid,
            ],
            1 => &[PaymentStatus::Verified, PaymentStatus::Paid],
            _ => &[PaymentStatus::Initiated, PaymentStatus::Paid],
        };
        for (step, status) in flow.iter().enumerate() {
            moyasar
                .send(
                    &h.payments,
                    &payment_id,
                    &format!("{payment_id}:{step}"),
                    *status,
                    0,
                    paid_at + Duration::minutes(step as i64),
                )
                .await?;
        }
        self.summary.payments += 1;
        self.summary.paid_invoices += 1;
        // Some customers ask for their money back: half of it, or all of it.
        if self.rng.chance(9) {
            if let Some(refunded_at) = self.later(paid_at, 48, 240) {
                let full = self.rng.chance(50);
                let refunded = if full { total } else { total / 2 };
                moyasar
                    .send(
                        &h.payments,
                        &payment_id,
                        &format!("{payment_id}:refund"),
                        PaymentStatus::Refunded,
                        refunded,
                        refunded_at,
                    )
                    .await?;
                self.summary.refunds += 1;
                if full {
                    return Ok(true);
                }
            }
        }
        self.paid.push((lead_id.to_owned(), paid_at));
        Ok(true)
    }

    /// Issues the invoice through the seller's sequence, as the API does
    /// ([`crate::invoices::issue`]).
    async fn issue_through_sequence(&mut self, issue: IssueInvoice) -> Result<(), DemoError> {
        let what = format!("allocate:{}", issue.invoice_id);
        let request = crate::invoices::IssueRequest {
            command_id: demo_command_id(&what),
            fresh: false,
        };
        crate::invoices::issue(&self.handlers, request, issue, Actor::Finance.metadata())
            .await
            .map(|_| ())
            .map_err(|error| DemoError::Command {
                what,
                reason: error.to_string(),
            })
    }

    /// Paying customers are onboarded, and most go live.
    pub(super) async fn onboard_customers(&mut self) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        for (lead_id, paid_at) in std::mem::take(&mut self.paid) {
            let (lead, _) = h
                .leads
                .load_aggregate(&lead_id)
                .await
                .map_err(|e| failed(&lead_id, e))?;
            if lead.stage() != Some(LeadStage::Paid) {
                continue;
            }
            let owner = Actor::Sales(OWNERS[(self.rng.below(3)) as usize]);
            // Some customers have paid but not had their kickoff yet.
            if self.rng.chance(12) {
                continue;
            }
            let Some(started) = self.later(paid_at, 24, 96) else {
                continue;
            };
            send(
                &h.leads,
                &lead_id,
                &format!("onboard:{lead_id}"),
                owner,
                LeadCommand::StartOnboarding { at: started },
            )
            .await?;
            if self.rng.chance(85) {
                if let Some(live) = self.later(started, 48, 240) {
                    send(
                        &h.leads,
                        &lead_id,
                        &format!("activate:{lead_id}"),
                        owner,
                        LeadCommand::Activate { at: live },
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Finance's part: commissions past their hold are approved (a few rejected), and each
    /// partner whose approved total reaches the program minimum is paid out in a batch.
    pub(super) async fn decide_commissions(&mut self) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let mut approved: BTreeMap<String, Vec<PayoutItem>> = BTreeMap::new();
        let mut latest_approval = self.start();
        for invoiced in std::mem::take(&mut self.invoiced) {
            let commission_id =
                crate::process::commissions::commission_id_for(&invoiced.invoice_id);
            let (commission, version) = h
                .commissions
                .load_aggregate(&commission_id)
                .await
                .map_err(|e| failed(&commission_id, e))?;
            if version == 0 || commission.status() != Some(CommissionStatus::Held) {
                continue;
            }
            let Some(held_until) = commission.held_until() else {
                continue;
            };
            let Some(at) = self.later(held_until, 1, 72) else {
                continue;
            };
            if self.rng.chance(8) {
                let reject = CommissionCommand::Reject {
                    actor: "token:demo-finance".into(),
                    reason: format!("{} is the partner's own company", invoiced.lead_id),
                    at,
                };
                send(
                    &h.commissions,
                    &commission_id,
                    &format!("reject:{commission_id}"),
                    Actor::Finance,
                    reject,
                )
                .await?;
                self.summary.commissions_rejected += 1;
                continue;
            }
            let approve = CommissionCommand::Approve {
                actor: "token:demo-finance".into(),
                at,
            };
            send(
                &h.commissions,
                &commission_id,
                &format!("approve:{commission_id}"),
                Actor::Finance,
                approve,
            )
            .await?;
            self.summary.commissions_approved += 1;
            latest_approval = latest_approval.max(at);
            let (commission, _) = h
                .commissions
                .load_aggregate(&commission_id)
                .await
                .map_err(|e| failed(&commission_id, e))?;
            if commission.net_halalas() > 0 {
                approved
                    .entry(commission.partner_id().to_owned())
                    .or_default()
                    .push(PayoutItem {
                        commission_id,
                        amount_halalas: commission.net_halalas(),
                    });
            }
        }
        let minimum_halalas =
            crate::process::commissions::ProgramConfig::default().payout_minimum_halalas;
        let at = latest_approval.min(self.now - Duration::hours(2));
        for (partner_id, items) in approved {
            let net: i64 = items.iter().map(|item| item.amount_halalas).sum();
            // One partner is left with approved commissions waiting for the next run.
            if net < minimum_halalas || partner_id == "p-eastern-it" {
                continue;
            }
            let payout_id = format!("payout-{partner_id}-1");
            let create = PayoutCommand::Create {
                payout_id: payout_id.clone(),
                partner_id: partner_id.clone(),
                items,
                carried: Vec::new(),
                minimum_halalas,
                at,
            };
            send(
                &h.payouts,
                &payout_id,
                &format!("create:{payout_id}"),
                Actor::Finance,
                create,
            )
            .await?;
            let mark_paid = PayoutCommand::MarkPaid {
                reference: format!("SARIE-{payout_id}"),
                at: at + Duration::minutes(30),
            };
            send(
                &h.payouts,
                &payout_id,
                &format!("paid:{payout_id}"),
                Actor::Finance,
                mark_paid,
            )
            .await?;
            self.summary.payouts += 1;
        }
        Ok(())
    }
}

/// Moyasar's reports about the payments of one invoice.
struct MoyasarReports<'a> {
    invoice_id: &'a str,
    moyasar_invoice_id: &'a str,
    total: i64,
}

impl MoyasarReports<'_> {
    /// Sends Moyasar's report of `payment_id` in `status` (`what` names the command).
    async fn send(
        &self,
        payments: &CommandHandler<Payment>,
        payment_id: &str,
        what: &str,
        status: PaymentStatus,
        refunded_halalas: i64,
        at: OffsetDateTime,
    ) -> Result<(), DemoError> {
        let report = gateway(
            payment_id,
            self.invoice_id,
            self.moyasar_invoice_id,
            status,
            self.total,
            refunded_halalas,
            at,
        );
        send(payments, payment_id, what, Actor::Moyasar, report).await
    }
}

/// One Moyasar report about a payment, as the webhook maps it.
fn gateway(
    payment_id: &str,
    invoice_id: &str,
    moyasar_invoice_id: &str,
    status: PaymentStatus,
    amount_halalas: i64,
    refunded_halalas: i64,
    at: OffsetDateTime,
) -> PaymentCommand {
    PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.to_owned(),
        invoice_id: Some(invoice_id.to_owned()),
        moyasar_invoice_id: Some(moyasar_invoice_id.to_owned()),
        status,
        amount_halalas,
        // Moyasar's card fee: about 2.75% (integer halalas, rounded down).
        fee_halalas: amount_halalas * 275 / 10_000,
        captured_halalas: if status == PaymentStatus::Captured {
            amount_halalas
        } else {
            0
        },
        refunded_halalas,
        currency: "SAR".into(),
        at,
    }
}
