//! Personal data sealed per subject, so that a person can be erased without touching the log.
//!
//! The personal fields of events ([`fields::PERSONAL_FIELDS`]: a lead's name, company, email,
//! phone and follow-up notes; a partner contact's name and email; a referred lead's email) are
//! stored as envelopes ([`envelope`]), each sealed with its subject's data key. The hash chains
//! cover the envelopes, so deleting a key ([`Vault::erase`]) makes every value of that subject
//! unreadable everywhere at once (the log, the read models built from it, as-of copies,
//! backups) and `verify` still passes.
//!
//! Where the clear values appear:
//! - **Sealing** happens at the store boundary ([`SealedStore`]): an append's events are sealed
//!   before they are hashed. The domain never sees an envelope on the way in.
//! - **Opening** happens in two places only. A stream read for an aggregate
//!   ([`crate::store::EventStore::read_stream`]) is opened, so the domain folds clear values.
//!   What leaves the service (an HTTP answer, a page, an export) is opened at that edge
//!   ([`Vault::reveal_json`], [`Vault::reveal_text`]). The log read by the read models
//!   (`read_all`) is not: read models keep envelopes, and nothing in the database holds a
//!   personal value in clear.
//! - An envelope whose key is gone opens as [`envelope::ERASED`].
//!
//! Emails are found without being stored: each sealed email is indexed by its keyed hash
//! (HMAC-SHA-256 under a secret kept in the database), pointing at its subject.

pub mod envelope;
pub mod fields;
mod store;

use std::collections::{BTreeSet, HashMap};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;

pub use envelope::{DataKey, ERASED};
pub use fields::SEALED_SCHEMA_VERSION;
pub use store::SealedStore;

use crate::sql::{SqlDb, SqlTx, SqlValue};
use crate::store::{NewEvent, RecordedEvent, StoreError};

/// Subjects read in one statement at most (a page of a board, a batch of events).
const SUBJECTS_PER_READ: usize = 500;

/// The key store and the sealing and opening of personal values.
pub struct Vault {
    db: SqlDb,
    /// Wraps every data key and the index secret when set (read from a file at start-up).
    master: Option<DataKey>,
    index_secret: tokio::sync::OnceCell<DataKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("engine", &self.db.engine())
            .field("master_key", &self.master.is_some())
            .finish()
    }
}

/// Why personal data could not be sealed or opened.
fn refused(message: String) -> StoreError {
    StoreError::InvalidAppend(message)
}

impl Vault {
    pub fn new(db: SqlDb, master: Option<DataKey>) -> Vault {
        Vault {
            db,
            master,
            index_secret: tokio::sync::OnceCell::new(),
        }
    }

    /// Reads a master key file: 32 bytes, or 64 hexadecimal digits (surrounding whitespace
    /// ignored).
    pub fn read_master_key(path: &std::path::Path) -> Result<DataKey, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the master key file {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let key = if bytes.len() == 32 {
            DataKey::from_bytes(&bytes)
        } else {
            hex::decode(text.trim())
                .ok()
                .and_then(|raw| DataKey::from_bytes(&raw))
        };
        key.ok_or_else(|| {
            format!(
                "the master key file {} must hold 32 bytes or 64 hexadecimal digits",
                path.display()
            )
        })
    }

    // -----------------------------------------------------------------------------------------
    // Sealing (the store boundary).

    /// Seals the personal fields of `events` in place and marks them with
    /// [`SEALED_SCHEMA_VERSION`]. Values already sealed are left as they are. A subject that
    /// was erased gets no new key: recording personal data about it is refused.
    pub async fn seal(&self, events: &mut [NewEvent]) -> Result<(), StoreError> {
        for event in events.iter_mut() {
            let Some(fields) = fields::of(&event.event_type) else {
                continue;
            };
            let Some(subject) = self.subject_of(fields, &event.payload).await? else {
                continue;
            };
            let mut indexes = Vec::new();
            for field in fields.emails {
                if let Some(email) = event.payload.get(*field).and_then(Value::as_str) {
                    if envelope::parse(email).is_none() {
                        indexes.push(self.email_index(email).await?);
                    }
                }
            }
            let key = self.key_for_sealing(&subject, &indexes).await?;
            let Value::Object(payload) = &mut event.payload else {
                continue;
            };
            for field in fields.sealed {
                let Some(Value::String(text)) = payload.get_mut(*field) else {
                    continue;
                };
                if envelope::parse(text).is_none() {
                    *text = envelope::seal(&key, &subject, text).map_err(random_failed)?;
                }
            }
            event.schema_version = event.schema_version.max(SEALED_SCHEMA_VERSION);
        }
        Ok(())
    }

    /// The subject of a payload's personal fields, `None` when the payload lacks the field
    /// that names it (the domain refuses such events before they get here).
    async fn subject_of(
        &self,
        fields: &fields::PersonalFields,
        payload: &Value,
    ) -> Result<Option<String>, StoreError> {
        match fields.subject {
            fields::SubjectOf::Id { .. } => Ok(fields::id_subject(fields, payload)),
            fields::SubjectOf::Email { field } => {
                let Some(email) = payload.get(field).and_then(Value::as_str) else {
                    return Ok(None);
                };
                Ok(Some(match envelope::parse(email) {
                    Some(sealed) => sealed.subject.to_owned(),
                    None => format!("email-{}", self.email_index(email).await?),
                }))
            }
        }
    }

    /// The subject's key, made now if it has none, with `email_indexes` recorded as its
    /// emails; refused if the subject was erased.
    ///
    /// Written as derived state (no wait for the disk, one transaction): the key is only ever
    /// used by an append or an inbox row that commits durably after it, and a durable commit
    /// carries every earlier one to the disk with it (SQLite's WAL and PostgreSQL's are
    /// written in order). So no event or kept delivery can outlive its key in a crash, and the
    /// fsync of a separate durable commit per new person is saved.
    async fn key_for_sealing(
        &self,
        subject: &str,
        email_indexes: &[String],
    ) -> Result<DataKey, StoreError> {
        if email_indexes.is_empty() {
            if let Some(key) = self.keys(&[subject.to_owned()]).await?.remove(subject) {
                return Ok(key);
            }
        }
        self.make_key(subject, email_indexes).await
    }

    /// [`Vault::key_for_sealing`] without looking first: for a subject that is new but for a
    /// retry (a webhook delivery), the transaction that makes the key reads it back anyway.
    async fn make_key(
        &self,
        subject: &str,
        email_indexes: &[String],
    ) -> Result<DataKey, StoreError> {
        if let SqlDb::Postgres(pool) = &self.db {
            return self
                .make_key_in_one_statement(pool, subject, email_indexes)
                .await;
        }
        let mut tx = self.db.begin_derived().await?;
        let erased = tx
            .fetch_optional(
                "SELECT erased_at_us FROM personal_erasures WHERE subject = ?",
                &[subject.into()],
            )
            .await?;
        if erased.is_some() {
            tx.rollback().await?;
            return Err(StoreError::SubjectErased {
                subject: subject.to_owned(),
            });
        }
        let key = DataKey::generate().map_err(random_failed)?;
        let (stored, wrapped) = self.wrap(&key, subject)?;
        tx.write(
            "INSERT INTO personal_keys (subject, data_key, wrapped, created_at_us) \
             VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO NOTHING",
            &[
                subject.into(),
                stored.into(),
                SqlValue::Bool(wrapped),
                crate::clock::unix_micros(crate::clock::now_micros()).into(),
            ],
        )
        .await?;
        for index in email_indexes {
            tx.write(
                "INSERT INTO personal_emails (email_index, subject) VALUES (?, ?) \
                 ON CONFLICT (email_index, subject) DO NOTHING",
                &[index.as_str().into(), subject.into()],
            )
            .await?;
        }
        let row = tx
            .fetch_optional(
                "SELECT data_key, wrapped FROM personal_keys WHERE subject = ?",
                &[subject.into()],
            )
            .await?;
        tx.commit().await?;
        match row {
            Some(row) => self.unwrap_key(subject, row.text(0)?, row.bool(1)?),
            None => Err(refused(format!("the key of {subject} was not stored"))),
        }
    }

    /// [`Vault::make_key`] on PostgreSQL in one round trip: a person's first capture and every
    /// kept webhook delivery make a key, and the transaction the other engine uses is five
    /// (measured: a capture's p50 went from 2.6 to 5.8 ms). One statement checks the erasure,
    /// inserts the key and the email index rows, and returns the key (the one it inserted, or
    /// the one already there: a statement does not see its own inserts, hence the union), with
    /// its commit not waited for on the disk, as [`SqlDb::begin_derived`]'s.
    async fn make_key_in_one_statement(
        &self,
        pool: &sqlx::PgPool,
        subject: &str,
        email_indexes: &[String],
    ) -> Result<DataKey, StoreError> {
        use sqlx::Row;
        let key = DataKey::generate().map_err(random_failed)?;
        let (stored, wrapped) = self.wrap(&key, subject)?;
        let rows = sqlx::query(
            "WITH derived AS (SELECT set_config('synchronous_commit', 'off', true) AS setting), \
             erased AS (SELECT 1 FROM personal_erasures WHERE subject = $1), \
             inserted AS (\
               INSERT INTO personal_keys (subject, data_key, wrapped, created_at_us) \
               SELECT $1, $2, $3, $4 FROM derived WHERE NOT EXISTS (SELECT 1 FROM erased) \
               ON CONFLICT (subject) DO NOTHING RETURNING data_key, wrapped), \
             indexed AS (\
               INSERT INTO personal_emails (email_index, subject) \
               SELECT email_index, $1 FROM UNNEST($5::text[]) AS email_index \
               WHERE NOT EXISTS (SELECT 1 FROM erased) \
               ON CONFLICT (email_index, subject) DO NOTHING) \
             SELECT data_key, wrapped, FALSE AS erased FROM inserted \
             UNION ALL SELECT data_key, wrapped, FALSE FROM personal_keys \
               WHERE subject = $1 AND NOT EXISTS (SELECT 1 FROM inserted) \
             UNION ALL SELECT NULL, NULL, TRUE FROM erased",
        )
        .bind(subject)
        .bind(stored)
        .bind(wrapped)
        .bind(crate::clock::unix_micros(crate::clock::now_micros()))
        .bind(email_indexes)
        .fetch_all(pool)
        .await?;
        if rows.iter().any(|row| row.get::<bool, _>(2)) {
            return Err(StoreError::SubjectErased {
                subject: subject.to_owned(),
            });
        }
        let row = rows
            .first()
            .ok_or_else(|| refused(format!("the key of {subject} was not stored")))?;
        self.unwrap_key(subject, row.try_get(0)?, row.try_get(1)?)
    }

    /// The stored form of `key`: base64, sealed with the master key first when there is one.
    fn wrap(&self, key: &DataKey, subject: &str) -> Result<(String, bool), StoreError> {
        Ok(match &self.master {
            Some(master) => (
                BASE64.encode(
                    master
                        .seal_bytes(key.bytes(), subject.as_bytes())
                        .map_err(random_failed)?,
                ),
                true,
            ),
            None => (BASE64.encode(key.bytes()), false),
        })
    }

    /// The keys of those of `subjects` that have one.
    pub async fn keys(&self, subjects: &[String]) -> Result<HashMap<String, DataKey>, StoreError> {
        let mut keys = HashMap::new();
        for chunk in subjects.chunks(SUBJECTS_PER_READ) {
            let (placeholders, params) = crate::sql::in_list(chunk.iter().map(String::as_str));
            let rows = self
                .db
                .fetch_all(
                    &format!(
                        "SELECT subject, data_key, wrapped FROM personal_keys \
                         WHERE subject IN ({placeholders})"
                    ),
                    &params,
                )
                .await?;
            for row in rows {
                let subject = row.text(0)?;
                let key = self.unwrap_key(&subject, row.text(1)?, row.bool(2)?)?;
                keys.insert(subject, key);
            }
        }
        Ok(keys)
    }

    /// A key as stored (base64; sealed with the master key when `wrapped`).
    fn unwrap_key(
        &self,
        subject: &str,
        stored: String,
        wrapped: bool,
    ) -> Result<DataKey, StoreError> {
        let stored = BASE64
            .decode(stored)
            .map_err(|e| refused(format!("the stored key of {subject} is not base64: {e}")))?;
        let raw = if wrapped {
            let master = self.master.as_ref().ok_or_else(|| {
                refused(format!(
                    "the key of {subject} is wrapped by a master key: set \
                     REVLEDGER_MASTER_KEY_FILE"
                ))
            })?;
            master
                .open_bytes(&stored, subject.as_bytes())
                .ok_or_else(|| {
                    refused(format!(
                        "the key of {subject} does not open with this master key"
                    ))
                })?
        } else {
            stored
        };
        DataKey::from_bytes(&raw)
            .ok_or_else(|| refused(format!("the stored key of {subject} is not 32 bytes")))
    }

    // -----------------------------------------------------------------------------------------
    // The email index.

    /// The keyed hash an email is indexed by (hex, 128 bits): HMAC-SHA-256 of the normalized
    /// email under the index secret, made on first use.
    pub async fn email_index(&self, email: &str) -> Result<String, StoreError> {
        let secret = self
            .index_secret
            .get_or_try_init(|| self.load_index_secret())
            .await?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.bytes())
            .expect("HMAC takes a key of any length");
        mac.update(fields::normalize_email(email).as_bytes());
        Ok(hex::encode(&mac.finalize().into_bytes()[..16]))
    }

    async fn load_index_secret(&self) -> Result<DataKey, StoreError> {
        const SUBJECT: &str = "index-secret";
        let read = "SELECT secret, wrapped FROM personal_index_secret WHERE id = 1";
        if let Some(row) = self.db.fetch_optional(read, &[]).await? {
            return self.unwrap_key(SUBJECT, row.text(0)?, row.bool(1)?);
        }
        let secret = DataKey::generate().map_err(random_failed)?;
        let (stored, wrapped) = self.wrap(&secret, SUBJECT)?;
        self.db
            .execute(
                "INSERT INTO personal_index_secret (id, secret, wrapped) VALUES (1, ?, ?) \
                 ON CONFLICT (id) DO NOTHING",
                &[stored.into(), SqlValue::Bool(wrapped)],
            )
            .await?;
        let row = self
            .db
            .fetch_optional(read, &[])
            .await?
            .ok_or_else(|| refused("the email index secret was not stored".into()))?;
        self.unwrap_key(SUBJECT, row.text(0)?, row.bool(1)?)
    }

    /// The subjects an email belongs to (leads, partner contacts, the email's own subject).
    pub async fn subjects_by_email(&self, email: &str) -> Result<Vec<String>, StoreError> {
        let index = self.email_index(email).await?;
        let rows = self
            .db
            .fetch_all(
                "SELECT subject FROM personal_emails WHERE email_index = ? ORDER BY subject",
                &[index.into()],
            )
            .await?;
        rows.iter().map(|row| row.text(0)).collect()
    }

    /// What goes with `subject` when it is erased: the email subjects (`email-<index>`) of the
    /// emails indexed for it, and the raw webhook deliveries (`delivery-<inbox id>`) whose
    /// answer names its lead or partner as touched.
    pub async fn linked_subjects_of(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        let mut linked: Vec<String> = self
            .db
            .fetch_all(
                "SELECT email_index FROM personal_emails WHERE subject = ? ORDER BY email_index",
                &[subject.into()],
            )
            .await?
            .iter()
            .map(|row| Ok(format!("email-{}", row.text(0)?)))
            .collect::<Result<_, StoreError>>()?;
        let touched = match subject.split_once('-') {
            Some(("lead", id)) => Some(("lead_id", id)),
            Some(("partner", id)) => Some(("partner_id", id)),
            _ => None,
        };
        if let Some((member, id)) = touched {
            // The answer is JSON text; its `touched` member names what the delivery was about.
            let named = match self.db.engine() {
                "postgres" => format!("(response::jsonb -> 'touched' ->> '{member}')"),
                _ => format!("json_extract(response, '$.touched.{member}')"),
            };
            let rows = self
                .db
                .fetch_all(
                    &format!(
                        "SELECT inbox_id FROM webhook_inbox WHERE {named} = ? ORDER BY inbox_id"
                    ),
                    &[id.into()],
                )
                .await?;
            for row in rows {
                linked.push(format!("delivery-{}", row.text(0)?));
            }
        }
        Ok(linked)
    }

    /// `text` sealed under `subject` (whose key is made now if it has none).
    pub async fn seal_text(&self, subject: &str, text: &str) -> Result<String, StoreError> {
        let key = self.make_key(subject, &[]).await?;
        envelope::seal(&key, subject, text).map_err(random_failed)
    }

    /// `text` opened if it is an envelope ([`ERASED`] once its key is gone), else as it is.
    pub async fn open_text(&self, text: &str) -> Result<String, StoreError> {
        let Some(sealed) = envelope::parse(text) else {
            return Ok(text.to_owned());
        };
        let mut cache = KeyCache::default();
        self.fill(&mut cache, BTreeSet::from([sealed.subject.to_owned()]))
            .await?;
        Ok(cache.open(text).unwrap_or_else(|| ERASED.to_owned()))
    }

    // -----------------------------------------------------------------------------------------
    // Opening.

    /// Opens the personal fields of `events` in place (a stream read for an aggregate).
    pub async fn open_events(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let mut subjects = BTreeSet::new();
        for event in events.iter() {
            for_each_sealed(&event.event_type, &event.payload, |envelope| {
                subjects.insert(envelope.subject.to_owned());
            });
        }
        if subjects.is_empty() {
            return Ok(());
        }
        let mut keys = KeyCache::default();
        self.fill(&mut keys, subjects).await?;
        for event in events.iter_mut() {
            let Some(fields) = fields::of(&event.event_type) else {
                continue;
            };
            let Value::Object(payload) = &mut event.payload else {
                continue;
            };
            for field in fields.sealed {
                if let Some(Value::String(text)) = payload.get_mut(*field) {
                    if let Some(clear) = keys.open(text) {
                        *text = clear;
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens every envelope among the strings of `value`, wherever it is (an answer's JSON).
    pub async fn reveal_json(&self, value: &mut Value) -> Result<(), StoreError> {
        self.reveal_json_with(value, &mut KeyCache::default()).await
    }

    /// [`Vault::reveal_json`], reading from the key store only the keys `cache` lacks (an
    /// answer streamed line by line keeps one cache for all its lines).
    pub async fn reveal_json_with(
        &self,
        value: &mut Value,
        cache: &mut KeyCache,
    ) -> Result<(), StoreError> {
        let mut subjects = BTreeSet::new();
        visit_strings(value, &mut |text| {
            if let Some(envelope) = envelope::parse(text) {
                subjects.insert(envelope.subject.to_owned());
            }
        });
        if subjects.is_empty() {
            return Ok(());
        }
        self.fill(cache, subjects).await?;
        visit_strings_mut(value, &mut |text| {
            if let Some(clear) = cache.open(text) {
                *text = clear;
            }
        });
        Ok(())
    }

    /// `text` with every envelope inside it replaced by its value passed through `escape` (a
    /// page, a CSV file): the envelope's own characters never need escaping, its value may.
    pub async fn reveal_text(
        &self,
        text: &str,
        escape: impl Fn(&str) -> String,
    ) -> Result<String, StoreError> {
        let found = envelope::find_all(text);
        if found.is_empty() {
            return Ok(text.to_owned());
        }
        let subjects: BTreeSet<String> = found
            .iter()
            .map(|(_, envelope)| envelope.subject.to_owned())
            .collect();
        let mut keys = KeyCache::default();
        self.fill(&mut keys, subjects).await?;
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (range, envelope) in found {
            out.push_str(&text[last..range.start]);
            let clear = keys.open_envelope(&envelope);
            out.push_str(&escape(&clear));
            last = range.end;
        }
        out.push_str(&text[last..]);
        Ok(out)
    }

    /// Reads into `cache` the keys of those of `subjects` it lacks (one statement per
    /// [`SUBJECTS_PER_READ`]); a subject without a key is remembered as erased.
    async fn fill(
        &self,
        cache: &mut KeyCache,
        subjects: BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let missing: Vec<String> = subjects
            .into_iter()
            .filter(|subject| !cache.0.contains_key(subject))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut found = self.keys(&missing).await?;
        for subject in missing {
            let key = found.remove(&subject);
            cache.0.insert(subject, key);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Erasure.

    /// Deletes the keys and email index rows of `subjects` and records them as erased, in one
    /// transaction. Returns the subjects that had a key.
    pub async fn forget(
        &self,
        subjects: &[String],
        erased_at_us: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx: SqlTx = self.db.begin().await?;
        let mut had_keys = Vec::new();
        for subject in subjects {
            let deleted = tx
                .execute(
                    "DELETE FROM personal_keys WHERE subject = ?",
                    &[subject.as_str().into()],
                )
                .await?;
            if deleted > 0 {
                had_keys.push(subject.clone());
            }
            tx.execute(
                "DELETE FROM personal_emails WHERE subject = ?",
                &[subject.as_str().into()],
            )
            .await?;
            if let Some(index) = subject.strip_prefix("email-") {
                tx.execute(
                    "DELETE FROM personal_emails WHERE email_index = ?",
                    &[index.into()],
                )
                .await?;
            }
            tx.execute(
                "INSERT INTO personal_erasures (subject, erased_at_us) VALUES (?, ?) \
                 ON CONFLICT (subject) DO NOTHING",
                &[subject.as_str().into(), erased_at_us.into()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(had_keys)
    }

    /// Whether `subject` was erased.
    pub async fn is_erased(&self, subject: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .fetch_optional(
                "SELECT erased_at_us FROM personal_erasures WHERE subject = ?",
                &[subject.into()],
            )
            .await?
            .is_some())
    }
}

/// What two emails are compared by when either may be sealed (referral attribution): the
/// email's index for a sealed one — an email subject's envelope names it, a lead's or
/// partner's is looked up — and the normalized email for one written in clear before sealing.
/// `None` once the subject is erased (its index rows are gone with its key).
pub async fn email_match_key(db: &SqlDb, email: &str) -> Result<Option<String>, StoreError> {
    Ok(email_match_keys(db, &[email]).await?.pop().flatten())
}

/// [`email_match_key`] of each of `emails`, in order, with one read for all the lead and
/// partner subjects among them.
pub async fn email_match_keys(
    db: &SqlDb,
    emails: &[&str],
) -> Result<Vec<Option<String>>, StoreError> {
    enum Key<'a> {
        Known(String),
        OfSubject(&'a str),
    }
    let keys: Vec<Key<'_>> = emails
        .iter()
        .map(|email| match envelope::parse(email) {
            None => Key::Known(fields::normalize_email(email)),
            Some(sealed) => match sealed.subject.strip_prefix("email-") {
                Some(index) => Key::Known(index.to_owned()),
                None => Key::OfSubject(sealed.subject),
            },
        })
        .collect();
    let subjects: std::collections::BTreeSet<&str> = keys
        .iter()
        .filter_map(|key| match key {
            Key::OfSubject(subject) => Some(*subject),
            Key::Known(_) => None,
        })
        .collect();
    let mut indexes = HashMap::new();
    if !subjects.is_empty() {
        let (marks, params) = crate::sql::in_list(subjects);
        let sql = format!(
            "SELECT subject, MIN(email_index) FROM personal_emails \
             WHERE subject IN ({marks}) GROUP BY subject"
        );
        for row in db.fetch_all(&sql, &params).await? {
            indexes.insert(row.text(0)?, row.text(1)?);
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| match key {
            Key::Known(key) => Some(key),
            Key::OfSubject(subject) => indexes.get(subject).cloned(),
        })
        .collect())
}

/// The keys looked up for one answer, by subject (`None`: the subject has no key, erased).
#[derive(Default)]
pub struct KeyCache(HashMap<String, Option<DataKey>>);

impl KeyCache {
    /// The clear value of `text` if it is an envelope: opened with its subject's key, or
    /// [`ERASED`] when the key is gone or does not open it. `None` when `text` is not one.
    fn open(&self, text: &str) -> Option<String> {
        envelope::parse(text).map(|envelope| self.open_envelope(&envelope))
    }

    fn open_envelope(&self, envelope: &envelope::Envelope<'_>) -> String {
        self.0
            .get(envelope.subject)
            .and_then(Option::as_ref)
            .and_then(|key| envelope.open(key))
            .unwrap_or_else(|| ERASED.to_owned())
    }
}

/// Calls `found` with each envelope among the personal fields of a payload of `event_type`.
fn for_each_sealed(
    event_type: &str,
    payload: &Value,
    mut found: impl FnMut(envelope::Envelope<'_>),
) {
    let Some(fields) = fields::of(event_type) else {
        return;
    };
    for field in fields.sealed {
        if let Some(envelope) = payload
            .get(*field)
            .and_then(Value::as_str)
            .and_then(envelope::parse)
        {
            found(envelope);
        }
    }
}

fn visit_strings(value: &Value, visit: &mut impl FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().for_each(|item| visit_strings(item, visit)),
        Value::Object(map) => map.values().for_each(|item| visit_strings(item, visit)),
        _ => {}
    }
}

fn visit_strings_mut(value: &mut Value, visit: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| visit_strings_mut(item, visit)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|item| visit_strings_mut(item, visit)),
        _ => {}
    }
}

fn random_failed(error: getrandom::Error) -> StoreError {
    refused(format!("the system's random source failed: {error}"))
}
