//! Reading the reconciliation: the maintained counts (facts checked, open mismatches by kind)
//! and one page of the open mismatches, the ledger's own first (in [`Mismatch`]'s order, by
//! their `order_key`), then the providers' findings (newest day first). Nothing here reads
//! the facts, so a report costs the same whatever the history's length.

use std::collections::BTreeMap;

use adapters::sql::SqlDb;
use domain::invoice::Invoice;
use domain::payment::Payment;
use domain::provider_reconciliation::FindingKind;
use serde::Serialize;

use super::maintained::{stored_mismatch, CHECKED, STORED_COLUMNS};
use super::provider::{self, FindingKey, StoredFinding};
use super::{rules, Mismatch, LEDGER_SOURCE};
use crate::ProjectionError;

/// Mismatches a page holds unless the caller asks otherwise: every one while there are few.
pub const DEFAULT_PAGE_MISMATCHES: usize = 100;

/// Mismatches a page holds at most: a page stays a few hundred kilobytes of JSON.
pub const MAX_PAGE_MISMATCHES: usize = 1_000;

/// How many facts a reconciliation compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub invoices: usize,
    pub payments: usize,
    pub commissions: usize,
}

/// What a reconciliation found: whether everything agrees, the open mismatches' count by kind
/// and how many facts were compared (all of them), and a page of the mismatches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconciliationReport {
    pub reconciled: bool,
    pub mismatch_count: usize,
    pub by_kind: BTreeMap<&'static str, i64>,
    pub checked: Checked,
    /// The ledger's own mismatches (`source: "ledger"`), then the findings of the latest run
    /// of each provider's day (`source: "moyasar"`): this page of them.
    pub mismatches: Vec<Mismatch>,
    /// The `after` of the next page, `null` on the last.
    pub next_cursor: Option<String>,
    /// The latest run of each provider's day, clean days included.
    pub provider_runs: Vec<provider::ProviderRun>,
}

/// Where a page starts: after the mismatch a [`Cursor`] names, at most `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub limit: usize,
}

impl PageRequest {
    /// The first page of `limit` (clamped to `1..=`[`MAX_PAGE_MISMATCHES`]).
    pub fn first(limit: usize) -> PageRequest {
        PageRequest {
            after: None,
            limit: limit.clamp(1, MAX_PAGE_MISMATCHES),
        }
    }
}

/// A place in the list of mismatches: a ledger mismatch by its order key, or a provider's
/// finding by its key. Written `ledger:<hex order key>` or
/// `<provider>:<YYYY-MM-DD>:<kind>:<payment id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Ledger(String),
    Provider(FindingKey),
}

impl Cursor {
    /// A cursor as [`ReconciliationReport::next_cursor`] wrote it, or `None`.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (source, rest) = text.split_once(':')?;
        if source == LEDGER_SOURCE {
            let hex = rest.len() % 2 == 0 && rest.bytes().all(|b| b.is_ascii_hexdigit());
            return hex.then(|| Cursor::Ledger(rest.to_ascii_lowercase()));
        }
        let mut parts = rest.splitn(3, ':');
        let (date, kind, payment_id) = (parts.next()?, parts.next()?, parts.next()?);
        (!source.is_empty() && !date.is_empty() && !kind.is_empty()).then(|| {
            Cursor::Provider(FindingKey {
                provider: source.to_owned(),
                date: date.to_owned(),
                kind: kind.to_owned(),
                payment_id: payment_id.to_owned(),
            })
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Ledger(order_key) => write!(f, "{LEDGER_SOURCE}:{order_key}"),
            Cursor::Provider(key) => write!(
                f,
                "{}:{}:{}:{}",
                key.provider, key.date, key.kind, key.payment_id
            ),
        }
    }
}

/// The counts and one page of mismatches.
pub async fn report_page(
    db: &SqlDb,
    page: &PageRequest,
) -> Result<ReconciliationReport, ProjectionError> {
    let limit = page.limit.clamp(1, MAX_PAGE_MISMATCHES);
    let mut items = page_after(db, page.after.as_ref(), limit + 1).await?;
    let next_cursor = (items.len() > limit)
        .then(|| items.get(limit - 1).map(|(cursor, _)| cursor.to_string()))
        .flatten();
    items.truncate(limit);
    let mismatches = items.into_iter().map(|(_, mismatch)| mismatch).collect();
    with_counts(db, mismatches, next_cursor).await
}

/// The counts and every mismatch (what `revledger replay` prints).
pub async fn report(db: &SqlDb) -> Result<ReconciliationReport, ProjectionError> {
    let mut mismatches = Vec::new();
    let mut after = None;
    loop {
        let page = page_after(db, after.as_ref(), MAX_PAGE_MISMATCHES).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        mismatches.extend(page.into_iter().map(|(_, mismatch)| mismatch));
    }
    with_counts(db, mismatches, None).await
}

/// Every open mismatch among our own events, in order (for `revledger reconcile`).
pub async fn mismatches(db: &SqlDb) -> Result<Vec<Mismatch>, ProjectionError> {
    let mut found = Vec::new();
    let mut after = String::new();
    loop {
        let page = ledger_after(db, &after, MAX_PAGE_MISMATCHES).await?;
        let Some((Cursor::Ledger(last), _)) = page.last() else {
            return Ok(found);
        };
        after = last.clone();
        found.extend(page.into_iter().map(|(_, mismatch)| mismatch));
    }
}

/// At most `limit` mismatches after `after`, each with its own cursor: the ledger's, then the
/// providers'.
async fn page_after(
    db: &SqlDb,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<(Cursor, Mismatch)>, ProjectionError> {
    let (ledger_after_key, finding_after) = match after {
        None => (Some(""), None),
        Some(Cursor::Ledger(order_key)) => (Some(order_key.as_str()), None),
        Some(Cursor::Provider(key)) => (None, Some(key)),
    };
    let mut items = match ledger_after_key {
        Some(order_key) => ledger_after(db, order_key, limit).await?,
        None => Vec::new(),
    };
    if items.len() < limit {
        let rest = (limit - items.len()) as i64;
        for finding in provider::findings_after(db, finding_after, rest).await? {
            let cursor = Cursor::Provider(finding.key());
            items.extend(finding_mismatch(&finding).map(|mismatch| (cursor, mismatch)));
        }
    }
    Ok(items)
}

/// At most `limit` of the ledger's mismatches after order key `after` ("" for the first).
async fn ledger_after(
    db: &SqlDb,
    after: &str,
    limit: usize,
) -> Result<Vec<(Cursor, Mismatch)>, ProjectionError> {
    let sql = format!(
        "SELECT order_key, {STORED_COLUMNS} FROM reconciliation_mismatches \
         WHERE order_key > ? ORDER BY order_key LIMIT ?"
    );
    db.fetch_all(&sql, &[after.into(), (limit as i64).into()])
        .await?
        .iter()
        .map(|row| Ok((Cursor::Ledger(row.text(0)?), stored_mismatch(row, 1)?)))
        .collect()
}

/// The report around `mismatches`, from the maintained counts.
async fn with_counts(
    db: &SqlDb,
    mismatches: Vec<Mismatch>,
    next_cursor: Option<String>,
) -> Result<ReconciliationReport, ProjectionError> {
    let mut checked = Checked {
        invoices: 0,
        payments: 0,
        commissions: 0,
    };
    let mut by_kind: BTreeMap<&'static str, i64> = BTreeMap::new();
    for row in db
        .fetch_all("SELECT scope, name, tally FROM reconciliation_counts", &[])
        .await?
    {
        let (scope, name, tally) = (row.text(0)?, row.text(1)?, row.i64(2)?);
        let count = usize::try_from(tally).unwrap_or(0);
        match (scope.as_str(), name.as_str()) {
            (CHECKED, "invoices") => checked.invoices = count,
            (CHECKED, "payments") => checked.payments = count,
            (CHECKED, "commissions") => checked.commissions = count,
            (CHECKED, _) => {}
            _ => {
                if let Some(kind) = known_kind(&name) {
                    *by_kind.entry(kind).or_default() += tally;
                }
            }
        }
    }
    let mismatch_count = usize::try_from(by_kind.values().sum::<i64>()).unwrap_or(0);
    Ok(ReconciliationReport {
        reconciled: mismatch_count == 0,
        mismatch_count,
        by_kind,
        checked,
        mismatches,
        next_cursor,
        provider_runs: provider::runs(db).await?,
    })
}

/// A mismatch kind of the ledger's rules or of a provider's findings, as the code names it.
fn known_kind(name: &str) -> Option<&'static str> {
    rules::KINDS
        .into_iter()
        .chain(FindingKind::ALL.into_iter().map(FindingKind::as_str))
        .find(|kind| *kind == name)
}

/// A provider's finding as a mismatch with its `source` (`None` for a kind this code does not
/// know).
fn finding_mismatch(finding: &StoredFinding) -> Option<Mismatch> {
    let halalas = |value: &Option<String>| value.as_deref().and_then(|v| v.parse::<i64>().ok());
    let kind = FindingKind::ALL
        .into_iter()
        .find(|kind| kind.as_str() == finding.kind)?;
    let mut streams = vec![domain::ids::stream_id(
        <Payment as cqrs_es::Aggregate>::TYPE,
        &finding.payment_id,
    )];
    streams.extend(finding.invoice_id.as_deref().map(|invoice_id| {
        domain::ids::stream_id(<Invoice as cqrs_es::Aggregate>::TYPE, invoice_id)
    }));
    let mut mismatch = Mismatch::new(kind.as_str(), streams, finding.detail.clone());
    mismatch.source = finding.provider.clone();
    mismatch.date = Some(finding.date.clone());
    mismatch.payment_id = Some(finding.payment_id.clone());
    if matches!(
        kind,
        FindingKind::AmountDiffers | FindingKind::FeeDiffers | FindingKind::RefundDiffers
    ) {
        mismatch.expected_halalas = halalas(&finding.ledger_value);
        mismatch.actual_halalas = halalas(&finding.provider_value);
    }
    Some(mismatch)
}
