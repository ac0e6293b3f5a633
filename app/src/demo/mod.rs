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
//!
//! The story is split by what it is about: [`leads`] (partners and each lead's way through
//! the pipeline) and [`money`] (invoices, payments, onboarding, commissions and payouts).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::command::{CommandEnvelope, CommandError, CommandHandler};
use crate::handlers::Handlers;
use crate::process::{process_managers, ProcessRunner};
use crate::seeded::Xorshift;
use adapters::store::{EventMetadata, StoreError};
use cqrs_es::Aggregate;
use domain::invoice::Seller;
use domain::partner::PartnerTier;
use projections::ProjectionError;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

mod leads;
mod money;

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
        rng: Xorshift::new(DEMO_SEED),
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
    rng: Xorshift,
    summary: DemoSummary,
    /// Leads whose invoice was paid (and not fully refunded), with the time it was paid.
    paid: Vec<(String, OffsetDateTime)>,
    invoiced: Vec<Invoiced>,
}

impl Demo {
    /// `at` moved on by `min_hours..=max_hours`, or None when that is no longer in the past
    /// (the story of this lead has not got that far yet).
    fn later(
        &mut self,
        at: OffsetDateTime,
        min_hours: i64,
        max_hours: i64,
    ) -> Option<OffsetDateTime> {
        let span = (max_hours - min_hours).max(0) as u64 + 1;
        let next = at + Duration::hours(min_hours + self.rng.below(span) as i64);
        (next < self.now - Duration::minutes(10)).then_some(next)
    }

    fn start(&self) -> OffsetDateTime {
        self.now - Duration::days(DEMO_DAYS)
    }
}
