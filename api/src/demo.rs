//! Demo data: a realistic generated history for a newcomer's first run (`revledger serve --demo`).
//!
//! [`load_demo`] fills an **empty** store with about ninety days of business: a few hundred
//! leads moving through every stage (with follow-ups, archives, reopens and cold leads), partners
//! of each tier (one promoted to Strategic through the program's slots), referral clicks,
//! invoices issued through the seller's ZATCA sequence, payments that are paid, failed and
//! refunded, invoices left unpaid past their due date, and commissions approved, rejected and
//! paid out in payout batches.
//!
//! Everything goes through the real command handlers, as the API and the webhooks would send it;
//! the reactions (invoice paid -> lead paid -> commission accrued, refund -> credit note ->
//! clawback, third activation -> tier upgrade, payout -> commissions paid out) are left to the
//! process managers, which this module runs to completion where a later command depends on
//! their effect. The history is deterministic for a given `now`: a seeded xorshift chooses
//! every story, every command id is derived from what it does (uuid v5), and no clock or
//! operating-system randomness is read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use adapters::store::{EventMetadata, StoreError};
use app::command::{CommandEnvelope, CommandError, CommandHandler};
use app::handlers::Handlers;
use app::process::{process_managers, ProcessRunner};
use cqrs_es::Aggregate;
use domain::commission::{CommissionCommand, CommissionStatus};
use domain::invoice::{Customer, InvoiceCommand, InvoiceLine, InvoiceStatus, IssueInvoice, Seller};
use domain::lead::{ArchiveReason, FollowUpChannel, LeadCommand, LeadStage, COLD_AFTER_DAYS};
use domain::partner::{PartnerCommand, PartnerTier};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::payout::{PayoutCommand, PayoutItem};
use domain::plan::Plan;
use projections::ProjectionError;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Leads in the default demo: enough for every stage, source and partner to show numbers,
/// few enough to load in seconds on SQLite.
pub const DEFAULT_DEMO_LEADS: u32 = 360;

/// The most leads a demo may ask for (each is a few to a few dozen commands).
pub const MAX_DEMO_LEADS: u32 = 5_000;

/// How far back the history reaches.
pub const DEMO_DAYS: i64 = 90;

/// The generator's seed: the same seed and `now` give the same history.
pub const DEMO_SEED: u64 = 0x5eed_2026_d3a1_1c0d;

/// How long the demo waits for the process managers to react to everything (a bound, not a
/// sleep: they normally finish in well under a second).
pub const PROCESS_WAIT: StdDuration = StdDuration::from_secs(120);

/// The namespace of the demo's command ids (uuid v5).
const DEMO_NAMESPACE: Uuid = Uuid::from_u128(0xd3a0_5eed_7c1e_4b2a_9f00_2026_0000_0001);

/// What a demo load produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DemoSummary {
    pub leads: u32,
    pub partners: u32,
    pub invoices: u32,
    pub payments: u32,
    pub paid_invoices: u32,
    pub failed_payments: u32,
    pub refunds: u32,
    pub overdue_invoices: u32,
    pub commissions_approved: u32,
    pub commissions_rejected: u32,
    pub payouts: u32,
    /// The head of the log after the load.
    pub events: i64,
}

/// Why the demo was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo loads into an empty store only; this one holds {events} events")]
    StoreNotEmpty { events: i64 },
    #[error("a demo of {requested} leads is outside 1..={MAX_DEMO_LEADS}")]
    SizeOutOfRange { requested: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Process(#[from] ProjectionError),
    #[error("demo command {what} failed: {reason}")]
    Command { what: String, reason: String },
    #[error("the process managers did not catch up within {0:?}")]
    ProcessesStalled(StdDuration),
}

/// Loads the default demo ([`DEFAULT_DEMO_LEADS`] leads over [`DEMO_DAYS`] days ending at
/// `now`) into an empty store.
pub async fn load_demo(
    handlers: &Arc<Handlers>,
    seller: &Seller,
    now: OffsetDateTime,
) -> Result<DemoSummary, DemoError> {
    load_demo_sized(handlers, seller, now, DEFAULT_DEMO_LEADS).await
}

/// [`load_demo`] with `leads` leads (tests use a small one).
pub async fn load_demo_sized(
    handlers: &Arc<Handlers>,
    seller: &Seller,
    now: OffsetDateTime,
    leads: u32,
) -> Result<DemoSummary, DemoError> {
    if !(1..=MAX_DEMO_LEADS).contains(&leads) {
        return Err(DemoError::SizeOutOfRange { requested: leads });
    }
    let events = handlers.store.head_position().await?;
    if events > 0 {
        return Err(DemoError::StoreNotEmpty { events });
    }
    let mut demo = Demo {
        handlers: handlers.clone(),
        seller: seller.clone(),
        now,
        rng: DEMO_SEED,
        summary: DemoSummary::default(),
        paid: Vec::new(),
        invoiced: Vec::new(),
    };
    demo.partners().await?;
    for number in 1..=leads {
        demo.lead(number, leads).await?;
    }
    // Invoice paid -> lead paid must have happened before onboarding.
    settle_processes(handlers).await?;
    demo.onboard_customers().await?;
    // Activations -> tier upgrades; paid invoices -> commissions accrued and clawed back.
    settle_processes(handlers).await?;
    demo.decide_commissions().await?;
    settle_processes(handlers).await?;
    demo.summary.leads = leads;
    demo.summary.events = handlers.store.head_position().await?;
    Ok(demo.summary)
}

/// Runs every process manager in this task until each has reacted to everything committed.
/// Safe while the service's own runners work too: reactions carry deterministic command ids,
/// so a reaction made twice appends once, and a checkpoint another runner moved first is
/// simply read again.
pub async fn settle_processes(handlers: &Arc<Handlers>) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + PROCESS_WAIT;
    loop {
        let mut done = true;
        for process in process_managers() {
            let runner = ProcessRunner::new(handlers.clone(), process);
            match runner.catch_up().await {
                Ok(_) => done &= runner.is_caught_up().await?,
                // The service's own runner moved the checkpoint first (it reacted to that
                // batch); look again.
                Err(ProjectionError::CheckpointMoved(_)) => done = false,
                Err(error) => return Err(error.into()),
            }
        }
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::ProcessesStalled(PROCESS_WAIT));
        }
        // On PostgreSQL another transaction can hold the read watermark back for a moment.
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

/// Who the demo's commands come from, as the audit trail shows them.
#[derive(Clone, Copy)]
enum Actor {
    Sales(&'static str),
    Finance,
    Admin,
    Calendly,
    Moyasar,
    Partners,
    FollowUpSweep,
}

impl Actor {
    fn metadata(self) -> EventMetadata {
        let (actor, source) = match self {
            Actor::Sales(who) => (format!("token:{who}"), "api".to_owned()),
            Actor::Finance => ("token:demo-finance".to_owned(), "api".to_owned()),
            Actor::Admin => ("token:demo-admin".to_owned(), "api".to_owned()),
            Actor::Calendly => ("webhook:calendly".to_owned(), "webhook:calendly".to_owned()),
            Actor::Moyasar => ("webhook:moyasar".to_owned(), "webhook:moyasar".to_owned()),
            Actor::Partners => ("webhook:partners".to_owned(), "webhook:partners".to_owned()),
            Actor::FollowUpSweep => (
                "process:follow_up".to_owned(),
                "process:follow_up".to_owned(),
            ),
        };
        EventMetadata {
            actor: Some(actor),
            source: Some(source),
            ..Default::default()
        }
    }
}

/// A deterministic command id for the demo command `what`.
fn demo_command_id(what: &str) -> Uuid {
    Uuid::new_v5(&DEMO_NAMESPACE, what.as_bytes())
}

/// Sends one command; `what` names it (and derives its id).
async fn send<A>(
    handler: &CommandHandler<A>,
    aggregate_id: &str,
    what: &str,
    actor: Actor,
    command: A::Command,
) -> Result<(), DemoError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    send_with_id(
        handler,
        aggregate_id,
        demo_command_id(what),
        what,
        actor,
        command,
    )
    .await
}

async fn send_with_id<A>(
    handler: &CommandHandler<A>,
    aggregate_id: &str,
    command_id: Uuid,
    what: &str,
    actor: Actor,
    command: A::Command,
) -> Result<(), DemoError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    let envelope = CommandEnvelope {
        aggregate_id: aggregate_id.to_owned(),
        command_id,
        command,
        metadata: actor.metadata(),
        inbox: None,
        fresh_id: false,
    };
    handler
        .execute(envelope)
        .await
        .map(|_| ())
        .map_err(|error| failed(what, error))
}

fn failed<E: std::error::Error>(what: &str, error: CommandError<E>) -> DemoError {
    DemoError::Command {
        what: what.to_owned(),
        reason: error.to_string(),
    }
}

/// The partners: id, display name, tier at enrolment, and how they joined.
const PARTNERS: [(&str, &str, PartnerTier); 5] = [
    ("p-riyadh-digital", "Riyadh Digital", PartnerTier::Referral),
    ("p-jeddah-systems", "Jeddah Systems", PartnerTier::Certified),
    (
        "p-najd-consulting",
        "Najd Consulting",
        PartnerTier::Referral,
    ),
    ("p-eastern-it", "Eastern IT", PartnerTier::Referral),
    (
        "p-gulf-resellers",
        "شركاء الخليج (Gulf Resellers)",
        PartnerTier::Referral,
    ),
];

const FIRST_NAMES: [&str; 12] = [
    "Abdullah", "Fatimah", "Mohammed", "Noura", "Khalid", "Sara", "Faisal", "Reem", "Omar", "Lama",
    "Turki", "Haya",
];
const LAST_NAMES: [&str; 8] = [
    "Al-Otaibi",
    "Al-Qahtani",
    "Al-Harbi",
    "Al-Ghamdi",
    "Al-Zahrani",
    "Al-Shehri",
    "Al-Dossari",
    "Al-Mutairi",
];
/// Some leads are entered in Arabic, as they would be.
const ARABIC_NAMES: [&str; 6] = [
    "عبدالله العتيبي",
    "نورة القحطاني",
    "فيصل الحربي",
    "ريم الغامدي",
    "خالد الزهراني",
    "سارة الشهري",
];
const COMPANY_STEMS: [&str; 10] = [
    "Al Noor", "Sahara", "Tamkeen", "Masar", "Rawabi", "Nakheel", "Wadi", "Qimma", "Afaq", "Dar",
];
const COMPANY_KINDS: [&str; 8] = [
    "Trading",
    "Logistics",
    "Clinics",
    "Contracting",
    "Foods",
    "Tech",
    "Retail",
    "Academy",
];
const OWNERS: [&str; 3] = ["sales-reem", "sales-khalid", "sales-omar"];
const SOURCES: [&str; 4] = ["landing_page", "linkedin", "calendly", "event"];

/// An invoice the demo issued and what became of it.
struct Invoiced {
    invoice_id: String,
    lead_id: String,
}

struct Demo {
    handlers: Arc<Handlers>,
    seller: Seller,
    now: OffsetDateTime,
    rng: u64,
    summary: DemoSummary,
    /// Leads whose invoice was paid (and not fully refunded), with the time it was paid.
    paid: Vec<(String, OffsetDateTime)>,
    invoiced: Vec<Invoiced>,
}

impl Demo {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// `at` moved on by `min_hours..=max_hours`, or None when that is no longer in the past
    /// (the story of this lead has not got that far yet).
    fn later(
        &mut self,
        at: OffsetDateTime,
        min_hours: i64,
        max_hours: i64,
    ) -> Option<OffsetDateTime> {
        let span = (max_hours - min_hours).max(0) as u64 + 1;
        let next = at + Duration::hours(min_hours + self.below(span) as i64);
        (next < self.now - Duration::minutes(10)).then_some(next)
    }

    fn start(&self) -> OffsetDateTime {
        self.now - Duration::days(DEMO_DAYS)
    }

    /// Enrolments, an application, and one promotion to Strategic through the program's slots.
    async fn partners(&mut self) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let at = self.start() - Duration::days(5);
        for (partner_id, name, tier) in PARTNERS {
            let email = format!("{partner_id}@partners.example.sa");
            if partner_id == "p-gulf-resellers" {
                let apply = PartnerCommand::Apply {
                    partner_id: partner_id.into(),
                    name: name.into(),
                    email: email.clone(),
                    requested_tier: PartnerTier::Certified,
                    at: at - Duration::days(3),
                };
                let what = format!("apply:{partner_id}");
                send(&h.partners, partner_id, &what, Actor::Partners, apply).await?;
            }
            let enroll = PartnerCommand::Enroll {
                partner_id: partner_id.into(),
                name: name.into(),
                email,
                tier,
                at,
            };
            let what = format!("enroll:{partner_id}");
            send(&h.partners, partner_id, &what, Actor::Admin, enroll).await?;
            self.summary.partners += 1;
        }
        // Najd Consulting signs the Strategic agreement: the tier change takes a slot first.
        app::partners::change_partner_tier(
            &h,
            "p-najd-consulting",
            PartnerTier::Strategic,
            "signed the strategic partnership agreement",
            at + Duration::days(2),
            demo_command_id("tier:p-najd-consulting:strategic"),
            Actor::Admin.metadata(),
        )
        .await
        .map_err(|error| DemoError::Command {
            what: "tier:p-najd-consulting:strategic".into(),
            reason: error.to_string(),
        })?;
        Ok(())
    }

    /// One lead's story up to its payment (onboarding waits for the process managers).
    async fn lead(&mut self, number: u32, of: u32) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let lead_id = format!("lead-{number:04}");
        // Captures spread evenly over the period, a few hours of jitter each.
        let slot_minutes = DEMO_DAYS * 24 * 60 * i64::from(number - 1) / i64::from(of);
        let captured_at = self.start()
            + Duration::minutes(slot_minutes)
            + Duration::minutes(self.below(6 * 60) as i64);
        let captured_at = captured_at.min(self.now - Duration::hours(1));
        let company = format!(
            "{} {}",
            self.pick(&COMPANY_STEMS),
            self.pick(&COMPANY_KINDS)
        );
        let name = if self.chance(20) {
            self.pick(&ARABIC_NAMES).to_owned()
        } else {
            format!("{} {}", self.pick(&FIRST_NAMES), self.pick(&LAST_NAMES))
        };
        let slug: String = company
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        let email = format!("lead{number}@{slug}.example.sa");
        let owner = self.pick(&OWNERS);
        let sales = Actor::Sales(owner);
        // A third of the leads come through partners: named at capture, or a referral click.
        let (source, partner_id) = match self.below(10) {
            0..=1 => ("partner", Some(self.pick(&PARTNERS).0)),
            2 => {
                let partner = self.pick(&PARTNERS).0;
                let clicked_at = captured_at - Duration::hours(1 + self.below(20 * 24) as i64);
                let referral = PartnerCommand::RecordReferral {
                    lead_email: email.clone(),
                    clicked_at,
                    at: captured_at,
                };
                let what = format!("referral:{lead_id}");
                send(&h.partners, partner, &what, Actor::Partners, referral).await?;
                ("landing_page", None)
            }
            _ => (self.pick(&SOURCES), None),
        };
        let capture = LeadCommand::Capture {
            lead_id: lead_id.clone(),
            name,
            company: Some(company.clone()),
            email: Some(email),
            phone: self
                .chance(60)
                .then(|| format!("+9665{:08}", self.below(100_000_000))),
            source: source.into(),
            partner_id: partner_id.map(str::to_owned),
            utm: None,
            owner: Some(owner.into()),
            at: captured_at,
        };
        let capture_actor = if source == "partner" {
            Actor::Partners
        } else {
            sales
        };
        send(
            &h.leads,
            &lead_id,
            &format!("capture:{lead_id}"),
            capture_actor,
            capture,
        )
        .await?;
        let last = self
            .pipeline(&lead_id, &company, captured_at, sales)
            .await?;
        if let Some(last) = last {
            self.keep_warm_or_go_cold(&lead_id, last, sales).await?;
        }
        Ok(())
    }

    /// Moves the lead along the funnel; returns the time of its last step when it stopped
    /// before being paid (None once its invoice is paid or it was archived for good).
    async fn pipeline(
        &mut self,
        lead_id: &str,
        company: &str,
        captured_at: OffsetDateTime,
        sales: Actor,
    ) -> Result<Option<OffsetDateTime>, DemoError> {
        let h = self.handlers.clone();
        let mut at = captured_at;
        let lead = |what: &str| format!("{what}:{lead_id}");
        // A first call the next day, not always answered.
        if self.chance(45) {
            let Some(next) = self.later(at, 20, 30) else {
                return Ok(Some(at));
            };
            at = next;
            let follow_up = LeadCommand::LogFollowUp {
                channel: self.pick(&[
                    FollowUpChannel::Phone,
                    FollowUpChannel::Whatsapp,
                    FollowUpChannel::Email,
                ]),
                note: "intro call".into(),
                responded: self.chance(70),
                at,
            };
            send(&h.leads, lead_id, &lead("follow-up-1"), sales, follow_up).await?;
        }
        // Some are lost early; a few of those come back.
        if self.chance(12) {
            let Some(next) = self.later(at, 24, 96) else {
                return Ok(Some(at));
            };
            at = next;
            let reason = if self.chance(50) {
                ArchiveReason::Lost {
                    note: self
                        .pick(&["budget", "chose a competitor", "no decision maker"])
                        .into(),
                }
            } else {
                ArchiveReason::Cold
            };
            send(
                &h.leads,
                lead_id,
                &lead("archive"),
                sales,
                LeadCommand::Archive { reason, at },
            )
            .await?;
            if !self.chance(35) {
                return Ok(None);
            }
            let Some(next) = self.later(at, 72, 240) else {
                return Ok(None);
            };
            at = next;
            send(
                &h.leads,
                lead_id,
                &lead("reopen"),
                sales,
                LeadCommand::Reopen { at },
            )
            .await?;
        }
        if self.chance(18) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(at, 12, 72) else {
            return Ok(Some(at));
        };
        at = next;
        send(
            &h.leads,
            lead_id,
            &lead("qualify"),
            sales,
            LeadCommand::Qualify { at },
        )
        .await?;
        if self.chance(15) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(at, 12, 96) else {
            return Ok(Some(at));
        };
        at = next;
        let booking = format!("calendly-{lead_id}");
        let book = LeadCommand::BookDemo {
            booking_id: booking.clone(),
            scheduled_for: at + Duration::days(2),
            at,
        };
        send(&h.leads, lead_id, &lead("book"), Actor::Calendly, book).await?;
        let mut scheduled = at + Duration::days(2);
        if self.chance(10) {
            let Some(next) = self.later(at, 6, 30) else {
                return Ok(Some(at));
            };
            at = next;
            let cancel = LeadCommand::CancelDemo {
                booking_id: booking.clone(),
                reason: "rescheduled by the invitee".into(),
                rescheduled: true,
                at,
            };
            send(&h.leads, lead_id, &lead("cancel"), Actor::Calendly, cancel).await?;
            scheduled = at + Duration::days(3);
            let rebook = LeadCommand::BookDemo {
                booking_id: format!("{booking}-2"),
                scheduled_for: scheduled,
                at,
            };
            send(&h.leads, lead_id, &lead("rebook"), Actor::Calendly, rebook).await?;
        } else if self.chance(6) && scheduled < self.now {
            at = scheduled + Duration::hours(1);
            let no_show = LeadCommand::RecordNoShow {
                booking_id: booking,
                at,
            };
            send(
                &h.leads,
                lead_id,
                &lead("no-show"),
                Actor::Calendly,
                no_show,
            )
            .await?;
            return Ok(Some(at));
        }
        if self.chance(20) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(scheduled.max(at), 4, 96) else {
            return Ok(Some(at));
        };
        at = next;
        let plan = match self.below(10) {
            0..=1 => Plan::Pilot,
            2..=5 => Plan::Starter,
            6..=8 => Plan::Growth,
            _ => Plan::Scale,
        };
        let proposal = LeadCommand::SendProposal { plan, at };
        send(&h.leads, lead_id, &lead("proposal"), sales, proposal).await?;
        if self.chance(15) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(at, 2, 48) else {
            return Ok(Some(at));
        };
        at = next;
        let paid = self.invoice(lead_id, company, plan, at).await?;
        Ok(if paid { None } else { Some(at) })
    }

    /// A lead that stopped before paying either keeps talking (a recent answered follow-up,
    /// sometimes unanswered ones after it, so follow-ups fall due) or goes cold: archived on
    /// day 14 of silence exactly as the follow-up sweep would have done it.
    async fn keep_warm_or_go_cold(
        &mut self,
        lead_id: &str,
        last: OffsetDateTime,
        sales: Actor,
    ) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let (lead, _) = h
            .leads
            .load_aggregate(lead_id)
            .await
            .map_err(|e| failed(lead_id, e))?;
        if !lead.stage().is_some_and(LeadStage::is_before_paid) {
            return Ok(());
        }
        let silent_since = lead.silence_started_at().unwrap_or(last);
        let cold_at = silent_since + Duration::days(COLD_AFTER_DAYS);
        if cold_at > self.now - Duration::days(2) {
            return Ok(());
        }
        let (invoice, version) = h
            .invoices
            .load_aggregate(&format!("inv-{lead_id}"))
            .await
            .map_err(|e| failed(lead_id, e))?;
        let open_invoice = version > 0
            && matches!(
                invoice.status(),
                Some(InvoiceStatus::Issued | InvoiceStatus::PartiallyPaid)
            );
        if self.chance(if open_invoice { 85 } else { 45 }) {
            // Still in conversation: answered within the last eleven days.
            let answered = self.now - Duration::hours(26 + self.below(10 * 24) as i64);
            let answered = answered.max(last + Duration::hours(1));
            let follow_up = LeadCommand::LogFollowUp {
                channel: FollowUpChannel::Whatsapp,
                note: if open_invoice {
                    "promised to pay this week".into()
                } else {
                    "asked for a call back".into()
                },
                responded: true,
                at: answered,
            };
            send(
                &h.leads,
                lead_id,
                &format!("follow-up-warm:{lead_id}"),
                sales,
                follow_up,
            )
            .await?;
            if self.chance(40) {
                if let Some(chased) = self.later(answered, 24, 72) {
                    let follow_up = LeadCommand::LogFollowUp {
                        channel: FollowUpChannel::Email,
                        note: "sent the deck again".into(),
                        responded: false,
                        at: chased,
                    };
                    send(
                        &h.leads,
                        lead_id,
                        &format!("follow-up-chase:{lead_id}"),
                        sales,
                        follow_up,
                    )
                    .await?;
                }
            }
            return Ok(());
        }
        // The sweep's own command id, so the live sweep recognises its work and adds nothing.
        let silence_us = adapters::clock::unix_micros(silent_since);
        let id = app::process::command_id("follow_up", &format!("{lead_id}:{silence_us}"), 0);
        let archive = LeadCommand::ArchiveIfCold { at: cold_at };
        send_with_id(
            &h.leads,
            lead_id,
            id,
            &format!("cold:{lead_id}"),
            Actor::FollowUpSweep,
            archive,
        )
        .await
    }

    /// Issues the lead's invoice through the seller's sequence and plays its payment story;
    /// true when it ends paid (and not fully refunded).
    async fn invoice(
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
        let finance = Actor::Finance;
        let story = self.below(100);
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
                let report = gateway(
                    &payment_id,
                    &invoice_id,
                    &moyasar_invoice_id,
                    status,
                    total,
                    0,
                    at + Duration::minutes(step as i64),
                );
                send(
                    &h.payments,
                    &payment_id,
                    &format!("{payment_id}:{step}"),
                    Actor::Moyasar,
                    report,
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
        let flow: &[PaymentStatus] = match self.below(4) {
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
            let report = gateway(
                &payment_id,
                &invoice_id,
                &moyasar_invoice_id,
                *status,
                total,
                0,
                paid_at + Duration::minutes(step as i64),
            );
            send(
                &h.payments,
                &payment_id,
                &format!("{payment_id}:{step}"),
                Actor::Moyasar,
                report,
            )
            .await?;
        }
        self.summary.payments += 1;
        self.summary.paid_invoices += 1;
        // Some customers ask for their money back: half of it, or all of it.
        if self.chance(9) {
            if let Some(refunded_at) = self.later(paid_at, 48, 240) {
                let full = self.chance(50);
                let refunded = if full { total } else { total / 2 };
                let report = gateway(
                    &payment_id,
                    &invoice_id,
                    &moyasar_invoice_id,
                    PaymentStatus::Refunded,
                    total,
                    refunded,
                    refunded_at,
                );
                send(
                    &h.payments,
                    &payment_id,
                    &format!("{payment_id}:refund"),
                    Actor::Moyasar,
                    report,
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
    /// ([`app::invoices::issue`]).
    async fn issue_through_sequence(&mut self, issue: IssueInvoice) -> Result<(), DemoError> {
        let what = format!("allocate:{}", issue.invoice_id);
        let request = app::invoices::IssueRequest {
            command_id: demo_command_id(&what),
            fresh: false,
        };
        app::invoices::issue(&self.handlers, request, issue, Actor::Finance.metadata())
            .await
            .map(|_| ())
            .map_err(|error| DemoError::Command {
                what,
                reason: error.to_string(),
            })
    }

    /// Paying customers are onboarded, and most go live.
    async fn onboard_customers(&mut self) -> Result<(), DemoError> {
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
            let owner = Actor::Sales(OWNERS[(self.below(3)) as usize]);
            // Some customers have paid but not had their kickoff yet.
            if self.chance(12) {
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
            if self.chance(85) {
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
    async fn decide_commissions(&mut self) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let mut approved: BTreeMap<String, Vec<PayoutItem>> = BTreeMap::new();
        let mut latest_approval = self.start();
        for invoiced in std::mem::take(&mut self.invoiced) {
            let commission_id = app::process::commissions::commission_id_for(&invoiced.invoice_id);
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
            if self.chance(8) {
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
            app::process::commissions::ProgramConfig::default().payout_minimum_halalas;
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
