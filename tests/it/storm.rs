//! Duplicate and disorder storm (issue 9, item 3): thousands of webhook deliveries, with 30 %
//! repeats (same delivery id, same body), shuffled so that payments arrive before their
//! invoices and Calendly cancels before their bookings, sent over HTTP with concurrency, end
//! in the same state as the same deliveries sent once each in causal order.
//!
//! Both runs start from the same seeded leads (through the handlers, before any worker) and
//! issue the same invoices through the ZATCA sequence in the same order (so ICVs and PIHs
//! agree); only where those invoices fall among the deliveries differs. Afterwards each run is
//! drained: parked deliveries are retried until none is left, and every projection and process
//! manager has caught up. Then the domain content of every stream, the read models, the inbox
//! and the per-delivery and per-command event counts are compared.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adapters::store::{Checkpoint, MAX_READ_BATCH};
use adapters::webhooks::{calendly, standard, Secret};
use app::handlers::Handlers;
use app::seeded::Xorshift;
use domain::invoice::{Customer, InvoiceLine, IssueInvoice, Seller};
use domain::plan::Plan;
use projections::runtime::dump_table;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::app::{
    envelope, issue_through_sequence, spawn_app_seeded, try_http_request, TestApp, CALENDLY_KEY,
    MOYASAR_TOKEN, PARTNER_SECRETS, SELLER_VAT,
};
use crate::helpers::Engine;

/// Unique deliveries in the full storm; with 30 % repeats that makes 10,000 sends.
const FULL_UNIQUE: usize = 7_000;
const FULL_SENDS: usize = 10_000;
/// The PostgreSQL storm is a tenth of that: in a debug build on a shared machine each
/// Calendly delivery there waits for the CRM board behind the cluster-wide read watermark,
/// and the full storm would take minutes.
const SMALL_UNIQUE: usize = 700;
const SMALL_SENDS: usize = 1_000;
/// Concurrent senders in both runs.
const SENDERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_ten_thousand_shuffled_and_repeated_deliveries_end_as_the_same_deliveries_in_order()
{
    storm(Engine::Sqlite, FULL_UNIQUE, FULL_SENDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_thousand_shuffled_and_repeated_deliveries_end_as_the_same_deliveries_in_order()
{
    storm(Engine::Postgres, SMALL_UNIQUE, SMALL_SENDS).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Moyasar,
    Calendly,
    Partners,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Moyasar => "moyasar",
            Provider::Calendly => "calendly",
            Provider::Partners => "partners",
        }
    }
}

/// One unique delivery: its id (as the inbox keys it) and the exact bytes every send repeats.
struct Delivery {
    provider: Provider,
    id: String,
    body: Vec<u8>,
    /// What must exist before it can apply (what the shuffle puts after it).
    needs: Needs,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// The n-th invoice of the plan.
    Invoice(usize),
    /// Another delivery (a cancel needs its booking), by index.
    Delivery(usize),
}

/// Everything both runs share.
struct Storm {
    /// Leads that exist before any delivery: `(lead_id, email)`.
    seeded: Vec<(String, String)>,
    seeded_at: OffsetDateTime,
    /// In the order they take their ICVs, in both runs.
    invoices: Vec<IssueInvoice>,
    /// Unique deliveries in causal order: the first `causes` depend on nothing but the seeded
    /// leads and the invoices; the rest (cancels, successful payments) each follow one of them.
    deliveries: Vec<Delivery>,
    causes: usize,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn moyasar_payment(
    delivery_id: &str,
    payment_id: &str,
    status: &str,
    amount: i64,
    invoice: &IssueInvoice,
    at: OffsetDateTime,
) -> Value {
    let mut body = fixture("moyasar_payment_paid.json");
    body["secret_token"] = json!(MOYASAR_TOKEN);
    body["id"] = json!(delivery_id);
    body["type"] = json!(format!("payment_{status}"));
    body["created_at"] = json!(rfc3339(at));
    body["live"] = json!(true);
    body["data"]["id"] = json!(payment_id);
    body["data"]["status"] = json!(status);
    body["data"]["amount"] = json!(amount);
    // Half the invoices are paid through their Moyasar invoice, half name ours in metadata.
    match &invoice.moyasar_invoice_id {
        Some(theirs) => {
            body["data"]["invoice_id"] = json!(theirs);
            body["data"]["metadata"] = json!({});
        }
        None => {
            body["data"]["invoice_id"] = Value::Null;
            body["data"]["metadata"] = json!({"invoice_id": invoice.invoice_id});
        }
    }
    body
}

fn calendly_body(kind: &str, email: &str, invitee: &str, at: OffsetDateTime) -> Value {
    let mut body = fixture(if kind == "invitee.canceled" {
        "calendly_invitee_canceled.json"
    } else {
        "calendly_invitee_created.json"
    });
    body["event"] = json!(kind);
    body["created_at"] = json!(rfc3339(at));
    body["payload"]["created_at"] = json!(rfc3339(at));
    body["payload"]["email"] = json!(email);
    body["payload"]["uri"] = json!(invitee);
    body["payload"]["scheduled_event"]["start_time"] = json!(rfc3339(at + time::Duration::days(3)));
    if kind == "invitee.canceled" {
        body["payload"]["rescheduled"] = json!(false);
        body["payload"]["new_invitee"] = Value::Null;
    }
    body
}

fn bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).unwrap()
}

/// Builds the shared plan for `unique` deliveries: payments (and failed attempts) for
/// invoices of seeded leads, Calendly bookings (and cancels) of seeded leads and of new
/// emails, partner leads and applications, and Moyasar's verification pings.
fn plan(unique: usize) -> Storm {
    let base = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
        .unwrap()
        - time::Duration::hours(4);
    let at = |hour: i64, n: usize| {
        base + time::Duration::hours(hour) + time::Duration::seconds(n as i64)
    };
    let billing = unique / 7;
    let failed = billing * 3 / 10;
    let booked_known = unique / 5;
    let booked_new = unique / 5;
    let cancel_share = |n: usize| n * 2 / 5;
    let applied = unique / 35;
    let pings = 10;
    let used = billing
        + failed
        + booked_known
        + cancel_share(booked_known)
        + booked_new
        + cancel_share(booked_new)
        + applied
        + pings;
    let partner_leads = unique.checked_sub(used).expect("enough deliveries");

    let mut rng = Xorshift::new(0x5eed_0f57_0a11);
    let mut seeded = Vec::new();
    let mut invoices = Vec::new();
    for n in 0..billing + booked_known {
        seeded.push((
            format!("storm-lead-{n}"),
            format!("storm-lead-{n}@example.sa"),
        ));
    }
    let plans = [Plan::Starter, Plan::Growth, Plan::Scale];
    for n in 0..billing {
        let plan = plans[n % plans.len()];
        let issued_at = at(1, n);
        invoices.push(IssueInvoice {
            invoice_id: format!("storm-invoice-{n}"),
            customer: Customer {
                lead_id: seeded[n].0.clone(),
                name: format!("Customer {n}"),
            },
            lines: vec![InvoiceLine {
                description: format!("{} plan, one month", plan.as_str()),
                quantity: 1,
                unit_price_halalas: plan.price_halalas(),
                plan: Some(plan),
            }],
            issued_at,
            due_at: issued_at + time::Duration::days(14),
            seller: Seller {
                name: "Dealix".into(),
                vat_number: SELLER_VAT.into(),
            },
            moyasar_invoice_id: (n % 2 == 0).then(|| format!("storm-moyasar-{n}")),
        });
    }

    let mut first = Vec::new(); // creations
    let mut later = Vec::new(); // what follows them
    for n in 0..applied {
        let tier = ["referral", "certified", "strategic"][n % 3];
        let body = json!({"type": "partner.applied", "timestamp": rfc3339(at(0, n)),
            "data": {"name": format!("Partner {n}"), "email": format!("partner-{n}@example.sa"),
                     "requested_tier": tier}});
        first.push(Delivery {
            provider: Provider::Partners,
            id: format!("msg_apply_{n}"),
            body: bytes(&body),
            needs: Needs::Nothing,
        });
    }
    for n in 0..partner_leads {
        let body = json!({"type": "lead.captured", "timestamp": rfc3339(at(0, 1_000 + n)),
            "data": {"name": format!("Partner lead {n}"), "company": format!("Company {n}"),
                     "email": format!("partner-lead-{n}@example.sa"), "phone": format!("+9665{n:08}")}});
        first.push(Delivery {
            provider: Provider::Partners,
            id: format!("msg_lead_{n}"),
            body: bytes(&body),
            needs: Needs::Nothing,
        });
    }
    let mut bookings = Vec::new();
    for n in 0..booked_known {
        bookings.push(seeded[billing + n].1.clone());
    }
    for n in 0..booked_new {
        bookings.push(format!("calendly-{n}@example.sa"));
    }
    let known = bookings.len() - booked_new;
    for (n, email) in bookings.iter().enumerate() {
        let invitee = format!("https://api.calendly.com/scheduled_events/STORM{n}/invitees/I{n}");
        let created = calendly_body("invitee.created", email, &invitee, at(2, n));
        let booking = first.len();
        first.push(Delivery {
            provider: Provider::Calendly,
            id: format!("invitee.created:{invitee}"),
            body: bytes(&created),
            needs: Needs::Nothing,
        });
        let cancels = if n < known {
            n < cancel_share(booked_known)
        } else {
            n - known < cancel_share(booked_new)
        };
        if cancels {
            let canceled = calendly_body("invitee.canceled", email, &invitee, at(3, n));
            later.push(Delivery {
                provider: Provider::Calendly,
                id: format!("invitee.canceled:{invitee}"),
                body: bytes(&canceled),
                needs: Needs::Delivery(booking),
            });
        }
    }
    for (n, invoice) in invoices.iter().enumerate() {
        if n < failed {
            let id = format!("evt-failed-{n}");
            let body = moyasar_payment(
                &id,
                &format!("pay-failed-{n}"),
                "failed",
                34_500,
                invoice,
                at(2, n),
            );
            first.push(Delivery {
                provider: Provider::Moyasar,
                id,
                body: bytes(&body),
                needs: Needs::Invoice(n),
            });
        }
        let total = invoice_total(invoice);
        // One in ten is a partial payment: the invoice stays open.
        let amount = if rng.chance(10) { total - 100 } else { total };
        let id = format!("evt-paid-{n}");
        let body = moyasar_payment(&id, &format!("pay-{n}"), "paid", amount, invoice, at(3, n));
        later.push(Delivery {
            provider: Provider::Moyasar,
            id,
            body: bytes(&body),
            needs: Needs::Invoice(n),
        });
    }
    for n in 0..pings {
        let mut body = fixture("moyasar_webhook_verification.json");
        body["secret_token"] = json!(MOYASAR_TOKEN);
        let id = format!("evt-ping-{n}");
        body["id"] = json!(id);
        first.push(Delivery {
            provider: Provider::Moyasar,
            id,
            body: bytes(&body),
            needs: Needs::Nothing,
        });
    }
    let causes = first.len();
    let mut deliveries = first;
    deliveries.extend(later);
    assert_eq!(deliveries.len(), unique);
    Storm {
        seeded,
        seeded_at: base,
        invoices,
        deliveries,
        causes,
    }
}

/// The total with VAT of a one-line invoice, as the domain computes it.
fn invoice_total(issue: &IssueInvoice) -> i64 {
    let subtotal: i64 = issue
        .lines
        .iter()
        .map(|l| l.unit_price_halalas * l.quantity as i64)
        .sum();
    domain::vat::vat_halalas(subtotal) + subtotal
}

async fn seed(handlers: Arc<Handlers>, seeded: Vec<(String, String)>, at: OffsetDateTime) {
    for (lead_id, email) in seeded {
        let capture = domain::lead::LeadCommand::Capture {
            lead_id: lead_id.clone(),
            name: format!("Seeded {lead_id}"),
            company: None,
            email: Some(email),
            phone: None,
            source: "landing_page".into(),
            partner_id: None,
            utm: None,
            owner: None,
            at,
        };
        handlers
            .leads
            .execute(envelope(&lead_id, capture))
            .await
            .unwrap();
    }
}

async fn start(plan: &Storm, engine: Engine) -> Option<TestApp> {
    let seeded = plan.seeded.clone();
    let at = plan.seeded_at;
    let app = spawn_app_seeded(engine, move |handlers| seed(handlers, seeded, at)).await?;
    // Seeded leads are on the CRM board (Calendly matches invitees by email there).
    app.settle().await;
    Some(app)
}

/// What the senders saw.
#[derive(Default)]
struct Sent {
    sends: AtomicU64,
    parked_answers: AtomicU64,
    /// 5xx or no answer: the sender tries again, as a provider would.
    resent: AtomicU64,
}

/// Sends one delivery until the service answers it (2xx); anything else but a busy 5xx is a
/// failure of the test.
async fn send(address: &str, delivery: &Delivery, sent: &Sent) {
    for _ in 0..50 {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut headers: Vec<(&str, String)> = vec![("Content-Type", "application/json".into())];
        let path = match delivery.provider {
            Provider::Moyasar => "/webhooks/moyasar",
            Provider::Calendly => {
                headers.push((
                    calendly::SIGNATURE_HEADER,
                    calendly::sign(&Secret::new(CALENDLY_KEY), now, &delivery.body),
                ));
                "/webhooks/calendly"
            }
            Provider::Partners => {
                let secret = Secret::new(PARTNER_SECRETS[0]);
                headers.push((standard::ID_HEADER, delivery.id.clone()));
                headers.push((standard::TIMESTAMP_HEADER, now.to_string()));
                headers.push((
                    standard::SIGNATURE_HEADER,
                    standard::sign(&secret, &delivery.id, now, &delivery.body).unwrap(),
                ));
                "/webhooks/partners"
            }
        };
        sent.sends.fetch_add(1, Ordering::Relaxed);
        let answer = try_http_request(address, "POST", path, &headers, &delivery.body).await;
        match answer {
            Some(answer) if answer.status == 200 => return,
            Some(answer) if answer.status == 202 => {
                sent.parked_answers.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(answer) if answer.status >= 500 || answer.status == 0 => {}
            None => {}
            Some(answer) => panic!(
                "{} {}: unexpected {}: {}",
                delivery.provider.name(),
                delivery.id,
                answer.status,
                answer.text
            ),
        }
        sent.resent.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} was never answered", delivery.id);
}

/// Drains a run: waits until every projection and process manager has caught up, then retries
/// the parked deliveries that are due (one pass, at most `inbox::MAX_LIST`, as the retry worker
/// would after the backoff), until none is parked; returns the passes that took.
async fn drain(app: &TestApp) -> usize {
    for pass in 0..200 {
        app.settle().await;
        if count(
            app,
            "SELECT COUNT(*) FROM webhook_inbox WHERE status = 'parked'",
        )
        .await
            == 0
        {
            return pass;
        }
        let past_every_backoff = OffsetDateTime::now_utc() + time::Duration::days(1);
        app.state
            .deliveries
            .retry_due(past_every_backoff)
            .await
            .unwrap();
    }
    panic!("deliveries still parked after 200 drain passes");
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db
        .store
        .sql()
        .fetch_optional(sql, &[])
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap()
}

/// Run A: seeded leads, every invoice, then each delivery once, in causal order: every
/// delivery is sent after what it depends on (its invoice, its booking) was applied. The
/// deliveries of one phase are independent of each other, so they go with the same
/// concurrency as the storm.
async fn in_order(plan: Arc<Storm>, engine: Engine) -> Option<State> {
    let app = start(&plan, engine).await?;
    for issue in &plan.invoices {
        issue_through_sequence(app.handlers(), issue.clone()).await;
    }
    let sent = Arc::new(Sent::default());
    let causes: Vec<Item> = (0..plan.causes).map(Item::Send).collect();
    let effects: Vec<Item> = (plan.causes..plan.deliveries.len())
        .map(Item::Send)
        .collect();
    for phase in [causes, effects] {
        send_all(&app, &plan, phase, &sent).await;
        // Everything of the phase applied and seen before the next one starts.
        app.settle().await;
    }
    let passes = drain(&app).await;
    let sent = Arc::try_unwrap(sent).ok().expect("senders are done");
    let state = State::read(&app, sent, passes).await;
    app.stop().await;
    Some(state)
}

/// One item for the senders.
#[derive(Clone, Copy)]
enum Item {
    Send(usize),
    /// Issue the next invoice (in ICV order) at this point of the storm.
    Issue,
}

/// Sends `items` with [`SENDERS`] concurrent senders; returns how many invoices were issued.
async fn send_all(app: &TestApp, plan: &Arc<Storm>, items: Vec<Item>, sent: &Arc<Sent>) -> usize {
    let items = Arc::new(Mutex::new(VecDeque::from(items)));
    let next_invoice = Arc::new(AtomicUsize::new(0));
    let issuing = Arc::new(Mutex::new(()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (items, plan, sent) = (items.clone(), plan.clone(), sent.clone());
        let (next_invoice, issuing) = (next_invoice.clone(), issuing.clone());
        let handlers = app.handlers().clone();
        let address = app.address.clone();
        workers.spawn(async move {
            loop {
                let Some(item) = items.lock().await.pop_front() else {
                    return;
                };
                match item {
                    Item::Send(index) => send(&address, &plan.deliveries[index], &sent).await,
                    Item::Issue => {
                        // Invoices keep their ICV order: one issues at a time, in plan order.
                        let _turn = issuing.lock().await;
                        let n = next_invoice.fetch_add(1, Ordering::SeqCst);
                        issue_through_sequence(&handlers, plan.invoices[n].clone()).await;
                    }
                }
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result.expect("a sender panicked");
    }
    next_invoice.load(Ordering::SeqCst)
}

/// Run B: the same deliveries plus repeats, and the invoices, shuffled, with concurrency.
async fn shuffled(plan: Arc<Storm>, engine: Engine, sends: usize, seed: u64) -> Option<State> {
    let app = start(&plan, engine).await?;
    let unique = plan.deliveries.len();
    let mut rng = Xorshift::new(seed);
    let mut items: Vec<Item> = (0..unique).map(Item::Send).collect();
    for _ in unique..sends {
        items.push(Item::Send(rng.below(unique as u64) as usize));
    }
    items.extend(std::iter::repeat_n(Item::Issue, plan.invoices.len()));
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let disorder = Disorder::of(&plan, &items);
    let sent = Arc::new(Sent::default());
    let issued = send_all(&app, &plan, items, &sent).await;
    assert_eq!(issued, plan.invoices.len());
    let passes = drain(&app).await;
    let sent = Arc::try_unwrap(sent).ok().expect("senders are done");
    let mut state = State::read(&app, sent, passes).await;
    state.disorder = disorder;
    app.stop().await;
    Some(state)
}

/// How out of order a shuffled run is: deliveries whose first send comes before what they
/// need (a payment before its invoice is issued, a cancel before its booking is first sent).
#[derive(Default, Debug)]
struct Disorder {
    payments_before_invoice: usize,
    cancels_before_booking: usize,
}

impl Disorder {
    fn of(plan: &Storm, items: &[Item]) -> Disorder {
        let mut issued = 0;
        let mut first_sent: Vec<Option<usize>> = vec![None; plan.deliveries.len()];
        let mut invoice_at = vec![0; plan.invoices.len()];
        for (at, item) in items.iter().enumerate() {
            match item {
                Item::Send(index) => {
                    first_sent[*index].get_or_insert(at);
                }
                Item::Issue => {
                    invoice_at[issued] = at;
                    issued += 1;
                }
            }
        }
        let mut disorder = Disorder::default();
        for (index, delivery) in plan.deliveries.iter().enumerate() {
            let at = first_sent[index].expect("every delivery is sent");
            match delivery.needs {
                Needs::Invoice(n) if at < invoice_at[n] => disorder.payments_before_invoice += 1,
                Needs::Delivery(cause) if Some(at) < first_sent[cause] => {
                    disorder.cancels_before_booking += 1
                }
                _ => {}
            }
        }
        disorder
    }
}

/// An event as the comparison sees it: only its domain content.
#[derive(Debug, PartialEq)]
struct Content {
    event_type: String,
    schema_version: u32,
    payload: Value,
    metadata: Value,
    /// Webhook command ids are derived from (provider, delivery id), so they must agree;
    /// other command ids are not compared (see `content`).
    webhook_command_id: Option<uuid::Uuid>,
}

/// The end state of one run.
struct State {
    streams: BTreeMap<String, Vec<Content>>,
    tables: BTreeMap<String, Vec<Vec<adapters::sql::SqlValue>>>,
    /// `(provider, delivery_id) -> status` of every inbox row.
    inbox: BTreeMap<(String, String), String>,
    /// Events per delivery id (metadata `delivery_id`), and per command id of a webhook.
    per_delivery: BTreeMap<String, usize>,
    per_webhook_command: BTreeMap<uuid::Uuid, usize>,
    conflicts: i64,
    rejections: i64,
    events: usize,
    sent: Sent,
    drain_passes: usize,
    disorder: Disorder,
}

/// The domain content of a stored event. Ignored, because they legitimately depend on when
/// and in which order things were appended, not on what was decided:
/// - `position`, `transaction_id`: where the event landed in the global log;
/// - `recorded_at`: the wall-clock time of the append (domain times are in the payload);
/// - `event_id`, `prev_hash`, `hash`: a fresh uuid v7 per event, and the chain over it;
/// - `command_id` of a non-webhook command: process managers derive theirs from the
///   triggering event's (random) event id, the tests' own commands use fresh uuids;
/// - metadata `causation_id`, and the `correlation_id` and `command_id` copies of a
///   non-webhook command: the triggering event's id or a fresh uuid (webhook commands keep
///   theirs: they are derived from the delivery);
/// - metadata `actor` and `source` of `InvoiceIssued`: the issuer (the tests' stand-in for the
///   API) and the `invoice_issuer` backstop race to issue an allocated invoice under the same
///   command id and content; whichever commits first is recorded as the actor.
fn content(event: &adapters::store::RecordedEvent) -> Content {
    let mut metadata = event.metadata.clone();
    let from_webhook = metadata["source"]
        .as_str()
        .is_some_and(|s| s.starts_with("webhook:"));
    if let Some(map) = metadata.as_object_mut() {
        if event.event_type == "InvoiceIssued" {
            map.remove("actor");
            map.remove("source");
        }
        map.remove("causation_id");
        if !from_webhook {
            map.remove("correlation_id");
            map.remove("command_id");
        }
    }
    Content {
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        payload: event.payload.clone(),
        metadata,
        webhook_command_id: if from_webhook { event.command_id } else { None },
    }
}

/// The rows of a read-model table that carries log identities, without them: journal entries
/// and statement lines name the event they come from by `event_id` and `position` (and an
/// entry's id is `event_id/index`), which differ between runs for the same decision. They are
/// compared by what the entry says instead: stream, event type, index, time, description.
fn log_free_query(table: &str) -> Option<&'static str> {
    Some(match table {
        "ledger_entries" => {
            "SELECT stream_id, event_type, entry_index, occurred_at_us, description \
             FROM ledger_entries ORDER BY 1, 2, 3, 4, 5"
        }
        "ledger_lines" => {
            "SELECT e.stream_id, e.event_type, e.entry_index, e.occurred_at_us, l.line_no, \
             l.account, l.debit_halalas, l.credit_halalas \
             FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id \
             ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"
        }
        "statement_lines" => {
            "SELECT partner_id, month, commission_id, kind, amount_halalas, occurred_at_us, reference \
             FROM statement_lines ORDER BY 1, 2, 3, 4, 5, 6, 7"
        }
        _ => return None,
    })
}

impl State {
    async fn read(app: &TestApp, sent: Sent, drain_passes: usize) -> State {
        let store = &app.db.store;
        let mut streams: BTreeMap<String, Vec<Content>> = BTreeMap::new();
        let mut per_delivery = BTreeMap::new();
        let mut per_webhook_command = BTreeMap::new();
        let mut events = 0;
        let mut after = Checkpoint::START;
        loop {
            let batch = store.read_committed(after, MAX_READ_BATCH).await.unwrap();
            let Some(last) = batch.last() else { break };
            after = Checkpoint::after(last);
            for event in &batch {
                events += 1;
                if let Some(delivery) = event.metadata["delivery_id"].as_str() {
                    *per_delivery.entry(delivery.to_owned()).or_insert(0) += 1;
                }
                let mut content = content(event);
                // Sealed personal values differ between runs (a fresh nonce each): opened.
                content.payload = crate::helpers::opened(store, content.payload).await;
                if let Some(id) = content.webhook_command_id {
                    *per_webhook_command.entry(id).or_insert(0) += 1;
                }
                streams
                    .entry(event.stream_id.clone())
                    .or_default()
                    .push(content);
            }
        }
        let db = store.sql();
        let mut tables = BTreeMap::new();
        for projection in projections::read_models() {
            // The audit trail is the global log in append order, with its running hash over
            // positions: it differs by construction when the order differs.
            if projection.name() == "audit_log" {
                continue;
            }
            for table in projection.tables() {
                let rows = match log_free_query(table) {
                    Some(sql) => db
                        .fetch_all(sql, &[])
                        .await
                        .unwrap()
                        .iter()
                        .map(|row| row.values().unwrap())
                        .collect(),
                    None => dump_table(&db, table).await.unwrap(),
                };
                let mut opened_rows = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut opened_row = Vec::with_capacity(row.len());
                    for value in row {
                        opened_row.push(match value {
                            adapters::sql::SqlValue::Text(text) => adapters::sql::SqlValue::Text(
                                crate::helpers::opened_text(store, &text).await,
                            ),
                            other => other,
                        });
                    }
                    opened_rows.push(opened_row);
                }
                tables.insert(table.to_string(), opened_rows);
            }
        }
        let inbox = db
            .fetch_all(
                "SELECT provider, delivery_id, status FROM webhook_inbox",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (
                    (row.text(0).unwrap(), row.text(1).unwrap()),
                    row.text(2).unwrap(),
                )
            })
            .collect();
        State {
            streams,
            tables,
            inbox,
            per_delivery,
            per_webhook_command,
            conflicts: count(app, "SELECT COUNT(*) FROM webhook_conflicts").await,
            rejections: count(app, "SELECT COUNT(*) FROM process_rejections").await,
            events,
            sent,
            drain_passes,
            disorder: Disorder::default(),
        }
    }
}

async fn storm(engine: Engine, unique: usize, sends: usize) {
    // A smaller storm for a quick local look: REVLEDGER_STORM_UNIQUE=700 (sends scale with it).
    let (unique, sends) = match std::env::var("REVLEDGER_STORM_UNIQUE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        Some(smaller) => (smaller, smaller * sends / unique),
        None => (unique, sends),
    };
    let seed = std::env::var("REVLEDGER_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 | 1);
    eprintln!("storm {engine:?}: seed {seed} (REVLEDGER_STORM_SEED={seed} replays it)");
    let plan = Arc::new(plan(unique));
    // The two runs are independent (each on its own fresh database): run them side by side.
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        in_order(plan.clone(), engine),
        shuffled(plan.clone(), engine, sends, seed)
    );
    let (Some(a), Some(b)) = (a, b) else {
        return;
    };
    let took = started.elapsed();

    // Every unique delivery has exactly one inbox row, applied (or acknowledged), in both.
    let expected: BTreeSet<(String, String)> = plan
        .deliveries
        .iter()
        .map(|d| (d.provider.name().to_owned(), d.id.clone()))
        .collect();
    for (name, state) in [("in order", &a), ("shuffled", &b)] {
        let keys: BTreeSet<_> = state.inbox.keys().cloned().collect();
        assert_eq!(keys, expected, "{name}: one inbox row per unique delivery");
        let unsettled: Vec<_> = state
            .inbox
            .iter()
            .filter(|(_, status)| !matches!(status.as_str(), "accepted" | "acknowledged"))
            .collect();
        assert!(unsettled.is_empty(), "{name}: not applied: {unsettled:?}");
        assert_eq!(state.conflicts, 0, "{name}: no delivery id reused");
        assert!(
            state.per_webhook_command.values().all(|n| *n >= 1),
            "{name}: every webhook command appended"
        );
    }

    // Each delivery did something in both runs: events, except Moyasar's verification pings.
    for delivery in &plan.deliveries {
        let ping = delivery.id.starts_with("evt-ping-");
        for (name, state) in [("in order", &a), ("shuffled", &b)] {
            let events = state.per_delivery.get(&delivery.id).copied().unwrap_or(0);
            assert_eq!(
                events == 0,
                ping,
                "{name}: {} appended {events} events",
                delivery.id
            );
        }
    }

    // Nothing lost, nothing doubled: per delivery and per webhook command id.
    let mut lost = 0;
    let mut doubled = 0;
    for delivery in &plan.deliveries {
        let a_count = a.per_delivery.get(&delivery.id).copied().unwrap_or(0);
        let b_count = b.per_delivery.get(&delivery.id).copied().unwrap_or(0);
        lost += usize::from(b_count < a_count);
        doubled += usize::from(b_count > a_count);
    }
    assert_eq!(
        a.per_webhook_command, b.per_webhook_command,
        "events per webhook command id"
    );
    assert_eq!(a.events, b.events, "as many events in both runs");

    // The same streams with the same domain content, in the same order within each stream.
    let a_ids: BTreeSet<_> = a.streams.keys().collect();
    let b_ids: BTreeSet<_> = b.streams.keys().collect();
    assert_eq!(a_ids, b_ids, "the same streams");
    for (stream, a_events) in &a.streams {
        let b_events = &b.streams[stream];
        if let Some(i) =
            (0..a_events.len().max(b_events.len())).find(|&i| a_events.get(i) != b_events.get(i))
        {
            panic!(
                "stream {stream} differs at version {}:\nin order: {:?}\nshuffled: {:?}\n(in order: {:?}; shuffled: {:?})",
                i + 1,
                a_events.get(i),
                b_events.get(i),
                a_events.iter().map(|e| &e.event_type).collect::<Vec<_>>(),
                b_events.iter().map(|e| &e.event_type).collect::<Vec<_>>(),
            );
        }
    }
    for (table, a_rows) in &a.tables {
        let b_rows = &b.tables[table];
        if let Some(i) =
            (0..a_rows.len().max(b_rows.len())).find(|&i| a_rows.get(i) != b_rows.get(i))
        {
            panic!(
                "read model {table} differs ({} rows in order, {} shuffled) at row {i}:\nin order: {:?}\nshuffled: {:?}",
                a_rows.len(),
                b_rows.len(),
                a_rows.get(i),
                b_rows.get(i)
            );
        }
    }
    assert_eq!(a.rejections, b.rejections, "process rejections");
    assert_eq!((lost, doubled), (0, 0));

    let repeats = sends - unique;
    assert!(
        b.disorder.payments_before_invoice > 0 && b.disorder.cancels_before_booking > 0,
        "the shuffle put effects before their causes: {:?}",
        b.disorder
    );
    println!(
        "STORM SUMMARY engine={engine:?} seed={seed} unique={unique} sent={sends} repeats={repeats} \
         http_sends_in_order={} http_sends_shuffled={} parked_answers_shuffled={} resent_on_5xx={} \
         invoices_interleaved={} payments_before_invoice={} cancels_before_booking={} drain_passes={} events={} streams={} lost={lost} doubled={doubled} \
         took_s={:.1}",
        a.sent.sends.load(Ordering::Relaxed),
        b.sent.sends.load(Ordering::Relaxed),
        b.sent.parked_answers.load(Ordering::Relaxed),
        b.sent.resent.load(Ordering::Relaxed),
        plan.invoices.len(),
        b.disorder.payments_before_invoice,
        b.disorder.cancels_before_booking,
        b.drain_passes,
        b.events,
        b.streams.len(),
        took.as_secs_f64(),
    );
}
