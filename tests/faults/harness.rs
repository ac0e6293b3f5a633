//! The harness of the fault tests: the real `revledger serve` as a child process (so it can be
//! SIGKILLed), a load driver of concurrent clients that records what was acknowledged, and the
//! checks run on the store afterwards.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use adapters::sql::{SqlDb, SqlValue};
use adapters::store::{Checkpoint, EventStore, RecordedEvent, MAX_READ_BATCH};
use api::auth::Role;
use app::command::CommandHandler;
use serde_json::{json, Value};
use uuid::Uuid;

/// The bootstrap administrator's token of every spawned server (reads lag, nothing else).
pub const ADMIN_TOKEN: &str = "faults-admin-token";
/// The Moyasar webhook's `secret_token` of every spawned server.
pub const MOYASAR_TOKEN: &str = "faults-moyasar-secret-token";
/// How long one HTTP exchange may take before the client counts it as unanswered. Longer than
/// the server's own request timeout (30 s), so only a dead server or a lost connection hits it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);
/// Pause between retries of an unacknowledged request.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A small seeded generator (SplitMix64): the kill moments and pauses come from it, so a
/// failing run can be repeated with `REVLEDGER_FAULTS_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in `[low_ms, high_ms)`.
    pub fn millis(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(low_ms + self.next_u64() % (high_ms - low_ms))
    }
}

/// `REVLEDGER_FAULTS_SEED`, or one taken from the clock (printed by the caller either way).
pub fn seed() -> u64 {
    std::env::var("REVLEDGER_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

// ---------------------------------------------------------------------------------------------
// The binary

/// `revledger ARGS --database-url URL` with quiet logs.
pub fn revledger(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_revledger"));
    command
        .args(args)
        .args(["--database-url", url])
        .env_remove("REVLEDGER_DATABASE_URL")
        .env("REVLEDGER_LOG", "warn");
    command
}

/// Runs a `revledger` command to completion; returns its status, stdout and stderr.
pub fn run(mut command: Command) -> (ExitStatus, String, String) {
    let output = command.output().expect("run revledger");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An API token made by `revledger token create`: its id (the principal) and secret.
#[derive(Clone, Debug)]
pub struct Token {
    pub id: String,
    pub secret: String,
}

impl Token {
    pub fn create(url: &str, role: Role) -> Token {
        let (status, stdout, stderr) = run(revledger(
            url,
            &[
                "token",
                "create",
                "--role",
                role.as_str(),
                "--label",
                "faults",
            ],
        ));
        assert!(status.success(), "token create: {stderr}");
        let id = stderr
            .split_whitespace()
            .skip_while(|word| *word != "token")
            .nth(1)
            .unwrap_or_else(|| panic!("no token id in {stderr:?}"))
            .to_owned();
        Token {
            id,
            secret: stdout.trim().to_owned(),
        }
    }

    /// The effect of a command this token sends with `key`: the command id the server claims
    /// for it, read back from the store when the run is checked.
    pub fn keyed(&self, key: &str) -> Keyed {
        Keyed {
            token_id: self.id.clone(),
            key: key.to_owned(),
        }
    }
}

/// A token's request under an Idempotency-Key.
#[derive(Clone, Debug)]
pub struct Keyed {
    pub token_id: String,
    pub key: String,
}

impl Keyed {
    /// The command id the server claimed for this key, if a request with it reached the server.
    async fn command_id(&self, db: &adapters::sql::SqlDb) -> Option<Uuid> {
        let row = db
            .fetch_optional(
                "SELECT command_id FROM idempotency_requests WHERE principal = ? AND idempotency_key = ?",
                &[self.token_id.as_str().into(), self.key.as_str().into()],
            )
            .await
            .expect("read a claimed key")?;
        row.opt_text(0)
            .expect("a command id")
            .and_then(|id| Uuid::parse_str(&id).ok())
    }
}

/// A running `revledger serve` child process; killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub address: String,
}

impl Server {
    /// Starts `revledger serve --listen 127.0.0.1:0` on `url`, waits for the address it bound
    /// (from its JSON log), and appends the rest of its log to `log`.
    pub async fn start(url: &str, log: &Path) -> Server {
        let url = url.to_owned();
        let log = log.to_owned();
        tokio::task::spawn_blocking(move || Server::start_blocking(&url, &log))
            .await
            .expect("start server")
    }

    fn start_blocking(url: &str, log: &Path) -> Server {
        let mut command = revledger(url, &["serve", "--listen", "127.0.0.1:0"]);
        command
            .env("REVLEDGER_LOG", "info")
            .env("REVLEDGER_LOG_FORMAT", "json")
            .env("REVLEDGER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("REVLEDGER_MOYASAR_SECRET_TOKEN", MOYASAR_TOKEN)
            .env("REVLEDGER_WEBHOOKS", "moyasar")
            // An Idempotency-Key claimed by a request the kill cut short is taken over once
            // older than the request timeout (plus a margin): a short one keeps the run short.
            .env("REVLEDGER_REQUEST_TIMEOUT_SECS", "5")
            .env_remove("REVLEDGER_MOYASAR_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn revledger serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open server log");
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                panic!("serve exited before listening; see {}", log.display());
            };
            let _ = writeln!(file, "{line}");
            let entry: Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(address) = entry["fields"]["address"].as_str() {
                break address.to_owned();
            }
        };
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
            }
        });
        Server {
            child: Some(child),
            address,
        }
    }

    /// SIGKILL: no drain, no cleanup, whatever was in flight is cut off.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL serve");
            child.wait().expect("reap serve");
        }
    }

    /// SIGTERM, then waits (bounded) for the graceful exit; returns its status.
    pub async fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait serve") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not exit within 60 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

pub use kit::Answer;

/// One HTTP exchange on a fresh loopback connection; `None` when nothing answered (no
/// listener, the connection cut, a cut-off body, or [`REQUEST_TIMEOUT`]).
pub async fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<Answer> {
    let address = address.parse().ok()?;
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    kit::Client::with_timeout(address, REQUEST_TIMEOUT)
        .request(method, path, &headers, body)
        .await
        .ok()
}

/// `GET /readyz`: its status, or `None` when nothing answered.
pub async fn readyz(address: &str) -> Option<Answer> {
    request(address, "GET", "/readyz", &[], b"").await
}

/// Waits until every projection has applied the whole log (the same head twice in a row,
/// nothing behind); returns the head. Fails clearly at `deadline`.
pub async fn wait_caught_up(address: &str, deadline: Instant) -> i64 {
    let auth = [("Authorization", format!("Bearer {ADMIN_TOKEN}"))];
    let mut previous = None;
    let mut last = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "projections did not catch up; last /api/projections: {last:?}"
        );
        if let Some(answer) = request(address, "GET", "/api/projections", &auth, b"").await {
            if answer.status == 200 {
                let lags = answer.body["projections"].as_array().cloned();
                let lags = lags.unwrap_or_default();
                let behind: i64 = lags
                    .iter()
                    .map(|l| l["events_behind"].as_i64().unwrap_or(i64::MAX))
                    .sum();
                let head = lags.first().and_then(|l| l["head_position"].as_i64());
                if !lags.is_empty() && behind == 0 && head.is_some() && previous == head {
                    return head.unwrap_or_default();
                }
                previous = if behind == 0 { head } else { None };
            }
            last = Some(answer);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The load

/// What a request should have left in the store once.
#[derive(Clone, Debug)]
pub enum Effect {
    /// An API command: its events under the command id claimed for its key.
    Command(Keyed),
    /// A Moyasar delivery: its inbox row, and its events under the delivery's command id.
    Delivery {
        delivery_id: String,
        command_id: Uuid,
    },
}

/// One logical request and what became of it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub label: String,
    pub effect: Effect,
    /// Tries on the wire, including the acknowledged one.
    pub attempts: u32,
    /// Tries that got no answer at all (the server died or the connection was cut).
    pub unanswered: u32,
    /// Answered 2xx at some try.
    pub acked: bool,
    /// Sent once and never retried, whatever happened.
    pub abandoned: bool,
}

/// A lead a client drove to the end of its lifecycle.
#[derive(Clone, Debug)]
pub struct LeadRun {
    pub lead_id: String,
    pub invoice_id: String,
    pub payment_id: String,
    /// The extra follow-up sent once and not retried.
    pub extra_follow_up: Keyed,
}

/// The shared state of the driver: where the server is now, and the book of requests.
pub struct Load {
    address: RwLock<Option<String>>,
    stop: AtomicBool,
    acked: AtomicU64,
    pub sent: Mutex<Vec<Sent>>,
    pub leads: Mutex<Vec<LeadRun>>,
    sales: Token,
    finance: Token,
    run: String,
    deadline: Instant,
    moyasar_fixture: Value,
}

/// How a request is retried.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Until acknowledged: no answer, 408, 409, 5xx are retried with the same key.
    UntilAcked,
    /// As `UntilAcked`, and also 422 (a rule that a process manager will satisfy: onboarding
    /// waits for the payment to reach the lead).
    UntilRuleHolds,
    /// One try, whatever happens.
    Never,
}

impl Load {
    pub fn new(sales: Token, finance: Token, run: String, deadline: Instant) -> Arc<Load> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/moyasar_payment_paid.json"
        );
        let fixture = std::fs::read_to_string(path).expect("moyasar fixture");
        Arc::new(Load {
            address: RwLock::new(None),
            stop: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            sent: Mutex::new(Vec::new()),
            leads: Mutex::new(Vec::new()),
            sales,
            finance,
            run,
            deadline,
            moyasar_fixture: serde_json::from_str(&fixture).expect("fixture is JSON"),
        })
    }

    /// Where clients send requests now (`None` while the server is down).
    pub fn point_at(&self, address: Option<String>) {
        *self.address.write().expect("address lock") = address;
    }

    /// Clients finish the lead they are on and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Requests acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Leads driven to the end of their lifecycle so far.
    pub fn completed(&self) -> usize {
        self.leads.lock().expect("leads").len()
    }

    /// Starts `clients` concurrent clients; each drives leads through their lifecycle until
    /// [`Load::stop`].
    pub fn spawn_clients(self: &Arc<Self>, clients: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..clients)
            .map(|client| {
                let load = self.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    while !load.stop.load(Ordering::SeqCst) {
                        load.drive_lead(client, n).await;
                        n += 1;
                    }
                })
            })
            .collect()
    }

    /// One lead: capture, qualify, follow-up, book a demo, proposal, invoice, the Moyasar
    /// payment webhook, onboard (once the payment reached the lead), activate; and one extra
    /// follow-up that is sent once and never retried.
    async fn drive_lead(&self, client: usize, n: usize) {
        let run = &self.run;
        let lead_id = format!("lead-{run}-{client}-{n}");
        let key = |step: &str| format!("{run}-{client}-{n}-{step}");
        let path = |action: &str| format!("/api/leads/{lead_id}/{action}");
        let sales = &self.sales;
        let finance = &self.finance;
        let scheduled_for = time::OffsetDateTime::now_utc() + time::Duration::days(3);
        let scheduled_for = scheduled_for
            .format(&time::format_description::well_known::Rfc3339)
            .expect("rfc3339");
        let capture = json!({
            "lead_id": lead_id,
            "name": format!("Customer {client}-{n}"),
            "company": format!("Company {client}-{n}"),
            "email": format!("c{client}-{n}-{run}@example.sa"),
            "source": "website",
        });
        self.command(
            sales,
            "/api/leads",
            &key("capture"),
            &capture,
            Retry::UntilAcked,
        )
        .await;
        self.command(
            sales,
            &path("qualify"),
            &key("qualify"),
            &json!({}),
            Retry::UntilAcked,
        )
        .await;
        let follow_up = json!({"channel": "phone", "note": "first call", "responded": true});
        self.command(
            sales,
            &path("follow-ups"),
            &key("follow-up"),
            &follow_up,
            Retry::UntilAcked,
        )
        .await;
        let booking =
            json!({"booking_id": format!("bk-{run}-{client}-{n}"), "scheduled_for": scheduled_for});
        self.command(
            sales,
            &path("book-demo"),
            &key("book-demo"),
            &booking,
            Retry::UntilAcked,
        )
        .await;
        self.command(
            sales,
            &path("proposal"),
            &key("proposal"),
            &json!({"plan": "growth"}),
            Retry::UntilAcked,
        )
        .await;
        let invoice = json!({"lead_id": lead_id, "plan": "growth"});
        let issued = self
            .command(
                finance,
                "/api/invoices",
                &key("invoice"),
                &invoice,
                Retry::UntilAcked,
            )
            .await
            .expect("acknowledged");
        let invoice_id = issued.body["invoice_id"]
            .as_str()
            .unwrap_or_else(|| panic!("invoice answer without invoice_id: {}", issued.text))
            .to_owned();
        let total = issued.body["total_halalas"]
            .as_i64()
            .unwrap_or_else(|| panic!("invoice answer without total: {}", issued.text));
        let payment_id = format!("pay-{run}-{client}-{n}");
        self.payment_webhook(
            &format!("dlv-{run}-{client}-{n}"),
            &payment_id,
            &invoice_id,
            total,
        )
        .await;
        self.command(
            sales,
            &path("onboard"),
            &key("onboard"),
            &json!({}),
            Retry::UntilRuleHolds,
        )
        .await;
        self.command(
            sales,
            &path("activate"),
            &key("activate"),
            &json!({}),
            Retry::UntilAcked,
        )
        .await;
        let extra = json!({"channel": "email", "note": "welcome pack", "responded": false});
        self.command(
            sales,
            &path("follow-ups"),
            &key("extra"),
            &extra,
            Retry::Never,
        )
        .await;
        self.leads.lock().expect("leads").push(LeadRun {
            lead_id,
            invoice_id,
            payment_id,
            extra_follow_up: sales.keyed(&key("extra")),
        });
    }

    /// An API command with an Idempotency-Key; the same key and body on every try.
    async fn command(
        &self,
        token: &Token,
        path: &str,
        key: &str,
        body: &Value,
        retry: Retry,
    ) -> Option<Answer> {
        let headers = [
            ("Authorization", format!("Bearer {}", token.secret)),
            ("Content-Type", "application/json".to_owned()),
            ("Idempotency-Key", key.to_owned()),
        ];
        let effect = Effect::Command(token.keyed(key));
        let label = format!("POST {path} (key {key})");
        self.send(label, effect, "POST", path, &headers, body, retry)
            .await
    }

    /// A signed (`secret_token`) Moyasar `payment_paid` delivery for our invoice.
    async fn payment_webhook(
        &self,
        delivery_id: &str,
        payment_id: &str,
        invoice_id: &str,
        amount: i64,
    ) {
        let mut body = self.moyasar_fixture.clone();
        body["secret_token"] = json!(MOYASAR_TOKEN);
        body["id"] = json!(delivery_id);
        body["live"] = json!(true);
        body["data"]["id"] = json!(payment_id);
        body["data"]["amount"] = json!(amount);
        body["data"]["invoice_id"] = Value::Null;
        body["data"]["metadata"] = json!({"invoice_id": invoice_id});
        // A Moyasar payment's command id is derived from the payment's state, so that the
        // missed-payment sweep and a late webhook record it once (app::webhooks).
        let payment = adapters::webhooks::moyasar::parse_payment_object(
            body["data"]
                .as_object()
                .expect("the fixture's data is an object"),
        )
        .expect("the fixture's payment parses");
        let command_id = app::webhooks::moyasar_payment_command_id(&payment);
        let effect = Effect::Delivery {
            delivery_id: delivery_id.to_owned(),
            command_id,
        };
        let headers = [("Content-Type", "application/json".to_owned())];
        let label = format!("POST /webhooks/moyasar (delivery {delivery_id})");
        let answer = self
            .send(
                label,
                effect,
                "POST",
                "/webhooks/moyasar",
                &headers,
                &body,
                Retry::UntilAcked,
            )
            .await
            .expect("acknowledged");
        let status = answer.body["status"].as_str().unwrap_or_default();
        assert!(
            matches!(status, "accepted" | "parked"),
            "delivery {delivery_id}: {} {}",
            answer.status,
            answer.text
        );
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        label: String,
        effect: Effect,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &Value,
        retry: Retry,
    ) -> Option<Answer> {
        let bytes = serde_json::to_vec(body).expect("json");
        let index = {
            let mut sent = self.sent.lock().expect("book");
            sent.push(Sent {
                label: label.clone(),
                effect,
                attempts: 0,
                unanswered: 0,
                acked: false,
                abandoned: retry == Retry::Never,
            });
            sent.len() - 1
        };
        let mut last: Option<Answer> = None;
        loop {
            assert!(
                Instant::now() < self.deadline,
                "{label}: not acknowledged before the deadline; last answer {last:?}"
            );
            let address = self.address.read().expect("address lock").clone();
            let answer = match &address {
                Some(address) => request(address, method, path, headers, &bytes).await,
                None => None,
            };
            if address.is_some() {
                let mut sent = self.sent.lock().expect("book");
                sent[index].attempts += 1;
                if answer.is_none() {
                    sent[index].unanswered += 1;
                }
            }
            match answer {
                Some(answer) if (200..300).contains(&answer.status) => {
                    self.sent.lock().expect("book")[index].acked = true;
                    self.acked.fetch_add(1, Ordering::SeqCst);
                    return Some(answer);
                }
                None => {}
                Some(answer) if matches!(answer.status, 408 | 409 | 500..=599) => {
                    last = Some(answer);
                }
                Some(answer) if answer.status == 422 && retry == Retry::UntilRuleHolds => {
                    last = Some(answer);
                }
                Some(answer) => panic!("{label}: {} {}", answer.status, answer.text),
            }
            if retry == Retry::Never && address.is_some() {
                return None;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// Waits for the clients to finish their leads (bounded by the load's deadline).
pub async fn join_clients(load: &Load, clients: Vec<tokio::task::JoinHandle<()>>) {
    let remaining = load.deadline.saturating_duration_since(Instant::now());
    for client in clients {
        tokio::time::timeout(remaining + Duration::from_secs(5), client)
            .await
            .expect("clients finish before the deadline")
            .expect("client panicked (see above)");
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

/// What the checks counted.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: usize,
    pub acknowledged: usize,
    /// Requests with at least one try that got no answer.
    pub interrupted: usize,
    /// Sent once, never acknowledged: must be all there or not at all.
    pub unacked_abandoned: usize,
    /// Of those, how many were nevertheless applied (wholly).
    pub unacked_applied: usize,
    pub lost: usize,
    pub doubled: usize,
    pub problems: Vec<String>,
}

/// Every event of the store, in log order.
async fn all_events(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    let mut after = Checkpoint::START;
    loop {
        let batch = store
            .read_committed(after, MAX_READ_BATCH)
            .await
            .expect("read the log");
        let Some(last) = batch.last() else {
            return events;
        };
        after = Checkpoint::after(last);
        events.extend(batch);
    }
}

/// The store after the load: every acknowledged request's effect is there exactly once, every
/// command's events are all there or none, each driven lead's streams hold each step once.
pub async fn check_store(store: &dyn EventStore, load: &Load) -> Tally {
    let mut tally = Tally::default();
    let events = all_events(store).await;
    let mut by_command: HashMap<Uuid, Vec<&RecordedEvent>> = HashMap::new();
    let mut by_stream: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
    for event in &events {
        if let Some(id) = event.command_id {
            by_command.entry(id).or_default().push(event);
        }
        by_stream.entry(&event.stream_id).or_default().push(event);
    }
    // All or nothing, for every command in the store (the driver's and the process managers').
    for (command_id, group) in &by_command {
        let Some(outcome) = store.find_command(*command_id).await.expect("find command") else {
            tally.problems.push(format!(
                "events of command {command_id} without its command row"
            ));
            continue;
        };
        let versions: Vec<u64> = group.iter().map(|e| e.version).collect();
        let expected: Vec<u64> = (outcome.first_version..=outcome.last_version).collect();
        if versions != expected || group.iter().any(|e| e.stream_id != outcome.stream_id) {
            tally.problems.push(format!(
                "command {command_id}: events at versions {versions:?} of {:?}, the command row says {expected:?} of {}",
                group.iter().map(|e| &e.stream_id).collect::<Vec<_>>(),
                outcome.stream_id
            ));
        }
    }
    for (stream, group) in &by_stream {
        let versions: Vec<u64> = group.iter().map(|e| e.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        if sorted != (1..=group.len() as u64).collect::<Vec<_>>() {
            tally
                .problems
                .push(format!("stream {stream} has versions {versions:?}"));
        }
    }
    let db = store.sql();
    let sent = load.sent.lock().expect("book").clone();
    tally.sent = sent.len();
    for request in &sent {
        tally.acknowledged += usize::from(request.acked);
        tally.interrupted += usize::from(request.unanswered > 0);
        let (command_id, inbox_rows) = match &request.effect {
            Effect::Command(keyed) => (keyed.command_id(&db).await, None),
            Effect::Delivery {
                delivery_id,
                command_id,
            } => {
                let row = db
                    .fetch_optional(
                        "SELECT COUNT(*) FROM webhook_inbox WHERE provider = ? AND delivery_id = ?",
                        &["moyasar".into(), delivery_id.as_str().into()],
                    )
                    .await
                    .expect("count inbox rows")
                    .expect("a count");
                (Some(*command_id), Some(row.i64(0).expect("count")))
            }
        };
        let applied = command_id
            .and_then(|id| by_command.get(&id))
            .map_or(0, Vec::len);
        if request.acked {
            if applied == 0 {
                tally.lost += 1;
                tally.problems.push(format!(
                    "LOST: {} was acknowledged, no event has its command id",
                    request.label
                ));
            }
            match inbox_rows {
                Some(0) => {
                    tally.lost += 1;
                    tally
                        .problems
                        .push(format!("LOST: {} has no inbox row", request.label));
                }
                Some(1) | None => {}
                Some(rows) => {
                    tally.doubled += 1;
                    tally
                        .problems
                        .push(format!("DOUBLED: {} has {rows} inbox rows", request.label));
                }
            }
        } else if request.abandoned {
            tally.unacked_abandoned += 1;
            tally.unacked_applied += usize::from(applied > 0);
        } else {
            tally
                .problems
                .push(format!("{} was never acknowledged", request.label));
        }
    }
    // Each lead's streams hold each lifecycle step exactly once (a retry applied twice under
    // another command id would show here).
    let leads = load.leads.lock().expect("leads").clone();
    for lead in &leads {
        let extra = lead
            .extra_follow_up
            .command_id(&db)
            .await
            .map_or(0, |id| usize::from(by_command.contains_key(&id)));
        let lead_stream = CommandHandler::<domain::lead::Lead>::stream_id(&lead.lead_id);
        let invoice_stream =
            CommandHandler::<domain::invoice::Invoice>::stream_id(&lead.invoice_id);
        let payment_stream =
            CommandHandler::<domain::payment::Payment>::stream_id(&lead.payment_id);
        let expected: [(&str, &[(&str, usize)]); 3] = [
            (
                &lead_stream,
                &[
                    ("LeadCaptured", 1),
                    ("LeadQualified", 1),
                    ("FollowUpLogged", 1 + extra),
                    ("DemoBooked", 1),
                    ("ProposalSent", 1),
                    ("LeadPaid", 1),
                    ("OnboardingStarted", 1),
                    ("LeadActivated", 1),
                ],
            ),
            (
                &invoice_stream,
                &[
                    ("InvoiceIssued", 1),
                    ("PaymentRecorded", 1),
                    ("InvoicePaid", 1),
                ],
            ),
            (&payment_stream, &[("PaymentPaid", 1)]),
        ];
        for (stream, types) in expected {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for event in by_stream.get(stream).into_iter().flatten() {
                *counts.entry(event.event_type.as_str()).or_default() += 1;
            }
            for (event_type, want) in types {
                let got = counts.remove(event_type).unwrap_or(0);
                if got < *want {
                    tally.lost += 1;
                } else if got > *want {
                    tally.doubled += 1;
                }
                if got != *want {
                    tally
                        .problems
                        .push(format!("{stream}: {got} {event_type}, expected {want}"));
                }
            }
            if !counts.is_empty() {
                tally
                    .problems
                    .push(format!("{stream}: unexpected events {counts:?}"));
            }
        }
    }
    tally
}

/// Every read model's rows.
pub async fn dump_read_models(db: &SqlDb) -> BTreeMap<String, Vec<Vec<SqlValue>>> {
    let mut tables = BTreeMap::new();
    for projection in projections::read_models() {
        for table in projection.tables() {
            let rows = projections::runtime::dump_table(db, table)
                .await
                .expect("dump table");
            tables.insert(table.to_string(), rows);
        }
    }
    tables
}

/// With the server stopped: the store passes [`check_store`], the caught-up read models equal
/// their rebuild (`revledger rebuild`), and `revledger verify` exits 0. Returns the tally.
pub async fn check_after(url: &str, load: &Load, head_when_caught_up: i64) -> Tally {
    let store = adapters::store::open(url).await.expect("open the store");
    assert_eq!(
        store.head_position().await.expect("head"),
        head_when_caught_up,
        "nothing is appended after the projections caught up and the server stopped"
    );
    let tally = check_store(store.as_ref(), load).await;
    let db = store.sql();
    let live = dump_read_models(&db).await;
    for table in ["funnel_leads", "audit_log", "journal_lines"] {
        if let Some(rows) = live.get(table) {
            assert!(!rows.is_empty(), "{table} has rows after the load");
        }
    }
    let (status, stdout, stderr) = run(revledger(url, &["rebuild"]));
    assert!(status.success(), "rebuild failed: {stdout}{stderr}");
    let rebuilt = dump_read_models(&db).await;
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        rebuilt.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &live {
        assert_eq!(
            rows.len(),
            rebuilt[table].len(),
            "{table}: rows live vs rebuilt"
        );
        assert!(
            rows == &rebuilt[table],
            "{table}: the live read model differs from its rebuild"
        );
    }
    let (status, stdout, stderr) = run(revledger(url, &["verify"]));
    assert!(status.success(), "verify failed: {stdout}{stderr}");
    match store.sql() {
        SqlDb::Postgres(pool) => pool.close().await,
        // The writer connection closes when its last handle (this one) is dropped.
        SqlDb::Sqlite(_) => {}
    }
    tally
}

/// A fresh directory for a run's server logs and SQLite file.
pub fn run_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("revledger-faults-{name}-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("create run dir");
    dir
}
