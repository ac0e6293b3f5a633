//! Personal data (issue 25): a lead erased in the middle of a generated history, on both
//! engines. The person is captured over the API, referred by a partner, books a demo through a
//! Calendly webhook and gets a follow-up note; a backup is taken; they are erased through the
//! admin route; the history goes on. Then: `verify` passes; no read route (as of now or of a
//! moment before the erasure), dashboard page, export or log line shows their name, company,
//! email or phone; a byte search of the database's files and of a fresh backup finds none of
//! them; a rebuild reproduces every read model and as-of at the head equals the live models;
//! and the backup taken before the erasure, restored by `ops/restore.sh`, shows them erased.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use adapters::store::EventStore;
use api::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::{create_token, spawn_app_seeded_with, TestApp, ADMIN_TOKEN};
use crate::desk::Browser;
use crate::helpers::{temp_dir, Engine, TestDb};
use crate::history::Generator;
use crate::ops::succeed;
use crate::webhooks::{calendly_event, now_unix};

/// The person's data, unique to one test run so that a byte search finds only theirs.
struct Person {
    lead_id: String,
    name: String,
    company: String,
    email: String,
    phone: String,
}

impl Person {
    fn new() -> Person {
        let tag = Uuid::now_v7().simple().to_string();
        let tag = &tag[tag.len() - 10..];
        let digits: String = tag
            .bytes()
            .map(|b| char::from(b'0' + b % 10))
            .take(8)
            .collect();
        Person {
            lead_id: format!("erase-me-{tag}"),
            name: format!("Nadia Qahtani-{tag}"),
            company: format!("Privacy Trading {tag}"),
            email: format!("nadia.{tag}@privacy-test.sa"),
            phone: format!("+9665{digits}"),
        }
    }

    /// What must never be found once they are erased.
    fn secrets(&self) -> [&str; 4] {
        [&self.name, &self.company, &self.email, &self.phone]
    }

    fn assert_absent(&self, haystack: &[u8], what: &str) {
        for secret in self.secrets() {
            assert!(
                !contains(haystack, secret.as_bytes()),
                "{what} holds {secret:?} after the erasure"
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Log lines written while the test runs, kept in memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The service runs on this test's one thread, so the thread's default subscriber sees every
// log line it writes.
#[tokio::test(flavor = "current_thread")]
async fn sqlite_an_erased_lead_is_gone_from_every_read_and_byte_while_the_chains_hold() {
    erased_in_the_middle_of_a_history(Engine::Sqlite).await;
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_an_erased_lead_is_gone_from_every_read_and_byte_while_the_chains_hold() {
    erased_in_the_middle_of_a_history(Engine::Postgres).await;
}

async fn erased_in_the_middle_of_a_history(engine: Engine) {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let dir = temp_dir();
    let erasure_log = dir.join("erasures.jsonl");
    let log_for_config = erasure_log.clone();
    let Some(app) = spawn_app_seeded_with(
        engine,
        |handlers| async move {
            let mut generator = Generator::new(handlers, 25);
            generator.partners().await;
            generator.until(300).await;
        },
        move |config| {
            config.erasure_log = Some(app::personal::ErasureLog::new(log_for_config));
        },
    )
    .await
    else {
        return;
    };
    let person = Person::new();
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let (_, sales) = create_token(app.handlers(), Role::Sales, None, Some("sales")).await;

    // The person arrives: a partner's referral click, the capture, a Calendly booking (its raw
    // body kept in the inbox), a follow-up note.
    let click = post(
        &app,
        &admin,
        "/api/partners/p-referral/referrals",
        &json!({"lead_email": person.email, "clicked_at": "2026-01-05T10:00:00Z"}),
    )
    .await;
    assert_eq!(click.0, 201, "{}", click.1);
    let captured = post(
        &app,
        &format!("Bearer {sales}"),
        "/api/leads",
        &json!({"lead_id": person.lead_id, "name": person.name, "company": person.company,
                "email": person.email, "phone": person.phone, "source": "website",
                "partner_id": "p-referral"}),
    )
    .await;
    assert_eq!(captured.0, 201, "{}", captured.1);
    let mut booking = calendly_event(
        "invitee.created",
        &person.email,
        &format!("https://api.calendly.com/invitees/{}", person.lead_id),
    );
    booking["payload"]["name"] = json!(person.name);
    let booked = app.post_calendly_webhook(&booking, now_unix()).await;
    assert_eq!(booked.status, 200, "{}", booked.text);
    let note = post(
        &app,
        &admin,
        &format!("/api/leads/{}/follow-ups", person.lead_id),
        &json!({"channel": "phone", "note": format!("called {} on {}", person.name, person.phone),
                "responded": true}),
    )
    .await;
    assert!(note.0 == 200 || note.0 == 201, "{}", note.1);
    app.settle().await;

    // Before the erasure the edge opens the sealed values for those allowed to read them, and
    // the log holds none of them in clear.
    let board = app
        .get(&format!("/api/leads/{}", person.lead_id), Some(&sales))
        .await;
    assert!(board.text.contains(&person.name), "{}", board.text);
    let stored = app.stream(&format!("lead-{}", person.lead_id)).await;
    assert_eq!(stored[0].schema_version, 2);
    let raw = raw_log(&app.db.store).await;
    person.assert_absent(raw.as_bytes(), "the log");
    let before_erasure = app.db.store.head_position().await.unwrap();
    let backup_before = dir.join(backup_name(engine, "before"));
    succeed(script(
        "backup.sh",
        &app.db.url,
        &backup_before,
        &erasure_log,
    ))
    .await;

    // The erasure, through the admin route; again is the same, marked as done before.
    let erased = post(
        &app,
        &admin,
        "/api/admin/erasures",
        &json!({"subject": person.lead_id}),
    )
    .await;
    assert_eq!(erased.0, 200, "{}", erased.1);
    let answer: Value = serde_json::from_str(&erased.1).unwrap();
    assert_eq!(
        answer["subjects"],
        json!([format!("lead-{}", person.lead_id)])
    );
    assert!(
        answer["linked_subjects"].as_u64().unwrap() >= 2,
        "the email and the Calendly delivery go with the lead: {answer}"
    );
    let again = post(
        &app,
        &admin,
        "/api/admin/erasures",
        &json!({"subject": person.email}),
    )
    .await;
    assert_eq!(again.0, 200, "{}", again.1);
    assert_eq!(
        serde_json::from_str::<Value>(&again.1).unwrap()["already_erased"],
        true
    );
    let refused = post(
        &app,
        &admin,
        &format!("/api/leads/{}/follow-ups", person.lead_id),
        &json!({"channel": "phone", "note": "new personal data", "responded": false}),
    )
    .await;
    assert_eq!(refused.0, 422, "{}", refused.1);
    assert!(refused.1.contains("subject_erased"), "{}", refused.1);

    // The history goes on.
    let mut generator = Generator::continuing(app.handlers().clone(), 26, 100_000);
    generator
        .leads_until(app.db.store.head_position().await.unwrap() + 200)
        .await;
    app.settle().await;

    // Every read route, now and as of a moment before the erasure; every dashboard page; the
    // subject export.
    let mut read = String::new();
    for path in get_paths(&app, &person).await {
        let now = app
            .request("GET", &path, &[("Authorization", admin.clone())], b"")
            .await;
        assert!(now.status < 500, "GET {path}: {}", now.text);
        read.push_str(&now.text);
        let separator = if path.contains('?') { '&' } else { '?' };
        let past = format!("{path}{separator}as_of={before_erasure}");
        let then = app
            .request("GET", &past, &[("Authorization", admin.clone())], b"")
            .await;
        assert!(then.status < 500, "GET {past}: {}", then.text);
        read.push_str(&then.text);
    }
    person.assert_absent(read.as_bytes(), "a read route");
    let crm = app
        .get(&format!("/api/leads/{}", person.lead_id), Some(&sales))
        .await;
    assert!(
        crm.text.contains(adapters::personal::ERASED),
        "{}",
        crm.text
    );

    let browser = Browser::sign_in(&app, ADMIN_TOKEN).await;
    for page in [
        "/dashboard",
        "/dashboard/crm",
        "/dashboard/commissions",
        "/dashboard/reconciliation",
        "/dashboard/audit",
        "/dashboard/dead-letters",
        "/dashboard/crm?lang=ar",
        "/dashboard/audit?lang=ar",
    ] {
        let shown = browser.get(page, None).await;
        assert_eq!(shown.status, 200, "{page}");
        person.assert_absent(shown.html.as_bytes(), page);
    }
    let export = app
        .get(
            &format!("/api/admin/subjects/export?subject={}", person.lead_id),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(export.status, 200, "{}", export.text);
    person.assert_absent(export.text.as_bytes(), "the subject export");
    assert_eq!(
        export.body["erased"],
        json!([format!("lead-{}", person.lead_id)])
    );
    assert!(export.text.contains(adapters::personal::ERASED));

    let store = app.db.store.clone();
    let url = app.db.url.clone();
    let db = app.stop_keeping_db().await;
    person.assert_absent(&logs.0.lock().unwrap(), "the service's log");

    // The chains hold; a rebuild and as-of at the head agree with the live read models.
    succeed(revledger(&["verify"], &url, &erasure_log)).await;
    let live = read_models(&store).await;
    let head = store.head_position().await.unwrap();
    for projection in projections::read_models() {
        let scratch = projections::runtime::as_of(
            store.clone(),
            projection.clone(),
            projections::AsOf::Position(head),
        )
        .await
        .unwrap();
        for table in projection.tables() {
            assert_eq!(
                projections::runtime::dump_table(&scratch, table)
                    .await
                    .unwrap(),
                live[*table],
                "{table} as of the head equals the live table"
            );
        }
    }
    succeed(revledger(&["rebuild"], &url, &erasure_log)).await;
    assert!(
        read_models(&store).await == live,
        "a rebuild reproduces every read model"
    );

    // Not a byte of them in the database's files, nor in a fresh backup.
    // (The search finds what is there: the lead's id, which is not personal, is in clear.)
    let files = database_files(&db).await;
    let mut holds_the_id = false;
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        holds_the_id |= contains(&bytes, person.lead_id.as_bytes());
        person.assert_absent(&bytes, &file.display().to_string());
    }
    assert!(
        holds_the_id,
        "the search reads the database's files: {files:?}"
    );
    let fresh = dir.join(backup_name(engine, "after"));
    succeed(script("backup.sh", &url, &fresh, &erasure_log)).await;
    let backup = backup_bytes(engine, &fresh).await;
    assert!(contains(&backup, person.lead_id.as_bytes()));
    person.assert_absent(&backup, "a fresh backup");

    // The backup taken before the erasure, restored, is erased again from the erasure log.
    let (restored_url, restored) = restore_target(engine, &dir).await;
    succeed(script(
        "restore.sh",
        &restored_url,
        &backup_before,
        &erasure_log,
    ))
    .await;
    let exported = succeed(revledger(
        &["subject", "export", "--subject", &person.lead_id],
        &restored_url,
        &erasure_log,
    ))
    .await;
    person.assert_absent(exported.as_bytes(), "the restored backup's export");
    let exported: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(
        exported["erased"],
        json!([format!("lead-{}", person.lead_id)])
    );
    assert_eq!(
        exported["streams"][0]["events"][0]["payload"]["name"],
        adapters::personal::ERASED
    );
    succeed(revledger(&["verify"], &restored_url, &erasure_log)).await;
    let events = succeed(revledger(&["events"], &restored_url, &erasure_log)).await;
    assert!(
        events.contains("\"SubjectErased\""),
        "the restored log records the erasure"
    );

    if let Some(restored) = restored {
        restored.cleanup().await;
    }
    drop(store);
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn post(app: &TestApp, authorization: &str, path: &str, body: &Value) -> (u16, String) {
    let answer = app
        .request(
            "POST",
            path,
            &[
                ("Authorization", authorization.to_owned()),
                ("Content-Type", "application/json".to_owned()),
            ],
            &serde_json::to_vec(body).unwrap(),
        )
        .await;
    (answer.status, answer.text)
}

/// Every documented GET path, its parameters filled with the person's ids where they name a
/// lead or a stream, and with ids the generated history has elsewhere.
async fn get_paths(app: &TestApp, person: &Person) -> Vec<String> {
    let document = app.get("/openapi.json", None).await.body;
    let month = {
        let now = time::OffsetDateTime::now_utc();
        format!("{:04}-{:02}", now.year(), u8::from(now.month()))
    };
    let mut paths = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        if item.get("get").is_none() || path.starts_with("/dashboard") {
            continue;
        }
        let filled = path
            .replace("{id}", &person.lead_id)
            .replace("{lead_id}", &person.lead_id)
            .replace("{stream_id}", &format!("lead-{}", person.lead_id))
            .replace("{month}", &month)
            .replace("{account}", "cash");
        let filled = if path == "/api/admin/subjects/export" {
            format!("{filled}?subject={}", person.lead_id)
        } else {
            filled
        };
        paths.push(filled);
    }
    paths.push("/api/partners/p-referral".into());
    paths.push("/api/partners/p-referral/statements/2026-01".into());
    paths.push(format!("/api/partners/p-referral/statements/{month}.csv"));
    paths.push("/api/events?limit=100000".into());
    paths
}

/// The whole log as stored (envelopes, not opened).
async fn raw_log(store: &Arc<dyn EventStore>) -> String {
    let mut text = String::new();
    let mut after = adapters::store::Checkpoint::START;
    loop {
        let batch = store.read_committed(after, 10_000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = adapters::store::Checkpoint::after(last);
        for event in &batch {
            text.push_str(&event.payload.to_string());
            text.push_str(&event.metadata.to_string());
        }
    }
    text
}

type Tables = std::collections::BTreeMap<String, Vec<Vec<adapters::sql::SqlValue>>>;

async fn read_models(store: &Arc<dyn EventStore>) -> Tables {
    let mut tables = Tables::new();
    for projection in projections::read_models() {
        for table in projection.tables() {
            tables.insert(
                table.to_string(),
                projections::runtime::dump_table(&store.sql(), table)
                    .await
                    .unwrap(),
            );
        }
    }
    tables
}

/// The files that hold the database: SQLite's file and its WAL; PostgreSQL's relation files of
/// this database and the cluster's WAL (shared with other tests' databases, which hold other
/// values).
async fn database_files(db: &TestDb) -> Vec<PathBuf> {
    match db.engine {
        Engine::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://").to_owned();
            [String::new(), "-wal".into()]
                .iter()
                .map(|suffix| PathBuf::from(format!("{path}{suffix}")))
                .filter(|path| path.exists())
                .collect()
        }
        Engine::Postgres => {
            let sql = db.store.sql();
            let data_dir = sql
                .fetch_optional(
                    "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
                    &[],
                )
                .await
                .unwrap()
                .unwrap()
                .text(0)
                .unwrap();
            sql.execute("CHECKPOINT", &[]).await.unwrap();
            let relations = sql
                .fetch_all(
                    "SELECT pg_relation_filepath(oid) FROM pg_class \
                     WHERE pg_relation_filepath(oid) IS NOT NULL",
                    &[],
                )
                .await
                .unwrap();
            let mut files: Vec<PathBuf> = relations
                .iter()
                .map(|row| Path::new(&data_dir).join(row.text(0).unwrap()))
                .filter(|path| path.exists())
                .collect();
            let wal = Path::new(&data_dir).join("pg_wal");
            for entry in std::fs::read_dir(&wal).unwrap().flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_file()) {
                    files.push(entry.path());
                }
            }
            files
        }
    }
}

fn backup_name(engine: Engine, when: &str) -> String {
    match engine {
        Engine::Sqlite => format!("ledger-{when}.sqlite3"),
        Engine::Postgres => format!("ledger-{when}.dump"),
    }
}

/// A backup's contents as bytes to search: SQLite's file, or PostgreSQL's archive as the SQL
/// it restores (the archive itself is compressed).
async fn backup_bytes(engine: Engine, file: &Path) -> Vec<u8> {
    match engine {
        Engine::Sqlite => std::fs::read(file).unwrap(),
        Engine::Postgres => {
            let mut command = Command::new("pg_restore");
            command.arg("--file=-").arg(file);
            succeed(command).await.into_bytes()
        }
    }
}

/// Where the backup taken before the erasure is restored: a new file, or a new database.
async fn restore_target(engine: Engine, dir: &Path) -> (String, Option<TestDb>) {
    match engine {
        Engine::Sqlite => (
            format!("sqlite://{}", dir.join("restored.db").display()),
            None,
        ),
        Engine::Postgres => {
            let target = TestDb::unmigrated(Engine::Postgres).await.unwrap();
            (target.url.clone(), Some(target))
        }
    }
}

/// An `ops/` script (its `revledger erase --reapply` with this erasure log).
fn script(name: &str, url: &str, file: &Path, erasure_log: &Path) -> Command {
    let mut command = crate::ops::script(name, url, file);
    command.env("REVLEDGER_ERASURE_LOG", erasure_log);
    command
}

/// The binary, with this erasure log.
fn revledger(args: &[&str], url: &str, erasure_log: &Path) -> Command {
    let mut command = crate::ops::revledger(args, url);
    command.env("REVLEDGER_ERASURE_LOG", erasure_log);
    command
}

crate::on_both_engines!(
    an_email_erases_the_lead_the_partner_contact_and_the_referral_it_names,
    a_master_key_wraps_every_key_and_without_it_nothing_opens,
    a_lead_captured_in_clear_before_sealing_is_refused_with_the_reason,
);

fn at(day: u8) -> time::OffsetDateTime {
    time::macros::datetime!(2026-03-01 09:00 UTC) + time::Duration::days(i64::from(day))
}

fn capture(lead_id: &str, name: &str, email: &str) -> domain::lead::LeadCommand {
    domain::lead::LeadCommand::Capture {
        lead_id: lead_id.into(),
        name: name.into(),
        company: Some("Shared Email Co".into()),
        email: Some(email.into()),
        phone: Some("+966500000001".into()),
        source: "website".into(),
        partner_id: None,
        utm: None,
        owner: None,
        at: at(2),
    }
}

async fn an_email_erases_the_lead_the_partner_contact_and_the_referral_it_names(db: &TestDb) {
    use crate::app::envelope;
    use domain::partner::{PartnerCommand, PartnerTier};
    let handlers = app::handlers::Handlers::new(db.store.clone());
    let email = "Shared.Person@Example.sa";
    let enroll = PartnerCommand::Enroll {
        partner_id: "p-shared".into(),
        name: "Shared Person".into(),
        email: email.into(),
        tier: PartnerTier::Referral,
        at: at(0),
    };
    handlers
        .partners
        .execute(envelope("p-shared", enroll))
        .await
        .unwrap();
    let click = PartnerCommand::RecordReferral {
        lead_email: "shared.person@example.sa".into(),
        clicked_at: at(1),
        at: at(1),
    };
    handlers
        .partners
        .execute(envelope("p-shared", click))
        .await
        .unwrap();
    handlers
        .leads
        .execute(envelope(
            "lead-shared",
            capture("lead-shared", "Shared Person", email),
        ))
        .await
        .unwrap();
    let untouched = "someone.else@example.sa";
    handlers
        .leads
        .execute(envelope(
            "lead-other",
            capture("lead-other", "Someone Else", untouched),
        ))
        .await
        .unwrap();

    let log = app::personal::ErasureLog::new(temp_dir().join("erasures.jsonl"));
    let subject = app::personal::SubjectRef::parse(" SHARED.person@example.sa ").unwrap();
    let erased = app::personal::erase(&db.store, &log, &subject, "test")
        .await
        .unwrap();
    assert_eq!(erased.subjects, ["lead-lead-shared", "partner-p-shared"]);
    assert_eq!(
        erased.linked_subjects, 1,
        "the email's own subject (the referral)"
    );
    assert_eq!(log.entries().unwrap().len(), 1);

    let partner = db
        .store
        .read_stream("partner-p-shared", 1, 10)
        .await
        .unwrap();
    assert_eq!(partner[0].payload["name"], adapters::personal::ERASED);
    assert_eq!(partner[0].payload["email"], adapters::personal::ERASED);
    assert_eq!(partner[1].payload["lead_email"], adapters::personal::ERASED);
    let lead = db
        .store
        .read_stream("lead-lead-shared", 1, 10)
        .await
        .unwrap();
    for field in ["name", "company", "email", "phone"] {
        assert_eq!(
            lead[0].payload[field],
            adapters::personal::ERASED,
            "{field}"
        );
    }
    let other = db
        .store
        .read_stream("lead-lead-other", 1, 10)
        .await
        .unwrap();
    assert_eq!(
        other[0].payload["email"], untouched,
        "another person is untouched"
    );

    // The log still verifies; the erasure is in it, with no personal data.
    let report = adapters::store::verify(db.store.as_ref()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    // Read as committed: the gap-safe `read_all` stops below any other test's transaction
    // still open on the shared PostgreSQL cluster, and may not reach the head yet.
    let head = db.store.head_position().await.unwrap();
    let last = db
        .store
        .read_committed(adapters::store::Checkpoint::START, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|event| event.position == head)
        .unwrap();
    assert_eq!(last.event_type, "SubjectErased");
    assert!(!last
        .payload
        .to_string()
        .to_lowercase()
        .contains("shared.person"));

    // An unknown person is 404, a malformed subject 400, both before anything is written.
    let unknown = app::personal::SubjectRef::parse("nobody@example.sa").unwrap();
    assert!(matches!(
        app::personal::erase(&db.store, &log, &unknown, "test").await,
        Err(app::personal::PersonalError::NotFound(_))
    ));
    assert!(matches!(
        app::personal::SubjectRef::parse("not an id or email"),
        Err(app::personal::PersonalError::InvalidSubject(_))
    ));
    assert_eq!(log.entries().unwrap().len(), 1);
}

async fn a_master_key_wraps_every_key_and_without_it_nothing_opens(db: &TestDb) {
    use crate::app::envelope;
    let key_file = temp_dir().join("master.key");
    std::fs::write(&key_file, "ab".repeat(32)).unwrap();
    let master = adapters::personal::Vault::read_master_key(&key_file).unwrap();
    let wrapped = adapters::store::open_with_master_key(&db.url, Some(master))
        .await
        .unwrap();
    let handlers = app::handlers::Handlers::new(wrapped.clone());
    handlers
        .leads
        .execute(envelope(
            "lead-w",
            capture("lead-w", "Wrapped Name", "w@example.sa"),
        ))
        .await
        .unwrap();
    let rows = db
        .store
        .sql()
        .fetch_all("SELECT subject, wrapped FROM personal_keys", &[])
        .await
        .unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|row| row.bool(1).unwrap()),
        "every key is wrapped"
    );
    let opened = wrapped.read_stream("lead-lead-w", 1, 1).await.unwrap();
    assert_eq!(opened[0].payload["name"], "Wrapped Name");

    // Without the master key (or with another), a wrapped key is refused, saying what to set.
    let refused = db.store.read_stream("lead-lead-w", 1, 1).await.unwrap_err();
    assert!(
        refused.to_string().contains("REVLEDGER_MASTER_KEY_FILE"),
        "{refused}"
    );
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    let other = adapters::personal::Vault::read_master_key(&key_file).unwrap();
    let wrong = adapters::store::open_with_master_key(&db.url, Some(other))
        .await
        .unwrap();
    let refused = wrong.read_stream("lead-lead-w", 1, 1).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("does not open with this master key"),
        "{refused}"
    );
    std::fs::write(&key_file, "short").unwrap();
    assert!(adapters::personal::Vault::read_master_key(&key_file)
        .unwrap_err()
        .contains("32 bytes or 64 hexadecimal digits"));
}

async fn a_lead_captured_in_clear_before_sealing_is_refused_with_the_reason(db: &TestDb) {
    // As an older version wrote it: schema version 1, in clear, straight to the engine.
    let bare: Arc<dyn EventStore> = match db.engine {
        Engine::Sqlite => Arc::new(
            adapters::store::sqlite::SqliteStore::open(&db.url)
                .await
                .unwrap(),
        ),
        Engine::Postgres => Arc::new(
            adapters::store::postgres::PostgresStore::open(&db.url)
                .await
                .unwrap(),
        ),
    };
    let payload = json!({"lead_id": "old", "name": "Old Clear", "company": null,
        "email": "old@example.sa", "phone": null, "source": "website", "partner_id": null,
        "utm": null, "owner": null, "captured_at": "2025-01-01T00:00:00Z"});
    bare.append(adapters::store::AppendRequest {
        stream_id: "lead-old".into(),
        stream_type: "lead".into(),
        expected_version: adapters::store::ExpectedVersion::NoStream,
        command_id: None,
        events: vec![adapters::store::NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "LeadCaptured".into(),
            schema_version: 1,
            payload,
            metadata: Default::default(),
        }],
        inbox: None,
    })
    .await
    .unwrap();
    let log = app::personal::ErasureLog::new(temp_dir().join("erasures.jsonl"));
    let refused = app::personal::erase(
        &db.store,
        &log,
        &app::personal::SubjectRef::Lead("old".into()),
        "test",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(refused, app::personal::PersonalError::WrittenInClear { ref lead_id, .. } if lead_id == "old"),
        "{refused}"
    );
    assert!(
        log.entries().unwrap().is_empty(),
        "nothing is logged for a refusal"
    );
    // Its clear values still read as they are (version 1 upcasts to 2 unchanged).
    let read = db.store.read_stream("lead-old", 1, 1).await.unwrap();
    assert_eq!(read[0].payload["name"], "Old Clear");
}
