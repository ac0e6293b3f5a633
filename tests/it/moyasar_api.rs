//! Creating Moyasar invoices, against a local fake of Moyasar's API, on both engines: an issued
//! invoice gets its Moyasar invoice linked; a refusal is recorded and the invoice stays issued;
//! a timeout is retried until the invoice is linked, once, with no second Moyasar invoice.
//!
//! The fake ([`FakeMoyasar`]) is shared with [`crate::moyasar_sweep`]: besides creating and
//! listing invoices it answers `GET /invoices/{id}` with the invoice's payments,
//! `GET /payments/{id}` (404 when unknown) and `GET /payments` filtered by `created[gt]` /
//! `created[lt]` and paged by [`PAYMENT_PAGE_SIZE`] with Moyasar's `meta` block. Every route
//! requires Moyasar's Basic auth (the secret key as user name, no password).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::moyasar_api::MoyasarApiConfig;
use adapters::store::RecordedEvent;
use adapters::webhooks::Secret;
use app::command::CommandHandler;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use domain::invoice::{Invoice, InvoiceStatus};
use domain::plan::Plan;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::{spawn_app_with, TestApp};

use crate::helpers::Engine;

crate::per_engine!(
    an_issued_invoice_gets_its_moyasar_invoice_linked,
    an_invoice_issued_with_a_moyasar_id_is_not_sent_to_moyasar,
    a_refusal_is_recorded_with_moyasars_message_and_the_invoice_stays_issued,
    a_timeout_is_retried_until_the_invoice_is_linked_once,
    a_lost_answer_links_the_invoice_moyasar_created_instead_of_a_second_one,
);

pub(crate) const API_KEY: &str = "sk_test_fake_moyasar_key";

/// The client's timeout in these tests: short, so a slow fake is a timeout quickly.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);

/// How long the fake takes when it is slow: well past [`CLIENT_TIMEOUT`].
const SLOW_ANSWER: Duration = Duration::from_secs(2);

/// How long a test waits for the process manager to do something.
const DEADLINE: Duration = Duration::from_secs(30);

const VALIDATION_FAILED: &str = r#"{"type":"invalid_request_error","message":"Validation Failed","errors":{"amount":["must be greater than or equal to 100"]}}"#;

/// Payments per page of the fake's `GET /payments`: small, so a day of a test spans pages.
pub(crate) const PAYMENT_PAGE_SIZE: usize = 2;

/// What the fake does with the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Answers as Moyasar does.
    Normal,
    /// Refuses every creation with a 400 and Moyasar's validation error body.
    Refuse,
    /// Answers every request after [`SLOW_ANSWER`] (the client has given up by then).
    Slow,
    /// Creates the invoice, then answers after [`SLOW_ANSWER`]: the answer is lost.
    SlowCreate,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) method: &'static str,
    /// The path, for the reads.
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    pub(crate) body: Value,
}

#[derive(Default)]
pub(crate) struct FakeState {
    behaviour: Mutex<Option<Behaviour>>,
    invoices: Mutex<Vec<Value>>,
    /// Payment objects, as `GET /payments/{id}` answers them.
    payments: Mutex<Vec<Value>>,
    received: Mutex<Vec<Received>>,
}

impl FakeState {
    fn behaviour(&self) -> Behaviour {
        self.behaviour.lock().unwrap().unwrap_or(Behaviour::Normal)
    }

    fn receive(&self, method: &'static str, headers: &HeaderMap, body: Value) {
        self.receive_at(method, "", headers, body);
    }

    fn receive_at(&self, method: &'static str, path: &str, headers: &HeaderMap, body: Value) {
        let authorization = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        self.received.lock().unwrap().push(Received {
            method,
            path: path.to_owned(),
            authorization,
            body,
        });
    }
}

/// A fake of Moyasar's invoices and payments API on 127.0.0.1, switchable between behaviours.
pub(crate) struct FakeMoyasar {
    pub(crate) base_url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeMoyasar {
    pub(crate) async fn start(behaviour: Behaviour) -> FakeMoyasar {
        let state = Arc::new(FakeState::default());
        state.behaviour.lock().unwrap().replace(behaviour);
        let router = Router::new()
            .route("/v1/invoices", get(list_invoices).post(create_invoice))
            .route("/v1/invoices/{id}", get(get_invoice))
            .route("/v1/payments", get(list_payments))
            .route("/v1/payments/{id}", get(get_payment))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeMoyasar {
            base_url: format!("http://{address}/v1"),
            state,
            server,
        }
    }

    pub(crate) fn set(&self, behaviour: Behaviour) {
        self.state.behaviour.lock().unwrap().replace(behaviour);
    }

    /// Adds a payment (a Payment object) to what Moyasar knows, or replaces the one with its id.
    pub(crate) fn put_payment(&self, payment: Value) {
        let mut payments = self.state.payments.lock().unwrap();
        payments.retain(|known| known["id"] != payment["id"]);
        payments.push(payment);
    }

    /// Adds an invoice to what Moyasar knows, as if created earlier.
    pub(crate) fn put_invoice(&self, invoice: Value) {
        self.state.invoices.lock().unwrap().push(invoice);
    }

    /// Forgets a payment (Moyasar answers 404 for it).
    pub(crate) fn remove_payment(&self, payment_id: &str) {
        self.state
            .payments
            .lock()
            .unwrap()
            .retain(|known| known["id"] != payment_id);
    }

    pub(crate) fn received(&self, method: &str) -> Vec<Received> {
        let received = self.state.received.lock().unwrap();
        received
            .iter()
            .filter(|request| request.method == method)
            .cloned()
            .collect()
    }

    /// How many `GET /invoices` (look-ups by our id) the fake received.
    fn invoice_lookups(&self) -> usize {
        self.received("GET")
            .iter()
            .filter(|request| request.path == "/invoices")
            .count()
    }

    pub(crate) fn invoices(&self) -> Vec<Value> {
        self.state.invoices.lock().unwrap().clone()
    }
}

impl Drop for FakeMoyasar {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:"))
    );
    headers
        .get("authorization")
        .is_some_and(|value| value.as_bytes() == expected.as_bytes())
}

fn unauthorized() -> (StatusCode, Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "type": "authentication_error",
            "message": "Invalid authorization credentials",
            "errors": null
        })),
    )
}

async fn create_invoice(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    state.receive("POST", &headers, body.clone());
    if !authorized(&headers) {
        return unauthorized();
    }
    let behaviour = state.behaviour();
    match behaviour {
        Behaviour::Refuse => {
            let error: Value = serde_json::from_str(VALIDATION_FAILED).unwrap();
            return (StatusCode::BAD_REQUEST, Json(error));
        }
        Behaviour::Slow => tokio::time::sleep(SLOW_ANSWER).await,
        Behaviour::Normal | Behaviour::SlowCreate => {}
    }
    let id = Uuid::now_v7().to_string();
    let invoice = json!({
        "id": id,
        "status": "initiated",
        "amount": body["amount"],
        "currency": body["currency"],
        "description": body["description"],
        "amount_format": "",
        "url": format!("https://checkout.moyasar.test/invoices/{id}?lang=en"),
        "callback_url": body.get("callback_url").cloned().unwrap_or(Value::Null),
        "expired_at": null,
        "metadata": body["metadata"],
    });
    state.invoices.lock().unwrap().push(invoice.clone());
    if behaviour == Behaviour::SlowCreate {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    (StatusCode::CREATED, Json(invoice))
}

async fn list_invoices(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    state.receive_at("GET", "/invoices", &headers, json!(query));
    if !authorized(&headers) {
        return unauthorized();
    }
    if state.behaviour() == Behaviour::Slow {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    let wanted = query.get("metadata[revledger_invoice_id]");
    let invoices: Vec<Value> = state
        .invoices
        .lock()
        .unwrap()
        .iter()
        .filter(|invoice| {
            wanted.is_none_or(|id| invoice["metadata"]["revledger_invoice_id"] == id.as_str())
        })
        .cloned()
        .collect();
    let count = invoices.len();
    (
        StatusCode::OK,
        Json(json!({
            "invoices": invoices,
            "meta": {"current_page": 1, "next_page": null, "prev_page": null, "total_pages": 1, "total_count": count}
        })),
    )
}

fn not_found(what: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({"type": "record_not_found", "message": format!("{what} not found"), "errors": null}),
        ),
    )
}

async fn get_invoice(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    state.receive_at("GET", &format!("/invoices/{id}"), &headers, Value::Null);
    if !authorized(&headers) {
        return unauthorized();
    }
    if state.behaviour() == Behaviour::Slow {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    let Some(mut invoice) = state
        .invoices
        .lock()
        .unwrap()
        .iter()
        .find(|invoice| invoice["id"] == id.as_str())
        .cloned()
    else {
        return not_found("Invoice");
    };
    let payments: Vec<Value> = state
        .payments
        .lock()
        .unwrap()
        .iter()
        .filter(|payment| payment["invoice_id"] == id.as_str())
        .cloned()
        .collect();
    if payments.iter().any(|payment| payment["status"] == "paid") {
        invoice["status"] = json!("paid");
    }
    invoice["payments"] = json!(payments);
    (StatusCode::OK, Json(invoice))
}

async fn get_payment(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    state.receive_at("GET", &format!("/payments/{id}"), &headers, Value::Null);
    if !authorized(&headers) {
        return unauthorized();
    }
    match state
        .payments
        .lock()
        .unwrap()
        .iter()
        .find(|payment| payment["id"] == id.as_str())
    {
        Some(payment) => (StatusCode::OK, Json(payment.clone())),
        None => not_found("Payment"),
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// `GET /payments?page=N&created[gt]=…&created[lt]=…`, oldest first, [`PAYMENT_PAGE_SIZE`] a
/// page, with Moyasar's `meta`.
async fn list_payments(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    state.receive_at("GET", "/payments", &headers, json!(query));
    if !authorized(&headers) {
        return unauthorized();
    }
    let after = query.get("created[gt]").and_then(|text| parse_time(text));
    let before = query.get("created[lt]").and_then(|text| parse_time(text));
    let page: usize = query
        .get("page")
        .and_then(|page| page.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut matching: Vec<Value> = state
        .payments
        .lock()
        .unwrap()
        .iter()
        .filter(|payment| {
            let created = payment["created_at"].as_str().and_then(parse_time);
            created.is_some_and(|created| {
                after.is_none_or(|after| created > after)
                    && before.is_none_or(|before| created < before)
            })
        })
        .cloned()
        .collect();
    matching.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
    let total_count = matching.len();
    let total_pages = total_count.div_ceil(PAYMENT_PAGE_SIZE).max(1);
    let payments: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * PAYMENT_PAGE_SIZE)
        .take(PAYMENT_PAGE_SIZE)
        .collect();
    let next_page = (page < total_pages).then_some(page + 1);
    let prev_page = (page > 1).then(|| page - 1);
    (
        StatusCode::OK,
        Json(json!({
            "payments": payments,
            "meta": {"current_page": page, "next_page": next_page, "prev_page": prev_page,
                     "total_pages": total_pages, "total_count": total_count}
        })),
    )
}

/// The app with the Moyasar API pointed at a fake behaving as `behaviour`.
async fn start(engine: Engine, behaviour: Behaviour) -> Option<(TestApp, FakeMoyasar)> {
    start_with(engine, behaviour, |_| {}).await
}

/// The client configuration for `fake`.
pub(crate) fn client_config(fake: &FakeMoyasar) -> MoyasarApiConfig {
    MoyasarApiConfig {
        base_url: fake.base_url.clone(),
        callback_url: Some("https://revledger.example/moyasar/invoice-paid".into()),
        timeout: CLIENT_TIMEOUT,
        ..MoyasarApiConfig::new(Secret::new(API_KEY))
    }
}

/// [`start`] with the rest of the configuration changed by `configure`.
pub(crate) async fn start_with(
    engine: Engine,
    behaviour: Behaviour,
    configure: impl FnOnce(&mut api::Config),
) -> Option<(TestApp, FakeMoyasar)> {
    let fake = FakeMoyasar::start(behaviour).await;
    let client = client_config(&fake);
    let app = spawn_app_with(engine, |config| {
        config.moyasar_api = Some(client);
        configure(config);
    })
    .await?;
    Some((app, fake))
}

pub(crate) async fn issue(app: &TestApp, moyasar_invoice_id: Option<&str>) -> (String, i64) {
    let lead_id = Uuid::now_v7().to_string();
    app.issue_invoice(
        &lead_id,
        Plan::Growth,
        moyasar_invoice_id,
        OffsetDateTime::now_utc(),
    )
    .await
}

pub(crate) async fn invoice_events(app: &TestApp, invoice_id: &str) -> Vec<RecordedEvent> {
    app.stream(&CommandHandler::<Invoice>::stream_id(invoice_id))
        .await
}

async fn links(app: &TestApp, invoice_id: &str) -> Vec<Value> {
    invoice_events(app, invoice_id)
        .await
        .into_iter()
        .filter(|event| event.event_type == "MoyasarInvoiceLinked")
        .map(|event| event.payload)
        .collect()
}

/// Waits (bounded by [`DEADLINE`]) until `condition` holds, checking every 20 ms.
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn wait_for_link(app: &TestApp, invoice_id: &str) -> Value {
    eventually("the invoice is linked to its Moyasar invoice", || async {
        !links(app, invoice_id).await.is_empty()
    })
    .await;
    let mut links = links(app, invoice_id).await;
    assert_eq!(links.len(), 1, "linked more than once: {links:?}");
    links.remove(0)
}

async fn rejections(app: &TestApp) -> Vec<(String, String, String)> {
    app.state
        .handlers
        .store
        .sql()
        .fetch_all(
            "SELECT event_type, target_stream, reason FROM process_rejections WHERE process = 'moyasar_invoices'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.text(0).unwrap(), row.text(1).unwrap(), row.text(2).unwrap()))
        .collect()
}

async fn an_issued_invoice_gets_its_moyasar_invoice_linked(engine: Engine) {
    let Some((app, fake)) = start(engine, Behaviour::Normal).await else {
        return;
    };
    let (invoice_id, total_halalas) = issue(&app, None).await;
    assert_eq!(total_halalas, 344_885, "Growth with VAT");

    let link = wait_for_link(&app, &invoice_id).await;

    let created = fake.invoices();
    assert_eq!(created.len(), 1);
    assert_eq!(link["moyasar_invoice_id"], created[0]["id"]);
    assert_eq!(link["payment_url"], created[0]["url"]);
    let posts = fake.received("POST");
    assert_eq!(posts.len(), 1);
    let expected_authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:"))
    );
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(expected_authorization.as_str())
    );
    let body = &posts[0].body;
    assert_eq!(body["amount"], total_halalas);
    assert_eq!(body["currency"], "SAR");
    assert_eq!(
        body["metadata"]["revledger_invoice_id"],
        invoice_id.as_str()
    );
    assert_eq!(
        body["callback_url"],
        "https://revledger.example/moyasar/invoice-paid"
    );
    let description = body["description"].as_str().unwrap();
    assert!(
        description.starts_with("Dealix invoice ") && description.contains("growth"),
        "{description}"
    );
    let (invoice, _) = app
        .handlers()
        .invoices
        .load_aggregate(&invoice_id)
        .await
        .unwrap();
    assert_eq!(
        invoice.moyasar_invoice_id(),
        created[0]["id"].as_str(),
        "the invoice carries Moyasar's id"
    );
    assert_eq!(invoice.payment_url(), created[0]["url"].as_str());
    assert!(rejections(&app).await.is_empty());
    app.stop().await;
}

async fn an_invoice_issued_with_a_moyasar_id_is_not_sent_to_moyasar(engine: Engine) {
    let Some((app, fake)) = start(engine, Behaviour::Normal).await else {
        return;
    };
    let (given, _) = issue(&app, Some("moyasar-invoice-given-at-issue")).await;
    let (created, _) = issue(&app, None).await;

    // The process manager reacts in log order: once the second is linked, the first was seen.
    wait_for_link(&app, &created).await;

    assert!(links(&app, &given).await.is_empty());
    assert_eq!(fake.received("POST").len(), 1);
    assert_eq!(
        fake.received("POST")[0].body["metadata"]["revledger_invoice_id"],
        created.as_str()
    );
    app.stop().await;
}

async fn a_refusal_is_recorded_with_moyasars_message_and_the_invoice_stays_issued(engine: Engine) {
    let Some((app, fake)) = start(engine, Behaviour::Refuse).await else {
        return;
    };
    let (refused, _) = issue(&app, None).await;

    eventually("the refusal is recorded", || async {
        !rejections(&app).await.is_empty()
    })
    .await;

    let recorded = rejections(&app).await;
    assert_eq!(recorded.len(), 1);
    let (event_type, target, reason) = &recorded[0];
    assert_eq!(event_type, "InvoiceIssued");
    assert_eq!(target, &CommandHandler::<Invoice>::stream_id(&refused));
    assert!(
        reason.contains("HTTP 400")
            && reason.contains("Validation Failed")
            && reason.contains("amount: must be greater than or equal to 100"),
        "{reason}"
    );
    assert!(links(&app, &refused).await.is_empty());
    let (invoice, _) = app
        .handlers()
        .invoices
        .load_aggregate(&refused)
        .await
        .unwrap();
    assert_eq!(invoice.status(), Some(InvoiceStatus::Issued));
    assert_eq!(invoice.moyasar_invoice_id(), None);
    assert_eq!(fake.received("POST").len(), 1, "a refusal is not retried");

    // The process manager moved on: the next invoice is created and linked.
    fake.set(Behaviour::Normal);
    let (next, _) = issue(&app, None).await;
    wait_for_link(&app, &next).await;
    assert_eq!(fake.received("POST").len(), 2);
    assert!(links(&app, &refused).await.is_empty());
    app.stop().await;
}

async fn a_timeout_is_retried_until_the_invoice_is_linked_once(engine: Engine) {
    let Some((app, fake)) = start(engine, Behaviour::Slow).await else {
        return;
    };
    let (invoice_id, _) = issue(&app, None).await;

    eventually("the fake has been tried twice", || async {
        fake.invoice_lookups() >= 2
    })
    .await;
    assert!(links(&app, &invoice_id).await.is_empty());
    assert!(
        rejections(&app).await.is_empty(),
        "a timeout is not a refusal"
    );
    let (invoice, _) = app
        .handlers()
        .invoices
        .load_aggregate(&invoice_id)
        .await
        .unwrap();
    assert_eq!(invoice.status(), Some(InvoiceStatus::Issued));

    // Moyasar recovers; nobody does anything by hand.
    fake.set(Behaviour::Normal);
    let link = wait_for_link(&app, &invoice_id).await;

    let created = fake.invoices();
    assert_eq!(created.len(), 1, "one Moyasar invoice: {created:?}");
    assert_eq!(link["moyasar_invoice_id"], created[0]["id"]);
    assert!(rejections(&app).await.is_empty());
    app.stop().await;
}

async fn a_lost_answer_links_the_invoice_moyasar_created_instead_of_a_second_one(engine: Engine) {
    let Some((app, fake)) = start(engine, Behaviour::SlowCreate).await else {
        return;
    };
    let (invoice_id, _) = issue(&app, None).await;

    let link = wait_for_link(&app, &invoice_id).await;

    let created = fake.invoices();
    assert_eq!(created.len(), 1, "one Moyasar invoice: {created:?}");
    assert_eq!(link["moyasar_invoice_id"], created[0]["id"]);
    assert_eq!(fake.received("POST").len(), 1);
    assert!(
        fake.invoice_lookups() >= 2,
        "the retry looked the invoice up"
    );
    app.stop().await;
}
