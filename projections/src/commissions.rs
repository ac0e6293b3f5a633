//! Commissions as an integrator reads them: a filtered, paginated list of where each stands,
//! one commission, and its history.
//!
//! The list and the one row are typed queries over the `partner_statements` read model
//! ([`crate::statements`]): `partner_commissions` holds each commission's standing and its
//! `accrued` statement line says when it accrued (the `period` and `from`/`to` filters read
//! that). The history is not a read model: it is the commission's own stream, decoded, so it
//! is always current and names every actor and reason the events recorded.

use adapters::sql::{SqlDb, SqlRow, SqlValue};
use adapters::store::{EventStore, RecordedEvent, MAX_READ_BATCH};
use domain::commission::CommissionEvent;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{decode, rfc3339, ProjectionError};

/// Most rows one page of commissions holds.
pub const MAX_PAGE_ROWS: i64 = 200;

/// Most events a commission's history lists. A commission has an accrual, a decision, a
/// payout and one clawback per refund of its invoice: a handful, far below this.
pub const MAX_HISTORY_EVENTS: usize = 1_000;

/// Where a commission stands, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommissionRow {
    pub commission_id: String,
    pub partner_id: String,
    pub invoice_id: String,
    pub lead_id: String,
    /// `held`, `approved`, `rejected` or `paid_out`.
    pub status: String,
    /// What accrued, before clawbacks and adjustments.
    pub accrued_halalas: i64,
    /// What it is worth now: accrued plus clawbacks (negative) and adjustments; 0 once rejected.
    pub net_halalas: i64,
    /// Clawed back after its payout and not yet recovered from a later payout (≤ 0).
    pub carried_halalas: i64,
    pub accrued_at: String,
    pub held_until: String,
    pub payout_id: Option<String>,
    /// The keyset position of the row, for the next page's cursor.
    #[serde(skip)]
    accrued_at_us: i64,
}

/// A page of commissions and the cursor of the next (`None` on the last page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommissionPage {
    pub items: Vec<CommissionRow>,
    pub next_cursor: Option<String>,
}

/// Which commissions a list holds. `None` filters nothing.
#[derive(Clone, Debug, Default)]
pub struct CommissionFilter<'a> {
    pub partner_id: Option<&'a str>,
    pub status: Option<&'a str>,
    /// Accrued in this month (`YYYY-MM`, UTC).
    pub period: Option<&'a str>,
    /// Accrued at or after (Unix microseconds).
    pub from_us: Option<i64>,
    /// Accrued before (Unix microseconds).
    pub to_us: Option<i64>,
    /// After this cursor (`<accrued microseconds>:<commission id>`, as a page gave it).
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// The statuses a commission can have in the read model.
pub const STATUSES: [&str; 4] = ["held", "approved", "rejected", "paid_out"];

const COLUMNS: &str = "c.commission_id, c.partner_id, c.invoice_id, c.lead_id, c.status, \
     c.accrued_halalas, c.net_halalas, c.carried_halalas, a.occurred_at_us, c.held_until_us, c.payout_id";

const FROM: &str = "FROM partner_commissions c JOIN statement_lines a \
     ON a.commission_id = c.commission_id AND a.kind = 'accrued'";

fn commission_row(row: &SqlRow) -> Result<CommissionRow, ProjectionError> {
    Ok(CommissionRow {
        commission_id: row.text(0)?,
        partner_id: row.text(1)?,
        invoice_id: row.text(2)?,
        lead_id: row.text(3)?,
        status: row.text(4)?,
        accrued_halalas: row.i64(5)?,
        net_halalas: row.i64(6)?,
        carried_halalas: row.i64(7)?,
        accrued_at: rfc3339(row.i64(8)?),
        held_until: rfc3339(row.i64(9)?),
        payout_id: row.opt_text(10)?,
        accrued_at_us: row.i64(8)?,
    })
}

/// Commissions by when they accrued (then id), filtered, one page after the cursor.
pub async fn list(
    db: &SqlDb,
    filter: &CommissionFilter<'_>,
) -> Result<CommissionPage, ProjectionError> {
    let limit = filter.limit.clamp(1, MAX_PAGE_ROWS);
    let mut sql = format!("SELECT {COLUMNS} {FROM} WHERE 1 = 1");
    let mut params: Vec<SqlValue> = Vec::new();
    if let Some(partner_id) = filter.partner_id {
        sql.push_str(" AND c.partner_id = ?");
        params.push(partner_id.into());
    }
    if let Some(status) = filter.status {
        sql.push_str(" AND c.status = ?");
        params.push(status.into());
    }
    if let Some(period) = filter.period {
        sql.push_str(" AND a.month = ?");
        params.push(period.into());
        // The month's accruals lie in its days (a day either side for any offset the event
        // was written with): a range the accrual-order index starts at, instead of walking
        // every accrual since the first to find the month's.
        if let Some((start_us, end_us)) = month_window_us(period) {
            sql.push_str(" AND a.occurred_at_us >= ? AND a.occurred_at_us < ?");
            params.extend([start_us.into(), end_us.into()]);
        }
    }
    if let Some(from_us) = filter.from_us {
        sql.push_str(" AND a.occurred_at_us >= ?");
        params.push(from_us.into());
    }
    if let Some(to_us) = filter.to_us {
        sql.push_str(" AND a.occurred_at_us < ?");
        params.push(to_us.into());
    }
    if let Some((after_us, after_id)) = &filter.after {
        sql.push_str(
            " AND (a.occurred_at_us > ? OR (a.occurred_at_us = ? AND c.commission_id > ?))",
        );
        params.extend([
            (*after_us).into(),
            (*after_us).into(),
            after_id.as_str().into(),
        ]);
    }
    sql.push_str(" ORDER BY a.occurred_at_us, c.commission_id LIMIT ?");
    params.push((limit + 1).into());
    let rows = db.fetch_all(&sql, &params).await?;
    let mut items = rows
        .iter()
        .map(commission_row)
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last())
        .flatten()
        .map(|row| format!("{}:{}", row.accrued_at_us, row.commission_id));
    Ok(CommissionPage { items, next_cursor })
}

/// One commission's standing, if the read model has it.
pub async fn one(
    db: &SqlDb,
    commission_id: &str,
) -> Result<Option<CommissionRow>, ProjectionError> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE c.commission_id = ?");
    db.fetch_optional(&sql, &[commission_id.into()])
        .await?
        .as_ref()
        .map(commission_row)
        .transpose()
}

/// One thing that happened to a commission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommissionHistoryEntry {
    /// `accrued`, `approved`, `rejected`, `adjusted`, `clawed_back` or `paid_out`.
    pub event: &'static str,
    pub at: String,
    /// The event's amount: accrued or approved (what was owed then), rejected (what no longer
    /// is), paid out; a clawback's is negative, an adjustment's either sign.
    pub amount_halalas: i64,
    /// Who did it: a token (`token:…`) for a decision, the process manager or webhook otherwise.
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// The payout that paid it, the refund a clawback followed, or the invoice it accrued on.
    pub reference: Option<String>,
    pub version: u64,
    pub position: i64,
    pub event_id: String,
}

fn metadata_actor(event: &RecordedEvent) -> Option<String> {
    event
        .metadata
        .get("actor")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

fn time(at: OffsetDateTime) -> String {
    rfc3339(crate::micros(at))
}

fn history_entry(event: &RecordedEvent) -> Result<CommissionHistoryEntry, ProjectionError> {
    let recorded_actor = metadata_actor(event);
    let (kind, at, amount_halalas, actor, reason, reference) =
        match decode::<CommissionEvent>(event)? {
            CommissionEvent::CommissionAccrued {
                invoice_id,
                amount_halalas,
                accrued_at,
                ..
            } => (
                "accrued",
                accrued_at,
                amount_halalas,
                recorded_actor,
                None,
                Some(invoice_id),
            ),
            CommissionEvent::CommissionApproved {
                amount_halalas,
                actor,
                approved_at,
                ..
            } => (
                "approved",
                approved_at,
                amount_halalas,
                Some(actor),
                None,
                None,
            ),
            CommissionEvent::CommissionRejected {
                amount_halalas,
                actor,
                reason,
                rejected_at,
                ..
            } => (
                "rejected",
                rejected_at,
                amount_halalas,
                Some(actor),
                Some(reason),
                None,
            ),
            CommissionEvent::CommissionAdjusted {
                amount_halalas,
                reason,
                actor,
                adjusted_at,
                ..
            } => (
                "adjusted",
                adjusted_at,
                amount_halalas,
                Some(actor),
                Some(reason),
                None,
            ),
            CommissionEvent::CommissionClawedBack {
                refund_id,
                amount_halalas,
                clawed_back_at,
                ..
            } => (
                "clawed_back",
                clawed_back_at,
                amount_halalas,
                recorded_actor,
                None,
                Some(refund_id),
            ),
            CommissionEvent::CommissionPaidOut {
                payout_id,
                amount_halalas,
                paid_out_at,
                ..
            } => (
                "paid_out",
                paid_out_at,
                amount_halalas,
                recorded_actor,
                None,
                Some(payout_id),
            ),
        };
    Ok(CommissionHistoryEntry {
        event: kind,
        at: time(at),
        amount_halalas,
        actor,
        reason,
        reference,
        version: event.version,
        position: event.position,
        event_id: event.event_id.to_string(),
    })
}

/// Everything that happened to commission `commission_id`, oldest first, from its stream
/// ([`MAX_HISTORY_EVENTS`] at most), up to the first event `included` refuses (an `as_of`
/// moment); empty when there is no such commission.
pub async fn history(
    store: &dyn EventStore,
    commission_id: &str,
    included: impl Fn(&RecordedEvent) -> bool,
) -> Result<Vec<CommissionHistoryEntry>, ProjectionError> {
    let stream_id = domain::ids::stream_id("commission", commission_id);
    let events = store
        .read_stream(&stream_id, 1, MAX_HISTORY_EVENTS.min(MAX_READ_BATCH))
        .await?;
    events
        .iter()
        .take_while(|event| included(event))
        .map(history_entry)
        .collect()
}

/// The Unix microseconds from a day before `YYYY-MM` begins to a day after it ends (UTC).
fn month_window_us(period: &str) -> Option<(i64, i64)> {
    let year: i32 = period.get(..4)?.parse().ok()?;
    let month = time::Month::try_from(period.get(5..7)?.parse::<u8>().ok()?).ok()?;
    let first = time::Date::from_calendar_date(year, month, 1).ok()?;
    let next = match month {
        time::Month::December => time::Date::from_calendar_date(year + 1, time::Month::January, 1),
        _ => time::Date::from_calendar_date(year, month.next(), 1),
    }
    .ok()?;
    let day = 86_400_000_000i64;
    let at = |date: time::Date| date.midnight().assume_utc().unix_timestamp() * 1_000_000;
    Some((at(first) - day, at(next) + day))
}
