//! `spawn_app()`: the whole service on a fresh database and port 0, with typed helpers.

use std::sync::Arc;

use adapters::store::EventMetadata;
use adapters::webhooks::{calendly, standard, Secret};
use api::{AppState, Config};
use app::command::CommandEnvelope;
use app::handlers::Handlers;
use domain::invoice::{Customer, InvoiceLine, IssueInvoice, Seller};
use domain::plan::Plan;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{Engine, TestDb};

pub const MOYASAR_TOKEN: &str = "test-moyasar-secret-token";
pub const CALENDLY_KEY: &str = "test-calendly-signing-key";
/// Two partner secrets, as during a key rotation (base64 of 24 random-looking bytes each).
pub const PARTNER_SECRETS: [&str; 2] = [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_c2Vjb25kLXJvdGF0ZWQta2V5LWZvci10ZXN0cw==",
];
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const SELLER_VAT: &str = "300000000000003";

pub struct TestApp {
    pub address: String,
    /// The metrics-only listener's address, when the configuration asks for one.
    pub metrics_address: Option<String>,
    pub db: TestDb,
    pub state: AppState,
    client: kit::Client,
    served: Option<kit::Served>,
}

pub use kit::Answer;

pub async fn spawn_app(engine: Engine) -> Option<TestApp> {
    spawn_app_with(engine, |_| {}).await
}

/// [`spawn_app`] with the configuration changed by `configure` before the service starts.
pub async fn spawn_app_with(
    engine: Engine,
    configure: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    if let Ok(filter) = std::env::var("REVLEDGER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let db = TestDb::new(engine).await?;
    Some(start_app(db, configure).await)
}

/// [`spawn_app`] on a database `seed` has filled first, through its own handlers, before any
/// background worker (the cold-lead sweep, process managers) starts.
pub async fn spawn_app_seeded<F, Fut>(engine: Engine, seed: F) -> Option<TestApp>
where
    F: FnOnce(Arc<Handlers>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    spawn_app_seeded_with(engine, seed, |_| {}).await
}

/// [`spawn_app_seeded`] with the configuration changed by `configure`.
pub async fn spawn_app_seeded_with<F, Fut>(
    engine: Engine,
    seed: F,
    configure: impl FnOnce(&mut Config),
) -> Option<TestApp>
where
    F: FnOnce(Arc<Handlers>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = TestDb::new(engine).await?;
    db.store.migrate().await.expect("migrate");
    seed(app::handlers::Handlers::new(db.store.clone())).await;
    Some(start_app(db, configure).await)
}

async fn start_app(db: TestDb, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        moyasar_secret_tokens: vec![Secret::new(MOYASAR_TOKEN)],
        calendly_signing_key: Some(Secret::new(CALENDLY_KEY)),
        partner_webhook_secrets: PARTNER_SECRETS.iter().map(|s| Secret::new(*s)).collect(),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        erasure_log: Some(app::personal::ErasureLog::new(
            crate::helpers::temp_dir().join("erasures.jsonl"),
        )),
        program: app::process::commissions::ProgramConfig {
            payout_minimum_halalas: 10_000,
            ..Default::default()
        },
        ..Config::default()
    };
    configure(&mut config);
    let served = kit::Served::start(db.store.clone(), config)
        .await
        .expect("service starts");
    TestApp {
        address: served.address.to_string(),
        metrics_address: served.metrics_address.map(|address| address.to_string()),
        db,
        state: served.state.clone(),
        client: served.client(),
        served: Some(served),
    }
}

impl TestApp {
    pub fn handlers(&self) -> &Arc<Handlers> {
        &self.state.handlers
    }

    /// Stops the service (drain, workers stop) and drops the database.
    pub async fn stop(mut self) {
        self.stop_serving().await;
        self.db.cleanup().await;
    }

    /// Stops the service (drain, workers stop) and hands back its database, to look at.
    pub async fn stop_keeping_db(mut self) -> TestDb {
        self.stop_serving().await;
        self.db
    }

    async fn stop_serving(&mut self) {
        if let Some(served) = self.served.take() {
            if let Err(error) = served.stop().await {
                eprintln!("the service stopped with an error: {error}");
            }
        }
    }

    /// One HTTP request over a fresh connection.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Answer {
        answered(
            self.client
                .request(method, path, &borrowed(headers), body)
                .await,
        )
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let headers: Vec<(&str, String)> = token
            .map(|t| ("Authorization", format!("Bearer {t}")))
            .into_iter()
            .collect();
        self.request("GET", path, &headers, b"").await
    }

    pub async fn post_moyasar_webhook(&self, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.request(
            "POST",
            "/webhooks/moyasar",
            &[("Content-Type", "application/json".into())],
            &bytes,
        )
        .await
    }

    pub async fn post_calendly_webhook(&self, body: &Value, signed_at: i64) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = calendly::sign(&Secret::new(CALENDLY_KEY), signed_at, &bytes);
        let headers = [
            ("Content-Type", "application/json".into()),
            (calendly::SIGNATURE_HEADER, signature),
        ];
        self.request("POST", "/webhooks/calendly", &headers, &bytes)
            .await
    }

    pub async fn post_partner_webhook(
        &self,
        id: &str,
        body: &Value,
        secret: &str,
        signed_at: i64,
    ) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = standard::sign(&Secret::new(secret), id, signed_at, &bytes).unwrap();
        let headers = [
            ("Content-Type", "application/json".to_owned()),
            (standard::ID_HEADER, id.to_owned()),
            (standard::TIMESTAMP_HEADER, signed_at.to_string()),
            (standard::SIGNATURE_HEADER, signature),
        ];
        self.request("POST", "/webhooks/partners", &headers, &bytes)
            .await
    }

    /// Allocates and issues a one-line invoice for `plan` through the seller's sequence, as the
    /// API does; returns the invoice id and its total with VAT.
    pub async fn issue_invoice(
        &self,
        lead_id: &str,
        plan: Plan,
        moyasar_invoice_id: Option<&str>,
        at: OffsetDateTime,
    ) -> (String, i64) {
        let invoice_id = Uuid::now_v7().to_string();
        let issue = IssueInvoice {
            invoice_id: invoice_id.clone(),
            customer: Customer {
                lead_id: lead_id.to_owned(),
                name: "Customer".into(),
            },
            lines: vec![InvoiceLine {
                description: format!("{} plan, one month", plan.as_str()),
                quantity: 1,
                unit_price_halalas: plan.price_halalas(),
                plan: Some(plan),
            }],
            issued_at: at,
            due_at: at + time::Duration::days(14),
            seller: Seller {
                name: "Dealix".into(),
                vat_number: SELLER_VAT.into(),
            },
            moyasar_invoice_id: moyasar_invoice_id.map(str::to_owned),
        };
        issue_through_sequence(self.handlers(), issue).await;
        let (invoice, _) = self
            .handlers()
            .invoices
            .load_aggregate(&invoice_id)
            .await
            .unwrap();
        (invoice_id, invoice.total_halalas())
    }

    /// Events of one stream, as stored.
    pub async fn stream(&self, stream_id: &str) -> Vec<adapters::store::RecordedEvent> {
        self.db
            .store
            .read_stream(stream_id, 1, 10_000)
            .await
            .unwrap()
    }

    /// Waits (bounded) until every projection and process manager has caught up.
    pub async fn settle(&self) {
        crate::history::settle(&self.state.handlers).await;
    }
}

/// A new token through the same use case as `POST /api/tokens` (a partner token only for an
/// enrolled partner): `(token id, token)`.
pub async fn create_token(
    handlers: &Handlers,
    role: api::auth::Role,
    partner_id: Option<&str>,
    label: Option<&str>,
) -> (String, String) {
    let request = app::tokens::TokenRequest {
        partner_id: partner_id.map(str::to_owned),
        label: label.map(str::to_owned),
        ..app::tokens::TokenRequest::new(role)
    };
    let issued = app::tokens::create(handlers, &request, OffsetDateTime::now_utc())
        .await
        .expect("the token is created");
    (issued.info.token_id, issued.token.expose().to_owned())
}

/// Issues an invoice through the seller's sequence, as the API does ([`app::invoices::issue`]).
pub async fn issue_through_sequence(handlers: &Handlers, issue: IssueInvoice) {
    let request = app::invoices::IssueRequest {
        command_id: Uuid::now_v7(),
        fresh: true,
    };
    let metadata = envelope(&issue.invoice_id, ()).metadata;
    app::invoices::issue(handlers, request, issue, metadata)
        .await
        .expect("allocate and issue");
}

pub fn envelope<C>(aggregate_id: &str, command: C) -> CommandEnvelope<C> {
    CommandEnvelope {
        aggregate_id: aggregate_id.to_owned(),
        command_id: Uuid::now_v7(),
        command,
        metadata: EventMetadata {
            actor: Some("test".into()),
            source: Some("test".into()),
            ..Default::default()
        },
        inbox: None,
        fresh_id: false,
    }
}

/// One HTTP request to `address` over a fresh connection.
pub async fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    try_http_request(address, method, path, headers, body)
        .await
        .expect("connect")
}

/// [`http_request`], or `None` when nothing listens there (a killed server).
pub async fn try_http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<Answer> {
    let address = address.parse().expect("a socket address");
    match kit::Client::new(address)
        .request(method, path, &borrowed(headers), body)
        .await
    {
        Err(error) if error.is_connect() => None,
        answer => Some(answered(answer)),
    }
}

/// The answer; a connection cut before one came (a shed connection) is status 0, as from a
/// socket that read nothing. Nothing listening fails the test.
fn answered(answer: Result<Answer, kit::HttpError>) -> Answer {
    match answer {
        Ok(answer) => answer,
        Err(error) if error.is_connect() => panic!("connect: {error}"),
        Err(_) => Answer::from_http(b""),
    }
}

fn borrowed<'a>(headers: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}
