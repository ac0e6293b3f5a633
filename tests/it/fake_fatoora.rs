//! A local fake of ZATCA's Fatoora API, for tests: the six endpoints under
//! `/e-invoicing/simulation` on 127.0.0.1, answering in ZATCA's shapes (the bodies of ZATCA's
//! Swagger and documentation, see `docs/zatca.md`) and checking what Fatoora checks, on its own: it reads the
//! submitted XML with the `zatca` crate, never with the client under test, and writes its JSON
//! by hand, so a client that drifts from the API's names fails here.
//!
//! What it checks, on every submitted document (compliance check, clearance, reporting):
//! - `Accept-Version: V2` (406 otherwise), Basic credentials it issued (401 otherwise);
//! - the invoice hash recomputed from the XML (`zatca::invoice_hash`) against `invoiceHash`
//!   (`invalid-invoice-hash`), the `cbc:UUID` against `uuid`;
//! - the stamp: its `invoiceSignedData` digest is the hash, its signed-properties and
//!   certificate digests match what is written, and its signature verifies over the hash with
//!   the certificate embedded in the XML (`zatca::read::read_stamp`,
//!   `zatca::stamp::verify_hash_signature`); QR tag 6 is the hash (`invoiceHash_QRCODE_INVALID`);
//! - the endpoint: a standard document on reporting is 400 "not a simplified document"
//!   (`XML-INVOICE-ERROR`), unless clearance is switched off; a simplified one on clearance is
//!   400 too; a document signed with another certificate than the caller's is accepted with
//!   ZATCA's `invalid-signing-certificate` warning, as is one sent with a compliance CSID;
//! - duplicates: the hashes of accepted documents are remembered (the 24-hour window never
//!   closes within a test): clearance answers 208 with the first cleared copy (or 409 without
//!   it, [`FakeFatoora::set_clearance_duplicate_status`]), reporting 409;
//! - `Clearance-Status: 0` on clearance earns a 303, as it once did live.
//!
//! Onboarding: `POST /compliance` verifies the CSR's own signature and its certificate
//! template (`PREZATCA-Code-Signing`, or `TSTZATCA-Code-Signing` for [`Gate::DeveloperPortal`])
//! and takes only the OTP [`OTP`] (`Missing-OTP`, `Invalid-OTP` otherwise). It issues a
//! certificate for the CSR's public key, signed by a throwaway CA key of its own, so the test
//! signs its documents with the one key it made the CSR with. Compliance checks that pass are
//! counted by step (type code × subtype, ZATCA's six step names); `POST /production/csids`
//! wants all six ([`Gate::Simulation`]) or none ([`Gate::DeveloperPortal`]), and the request id
//! of the caller's compliance CSID. `PATCH /production/csids` renews a production CSID, or
//! answers 428 with a compliance CSID ([`RenewalAnswer::NotCompliantYet`]).
//!
//! What a test switches ([`FakeFatoora::set`]): [`Behaviour`]. Where ZATCA's wording is unknown
//! the fake's own codes are used (`fake-invalid-signature`, `fake-uuid-mismatch`,
//! `fake-not-a-standard-document`, `Invalid-CSR`, `Invalid-Request-ID`).

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use k256::ecdsa::signature::{Signer as _, Verifier as _};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::{BitString, PrintableStringRef, UtcTime};
use x509_cert::der::{Decode as _, DecodePem as _, Encode as _};
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate as X509, TbsCertificate, Version};
use zatca::{Certificate, InvoiceHash};

/// The OTP the fake takes, the developer portal's.
pub const OTP: &str = "123345";

/// Where the API lives below the fake's address, as in simulation.
pub const BASE_PATH: &str = "/e-invoicing/simulation";

/// How long a hanging fake takes to answer: far past any client timeout a test sets.
pub const HANG_FOR: Duration = Duration::from_secs(5);

/// The fake CA's name, the issuer of every certificate it issues.
pub const FAKE_CA_ISSUER: &str = "CN=FAKE-FATOORA-CA,DC=fake,DC=local";

/// The first request id issued (the developer portal's fixed one).
const FIRST_REQUEST_ID: u64 = 1_234_567_890_123;

/// Whether the production CSID waits for the compliance checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// All six compliance steps must have passed (simulation and production).
    Simulation,
    /// Any compliance CSID gets its production CSID (the developer portal).
    DeveloperPortal,
}

impl Gate {
    fn certificate_template(self) -> &'static str {
        match self {
            Gate::Simulation => "PREZATCA-Code-Signing",
            Gate::DeveloperPortal => "TSTZATCA-Code-Signing",
        }
    }
}

/// A validation message the fake answers with (`{type, code, category, message, status}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    pub code: String,
    pub category: String,
    pub message: String,
}

impl FakeMessage {
    pub fn new(code: &str, category: &str, message: &str) -> FakeMessage {
        FakeMessage {
            code: code.to_owned(),
            category: category.to_owned(),
            message: message.to_owned(),
        }
    }

    fn to_json(&self, kind: &str, status: &str) -> Value {
        json!({"type": kind, "code": self.code, "category": self.category,
               "message": self.message, "status": status})
    }
}

/// What the fake does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers as Fatoora does.
    Accept,
    /// Accepts valid documents with these warnings (202).
    AcceptWithWarnings(Vec<FakeMessage>),
    /// Rejects valid documents with these errors (400 NOT_CLEARED / NOT_REPORTED).
    Reject(Vec<FakeMessage>),
    /// Answers every request with this status (500, 503, 429, …) and ZATCA's body for it.
    Fail(StatusCode),
    /// Answers nothing for [`HANG_FOR`]; the document is not taken.
    Hang,
    /// Takes the document, then answers after [`HANG_FOR`]: the answer is lost.
    AcceptThenHang,
    /// Clearance is switched off: 303 on clearance, standard documents taken by reporting.
    ClearanceSwitchedOff,
}

/// What a renewal answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalAnswer {
    /// A new production CSID (200).
    Issue,
    /// 428 with a compliance CSID that must pass the compliance checks again.
    NotCompliantYet,
}

/// One of the six compliance steps ZATCA tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComplianceStep {
    Standard,
    StandardCreditNote,
    StandardDebitNote,
    Simplified,
    SimplifiedCreditNote,
    SimplifiedDebitNote,
}

impl ComplianceStep {
    pub const ALL: [ComplianceStep; 6] = [
        ComplianceStep::Standard,
        ComplianceStep::StandardCreditNote,
        ComplianceStep::StandardDebitNote,
        ComplianceStep::Simplified,
        ComplianceStep::SimplifiedCreditNote,
        ComplianceStep::SimplifiedDebitNote,
    ];

    /// ZATCA's name for the step, as `Missing-ComplianceSteps` lists it.
    pub fn name(self) -> &'static str {
        match self {
            ComplianceStep::Standard => "standard-compliant",
            ComplianceStep::StandardCreditNote => "standard-credit-note-compliant",
            ComplianceStep::StandardDebitNote => "standard-debit-note-compliant",
            ComplianceStep::Simplified => "simplified-compliant",
            ComplianceStep::SimplifiedCreditNote => "simplified-credit-note-compliant",
            ComplianceStep::SimplifiedDebitNote => "simplified-debit-note-compliant",
        }
    }

    fn of(type_code: &str, standard: bool) -> Option<ComplianceStep> {
        Some(match (type_code, standard) {
            ("388", true) => ComplianceStep::Standard,
            ("381", true) => ComplianceStep::StandardCreditNote,
            ("383", true) => ComplianceStep::StandardDebitNote,
            ("388", false) => ComplianceStep::Simplified,
            ("381", false) => ComplianceStep::SimplifiedCreditNote,
            ("383", false) => ComplianceStep::SimplifiedDebitNote,
            _ => return None,
        })
    }
}

/// One request the fake received, as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST /compliance`, `PATCH /production/csids`, …
    pub route: &'static str,
    pub headers: HeaderMap,
    /// The JSON body (`Null` when it is not JSON).
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsidKind {
    Compliance,
    Production,
}

/// A CSID the fake issued.
#[derive(Debug, Clone)]
struct Issued {
    kind: CsidKind,
    request_id: u64,
    secret: String,
    certificate_der: Vec<u8>,
    passed: BTreeSet<ComplianceStep>,
}

struct FakeState {
    gate: Gate,
    behaviour: Behaviour,
    renewal: RenewalAnswer,
    clearance_duplicate_status: StatusCode,
    next_request_id: u64,
    /// By `binarySecurityToken`.
    issued: HashMap<String, Issued>,
    /// Accepted documents by invoice hash, with the cleared copy of a cleared one.
    accepted: HashMap<[u8; 32], Option<String>>,
    received: Vec<Received>,
}

struct Fake {
    ca_key: SigningKey,
    state: Mutex<FakeState>,
}

/// A running fake; the server stops when it is dropped.
pub struct FakeFatoora {
    /// The base URL to configure the client with (`http://127.0.0.1:<port>/e-invoicing/simulation`).
    pub base_url: String,
    fake: Arc<Fake>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeFatoora {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeFatoora {
    /// Starts a fake on 127.0.0.1:0 that accepts, with the compliance gate `gate`.
    pub async fn start(gate: Gate) -> FakeFatoora {
        let fake = Arc::new(Fake {
            // A throwaway CA key, made here: SHA-256 of a label (the tests draw no randomness).
            ca_key: SigningKey::from_bytes(&Sha256::digest(b"fake fatoora ca")).unwrap(),
            state: Mutex::new(FakeState {
                gate,
                behaviour: Behaviour::Accept,
                renewal: RenewalAnswer::Issue,
                clearance_duplicate_status: StatusCode::ALREADY_REPORTED,
                next_request_id: FIRST_REQUEST_ID,
                issued: HashMap::new(),
                accepted: HashMap::new(),
                received: Vec::new(),
            }),
        });
        let api = Router::new()
            .route("/compliance", post(compliance_csid))
            .route("/compliance/invoices", post(compliance_check))
            .route(
                "/production/csids",
                post(production_csid).patch(renew_production_csid),
            )
            .route("/invoices/clearance/single", post(clearance))
            .route("/invoices/reporting/single", post(reporting));
        let router = Router::new().nest(BASE_PATH, api).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeFatoora {
            base_url: format!("http://{address}{BASE_PATH}"),
            fake,
            server,
        }
    }

    /// Switches what the fake does with the next requests.
    pub fn set(&self, behaviour: Behaviour) {
        self.fake.state().behaviour = behaviour;
    }

    /// What the next renewal answers.
    pub fn set_renewal(&self, answer: RenewalAnswer) {
        self.fake.state().renewal = answer;
    }

    /// 208 (with the cleared copy, the default) or 409 (without it) for clearance duplicates.
    pub fn set_clearance_duplicate_status(&self, status: StatusCode) {
        self.fake.state().clearance_duplicate_status = status;
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.fake.state().received.clone()
    }

    /// The requests received on `route` (`POST /compliance`, …).
    pub fn received_on(&self, route: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|request| request.route == route)
            .collect()
    }

    /// The compliance steps passed by the compliance CSID whose token is `token`.
    pub fn passed_steps(&self, token: &str) -> Vec<ComplianceStep> {
        self.fake
            .state()
            .issued
            .get(token)
            .map(|issued| issued.passed.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The fake CA's key, to check a certificate it issued.
    pub fn ca_verifying_key(&self) -> VerifyingKey {
        *self.fake.ca_key.verifying_key()
    }
}

impl Fake {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Records the request and answers what every endpoint answers before its own work: 406
    /// for a wrong version, and the outage behaviours.
    async fn arrive(
        &self,
        route: &'static str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Behaviour, Response> {
        let behaviour = {
            let mut state = self.state();
            state.received.push(Received {
                route,
                headers: headers.clone(),
                body: serde_json::from_slice(body).unwrap_or(Value::Null),
            });
            state.behaviour.clone()
        };
        if header(headers, "accept-version") != Some("V2") {
            return Err((
                StatusCode::NOT_ACCEPTABLE,
                "This Version is not supported or not provided in the header.",
            )
                .into_response());
        }
        match behaviour {
            Behaviour::Hang => {
                tokio::time::sleep(HANG_FOR).await;
                Err(StatusCode::GATEWAY_TIMEOUT.into_response())
            }
            Behaviour::Fail(status) => Err(failure(status)),
            other => Ok(other),
        }
    }

    /// The CSID the Basic credentials name, if the fake issued it with that secret.
    fn authenticate(&self, headers: &HeaderMap) -> Option<(String, Issued)> {
        let encoded = header(headers, "authorization")?.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(BASE64.decode(encoded).ok()?).ok()?;
        let (token, secret) = decoded.split_once(':')?;
        let issued = self.state().issued.get(token).cloned()?;
        (issued.secret == secret).then(|| (token.to_owned(), issued))
    }

    /// Issues a CSID of `kind`: a certificate for `subject` and its key, and a secret.
    fn issue(&self, kind: CsidKind, subject: Name, public_key_der: &[u8]) -> Value {
        let mut state = self.state();
        let request_id = state.next_request_id;
        state.next_request_id += 1;
        let certificate_der = self.certificate(request_id, subject, public_key_der);
        let token = BASE64.encode(BASE64.encode(&certificate_der));
        let secret = BASE64.encode(Sha256::digest(format!("secret {request_id}")));
        state.issued.insert(
            token.clone(),
            Issued {
                kind,
                request_id,
                secret: secret.clone(),
                certificate_der,
                passed: BTreeSet::new(),
            },
        );
        json!({
            "requestID": request_id,
            "tokenType": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3",
            "dispositionMessage": "ISSUED",
            "binarySecurityToken": token,
            "secret": secret,
            "errors": null,
        })
    }

    /// A certificate for `public_key_der` (an SPKI), signed by the fake CA.
    fn certificate(&self, serial: u64, subject: Name, public_key_der: &[u8]) -> Vec<u8> {
        let algorithm = AlgorithmIdentifierOwned {
            oid: zatca::csr::ECDSA_WITH_SHA256_OID,
            parameters: None,
        };
        let at = |seconds| {
            Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(seconds)).unwrap())
        };
        let mut serial_bytes = vec![0x11];
        serial_bytes.extend_from_slice(&serial.to_be_bytes());
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&serial_bytes).unwrap(),
            signature: algorithm.clone(),
            issuer: Name::from_str(FAKE_CA_ISSUER).unwrap(),
            validity: Validity {
                not_before: at(1_700_000_000),
                not_after: at(1_900_000_000),
            },
            subject,
            subject_public_key_info: x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(
                public_key_der,
            )
            .unwrap(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        };
        let signature: Signature = self.ca_key.sign(&tbs.to_der().unwrap());
        X509 {
            tbs_certificate: tbs,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(signature.to_der().as_bytes()).unwrap(),
        }
        .to_der()
        .unwrap()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// An error answer: a status and ZATCA's JSON body for it.
struct Refusal {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// 400 with `{"errors": [{code, message}]}`, the Swagger's form.
fn errors(code: &str, message: &str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        body: json!({"errors": [{"code": code, "message": message}]}),
    }
}

/// A flat `{code, message}`, the form seen live.
fn flat_error(status: StatusCode, code: &str, message: &str) -> Refusal {
    Refusal {
        status,
        body: json!({"code": code, "message": message}),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"timestamp": 1_654_514_661_409_u64, "status": 401, "error": "Unauthorized", "message": ""})),
    )
        .into_response()
}

/// ZATCA's answer for a failing status.
fn failure(status: StatusCode) -> Response {
    match status {
        StatusCode::INTERNAL_SERVER_ERROR => (
            status,
            Json(json!({"category": "HTTP-Errors", "code": "500",
                        "message": "Something went wrong and caused an Internal Server Error."})),
        )
            .into_response(),
        other => other.into_response(),
    }
}

/// The CSR of a `{"csr": base64 PEM}` body, checked: its own signature, and the certificate
/// template of this environment. Answers the subject and the SPKI DER.
fn read_csr(body: &Value, gate: Gate) -> Result<(Name, Vec<u8>), Refusal> {
    let invalid = |why: &str| errors("Invalid-CSR", why);
    let encoded = body["csr"]
        .as_str()
        .ok_or_else(|| invalid("csr is required"))?;
    let pem = BASE64
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| invalid("csr is not base64 of a PEM text"))?;
    let request = CertReq::from_pem(pem.as_bytes()).map_err(|_| invalid("not a CSR"))?;
    let public_key_der = request.info.public_key.to_der().unwrap();
    let key = VerifyingKey::from_sec1_bytes(request.info.public_key.subject_public_key.raw_bytes())
        .map_err(|_| invalid("the key is not secp256k1"))?;
    let signature = Signature::from_der(request.signature.raw_bytes())
        .map_err(|_| invalid("the signature is not DER ECDSA"))?;
    key.verify(&request.info.to_der().unwrap(), &signature)
        .map_err(|_| invalid("the CSR's signature does not verify"))?;
    let template = request
        .info
        .attributes
        .iter()
        .filter(|attribute| attribute.oid == zatca::csr::EXTENSION_REQUEST_OID)
        .flat_map(|attribute| attribute.values.iter())
        .filter_map(|value| value.decode_as::<Extensions>().ok())
        .flatten()
        .find(|extension| extension.extn_id == zatca::csr::CERTIFICATE_TEMPLATE_NAME_OID)
        .and_then(|extension| {
            PrintableStringRef::from_der(extension.extn_value.as_bytes())
                .ok()
                .map(|name| name.as_str().to_owned())
        });
    if template.as_deref() != Some(gate.certificate_template()) {
        return Err(invalid(
            "the certificate template is not this environment's",
        ));
    }
    Ok((request.info.subject.clone(), public_key_der))
}

/// The OTP check of `POST /compliance` and `PATCH /production/csids`.
fn check_otp(headers: &HeaderMap) -> Result<(), Refusal> {
    match header(headers, "otp") {
        None => Err(errors("Missing-OTP", "OTP is required field")),
        Some(OTP) => Ok(()),
        Some(_) => Err(flat_error(
            StatusCode::BAD_REQUEST,
            "Invalid-OTP",
            "The provided OTP is invalid",
        )),
    }
}

async fn compliance_csid(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(answer) = fake.arrive("POST /compliance", &headers, &body).await {
        return answer;
    }
    if let Err(answer) = check_otp(&headers) {
        return answer.into_response();
    }
    let gate = fake.state().gate;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match read_csr(&body, gate) {
        Ok((subject, public_key_der)) => {
            Json(fake.issue(CsidKind::Compliance, subject, &public_key_der)).into_response()
        }
        Err(answer) => answer.into_response(),
    }
}

async fn production_csid(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(answer) = fake.arrive("POST /production/csids", &headers, &body).await {
        return answer;
    }
    let Some((_, issued)) = fake.authenticate(&headers) else {
        return unauthorized();
    };
    if issued.kind != CsidKind::Compliance {
        return unauthorized();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let asked = match &body["compliance_request_id"] {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    if asked != Some(issued.request_id) {
        return errors(
            "Invalid-Request-ID",
            "compliance_request_id is not this compliance CSID's",
        )
        .into_response();
    }
    let gate = fake.state().gate;
    let missing: Vec<&str> = ComplianceStep::ALL
        .iter()
        .filter(|step| !issued.passed.contains(step))
        .map(|step| step.name())
        .collect();
    if gate == Gate::Simulation && !missing.is_empty() {
        return flat_error(
            StatusCode::BAD_REQUEST,
            "Missing-ComplianceSteps",
            &format!(
                "The compliance certificate is not done with the following compliance steps yet [{}]",
                missing.join(",")
            ),
        )
        .into_response();
    }
    let certificate = X509::from_der(&issued.certificate_der).unwrap();
    let tbs = certificate.tbs_certificate;
    Json(fake.issue(
        CsidKind::Production,
        tbs.subject,
        &tbs.subject_public_key_info.to_der().unwrap(),
    ))
    .into_response()
}

async fn renew_production_csid(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(answer) = fake
        .arrive("PATCH /production/csids", &headers, &body)
        .await
    {
        return answer;
    }
    let Some((_, issued)) = fake.authenticate(&headers) else {
        return unauthorized();
    };
    if issued.kind != CsidKind::Production {
        return unauthorized();
    }
    if let Err(answer) = check_otp(&headers) {
        return answer.into_response();
    }
    let (gate, renewal) = {
        let state = fake.state();
        (state.gate, state.renewal)
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (subject, public_key_der) = match read_csr(&body, gate) {
        Ok(csr) => csr,
        Err(answer) => return answer.into_response(),
    };
    match renewal {
        RenewalAnswer::Issue => {
            Json(fake.issue(CsidKind::Production, subject, &public_key_der)).into_response()
        }
        RenewalAnswer::NotCompliantYet => {
            let mut answer = fake.issue(CsidKind::Compliance, subject, &public_key_der);
            answer["dispositionMessage"] = json!("NOT_COMPLIANT");
            answer["tokenType"] = Value::Null;
            (
                StatusCode::PRECONDITION_REQUIRED,
                Json(json!({ "value": answer })),
            )
                .into_response()
        }
    }
}

/// What the fake read from a submitted document.
struct Examined {
    xml: String,
    hash: InvoiceHash,
    standard: bool,
    step: Option<ComplianceStep>,
    errors: Vec<FakeMessage>,
    warnings: Vec<FakeMessage>,
}

/// Reads and checks a `{invoiceHash, uuid, invoice}` body the way Fatoora does; the errors and
/// warnings are what a verdict answers with. `Err` is a request that is not even that.
fn examine(body: &Bytes, issued: &Issued) -> Result<Examined, Refusal> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| errors("Invalid-Request", "the body is not JSON"))?;
    let (Some(claimed_hash), Some(uuid), Some(invoice)) = (
        body["invoiceHash"].as_str(),
        body["uuid"].as_str(),
        body["invoice"].as_str(),
    ) else {
        return Err(errors(
            "Invalid-Request",
            "invoiceHash, uuid and invoice are required",
        ));
    };
    let xml = BASE64
        .decode(invoice)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| errors("Invalid-Request", "invoice is not base64 of UTF-8 XML"))?;
    let document = zatca::tree::parse(&xml)
        .map_err(|_| errors("Invalid-Request", "invoice is not well-formed XML"))?;
    let hash = zatca::invoice_hash(&xml)
        .map_err(|_| errors("Invalid-Request", "invoice cannot be hashed"))?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if claimed_hash != hash.to_base64() {
        errors.push(FakeMessage::new(
            "invalid-invoice-hash",
            "INVOICE_HASHING_ERRORS",
            "The invoice hash API body does not match the (calculated) Hash of the XML",
        ));
    }
    let text_at = |path: &[&str]| zatca::tree::find(&document.root, path).map(|e| e.text());
    if text_at(&["cbc:UUID"]).as_deref() != Some(uuid) {
        errors.push(FakeMessage::new(
            "fake-uuid-mismatch",
            "KSA",
            "The uuid of the API body is not the document's cbc:UUID",
        ));
    }
    check_stamp(&xml, &hash, issued, &mut errors, &mut warnings);
    let type_code = zatca::tree::find(&document.root, &["cbc:InvoiceTypeCode"]);
    let code = type_code.map(|element| element.text()).unwrap_or_default();
    let standard = type_code
        .and_then(|element| element.attribute("name"))
        .is_some_and(|name| name.starts_with("01"));
    Ok(Examined {
        step: ComplianceStep::of(code.trim(), standard),
        xml,
        hash,
        standard,
        errors,
        warnings,
    })
}

/// The stamp's checks: the signed digest is the hash, the signed-properties and certificate
/// digests are those of what is written, the signature verifies with the embedded certificate,
/// QR tag 6 is the hash, and the certificate is the caller's.
fn check_stamp(
    xml: &str,
    hash: &InvoiceHash,
    issued: &Issued,
    errors: &mut Vec<FakeMessage>,
    warnings: &mut Vec<FakeMessage>,
) {
    let signature_error = || {
        FakeMessage::new(
            "fake-invalid-signature",
            "SIGNATURE_ERRORS",
            "The stamp does not verify over the invoice hash with the embedded certificate",
        )
    };
    let Ok(stamp) = zatca::read::read_stamp(xml) else {
        errors.push(signature_error());
        return;
    };
    let certificate = Certificate::from_base64_der(&stamp.certificate_base64).ok();
    let verified = stamp.invoice_digest_base64 == hash.to_base64()
        && zatca::stamp::signed_properties_digest(xml).ok()
            == Some(stamp.signed_properties_digest_base64.clone())
        && certificate.as_ref().is_some_and(|certificate| {
            certificate.digest_base64() == stamp.certificate_digest_base64
                && certificate.verifying_key().is_ok_and(|key| {
                    zatca::stamp::verify_hash_signature(hash, &stamp.signature_base64, &key).is_ok()
                })
        });
    if !verified {
        errors.push(signature_error());
    }
    let qr_hash = zatca::read::read_qr(xml)
        .ok()
        .flatten()
        .and_then(|qr| zatca::qr::decode_tlv(&qr).ok())
        .and_then(|tags| {
            tags.into_iter()
                .find(|(tag, _)| *tag == 6)
                .and_then(|(_, value)| String::from_utf8(value).ok())
        });
    if qr_hash.as_deref() != Some(hash.to_base64().as_str()) {
        errors.push(FakeMessage::new(
            "invoiceHash_QRCODE_INVALID",
            "QRCODE_VALIDATION",
            "Invoice xml hash does not match with qr code invoice xml hash",
        ));
    }
    let signed_with_callers = certificate
        .is_some_and(|certificate| certificate.der() == issued.certificate_der.as_slice());
    if !signed_with_callers {
        warnings.push(invalid_signing_certificate());
    }
}

fn invalid_signing_certificate() -> FakeMessage {
    FakeMessage::new(
        "invalid-signing-certificate",
        "CERTIFICATE_ERRORS",
        "X509Certificate (CCSID / PCSID) used for signing is not valid certificate (CCSID / PCSID) for this VAT Registration Number.",
    )
}

fn xsd_info() -> Value {
    json!({"type": "INFO", "code": "XSD_ZATCA_VALID", "category": "XSD validation",
           "message": "Complied with UBL 2.1 standards in line with ZATCA specifications",
           "status": "PASS"})
}

fn validation_results(errors: &[FakeMessage], warnings: &[FakeMessage]) -> Value {
    let status = if !errors.is_empty() {
        "ERROR"
    } else if !warnings.is_empty() {
        "WARNING"
    } else {
        "PASS"
    };
    json!({
        "infoMessages": [xsd_info()],
        "warningMessages": warnings.iter().map(|m| m.to_json("WARNING", "WARNING")).collect::<Vec<_>>(),
        "errorMessages": errors.iter().map(|m| m.to_json("ERROR", "ERROR")).collect::<Vec<_>>(),
        "status": status,
    })
}

/// 200 without warnings, 202 with.
fn accepted_status(warnings: &[FakeMessage]) -> StatusCode {
    if warnings.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    }
}

async fn compliance_check(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let behaviour = match fake
        .arrive("POST /compliance/invoices", &headers, &body)
        .await
    {
        Ok(behaviour) => behaviour,
        Err(answer) => return answer,
    };
    let Some((token, issued)) = fake.authenticate(&headers) else {
        return unauthorized();
    };
    if issued.kind != CsidKind::Compliance {
        return unauthorized();
    }
    let mut examined = match examine(&body, &issued) {
        Ok(examined) => examined,
        Err(answer) => return answer.into_response(),
    };
    match behaviour {
        Behaviour::Reject(messages) if examined.errors.is_empty() => examined.errors = messages,
        Behaviour::AcceptWithWarnings(messages) => examined.warnings.extend(messages),
        _ => {}
    }
    let passed = examined.errors.is_empty();
    if passed {
        if let Some(step) = examined.step {
            if let Some(issued) = fake.state().issued.get_mut(&token) {
                issued.passed.insert(step);
            }
        }
    }
    let (clearance_status, reporting_status) = match (examined.standard, passed) {
        (true, true) => (json!("CLEARED"), Value::Null),
        (true, false) => (json!("NOT_CLEARED"), Value::Null),
        (false, true) => (Value::Null, json!("REPORTED")),
        (false, false) => (Value::Null, json!("NOT_REPORTED")),
    };
    let status = if passed {
        accepted_status(&examined.warnings)
    } else {
        StatusCode::BAD_REQUEST
    };
    let answer = json!({
        "validationResults": validation_results(&examined.errors, &examined.warnings),
        "reportingStatus": reporting_status,
        "clearanceStatus": clearance_status,
        "qrSellertStatus": null,
        "qrBuyertStatus": null,
    });
    (status, Json(answer)).into_response()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Clearance,
    Reporting,
}

async fn clearance(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    submission(fake, Endpoint::Clearance, headers, body).await
}

async fn reporting(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    submission(fake, Endpoint::Reporting, headers, body).await
}

async fn submission(
    fake: Arc<Fake>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = match endpoint {
        Endpoint::Clearance => "POST /invoices/clearance/single",
        Endpoint::Reporting => "POST /invoices/reporting/single",
    };
    let behaviour = match fake.arrive(route, &headers, &body).await {
        Ok(behaviour) => behaviour,
        Err(answer) => return answer,
    };
    let Some((_, issued)) = fake.authenticate(&headers) else {
        return unauthorized();
    };
    let switched_off = behaviour == Behaviour::ClearanceSwitchedOff;
    if endpoint == Endpoint::Clearance
        && (switched_off || header(&headers, "clearance-status") == Some("0"))
    {
        return (
            StatusCode::SEE_OTHER,
            Json(json!({"message": "Clearance is deactivated. Please use the /invoices/reporting/single endpoint instead."})),
        )
            .into_response();
    }
    let mut examined = match examine(&body, &issued) {
        Ok(examined) => examined,
        Err(answer) => return answer.into_response(),
    };
    if issued.kind == CsidKind::Compliance
        && !examined.warnings.contains(&invalid_signing_certificate())
    {
        // ZATCA accepts a document sent with a compliance CSID, with this warning.
        examined.warnings.push(invalid_signing_certificate());
    }
    match (endpoint, examined.standard) {
        (Endpoint::Reporting, true) if !switched_off => examined.errors.push(FakeMessage::new(
            "XML-INVOICE-ERROR",
            "XML",
            "XML Submitted using reporting API is not a simplified document",
        )),
        (Endpoint::Clearance, false) => examined.errors.push(FakeMessage::new(
            "fake-not-a-standard-document",
            "XML",
            "XML Submitted using clearance API is not a standard document",
        )),
        _ => {}
    }
    if !examined.errors.is_empty() {
        return verdict(endpoint, StatusCode::BAD_REQUEST, &examined, None);
    }
    if let Some(answer) = fake.duplicate(endpoint, &examined) {
        return answer;
    }
    match &behaviour {
        Behaviour::Reject(messages) => {
            examined.errors = messages.clone();
            return verdict(endpoint, StatusCode::BAD_REQUEST, &examined, None);
        }
        Behaviour::AcceptWithWarnings(messages) => examined.warnings.extend(messages.clone()),
        _ => {}
    }
    let cleared_xml =
        (endpoint == Endpoint::Clearance).then(|| fake.cleared(&examined.xml, &examined.hash));
    fake.state()
        .accepted
        .insert(*examined.hash.as_bytes(), cleared_xml.clone());
    if behaviour == Behaviour::AcceptThenHang {
        tokio::time::sleep(HANG_FOR).await;
    }
    let status = accepted_status(&examined.warnings);
    verdict(endpoint, status, &examined, cleared_xml.as_deref())
}

/// A clearance or reporting answer.
fn verdict(
    endpoint: Endpoint,
    status: StatusCode,
    examined: &Examined,
    cleared_xml: Option<&str>,
) -> Response {
    let results = validation_results(&examined.errors, &examined.warnings);
    let accepted = examined.errors.is_empty();
    let answer = match endpoint {
        Endpoint::Clearance => json!({
            "validationResults": results,
            "clearanceStatus": if accepted { "CLEARED" } else { "NOT_CLEARED" },
            "clearedInvoice": cleared_xml.map(|xml| BASE64.encode(xml)),
        }),
        Endpoint::Reporting => json!({
            "validationResults": results,
            "reportingStatus": if accepted { "REPORTED" } else { "NOT_REPORTED" },
        }),
    };
    (status, Json(answer)).into_response()
}

impl Fake {
    /// The duplicate answer for a document accepted before, if it was.
    fn duplicate(&self, endpoint: Endpoint, examined: &Examined) -> Option<Response> {
        let state = self.state();
        let cleared_xml = state.accepted.get(examined.hash.as_bytes())?.clone();
        let answer = match endpoint {
            Endpoint::Clearance
                if state.clearance_duplicate_status == StatusCode::ALREADY_REPORTED =>
            {
                (
                    StatusCode::ALREADY_REPORTED,
                    Json(json!({
                        "validationResults": validation_results(&[], &[FakeMessage::new(
                            "Invoice-Warning", "Duplicate-Invoice", "Invoice Hash Previously submitted.")]),
                        "clearanceStatus": "CLEARED",
                        "clearedInvoice": cleared_xml.map(|xml| BASE64.encode(xml)),
                    })),
                )
            }
            Endpoint::Clearance => (
                state.clearance_duplicate_status,
                Json(json!({"message": "Invoice Hash Previously Submitted"})),
            ),
            Endpoint::Reporting => (
                StatusCode::CONFLICT,
                Json(json!({
                    "validationResults": {"infoMessages": [], "warningMessages": [],
                        "errorMessages": [{"type": "ERROR", "code": "Invoice-Errors", "category": "Duplicate-Invoice",
                            "message": "Invoice was already reported successfully earlier.", "status": "ERROR"}],
                        "status": "ERROR"},
                    "reportingStatus": "NOT_REPORTED",
                })),
            ),
        };
        Some(answer.into_response())
    }

    /// The cleared copy: the submitted document, its QR and the seller's stamp kept, with a
    /// clearance stamp of the fake CA (a signature over the invoice hash) added as a second UBL
    /// extension. Extensions are outside the hashed parts, so the hash stays the submitted one.
    fn cleared(&self, xml: &str, hash: &InvoiceHash) -> String {
        let stamp = BASE64.encode(zatca::stamp::sign_hash(hash, &self.ca_key));
        let extension = format!(
            "<ext:UBLExtension><ext:ExtensionURI>urn:fake-fatoora:clearance-stamp</ext:ExtensionURI>\
             <ext:ExtensionContent><fake:ClearanceStamp xmlns:fake=\"urn:fake-fatoora\">{stamp}</fake:ClearanceStamp>\
             </ext:ExtensionContent></ext:UBLExtension>"
        );
        let closing = "</ext:UBLExtensions>";
        let at = xml
            .find(closing)
            .expect("a signed document has its UBLExtensions");
        format!("{}{extension}{}", &xml[..at], &xml[at..])
    }
}
