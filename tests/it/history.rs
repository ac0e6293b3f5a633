//! A realistic mixed history, generated through the real command handlers and process
//! managers: leads through every stage (and archive, reopen, follow-ups), invoices issued
//! through the ZATCA sequence, payments in every Moyasar state, refunds, partners of each tier,
//! applications, Strategic slots and commissions through their whole lifecycle. Deterministic
//! for a seed (a xorshift generator, no clock).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use app::handlers::Handlers;
use app::process::{process_managers, ProcessRunner};
use app::seeded::Xorshift;
use cqrs_es::Aggregate;
use domain::commission::CommissionCommand;
use domain::invoice::{Customer, InvoiceCommand, InvoiceLine, IssueInvoice, Seller};
use domain::lead::{ArchiveReason, FollowUpChannel, LeadCommand};
use domain::partner::{PartnerCommand, PartnerProgramCommand, PartnerTier, PARTNER_PROGRAM_ID};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::plan::Plan;
use projections::{ProjectionError, Projector};
use time::macros::datetime;
use time::{Duration as Span, OffsetDateTime};

use crate::app::{envelope, issue_through_sequence, SELLER_VAT};

/// Runs every projection and process manager until none has anything left.
pub async fn settle(handlers: &Arc<Handlers>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut busy = false;
        for projection in projections::read_models() {
            let projector = Projector::new(handlers.store.clone(), projection);
            busy |= !projector.is_caught_up().await.unwrap();
        }
        for process in process_managers() {
            busy |= !ProcessRunner::new(handlers.clone(), process)
                .is_caught_up()
                .await
                .unwrap();
        }
        if !busy {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projections did not settle within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs every process manager until each has reacted to everything committed, in this task
/// (no background workers). On PostgreSQL other tests' transactions can hold the read
/// watermark back for a moment, so "nothing to read" is not yet "done".
pub async fn run_process_managers(handlers: &Arc<Handlers>) {
    run_process_managers_except(handlers, None).await
}

/// [`run_process_managers`], all but the one called `except`.
pub async fn run_process_managers_except(handlers: &Arc<Handlers>, except: Option<&str>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = true;
        let processes = process_managers().into_iter();
        for process in processes.filter(|process| Some(process.name()) != except) {
            let runner = ProcessRunner::new(handlers.clone(), process);
            runner.catch_up().await.unwrap();
            done &= runner.is_caught_up().await.unwrap();
        }
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "process managers did not catch up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Catches every read model up to everything committed, in this task.
pub async fn run_projections(handlers: &Arc<Handlers>) -> Result<(), ProjectionError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for projection in projections::read_models() {
        catch_up(
            &Projector::new(handlers.store.clone(), projection),
            deadline,
        )
        .await?;
    }
    Ok(())
}

/// Catches one projector up to everything committed, by `deadline`. On PostgreSQL other
/// tests' transactions can hold the read watermark back for a moment.
pub async fn catch_up(
    projector: &Projector,
    deadline: tokio::time::Instant,
) -> Result<(), ProjectionError> {
    loop {
        projector.catch_up().await?;
        if projector.is_caught_up().await? {
            return Ok(());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not catch up in time",
            projector.name()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub struct Generator {
    pub handlers: Arc<Handlers>,
    rng: Xorshift,
    clock: OffsetDateTime,
    lead_number: u64,
    partners: Vec<String>,
    /// Whether the process managers run in this task (a store nothing else serves), or are
    /// waited for (a store whose service runs them: running them here too would race it).
    runs_process_managers: bool,
}

async fn run<A>(handler: &app::command::CommandHandler<A>, id: &str, command: A::Command)
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone + std::fmt::Debug,
    A::Error: std::fmt::Debug,
{
    if let Err(error) = handler.execute(envelope(id, command.clone())).await {
        panic!("{id}: {command:?} failed: {error:?}");
    }
}

impl Generator {
    pub fn new(handlers: Arc<Handlers>, seed: u64) -> Generator {
        Generator {
            handlers,
            rng: Xorshift::new(seed),
            clock: datetime!(2026-08-01 08:00 UTC),
            lead_number: 0,
            partners: Vec::new(),
            runs_process_managers: true,
        }
    }

    /// A second generator over a store another one filled and a service now serves: its leads
    /// are numbered after `leads`, it refers them to the partners [`Generator::partners`]
    /// enrolled there, and it waits for the service's process managers instead of running them.
    pub fn continuing(handlers: Arc<Handlers>, seed: u64, leads: u64) -> Generator {
        let mut generator = Generator::new(handlers, seed);
        generator.lead_number = leads;
        generator.runs_process_managers = false;
        generator.partners = ["p-referral", "p-certified", "p-strategic", "p-applicant"]
            .map(String::from)
            .to_vec();
        generator
    }

    /// The process managers react to everything so far: run here, or waited for.
    async fn react(&self, handlers: &Arc<Handlers>) {
        if self.runs_process_managers {
            run_process_managers(handlers).await;
        } else {
            settle(handlers).await;
        }
    }

    fn tick(&mut self, hours: i64) -> OffsetDateTime {
        self.clock += Span::hours(hours);
        self.clock
    }

    /// Partners of every tier, an application, a Strategic slot taken and released, a
    /// suspension and reinstatement.
    pub async fn partners(&mut self) {
        let h = self.handlers.clone();
        let at = self.tick(1);
        for (id, tier) in [
            ("p-referral", PartnerTier::Referral),
            ("p-certified", PartnerTier::Certified),
        ] {
            let command = PartnerCommand::Enroll {
                partner_id: id.into(),
                name: id.into(),
                email: format!("{id}@partners.sa"),
                tier,
                at,
            };
            run(&h.partners, id, command).await;
            self.partners.push(id.into());
        }
        run(
            &h.partner_program,
            PARTNER_PROGRAM_ID,
            PartnerProgramCommand::TakeStrategicSlot {
                partner_id: "p-strategic".into(),
                at,
            },
        )
        .await;
        let enroll = PartnerCommand::Enroll {
            partner_id: "p-strategic".into(),
            name: "Strategic".into(),
            email: "strategic@partners.sa".into(),
            tier: PartnerTier::Strategic,
            at,
        };
        run(&h.partners, "p-strategic", enroll).await;
        self.partners.push("p-strategic".into());
        let apply = PartnerCommand::Apply {
            partner_id: "p-applicant".into(),
            name: "Applicant".into(),
            email: "applicant@partners.sa".into(),
            requested_tier: PartnerTier::Certified,
            at,
        };
        run(&h.partners, "p-applicant", apply).await;
        let enroll = PartnerCommand::Enroll {
            partner_id: "p-applicant".into(),
            name: "Applicant".into(),
            email: "applicant@partners.sa".into(),
            tier: PartnerTier::Referral,
            at,
        };
        run(&h.partners, "p-applicant", enroll).await;
        run(
            &h.partners,
            "p-applicant",
            PartnerCommand::Suspend {
                reason: "documents missing".into(),
                at,
            },
        )
        .await;
        run(&h.partners, "p-applicant", PartnerCommand::Reinstate { at }).await;
        self.partners.push("p-applicant".into());
        // A Strategic partner steps down: the tier changes and the slot is given back.
        run(
            &h.partner_program,
            PARTNER_PROGRAM_ID,
            PartnerProgramCommand::TakeStrategicSlot {
                partner_id: "p-former".into(),
                at,
            },
        )
        .await;
        let enroll = PartnerCommand::Enroll {
            partner_id: "p-former".into(),
            name: "Former".into(),
            email: "former@partners.sa".into(),
            tier: PartnerTier::Strategic,
            at,
        };
        run(&h.partners, "p-former", enroll).await;
        let change = PartnerCommand::ChangeTier {
            tier: PartnerTier::Certified,
            reason: "stepped down".into(),
            at,
        };
        run(&h.partners, "p-former", change).await;
        run(
            &h.partner_program,
            PARTNER_PROGRAM_ID,
            PartnerProgramCommand::ReleaseStrategicSlot {
                partner_id: "p-former".into(),
                at,
            },
        )
        .await;
    }

    /// Leads until the log holds at least `events` events; process managers run as it goes.
    pub async fn until(&mut self, events: i64) {
        self.leads_until(events).await;
        run_process_managers(&self.handlers).await;
        run_projections(&self.handlers).await.unwrap();
    }

    /// Leads until the log holds at least `events` events, and nothing else: for a store whose
    /// service runs its own process managers and projections.
    pub async fn leads_until(&mut self, events: i64) {
        while self.handlers.store.head_position().await.unwrap() < events {
            self.lead().await;
        }
    }

    /// One lead's story, chosen at random.
    pub async fn lead(&mut self) {
        let h = self.handlers.clone();
        self.lead_number += 1;
        let lead_id = format!("lead-{}", self.lead_number);
        let partner_id = if self.rng.chance(33) {
            let index = (self.rng.next_u64() % self.partners.len() as u64) as usize;
            Some(self.partners[index].clone())
        } else {
            None
        };
        let at = self.tick(3);
        let sources = ["landing_page", "calendly", "partner", "linkedin"];
        let source = sources[(self.rng.next_u64() % 4) as usize];
        let capture = LeadCommand::Capture {
            lead_id: lead_id.clone(),
            name: format!("Lead {}", self.lead_number),
            company: Some(format!("Company {}", self.lead_number)),
            email: Some(format!("lead{}@example.sa", self.lead_number)),
            phone: None,
            source: source.into(),
            partner_id: partner_id.clone(),
            utm: None,
            owner: Some("sales-1".into()),
            at,
        };
        run(&h.leads, &lead_id, capture).await;
        if self.rng.chance(40) {
            let responded = self.rng.chance(50);
            let at = self.tick(1);
            let follow_up = LeadCommand::LogFollowUp {
                channel: FollowUpChannel::Whatsapp,
                note: "called".into(),
                responded,
                at,
            };
            run(&h.leads, &lead_id, follow_up).await;
        }
        if self.rng.chance(15) {
            let at = self.tick(1);
            let reason = if self.rng.chance(50) {
                ArchiveReason::Cold
            } else {
                ArchiveReason::Lost {
                    note: "budget".into(),
                }
            };
            run(&h.leads, &lead_id, LeadCommand::Archive { reason, at }).await;
            if self.rng.chance(30) {
                let at = self.tick(1);
                run(&h.leads, &lead_id, LeadCommand::Reopen { at }).await;
            } else {
                return;
            }
        }
        if self.rng.chance(20) {
            return;
        }
        run(
            &h.leads,
            &lead_id,
            LeadCommand::Qualify { at: self.tick(2) },
        )
        .await;
        if self.rng.chance(15) {
            return;
        }
        let booking = format!("booking-{}", self.lead_number);
        let at = self.tick(2);
        run(
            &h.leads,
            &lead_id,
            LeadCommand::BookDemo {
                booking_id: booking.clone(),
                scheduled_for: at + Span::days(2),
                at,
            },
        )
        .await;
        if self.rng.chance(10) {
            let at = self.tick(1);
            run(
                &h.leads,
                &lead_id,
                LeadCommand::CancelDemo {
                    booking_id: booking.clone(),
                    reason: "rescheduled".into(),
                    rescheduled: true,
                    at,
                },
            )
            .await;
            let booking = format!("{booking}-again");
            let at = self.tick(1);
            run(
                &h.leads,
                &lead_id,
                LeadCommand::BookDemo {
                    booking_id: booking,
                    scheduled_for: at + Span::days(1),
                    at,
                },
            )
            .await;
        } else if self.rng.chance(5) {
            run(
                &h.leads,
                &lead_id,
                LeadCommand::RecordNoShow {
                    booking_id: booking,
                    at: self.tick(48),
                },
            )
            .await;
        }
        if self.rng.chance(15) {
            return;
        }
        let plans = [Plan::Pilot, Plan::Starter, Plan::Growth, Plan::Scale];
        let plan = plans[(self.rng.next_u64() % 4) as usize];
        run(
            &h.leads,
            &lead_id,
            LeadCommand::SendProposal {
                plan,
                at: self.tick(5),
            },
        )
        .await;
        let paid = self.invoice_and_pay(&lead_id, plan).await;
        if !paid {
            return;
        }
        self.react(&h).await;
        run(
            &h.leads,
            &lead_id,
            LeadCommand::StartOnboarding { at: self.tick(24) },
        )
        .await;
        if self.rng.chance(85) {
            run(
                &h.leads,
                &lead_id,
                LeadCommand::Activate { at: self.tick(48) },
            )
            .await;
        }
    }

    /// Issues an invoice and plays a payment story; true when the invoice ends up paid.
    async fn invoice_and_pay(&mut self, lead_id: &str, plan: Plan) -> bool {
        let h = self.handlers.clone();
        let invoice_id = format!("invoice-{}", self.lead_number);
        let moyasar_invoice_id = format!("moyasar-inv-{}", self.lead_number);
        let at = self.tick(1);
        let link_later = self.rng.chance(20);
        let issue = IssueInvoice {
            invoice_id: invoice_id.clone(),
            customer: Customer {
                lead_id: lead_id.to_owned(),
                name: format!("Company {}", self.lead_number),
            },
            lines: vec![InvoiceLine {
                description: format!("{} plan", plan.as_str()),
                quantity: 1,
                unit_price_halalas: plan.price_halalas(),
                plan: Some(plan),
            }],
            issued_at: at,
            due_at: at + Span::days(14),
            seller: Seller {
                name: "Dealix".into(),
                vat_number: SELLER_VAT.into(),
            },
            moyasar_invoice_id: (!link_later).then(|| moyasar_invoice_id.clone()),
        };
        issue_through_sequence(&h, issue).await;
        if link_later {
            let link = InvoiceCommand::LinkMoyasarInvoice {
                moyasar_invoice_id: moyasar_invoice_id.clone(),
                payment_url: format!("https://pay.example/{moyasar_invoice_id}"),
                at,
            };
            run(&h.invoices, &invoice_id, link).await;
        }
        let (invoice, _) = h.invoices.load_aggregate(&invoice_id).await.unwrap();
        let total = invoice.total_halalas();
        if self.rng.chance(5) {
            run(
                &h.invoices,
                &invoice_id,
                InvoiceCommand::Cancel {
                    reason: "customer changed plan".into(),
                    at: self.tick(1),
                },
            )
            .await;
            return false;
        }
        if self.rng.chance(5) {
            let expire_at = invoice.due_at().unwrap() + Span::days(1);
            run(
                &h.invoices,
                &invoice_id,
                InvoiceCommand::Expire { at: expire_at },
            )
            .await;
            return false;
        }
        let payment_id = format!("pay-{}", self.lead_number);
        let overpaid = self.rng.chance(5);
        let amount = if overpaid { total + 100 } else { total };
        let report = |status: PaymentStatus, refunded: i64, at: OffsetDateTime| {
            PaymentCommand::RecordGatewayStatus {
                payment_id: payment_id.clone(),
                invoice_id: (!link_later).then(|| invoice_id.clone()),
                moyasar_invoice_id: Some(moyasar_invoice_id.clone()),
                status,
                amount_halalas: amount,
                fee_halalas: amount / 50,
                captured_halalas: if matches!(status, PaymentStatus::Captured) {
                    amount
                } else {
                    0
                },
                refunded_halalas: refunded,
                currency: "SAR".into(),
                at,
            }
        };
        let story = self.rng.next_u64() % 10;
        let statuses: &[PaymentStatus] = match story {
            0 => &[PaymentStatus::Initiated, PaymentStatus::Failed],
            1 => &[
                PaymentStatus::Initiated,
                PaymentStatus::Authorized,
                PaymentStatus::Voided,
            ],
            2 => &[
                PaymentStatus::Initiated,
                PaymentStatus::Authorized,
                PaymentStatus::Captured,
                PaymentStatus::Paid,
            ],
            3 => &[PaymentStatus::Verified, PaymentStatus::Paid],
            _ => &[PaymentStatus::Initiated, PaymentStatus::Paid],
        };
        for status in statuses {
            let at = self.tick(1);
            run(&h.payments, &payment_id, report(*status, 0, at)).await;
        }
        if story <= 1 {
            return false;
        }
        self.react(&h).await;
        self.commission(&invoice_id).await;
        if self.rng.chance(12) {
            let partial = total / 2;
            let at = self.tick(24);
            run(
                &h.payments,
                &payment_id,
                report(PaymentStatus::Refunded, partial, at),
            )
            .await;
            if self.rng.chance(50) {
                let at = self.tick(24);
                run(
                    &h.payments,
                    &payment_id,
                    report(PaymentStatus::Refunded, total, at),
                )
                .await;
            }
            self.react(&h).await;
            return false;
        }
        true
    }

    /// What finance does with the commission the process manager accrued for `invoice_id`.
    async fn commission(&mut self, invoice_id: &str) {
        let h = self.handlers.clone();
        let commission_id = app::process::commissions::commission_id_for(invoice_id);
        let (commission, version) = h.commissions.load_aggregate(&commission_id).await.unwrap();
        if version == 0 {
            return;
        }
        let after_hold = commission.held_until().expect("accrued") + Span::days(1);
        match self.rng.next_u64() % 5 {
            0 => {
                let reject = CommissionCommand::Reject {
                    actor: "finance".into(),
                    reason: "self-referral".into(),
                    at: after_hold,
                };
                run(&h.commissions, &commission_id, reject).await;
            }
            1 => {
                let adjust = CommissionCommand::Adjust {
                    amount_halalas: -500,
                    reason: "rounding agreement".into(),
                    actor: "finance".into(),
                    at: after_hold,
                };
                run(&h.commissions, &commission_id, adjust).await;
            }
            _ => {
                run(
                    &h.commissions,
                    &commission_id,
                    CommissionCommand::Approve {
                        actor: "finance".into(),
                        at: after_hold,
                    },
                )
                .await;
                if self.rng.chance(60) {
                    let payout = CommissionCommand::MarkPaidOut {
                        payout_id: format!("payout-{}", self.lead_number),
                        at: after_hold,
                    };
                    run(&h.commissions, &commission_id, payout).await;
                }
            }
        }
    }
}

/// Every event type in the log with its count.
pub async fn event_types(handlers: &Handlers) -> BTreeMap<String, u64> {
    let rows = handlers
        .store
        .sql()
        .fetch_all(
            "SELECT event_type, COUNT(*) FROM events GROUP BY event_type",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| (row.text(0).unwrap(), row.i64(1).unwrap() as u64))
        .collect()
}
