//! The CRM board: one row per lead with its stage, owner, last contact and the next follow-up
//! due (day 1, 3 and 7 after the last two-way contact), and why it was archived.
//!
//! The follow-up clock mirrors the `Lead` aggregate exactly (the same
//! `domain::lead::next_follow_up_due`): capture, a response or a reopen start the silence;
//! each follow-up without a response moves the next due date on; from `paid` on, and while
//! archived, nothing is due. The follow-up process manager reads `silence_started_at_us` to
//! archive leads silent for 14 days.

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::lead::{next_follow_up_due, ArchiveReason, LeadEvent, LeadStage};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{decode, from_micros, micros, Projection, ProjectionError};

pub struct CrmBoard;

/// The most rows one board read returns.
pub const MAX_BOARD_ROWS: i64 = 500;

fn due(stage: LeadStage, silence_started: OffsetDateTime, follow_ups: i64) -> SqlValue {
    if !stage.is_before_paid() {
        return SqlValue::NullInt;
    }
    next_follow_up_due(
        silence_started,
        u32::try_from(follow_ups).unwrap_or(u32::MAX),
    )
    .map(micros)
    .into()
}

fn archive_reason(reason: &ArchiveReason) -> String {
    match reason {
        ArchiveReason::Cold => "cold".to_owned(),
        ArchiveReason::Lost { note } => format!("lost: {note}"),
    }
}

/// A lead's follow-up clock as its row holds it: stage, silence start, follow-ups since the
/// last response.
type Clock = (LeadStage, i64, i64);

/// The clocks of the leads a batch touched, as the batch has left them (`None`: no row). Only
/// this projection writes `crm_board`, so within its batch this is what a read would return.
type Clocks = std::collections::HashMap<String, Option<Clock>>;

/// A row a batch inserts: kept until the end of the batch, so the batch's later events about
/// the same lead change it in memory and it goes in once, in one run of inserts, rather than
/// as an insert and then an update per event (most leads' events arrive together).
struct Row {
    lead_id: String,
    name: String,
    company: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    source: String,
    partner_id: Option<String>,
    owner: Option<String>,
    stage: LeadStage,
    captured_at_us: i64,
    last_contact_at_us: i64,
    silence_started_at_us: i64,
    follow_ups_since_response: i64,
    next_follow_up_due_us: SqlValue,
    archived_reason: Option<String>,
    updated_at_us: i64,
}

/// What a batch knows: each touched lead's clock, and the rows it inserts.
#[derive(Default)]
struct Batch {
    clocks: Clocks,
    fresh: Vec<Row>,
    /// Where each lead's row is in `fresh`.
    fresh_at: std::collections::HashMap<String, usize>,
}

impl Batch {
    fn fresh(&mut self, lead_id: &str) -> Option<&mut Row> {
        let at = *self.fresh_at.get(lead_id)?;
        self.fresh.get_mut(at)
    }

    async fn insert_fresh(self, tx: &mut SqlTx) -> Result<(), ProjectionError> {
        for row in self.fresh {
            tx.write(
                "INSERT INTO crm_board (lead_id, name, company, email, phone, source, partner_id, owner, \
                 stage, captured_at_us, last_contact_at_us, silence_started_at_us, \
                 follow_ups_since_response, next_follow_up_due_us, archived_reason, updated_at_us) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    row.lead_id.into(),
                    row.name.into(),
                    row.company.into(),
                    row.email.into(),
                    row.phone.into(),
                    row.source.into(),
                    row.partner_id.into(),
                    row.owner.into(),
                    row.stage.as_str().into(),
                    row.captured_at_us.into(),
                    row.last_contact_at_us.into(),
                    row.silence_started_at_us.into(),
                    row.follow_ups_since_response.into(),
                    row.next_follow_up_due_us,
                    row.archived_reason.into(),
                    row.updated_at_us.into(),
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// Reads at once the clocks of the leads whose rows the batch's events change but do not
    /// create (an event after the first of a stream the batch does not capture), so that
    /// [`clock`] finds them rather than reading one row per lead.
    async fn read_clocks(
        &mut self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut captured = std::collections::HashSet::new();
        let mut wanted = std::collections::BTreeSet::new();
        for event in events.iter().filter(|event| event.stream_type == "lead") {
            let Some(lead_id) = event.stream_id.strip_prefix("lead-") else {
                continue;
            };
            if event.version == 1 {
                captured.insert(lead_id);
            } else if !captured.contains(lead_id) {
                wanted.insert(lead_id);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let (marks, params) = adapters::sql::in_list(wanted.iter().copied());
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT lead_id, stage, silence_started_at_us, follow_ups_since_response \
                     FROM crm_board WHERE lead_id IN ({marks})"
                ),
                &params,
            )
            .await?;
        for lead_id in wanted {
            self.clocks.insert(lead_id.to_owned(), None);
        }
        for row in rows {
            let clock = (stage_of(&row.text(1)?)?, row.i64(2)?, row.i64(3)?);
            self.clocks.insert(row.text(0)?, Some(clock));
        }
        Ok(())
    }
}

fn stage_of(text: &str) -> Result<LeadStage, ProjectionError> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|e| {
        ProjectionError::Undecodable {
            position: 0,
            event_type: "crm_board.stage".into(),
            reason: e.to_string(),
        }
    })
}

/// The row's stage, silence start and follow-up count: from `clocks`, or read once.
async fn clock(
    tx: &mut SqlTx,
    batch: &mut Batch,
    lead_id: &str,
) -> Result<Option<Clock>, ProjectionError> {
    let clocks = &mut batch.clocks;
    if let Some(known) = clocks.get(lead_id) {
        return Ok(*known);
    }
    let row = tx
        .fetch_optional(
            "SELECT stage, silence_started_at_us, follow_ups_since_response FROM crm_board WHERE lead_id = ?",
            &[lead_id.into()],
        )
        .await?;
    let known = match row {
        None => None,
        Some(row) => Some((stage_of(&row.text(0)?)?, row.i64(1)?, row.i64(2)?)),
    };
    clocks.insert(lead_id.to_owned(), known);
    Ok(known)
}

async fn move_to(
    tx: &mut SqlTx,
    batch: &mut Batch,
    lead_id: &str,
    stage: LeadStage,
    reason: Option<String>,
    at: OffsetDateTime,
) -> Result<(), ProjectionError> {
    let Some((_, silence_us, follow_ups)) = clock(tx, batch, lead_id).await? else {
        return Ok(());
    };
    batch
        .clocks
        .insert(lead_id.to_owned(), Some((stage, silence_us, follow_ups)));
    let due = due(stage, from_micros(silence_us), follow_ups);
    if let Some(row) = batch.fresh(lead_id) {
        row.stage = stage;
        row.archived_reason = reason;
        row.next_follow_up_due_us = due;
        row.updated_at_us = micros(at);
        return Ok(());
    }
    tx.write(
        "UPDATE crm_board SET stage = ?, archived_reason = ?, next_follow_up_due_us = ?, updated_at_us = ? \
         WHERE lead_id = ?",
        &[
            stage.as_str().into(),
            reason.into(),
            due,
            micros(at).into(),
            lead_id.into(),
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for CrmBoard {
    fn name(&self) -> &'static str {
        "crm_board"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["crm_board"]
    }

    /// Reads each touched lead's clock once per batch, not once per event, and inserts the
    /// leads the batch captured as the batch leaves them.
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut batch = Batch::default();
        batch.read_clocks(tx, events).await?;
        for event in events {
            apply_one(tx, &mut batch, event).await?;
        }
        batch.insert_fresh(tx).await
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        let rows = db
            .fetch_all(
                "SELECT lead_id, name, company, stage, owner, last_contact_at_us, next_follow_up_due_us, \
                 archived_reason, source, partner_id FROM crm_board ORDER BY stage, lead_id LIMIT ?",
                &[MAX_BOARD_ROWS.into()],
            )
            .await?;
        let leads = rows
            .iter()
            .map(|row| {
                Ok(json!({
                    "lead_id": row.text(0)?,
                    "name": row.text(1)?,
                    "company": row.opt_text(2)?,
                    "stage": row.text(3)?,
                    "owner": row.opt_text(4)?,
                    "last_contact_at": crate::rfc3339(row.i64(5)?),
                    "next_follow_up_due": row.opt_i64(6)?.map(crate::rfc3339),
                    "archived_reason": row.opt_text(7)?,
                    "source": row.text(8)?,
                    "partner_id": row.opt_text(9)?,
                }))
            })
            .collect::<Result<Vec<Value>, ProjectionError>>()?;
        Ok(json!({"leads": leads}))
    }
}

async fn apply_one(
    tx: &mut SqlTx,
    batch: &mut Batch,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    if event.stream_type != "lead" {
        return Ok(());
    }
    match decode::<LeadEvent>(event)? {
        LeadEvent::LeadCaptured {
            lead_id,
            name,
            company,
            email,
            phone,
            source,
            partner_id,
            owner,
            captured_at,
            ..
        } => {
            let at = micros(captured_at);
            batch
                .clocks
                .insert(lead_id.clone(), Some((LeadStage::New, at, 0)));
            batch.fresh_at.insert(lead_id.clone(), batch.fresh.len());
            batch.fresh.push(Row {
                lead_id,
                name,
                company,
                email: email.map(|e| e.to_lowercase()),
                phone,
                source,
                partner_id,
                owner,
                stage: LeadStage::New,
                captured_at_us: at,
                last_contact_at_us: at,
                silence_started_at_us: at,
                follow_ups_since_response: 0,
                next_follow_up_due_us: due(LeadStage::New, captured_at, 0),
                archived_reason: None,
                updated_at_us: at,
            });
        }
        LeadEvent::FollowUpLogged {
            lead_id,
            responded,
            logged_at,
            ..
        } => {
            let Some((stage, silence_us, follow_ups)) = clock(tx, batch, &lead_id).await? else {
                return Ok(());
            };
            let (silence, follow_ups) = if responded {
                (logged_at, 0)
            } else {
                (from_micros(silence_us), follow_ups + 1)
            };
            batch
                .clocks
                .insert(lead_id.clone(), Some((stage, micros(silence), follow_ups)));
            let due = if stage == LeadStage::Archived {
                SqlValue::NullInt
            } else {
                due(stage, silence, follow_ups)
            };
            if let Some(row) = batch.fresh(&lead_id) {
                row.last_contact_at_us = micros(logged_at);
                row.silence_started_at_us = micros(silence);
                row.follow_ups_since_response = follow_ups;
                row.next_follow_up_due_us = due;
                row.updated_at_us = micros(logged_at);
                return Ok(());
            }
            tx.write(
                "UPDATE crm_board SET last_contact_at_us = ?, silence_started_at_us = ?, \
                 follow_ups_since_response = ?, next_follow_up_due_us = ?, updated_at_us = ? WHERE lead_id = ?",
                &[
                    micros(logged_at).into(),
                    micros(silence).into(),
                    follow_ups.into(),
                    due,
                    micros(logged_at).into(),
                    lead_id.into(),
                ],
            )
            .await?;
        }
        LeadEvent::LeadReopened {
            lead_id,
            stage,
            reopened_at,
            ..
        } => {
            let Some((before, _, _)) = clock(tx, batch, &lead_id).await? else {
                return Ok(());
            };
            batch
                .clocks
                .insert(lead_id.clone(), Some((before, micros(reopened_at), 0)));
            if let Some(row) = batch.fresh(&lead_id) {
                row.silence_started_at_us = micros(reopened_at);
                row.follow_ups_since_response = 0;
            } else {
                tx.write(
                    "UPDATE crm_board SET silence_started_at_us = ?, follow_ups_since_response = 0 WHERE lead_id = ?",
                    &[micros(reopened_at).into(), lead_id.as_str().into()],
                )
                .await?;
            }
            move_to(tx, batch, &lead_id, stage, None, reopened_at).await?;
        }
        LeadEvent::LeadArchived {
            lead_id,
            reason,
            archived_at,
            ..
        } => {
            move_to(
                tx,
                batch,
                &lead_id,
                LeadStage::Archived,
                Some(archive_reason(&reason)),
                archived_at,
            )
            .await?
        }
        LeadEvent::LeadQualified {
            lead_id,
            qualified_at,
            ..
        } => {
            move_to(
                tx,
                batch,
                &lead_id,
                LeadStage::Qualified,
                None,
                qualified_at,
            )
            .await?
        }
        LeadEvent::DemoBooked {
            lead_id, booked_at, ..
        } => move_to(tx, batch, &lead_id, LeadStage::DemoBooked, None, booked_at).await?,
        LeadEvent::DemoCanceled {
            lead_id,
            canceled_at,
            ..
        } => move_to(tx, batch, &lead_id, LeadStage::Qualified, None, canceled_at).await?,
        LeadEvent::ProposalSent {
            lead_id, sent_at, ..
        } => move_to(tx, batch, &lead_id, LeadStage::Proposal, None, sent_at).await?,
        LeadEvent::LeadPaid {
            lead_id, paid_at, ..
        } => move_to(tx, batch, &lead_id, LeadStage::Paid, None, paid_at).await?,
        LeadEvent::OnboardingStarted {
            lead_id,
            started_at,
            ..
        } => move_to(tx, batch, &lead_id, LeadStage::Onboarding, None, started_at).await?,
        LeadEvent::LeadActivated {
            lead_id,
            activated_at,
            ..
        } => move_to(tx, batch, &lead_id, LeadStage::Active, None, activated_at).await?,
        LeadEvent::DemoNoShowRecorded { .. } => {}
    }
    Ok(())
}

/// The lead whose email this is (the earliest captured, when several share it), if any.
pub async fn lead_id_by_email(
    db: &SqlDb,
    email: &str,
    sealed_leads: &[String],
) -> Result<Option<String>, ProjectionError> {
    // The leads whose sealed email is this one (found by its index, `adapters::personal`),
    // and those captured before sealing whose email the board holds in clear: the first
    // captured wins.
    let placeholders = vec!["?"; sealed_leads.len().min(MAX_PAGE_ROWS as usize)];
    let mut params: Vec<SqlValue> = vec![email.to_lowercase().into()];
    params.extend(
        sealed_leads
            .iter()
            .take(placeholders.len())
            .map(|lead_id| lead_id.as_str().into()),
    );
    let sealed = if placeholders.is_empty() {
        String::new()
    } else {
        format!(" OR lead_id IN ({})", placeholders.join(", "))
    };
    let row = db
        .fetch_optional(
            &format!(
                "SELECT lead_id FROM crm_board WHERE email = ?{sealed} \
                 ORDER BY captured_at_us, lead_id LIMIT 1"
            ),
            &params,
        )
        .await?;
    Ok(row.map(|row| row.text(0)).transpose()?)
}

// ---------------------------------------------------------------------------------------------
// Queries: what the API and the dashboard read from the board, as typed rows.

/// Leads in one page of the board at most: a page is one indexed range read and one JSON body
/// of tens of KiB at most.
pub const MAX_PAGE_ROWS: i64 = 200;

/// One lead on the board.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BoardRow {
    pub lead_id: String,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub source: String,
    pub partner_id: Option<String>,
    pub owner: Option<String>,
    pub stage: String,
    /// RFC 3339.
    pub captured_at: String,
    pub last_contact_at: String,
    pub follow_ups_since_response: i64,
    pub next_follow_up_due: Option<String>,
    pub archived_reason: Option<String>,
    /// The follow-up's due time in Unix microseconds (the follow-ups list's cursor).
    #[serde(skip)]
    pub next_follow_up_due_us: Option<i64>,
    /// Unix microseconds of the last contact (the dashboard orders by it).
    #[serde(skip)]
    pub last_contact_at_us: i64,
}

/// A page of leads and the cursor of the next (`None` on the last page).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BoardPage {
    pub items: Vec<BoardRow>,
    pub next_cursor: Option<String>,
}

const BOARD_COLUMNS: &str = "lead_id, name, company, email, phone, source, partner_id, owner, \
     stage, captured_at_us, last_contact_at_us, follow_ups_since_response, \
     next_follow_up_due_us, archived_reason";

fn board_row(row: &adapters::sql::SqlRow) -> Result<BoardRow, ProjectionError> {
    Ok(BoardRow {
        lead_id: row.text(0)?,
        name: row.text(1)?,
        company: row.opt_text(2)?,
        email: row.opt_text(3)?,
        phone: row.opt_text(4)?,
        source: row.text(5)?,
        partner_id: row.opt_text(6)?,
        owner: row.opt_text(7)?,
        stage: row.text(8)?,
        captured_at: crate::rfc3339(row.i64(9)?),
        last_contact_at: crate::rfc3339(row.i64(10)?),
        follow_ups_since_response: row.i64(11)?,
        next_follow_up_due: row.opt_i64(12)?.map(crate::rfc3339),
        archived_reason: row.opt_text(13)?,
        next_follow_up_due_us: row.opt_i64(12)?,
        last_contact_at_us: row.i64(10)?,
    })
}

/// The board's row of one lead.
pub async fn lead(db: &SqlDb, lead_id: &str) -> Result<Option<BoardRow>, ProjectionError> {
    let sql = format!("SELECT {BOARD_COLUMNS} FROM crm_board WHERE lead_id = ?");
    db.fetch_optional(&sql, &[lead_id.into()])
        .await?
        .as_ref()
        .map(board_row)
        .transpose()
}

/// Leads in id order, of one stage when given, after the cursor (a lead id) when given.
pub async fn board(
    db: &SqlDb,
    stage: Option<LeadStage>,
    after: Option<&str>,
    limit: i64,
) -> Result<BoardPage, ProjectionError> {
    let limit = limit.clamp(1, MAX_PAGE_ROWS);
    let mut sql = format!("SELECT {BOARD_COLUMNS} FROM crm_board WHERE 1 = 1");
    let mut params: Vec<SqlValue> = Vec::new();
    if let Some(stage) = stage {
        sql.push_str(" AND stage = ?");
        params.push(stage.as_str().into());
    }
    if let Some(after) = after {
        sql.push_str(" AND lead_id > ?");
        params.push(after.into());
    }
    sql.push_str(" ORDER BY lead_id LIMIT ?");
    params.push((limit + 1).into());
    page(db, &sql, &params, limit, |row| row.lead_id.clone()).await
}

/// Leads whose next follow-up is due at or before `due_before_us`, soonest first, after the
/// cursor `(due microseconds, lead id)` when given.
pub async fn follow_ups_due(
    db: &SqlDb,
    due_before_us: i64,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<BoardPage, ProjectionError> {
    let limit = limit.clamp(1, MAX_PAGE_ROWS);
    let mut sql = format!(
        "SELECT {BOARD_COLUMNS} FROM crm_board \
         WHERE next_follow_up_due_us IS NOT NULL AND next_follow_up_due_us <= ?"
    );
    let mut params: Vec<SqlValue> = vec![due_before_us.into()];
    if let Some((due_us, lead_id)) = after {
        sql.push_str(
            " AND (next_follow_up_due_us > ? OR (next_follow_up_due_us = ? AND lead_id > ?))",
        );
        params.extend([due_us.into(), due_us.into(), lead_id.into()]);
    }
    sql.push_str(" ORDER BY next_follow_up_due_us, lead_id LIMIT ?");
    params.push((limit + 1).into());
    page(db, &sql, &params, limit, |row| {
        format!("{}:{}", row.next_follow_up_due_us.unwrap_or(0), row.lead_id)
    })
    .await
}

/// Reads at most `limit + 1` rows: the extra one only says whether a next page exists.
async fn page(
    db: &SqlDb,
    sql: &str,
    params: &[SqlValue],
    limit: i64,
    cursor_of: impl Fn(&BoardRow) -> String,
) -> Result<BoardPage, ProjectionError> {
    let rows = db.fetch_all(sql, params).await?;
    let mut items = rows.iter().map(board_row).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(cursor_of)
    } else {
        None
    };
    Ok(BoardPage { items, next_cursor })
}

/// The leads in `stage`, those whose follow-up is due soonest first (then the most recently
/// contacted), at most `limit`: a column of the dashboard's board.
pub async fn stage_leads(
    db: &SqlDb,
    stage: LeadStage,
    limit: i64,
) -> Result<Vec<BoardRow>, ProjectionError> {
    let sql = format!(
        "SELECT {BOARD_COLUMNS} FROM crm_board WHERE stage = ? \
         ORDER BY COALESCE(next_follow_up_due_us, 9223372036854775807), last_contact_at_us DESC, lead_id LIMIT ?"
    );
    let rows = db
        .fetch_all(
            &sql,
            &[stage.as_str().into(), limit.clamp(1, MAX_BOARD_ROWS).into()],
        )
        .await?;
    rows.iter().map(board_row).collect()
}

/// How many leads stand in each stage, in stage order.
pub async fn stage_counts(db: &SqlDb) -> Result<Vec<(String, i64)>, ProjectionError> {
    let rows = db
        .fetch_all("SELECT stage, COUNT(*) FROM crm_board GROUP BY stage", &[])
        .await?;
    rows.iter()
        .map(|row| Ok((row.text(0)?, row.i64(1)?)))
        .collect()
}

/// How many leads have a follow-up due at or before `due_before_us`.
pub async fn follow_ups_due_count(db: &SqlDb, due_before_us: i64) -> Result<i64, ProjectionError> {
    let row = db
        .fetch_optional(
            "SELECT COUNT(*) FROM crm_board WHERE next_follow_up_due_us IS NOT NULL AND next_follow_up_due_us <= ?",
            &[due_before_us.into()],
        )
        .await?;
    Ok(row.map(|row| row.i64(0)).transpose()?.unwrap_or(0))
}
