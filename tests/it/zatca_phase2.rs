//! ZATCA Phase 2 end to end, on both engines, against the local fake Fatoora: invoices issued
//! through the API on the EGS unit's chain, signed and cleared (standard) or reported
//! (simplified) by the service's own submitter, their legal XML served, a refund's credit note
//! on the same chain, a rejection shown with ZATCA's messages and corrected by a new document,
//! and a submitter killed between its send and ZATCA's answer losing and doubling nothing.

use std::path::PathBuf;
use std::time::Duration;

use adapters::fatoora::{FatooraClient, FatooraConfig, FatooraEnvironment};
use adapters::store::EventMetadata;
use adapters::webhooks::Secret;
use adapters::zatca_keys::{KeyStore, PRODUCTION_FILE};
use app::command::CommandEnvelope;
use app::zatca::{UnitProfile, ZatcaConfig};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::phase2::{NationalAddress, SellerRegistration};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::{spawn_app_with, TestApp, ADMIN_TOKEN, SELLER_VAT};
use crate::fake_fatoora::{Behaviour, FakeFatoora, FakeMessage, Gate, OTP};
use crate::hardening::admin_json;
use crate::helpers::{temp_dir, Engine};

/// How long a test waits for the submitter (it polls every second).
const PATIENCE: Duration = Duration::from_secs(30);

fn address(building_number: &str, postal_code: &str) -> NationalAddress {
    NationalAddress {
        street: "Prince Sultan".into(),
        building_number: building_number.into(),
        district: "Al-Murabba".into(),
        city: "Riyadh".into(),
        postal_code: postal_code.into(),
        country_code: "SA".into(),
    }
}

/// The unit's settings, talking to `fake`, its keys in a directory of its own.
fn unit(fake: &FakeFatoora, key_dir: PathBuf) -> ZatcaConfig {
    let registration = SellerRegistration {
        commercial_registration_number: "1010010000".into(),
        address: address("2322", "23333"),
    };
    let config = ZatcaConfig {
        environment: FatooraEnvironment::DeveloperPortal,
        fatoora: FatooraConfig {
            timeout: Duration::from_secs(2),
            ..FatooraConfig::with_base_url(fake.base_url.clone())
        },
        egs_unit: "egs-1".into(),
        seller: domain::invoice::Seller {
            name: api::service::DEFAULT_SELLER_NAME.into(),
            vat_number: SELLER_VAT.into(),
        },
        unit: UnitProfile::for_unit("egs-1", &registration),
        registration,
        keys: KeyStore::new(key_dir),
    };
    config.check().expect("the test unit's settings are valid");
    config
}

/// Onboards the unit on the developer-portal fake its settings name (no compliance gate): its
/// key, a compliance CSID for its CSR, the production CSID kept in its key store.
async fn onboard(config: &ZatcaConfig) {
    let key = config.keys.signing_key().unwrap();
    let csr = zatca::csr::build_csr(&config.csr_fields(), &key).unwrap();
    let client = FatooraClient::new(&config.fatoora).unwrap();
    let compliance = client
        .compliance_csid(&csr.base64_pem(), &Secret::new(OTP))
        .await
        .unwrap();
    let production = client
        .production_csid(&compliance, &compliance.request_id)
        .await
        .unwrap();
    config
        .keys
        .save_credentials(PRODUCTION_FILE, &production)
        .unwrap();
}

/// A fake, an onboarded unit on it, and the service issuing on that unit.
pub(crate) async fn phase2_app(engine: Engine) -> Option<(TestApp, FakeFatoora, ZatcaConfig)> {
    let fake = FakeFatoora::start(Gate::DeveloperPortal).await;
    let config = unit(&fake, temp_dir().join("zatca-keys"));
    onboard(&config).await;
    let zatca = config.clone();
    let app = spawn_app_with(engine, move |c| c.zatca = Some(zatca)).await?;
    Some((app, fake, config))
}

pub(crate) fn business_buyer(building_number: &str) -> Value {
    json!({
        "vat_number": "399999999800003",
        "address": {
            "street": "King Fahd", "building_number": building_number, "district": "Al-Olaya",
            "city": "Riyadh", "postal_code": "12222"
        }
    })
}

pub(crate) async fn issue(app: &TestApp, lead_id: &str, buyer: Option<Value>) -> Value {
    crate::webhooks::capture_lead(app, lead_id, &format!("{lead_id}@example.com")).await;
    let mut body = json!({"lead_id": lead_id, "plan": "growth"});
    if let Some(buyer) = buyer {
        body["buyer"] = buyer;
    }
    let answer = app
        .request(
            "POST",
            "/api/invoices",
            &admin_json(),
            body.to_string().as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.body
}

/// `GET /api/invoices/{id}` once its document's ZATCA status is `status` (bounded wait).
pub(crate) async fn invoice_once(app: &TestApp, invoice_id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let answer = app
            .get(&format!("/api/invoices/{invoice_id}"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        if answer.body["zatca"]["status"] == status {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "invoice {invoice_id} never became {status}: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn xml(app: &TestApp, path: &str) -> (String, String) {
    let answer = app.get(path, Some(ADMIN_TOKEN)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/xml")));
    let status = answer.header("x-zatca-status").unwrap_or("").to_owned();
    (answer.text, status)
}

async fn standard_and_simplified_invoices_are_cleared_and_reported_on_the_units_own_chain(
    engine: Engine,
) {
    let Some((app, fake, _config)) = phase2_app(engine).await else {
        return;
    };
    let standard = issue(&app, "lead-b2b", Some(business_buyer("1111"))).await;
    assert_eq!(standard["zatca"]["phase"], 2);
    assert_eq!(standard["zatca"]["type"], "standard");
    assert_eq!(standard["icv"], 1, "the unit's chain starts at ICV 1");
    assert_eq!(
        standard["previous_invoice_hash"],
        domain::zatca::FIRST_INVOICE_PIH
    );
    let simplified = issue(&app, "lead-b2c", None).await;
    assert_eq!(simplified["zatca"]["type"], "simplified");
    assert_eq!(simplified["icv"], 2);
    assert_eq!(
        simplified["previous_invoice_hash"], standard["invoice_hash"],
        "PIH links the chain"
    );

    let standard_id = standard["invoice_id"].as_str().unwrap();
    let cleared = invoice_once(&app, standard_id, "cleared").await;
    let document = &cleared["zatca"]["documents"][0];
    assert_eq!(document["icv"], 1);
    assert_eq!(document["invoice_hash"], standard["invoice_hash"]);
    assert_eq!(
        document["previous_invoice_hash"],
        domain::zatca::FIRST_INVOICE_PIH
    );
    assert_eq!(document["uuid"], standard["zatca"]["uuid"]);
    let (legal, status) = xml(&app, &format!("/api/invoices/{standard_id}/xml")).await;
    assert_eq!(status, "cleared");
    assert!(
        legal.contains("urn:fake-fatoora:clearance-stamp"),
        "the cleared copy ZATCA returned is the legal document"
    );
    assert_eq!(
        zatca::invoice_hash(&legal).unwrap().to_base64(),
        standard["invoice_hash"].as_str().unwrap(),
        "the served XML hashes to the recorded invoice hash"
    );

    let simplified_id = simplified["invoice_id"].as_str().unwrap();
    invoice_once(&app, simplified_id, "reported").await;
    let (signed, status) = xml(&app, &format!("/api/invoices/{simplified_id}/xml")).await;
    assert_eq!(status, "reported");
    assert!(signed.contains("<ds:SignatureValue>"), "{signed}");
    assert_eq!(fake.received_on("POST /invoices/clearance/single").len(), 1);
    assert_eq!(fake.received_on("POST /invoices/reporting/single").len(), 1);

    // A full refund of the simplified invoice: its credit note takes ICV 3 on the same chain
    // and is reported too.
    let total = simplified["total_halalas"].as_i64().unwrap();
    for (status, refunded) in [(PaymentStatus::Paid, 0), (PaymentStatus::Refunded, total)] {
        let command = PaymentCommand::RecordGatewayStatus {
            payment_id: "pay-b2c".into(),
            invoice_id: Some(simplified_id.into()),
            moyasar_invoice_id: None,
            status,
            amount_halalas: total,
            fee_halalas: 0,
            captured_halalas: 0,
            refunded_halalas: refunded,
            currency: "SAR".into(),
            at: time::OffsetDateTime::now_utc(),
        };
        app.handlers()
            .payments
            .execute(CommandEnvelope {
                aggregate_id: "pay-b2c".into(),
                command_id: Uuid::now_v7(),
                command,
                metadata: EventMetadata::default(),
                inbox: None,
                fresh_id: true,
            })
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let credit_note = loop {
        let answer = app
            .get(&format!("/api/invoices/{simplified_id}"), Some(ADMIN_TOKEN))
            .await;
        let documents = answer.body["zatca"]["documents"].as_array().cloned();
        if let Some(note) = documents
            .unwrap_or_default()
            .into_iter()
            .find(|d| d["kind"] == "credit_note" && d["status"] == "reported")
        {
            break note;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reported credit note: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(credit_note["icv"], 3);
    assert_eq!(
        credit_note["previous_invoice_hash"],
        simplified["invoice_hash"]
    );
    let (note_xml, _) = xml(
        &app,
        credit_note["xml"]
            .as_str()
            .expect("the credit note's XML link"),
    )
    .await;
    assert!(note_xml.contains(">381<"), "a credit note: {note_xml}");
    app.settle().await;
    api::metrics::sample_gauges(&app.state).await;
    let metrics = app.get("/metrics", Some(ADMIN_TOKEN)).await;
    for line in [
        "revledger_zatca_onboarded 1",
        "revledger_zatca_oldest_pending_seconds 0",
        "revledger_zatca_rejected_documents 0",
    ] {
        assert!(metrics.text.contains(line), "{line} in {}", metrics.text);
    }
    assert!(metrics
        .text
        .contains("revledger_zatca_certificate_expires_in_seconds"));
    the_chain_is_verified_and_exported(&app, standard_id).await;
    app.stop().await;
}

/// `revledger verify` checks the unit's chain and every stamped or cleared XML; `revledger
/// zatca export` writes the period's documents; an altered PIH is named.
async fn the_chain_is_verified_and_exported(app: &TestApp, standard_id: &str) {
    let report = app::zatca::audit::verify_chains(app.db.store.as_ref())
        .await
        .unwrap();
    assert_eq!(report.first_break, None, "{report:?}");
    assert_eq!(
        (report.chains, report.documents, report.recomputed),
        (1, 3, 3),
        "{report:?}"
    );
    assert_eq!(
        report.xml_checked, 4,
        "three stamped, one cleared: {report:?}"
    );

    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_revledger"))
            .args(args)
            .env("REVLEDGER_DATABASE_URL", &app.db.url)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (ok, printed) = run(&["verify"]);
    assert!(
        ok && printed.contains("ZATCA chains intact: 3 documents"),
        "{printed}"
    );

    let today = domain::phase2::riyadh_local(time::OffsetDateTime::now_utc()).0;
    let day = format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    let out = temp_dir().join("zatca-export");
    let (ok, printed) = run(&[
        "zatca",
        "export",
        "--from",
        &day,
        "--to",
        &day,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{printed}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let documents = manifest["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 3, "{manifest}");
    let standard = documents
        .iter()
        .find(|d| d["document_id"] == standard_id)
        .unwrap();
    let exported = std::fs::read_to_string(out.join(standard["file"].as_str().unwrap())).unwrap();
    let (served, _) = xml(app, &format!("/api/invoices/{standard_id}/xml")).await;
    assert_eq!(exported, served, "the export holds the legal (cleared) XML");

    // An attacker who lifts the guard and rewrites the second document's PIH is named.
    let db = &app.db;
    let lift = db.disable_append_only_guard_sql().to_owned();
    db.execute_raw(&lift).await.unwrap();
    let second = db
        .store
        .sql()
        .fetch_all(
            "SELECT position FROM events WHERE stream_type = 'document_sequence' \
             ORDER BY position",
            &[],
        )
        .await
        .unwrap()[1]
        .i64(0)
        .unwrap();
    let rewrite = match db.engine {
        Engine::Sqlite => format!(
            "UPDATE events SET payload = replace(payload, '\"previous_invoice_hash\":\"', \
             '\"previous_invoice_hash\":\"AAAA') WHERE position = {second}"
        ),
        Engine::Postgres => format!(
            "UPDATE events SET payload = replace(payload::text, '\"previous_invoice_hash\": \"', \
             '\"previous_invoice_hash\": \"AAAA')::jsonb WHERE position = {second}"
        ),
    };
    assert_eq!(db.execute_raw(&rewrite).await.unwrap(), 1);
    let broken = app::zatca::audit::verify_chains(db.store.as_ref())
        .await
        .unwrap()
        .first_break
        .expect("the altered PIH is found");
    assert!(broken.reason.contains("PIH"), "{broken:?}");
    assert_eq!(broken.position, second);
}

async fn a_rejected_invoice_shows_zatcas_messages_and_is_corrected_by_a_new_document(
    engine: Engine,
) {
    let Some((app, fake, _config)) = phase2_app(engine).await else {
        return;
    };
    fake.set(Behaviour::Reject(vec![FakeMessage::new(
        "BR-KSA-63",
        "KSA",
        "the buyer's building number is not the registered one",
    )]));
    let rejected = issue(&app, "lead-reject", Some(business_buyer("1111"))).await;
    let rejected_id = rejected["invoice_id"].as_str().unwrap();
    let shown = invoice_once(&app, rejected_id, "rejected").await;
    let document = &shown["zatca"]["documents"][0];
    assert_eq!(document["messages"][0]["code"], "BR-KSA-63", "{shown}");
    assert_eq!(
        shown["zatca"]["correction"]["path"],
        format!("/api/invoices/{rejected_id}/reissue")
    );

    fake.set(Behaviour::Accept);
    let body = json!({"buyer": business_buyer("2222")}).to_string();
    let path = format!("/api/invoices/{rejected_id}/reissue");
    let answer = app
        .request("POST", &path, &admin_json(), body.as_bytes())
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let corrected = answer.body;
    assert_eq!(corrected["replaces"], rejected_id);
    assert_eq!(corrected["icv"], 2, "the next place: no gap, no reuse");
    assert_eq!(corrected["previous_invoice_hash"], rejected["invoice_hash"]);
    assert_eq!(corrected["total_halalas"], rejected["total_halalas"]);
    let again = app
        .request("POST", &path, &admin_json(), body.as_bytes())
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(
        again.body["invoice_id"], corrected["invoice_id"],
        "asked again, the same correction"
    );
    let corrected_id = corrected["invoice_id"].as_str().unwrap();
    let cleared = invoice_once(&app, corrected_id, "cleared").await;
    assert_eq!(cleared["zatca"]["documents"][0]["icv"], 2);
    let old = app
        .get(&format!("/api/invoices/{rejected_id}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(old.body["status"], "canceled", "{}", old.text);
    assert_eq!(old.body["zatca"]["status"], "rejected");

    // A document that is not rejected is not reissued.
    let refused = app
        .request(
            "POST",
            &format!("/api/invoices/{corrected_id}/reissue"),
            &admin_json(),
            b"",
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("cleared"), "{}", refused.text);
    app.stop().await;
}

/// The submitter is killed after Fatoora took the document and before its answer arrived;
/// the next submitter sends the very same bytes, ZATCA answers "already cleared", and the
/// document ends cleared once, signed once.
async fn a_submitter_killed_mid_submission_loses_and_doubles_nothing(engine: Engine) {
    // The service runs without Phase 2 settings, so no submitter of its own runs: this test's
    // submitters are the processes it kills and restarts.
    let Some(app) = spawn_app_with(engine, |_| {}).await else {
        return;
    };
    let fake = FakeFatoora::start(Gate::DeveloperPortal).await;
    let config = unit(&fake, temp_dir().join("zatca-keys"));
    onboard(&config).await;
    crate::webhooks::capture_lead(&app, "lead-kill", "kill@example.com").await;
    let now = time::OffsetDateTime::now_utc();
    let issue = domain::invoice::IssueInvoice {
        invoice_id: "inv-kill".into(),
        customer: domain::invoice::Customer {
            lead_id: "lead-kill".into(),
            name: "Kill Test Co".into(),
        },
        lines: vec![domain::invoice::InvoiceLine {
            description: "Growth plan, one month".into(),
            quantity: 1,
            unit_price_halalas: 299_900,
            plan: None,
        }],
        issued_at: now,
        due_at: now + time::Duration::days(14),
        seller: config.seller.clone(),
        moyasar_invoice_id: None,
    };
    app::invoices::issue_with(
        app.handlers(),
        app::invoices::IssueRequest {
            command_id: Uuid::now_v7(),
            fresh: true,
        },
        issue,
        Some(config.details(Some(domain::phase2::BuyerRegistration {
            vat_number: "399999999800003".into(),
            address: address("1111", "12222"),
        }))),
        EventMetadata::default(),
    )
    .await
    .unwrap();
    app.settle().await;

    fake.set(Behaviour::AcceptThenHang);
    let submitter =
        app::zatca::submitter::Submitter::new(app.handlers().clone(), config.clone()).unwrap();
    let first = tokio::spawn(async move {
        let _ = submitter.round(time::OffsetDateTime::now_utc()).await;
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fake
        .received_on("POST /invoices/clearance/single")
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.abort();
    let _ = first.await;
    let types = |events: Vec<adapters::store::RecordedEvent>| -> Vec<String> {
        events.into_iter().map(|e| e.event_type).collect()
    };
    let stream = "zatca_submission-inv-kill";
    assert_eq!(
        types(app.stream(stream).await),
        ["SubmissionPrepared", "DocumentSigned"],
        "killed before the answer: the signed bytes are kept, no attempt recorded"
    );

    fake.set(Behaviour::Accept);
    let restarted =
        app::zatca::submitter::Submitter::new(app.handlers().clone(), config.clone()).unwrap();
    let round = restarted
        .round(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(round.answered, 1, "{round:?}");
    assert_eq!(
        types(app.stream(stream).await),
        ["SubmissionPrepared", "DocumentSigned", "DocumentCleared"]
    );
    let sent = fake.received_on("POST /invoices/clearance/single");
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].body, sent[1].body,
        "the same bytes, UUID and hash again"
    );
    let (submission, _) = app
        .handlers()
        .submissions
        .load_aggregate("inv-kill")
        .await
        .unwrap();
    assert!(
        submission
            .legal_xml()
            .is_some_and(|xml| xml.contains("urn:fake-fatoora:clearance-stamp")),
        "the first answer's cleared copy came back with the duplicate answer"
    );
    // A third process finds nothing left to do.
    app.settle().await;
    let idle = restarted
        .round(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(idle.due, 0, "{idle:?}");
    app.stop().await;
}

mod end_to_end {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_standard_and_simplified_invoices_are_cleared_and_reported_on_the_units_own_chain(
    ) {
        super::standard_and_simplified_invoices_are_cleared_and_reported_on_the_units_own_chain(
            super::Engine::Sqlite,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_standard_and_simplified_invoices_are_cleared_and_reported_on_the_units_own_chain(
    ) {
        super::standard_and_simplified_invoices_are_cleared_and_reported_on_the_units_own_chain(
            super::Engine::Postgres,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_rejected_invoice_shows_zatcas_messages_and_is_corrected_by_a_new_document() {
        super::a_rejected_invoice_shows_zatcas_messages_and_is_corrected_by_a_new_document(
            super::Engine::Sqlite,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_rejected_invoice_shows_zatcas_messages_and_is_corrected_by_a_new_document()
    {
        super::a_rejected_invoice_shows_zatcas_messages_and_is_corrected_by_a_new_document(
            super::Engine::Postgres,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_submitter_killed_mid_submission_loses_and_doubles_nothing() {
        super::a_submitter_killed_mid_submission_loses_and_doubles_nothing(super::Engine::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_submitter_killed_mid_submission_loses_and_doubles_nothing() {
        super::a_submitter_killed_mid_submission_loses_and_doubles_nothing(super::Engine::Postgres)
            .await;
    }
}
