//! A person's rights over their data (Saudi PDPL): erasure and subject access, one use case
//! each for the CLI (`revledger erase`, `revledger subject export`) and the admin API.
//!
//! **Erasure** deletes the data keys of everything held about a person (their lead, their
//! partner contact, the emails indexed for them), so every personal value sealed under those
//! keys reads as erased everywhere ([`adapters::personal`]), and records a `SubjectErased`
//! event that holds no personal data. The order makes it survive a crash at any step: the
//! erasure is first written to the **erasure log**, a file kept apart from the database
//! ([`ErasureLog`]); then the keys are deleted; then the event is appended. [`reapply`] does
//! the last two again for every entry of the log (idempotently: the event's command id is
//! derived from the erasure's id), which is how a restored backup taken before an erasure is
//! erased again (`ops/restore.sh`), and how an erasure cut short is finished.
//!
//! What is kept: the buyer's name on an issued tax invoice is part of the invoice, which
//! ZATCA requires to be kept for six years after the end of its financial year; it is not
//! sealed under the person's key and erasure leaves it (ARCHITECTURE.md, "Personal data").
//!
//! **Subject access** ([`export`]) gathers what is held about a person, opened: their streams'
//! events, the referral clicks recorded for their email, their invoices and their CRM row.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adapters::personal::{Vault, SEALED_SCHEMA_VERSION};
use adapters::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, Position, RecordedEvent, StoreError,
    MAX_READ_BATCH,
};
use domain::personal::{PersonalDataEvent, ERASURE_STREAM_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::process::COMMAND_NAMESPACE;

/// Events read per stream at most for an export (a lead's whole history is tens).
const MAX_EXPORTED_EVENTS_PER_STREAM: usize = MAX_READ_BATCH;

/// Whom a request is about: a lead (by id) or whoever an email belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectRef {
    Lead(String),
    Email(String),
}

impl SubjectRef {
    /// An email when it has an `@`, else a lead id.
    pub fn parse(text: &str) -> Result<SubjectRef, PersonalError> {
        let text = text.trim();
        if text.contains('@') {
            domain::partner::normalize_lead_email(text)
                .map(SubjectRef::Email)
                .map_err(|_| PersonalError::InvalidSubject(text.to_owned()))
        } else if domain::input::is_id(text) {
            Ok(SubjectRef::Lead(text.to_owned()))
        } else {
            Err(PersonalError::InvalidSubject(text.to_owned()))
        }
    }

    /// What the request named, for the record: never the email itself.
    fn kind(&self) -> &'static str {
        match self {
            SubjectRef::Lead(_) => "lead",
            SubjectRef::Email(_) => "email",
        }
    }
}

/// Why a request about a person's data was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum PersonalError {
    #[error(
        "{0:?} names no one: give a lead id (letters, digits and . _ : -) or an email address"
    )]
    InvalidSubject(String),
    #[error("no lead, partner contact or referral is held for {0}")]
    NotFound(String),
    #[error(
        "lead {lead_id} was captured before personal data was sealed (its capture at position \
         {position} is schema version 1, in clear in the hash-chained log): erasing it would \
         break verify; see ARCHITECTURE.md, \"Personal data\""
    )]
    WrittenInClear { lead_id: String, position: Position },
    #[error("this store was opened without its key store; personal data cannot be reached")]
    NoVault,
    #[error("the erasure log {path}: {reason}")]
    ErasureLog { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
}

/// The erasure log: one JSON line per erasure, appended and synced before any key is deleted,
/// kept in a file apart from the database so that restoring the database does not undo it.
#[derive(Clone, Debug)]
pub struct ErasureLog {
    path: PathBuf,
}

/// One line of the erasure log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureEntry {
    pub erasure_id: String,
    /// Every subject erased, email subjects included.
    pub subjects: Vec<String>,
    pub requested_by: String,
    pub erased_at_us: i64,
}

impl ErasureLog {
    pub fn new(path: impl Into<PathBuf>) -> ErasureLog {
        ErasureLog { path: path.into() }
    }

    /// Where the log is kept when the configuration does not say: beside an embedded
    /// database's file (`<file>.erasures.jsonl`), else `revledger-erasures.jsonl` in the
    /// working directory.
    pub fn default_for(database_url: &str) -> ErasureLog {
        match database_url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() && !path.starts_with(':') => {
                let path = path.split('?').next().unwrap_or(path);
                ErasureLog::new(format!("{path}.erasures.jsonl"))
            }
            _ => ErasureLog::new("revledger-erasures.jsonl"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, reason: impl std::fmt::Display) -> PersonalError {
        PersonalError::ErasureLog {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// Appends `entry` and syncs the file (and, for a new file, its directory).
    fn append(&self, entry: &ErasureEntry) -> Result<(), PersonalError> {
        let created = !self.path.exists();
        let mut line = serde_json::to_vec(entry).map_err(|e| self.failed(e))?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.failed(e))?;
        file.write_all(&line).map_err(|e| self.failed(e))?;
        file.sync_all().map_err(|e| self.failed(e))?;
        if created {
            if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|dir| dir.sync_all())
                    .map_err(|e| self.failed(e))?;
            }
        }
        Ok(())
    }

    /// Every entry, in the order written; none when the file does not exist.
    pub fn entries(&self) -> Result<Vec<ErasureEntry>, PersonalError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(self.failed(error)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(number, line)| {
                serde_json::from_str(line)
                    .map_err(|e| self.failed(format!("line {}: {e}", number + 1)))
            })
            .collect()
    }
}

/// What an erasure did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Erasure {
    pub erasure_id: String,
    /// The lead and partner subjects erased.
    pub subjects: Vec<String>,
    /// Emails and raw webhook deliveries erased with them.
    pub linked_subjects: u32,
    /// Where the `SubjectErased` event is in the log.
    pub position: Position,
    /// True when everything named had been erased before: nothing was done.
    pub already_erased: bool,
}

fn vault_of(store: &Arc<dyn EventStore>) -> Result<Arc<Vault>, PersonalError> {
    store.vault().ok_or(PersonalError::NoVault)
}

/// Erases everything held about `subject` (see the module docs for the order of the steps).
pub async fn erase(
    store: &Arc<dyn EventStore>,
    log: &ErasureLog,
    subject: &SubjectRef,
    actor: &str,
) -> Result<Erasure, PersonalError> {
    let vault = vault_of(store)?;
    let subjects = subjects_of(store, &vault, subject).await?;
    let mut pending = Vec::new();
    for candidate in &subjects {
        if !vault.is_erased(candidate).await? {
            pending.push(candidate.clone());
        }
    }
    if pending.is_empty() {
        return Ok(Erasure {
            erasure_id: String::new(),
            subjects: person_subjects(&subjects),
            linked_subjects: linked_subject_count(&subjects),
            position: 0,
            already_erased: true,
        });
    }
    let entry = ErasureEntry {
        erasure_id: Uuid::now_v7().to_string(),
        subjects,
        requested_by: subject.kind().to_owned(),
        erased_at_us: adapters::clock::unix_micros(adapters::clock::now_micros()),
    };
    log.append(&entry)?;
    apply(store, &vault, &entry, actor).await
}

/// Applies every entry of the erasure log again: keys deleted, `SubjectErased` appended where
/// it is missing. Run after restoring a backup (`revledger erase --reapply`).
pub async fn reapply(
    store: &Arc<dyn EventStore>,
    log: &ErasureLog,
    actor: &str,
) -> Result<Vec<Erasure>, PersonalError> {
    let vault = vault_of(store)?;
    let mut done = Vec::new();
    for entry in log.entries()? {
        done.push(apply(store, &vault, &entry, actor).await?);
    }
    Ok(done)
}

/// Deletes the keys of `entry`'s subjects and appends its event (once: the command id is the
/// erasure's).
async fn apply(
    store: &Arc<dyn EventStore>,
    vault: &Vault,
    entry: &ErasureEntry,
    actor: &str,
) -> Result<Erasure, PersonalError> {
    vault.forget(&entry.subjects, entry.erased_at_us).await?;
    let erased_at = adapters::clock::from_unix_micros(entry.erased_at_us).ok_or_else(|| {
        PersonalError::ErasureLog {
            path: "entry".into(),
            reason: format!("erased_at_us {} is out of range", entry.erased_at_us),
        }
    })?;
    let event = PersonalDataEvent::SubjectErased {
        erasure_id: entry.erasure_id.clone(),
        subjects: person_subjects(&entry.subjects),
        linked_subjects: linked_subject_count(&entry.subjects),
        requested_by: entry.requested_by.clone(),
        erased_at,
    };
    let command_id = Uuid::new_v5(
        &COMMAND_NAMESPACE,
        format!("erasure:{}", entry.erasure_id).as_bytes(),
    );
    let metadata = EventMetadata {
        actor: Some(actor.to_owned()),
        command_id: Some(command_id),
        source: Some("personal-data".into()),
        ..EventMetadata::default()
    };
    let new_event =
        crate::command::to_new_event::<_, StoreError>(&event, &metadata).map_err(|error| {
            match error {
                crate::CommandError::Store(error) => error,
                other => StoreError::InvalidAppend(other.to_string()),
            }
        })?;
    let outcome = store
        .append(AppendRequest {
            stream_id: domain::stream_id(ERASURE_STREAM_TYPE, &entry.erasure_id),
            stream_type: ERASURE_STREAM_TYPE.to_owned(),
            expected_version: ExpectedVersion::NoStream,
            command_id: Some(command_id),
            events: vec![new_event],
            inbox: None,
        })
        .await?;
    Ok(Erasure {
        erasure_id: entry.erasure_id.clone(),
        subjects: person_subjects(&entry.subjects),
        linked_subjects: linked_subject_count(&entry.subjects),
        position: outcome.last_position,
        already_erased: false,
    })
}

/// Every subject a request reaches: the lead (or the leads and partner contacts an email is
/// indexed for) and the email subjects indexed for them, sorted.
async fn subjects_of(
    store: &Arc<dyn EventStore>,
    vault: &Vault,
    subject: &SubjectRef,
) -> Result<Vec<String>, PersonalError> {
    let mut subjects = std::collections::BTreeSet::new();
    match subject {
        SubjectRef::Lead(lead_id) => {
            let stream = domain::stream_id("lead", lead_id);
            let Some(first) = store.read_stream(&stream, 1, 1).await?.into_iter().next() else {
                return Err(PersonalError::NotFound(format!("lead {lead_id}")));
            };
            if first.schema_version < SEALED_SCHEMA_VERSION {
                return Err(PersonalError::WrittenInClear {
                    lead_id: lead_id.clone(),
                    position: first.position,
                });
            }
            let lead_subject = format!("lead-{lead_id}");
            subjects.extend(vault.linked_subjects_of(&lead_subject).await?);
            subjects.insert(lead_subject);
        }
        SubjectRef::Email(email) => {
            if let Some((lead_id, position)) = clear_capture_of(store, email).await? {
                return Err(PersonalError::WrittenInClear { lead_id, position });
            }
            let found = vault.subjects_by_email(email).await?;
            let own = format!("email-{}", vault.email_index(email).await?);
            if found.is_empty() && !vault.is_erased(&own).await? {
                return Err(PersonalError::NotFound("that email".into()));
            }
            for person in &found {
                subjects.extend(vault.linked_subjects_of(person).await?);
            }
            subjects.extend(found);
            subjects.insert(own);
        }
    }
    Ok(subjects.into_iter().collect())
}

/// A lead captured in clear with this email (before sealing), and its capture's position.
async fn clear_capture_of(
    store: &Arc<dyn EventStore>,
    email: &str,
) -> Result<Option<(String, Position)>, PersonalError> {
    let row = store
        .sql()
        .fetch_optional(
            "SELECT lead_id FROM crm_board WHERE email = ? ORDER BY lead_id LIMIT 1",
            &[email.into()],
        )
        .await?;
    let Some(lead_id) = row.map(|row| row.text(0)).transpose()? else {
        return Ok(None);
    };
    let first = store
        .read_stream(&domain::stream_id("lead", &lead_id), 1, 1)
        .await?;
    Ok(first.first().map(|event| (lead_id, event.position)))
}

/// A person's own subject (a lead, a partner contact), as opposed to one linked to them (an
/// email before it was a lead's, a raw webhook delivery).
fn is_person(subject: &str) -> bool {
    subject.starts_with("lead-") || subject.starts_with("partner-")
}

fn person_subjects(subjects: &[String]) -> Vec<String> {
    subjects
        .iter()
        .filter(|subject| is_person(subject))
        .cloned()
        .collect()
}

fn linked_subject_count(subjects: &[String]) -> u32 {
    subjects
        .iter()
        .filter(|subject| !is_person(subject))
        .count() as u32
}

/// Everything held about a person, opened.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectExport {
    /// What the request named (a lead id, or `email`).
    pub requested: String,
    /// The lead and partner subjects found.
    pub subjects: Vec<String>,
    /// Those of them erased: their personal values read `[erased]`.
    pub erased: Vec<String>,
    /// Each subject's own stream (`lead-<id>`, `partner-<id>`), event by event.
    pub streams: Vec<ExportedStream>,
    /// Referral clicks recorded for the person's email, in partners' streams.
    pub referrals: Vec<ExportedEvent>,
    /// The person's invoices as a lead, event by event.
    pub invoices: Vec<ExportedStream>,
    /// The person's row on the CRM board, as the API shows it.
    pub crm_board: Option<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportedStream {
    pub stream_id: String,
    pub events: Vec<ExportedEvent>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportedEvent {
    pub position: Position,
    pub stream_id: String,
    pub version: u64,
    pub event_type: String,
    pub recorded_at: String,
    pub payload: Value,
}

impl From<RecordedEvent> for ExportedEvent {
    fn from(event: RecordedEvent) -> Self {
        ExportedEvent {
            position: event.position,
            stream_id: event.stream_id,
            version: event.version,
            event_type: event.event_type,
            recorded_at: event
                .recorded_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            payload: event.payload,
        }
    }
}

/// Everything held about `subject`: its streams, referral clicks, invoices and CRM row, with
/// personal values opened (or `[erased]`).
pub async fn export(
    store: &Arc<dyn EventStore>,
    subject: &SubjectRef,
) -> Result<SubjectExport, PersonalError> {
    let vault = vault_of(store)?;
    let persons: Vec<String> = match subject {
        SubjectRef::Lead(lead_id) => {
            let stream = domain::stream_id("lead", lead_id);
            if store.read_stream(&stream, 1, 1).await?.is_empty() {
                return Err(PersonalError::NotFound(format!("lead {lead_id}")));
            }
            vec![format!("lead-{lead_id}")]
        }
        SubjectRef::Email(email) => {
            let mut found = person_subjects(&vault.subjects_by_email(email).await?);
            if let Some((lead_id, _)) = clear_capture_of(store, email).await? {
                found.push(format!("lead-{lead_id}"));
            }
            found.sort();
            found.dedup();
            if found.is_empty() {
                return Err(PersonalError::NotFound("that email".into()));
            }
            found
        }
    };
    let db = store.sql();
    let mut export = SubjectExport {
        requested: match subject {
            SubjectRef::Lead(lead_id) => lead_id.clone(),
            SubjectRef::Email(_) => "email".into(),
        },
        subjects: persons.clone(),
        erased: Vec::new(),
        streams: Vec::new(),
        referrals: Vec::new(),
        invoices: Vec::new(),
        crm_board: None,
    };
    for person in &persons {
        if vault.is_erased(person).await? {
            export.erased.push(person.clone());
        }
        export.streams.push(exported_stream(store, person).await?);
        let Some(lead_id) = person.strip_prefix("lead-") else {
            continue;
        };
        let rows = db
            .fetch_all(
                "SELECT invoice_id FROM revenue_invoices WHERE lead_id = ? ORDER BY invoice_id",
                &[lead_id.into()],
            )
            .await?;
        for row in rows {
            let stream = domain::stream_id("invoice", &row.text(0)?);
            export.invoices.push(exported_stream(store, &stream).await?);
        }
        if let Some(row) = projections::crm_board::lead(&db, lead_id).await? {
            let mut row = serde_json::to_value(row).unwrap_or(Value::Null);
            vault.reveal_json(&mut row).await?;
            export.crm_board = Some(row);
        }
        export
            .referrals
            .extend(referrals_of(store, &vault, &db, person).await?);
    }
    Ok(export)
}

async fn exported_stream(
    store: &Arc<dyn EventStore>,
    stream_id: &str,
) -> Result<ExportedStream, PersonalError> {
    let events = store
        .read_stream(stream_id, 1, MAX_EXPORTED_EVENTS_PER_STREAM)
        .await?;
    Ok(ExportedStream {
        stream_id: stream_id.to_owned(),
        events: events.into_iter().map(ExportedEvent::from).collect(),
    })
}

/// The referral clicks recorded for a lead's email, found through the commission process
/// manager's index of clicks by email (`pm_referrals`, keyed as `email_match_key` keys them).
async fn referrals_of(
    store: &Arc<dyn EventStore>,
    vault: &Vault,
    db: &adapters::sql::SqlDb,
    lead_subject: &str,
) -> Result<Vec<ExportedEvent>, PersonalError> {
    let lead_id = lead_subject.trim_start_matches("lead-");
    let Some(row) = db
        .fetch_optional(
            "SELECT email FROM pm_leads WHERE lead_id = ?",
            &[lead_id.into()],
        )
        .await?
    else {
        return Ok(Vec::new());
    };
    let Some(key) = row.opt_text(0)? else {
        return Ok(Vec::new());
    };
    let partners = db
        .fetch_all(
            "SELECT DISTINCT partner_id FROM pm_referrals WHERE lead_email = ? ORDER BY partner_id",
            &[key.as_str().into()],
        )
        .await?;
    let mut found = Vec::new();
    for partner in partners {
        let stream = domain::stream_id("partner", &partner.text(0)?);
        for event in store
            .read_stream(&stream, 1, MAX_EXPORTED_EVENTS_PER_STREAM)
            .await?
        {
            if event.event_type != "ReferralRecorded" {
                continue;
            }
            // Opened by the stream read: compared as the index keys it (sealed era) or as the
            // normalized email (clear era).
            let matches = match event.payload.get("lead_email").and_then(Value::as_str) {
                Some(email) => {
                    let normalized = adapters::personal::fields::normalize_email(email);
                    key == normalized || key == vault.email_index(email).await?
                }
                None => false,
            };
            if matches {
                found.push(ExportedEvent::from(event));
            }
        }
    }
    Ok(found)
}
