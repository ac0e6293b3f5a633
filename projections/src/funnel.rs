//! The sales funnel: leads per stage now, conversion between consecutive stages, by ISO week of
//! capture, by source and by partner, and the median time spent in each stage.
//!
//! Rows are facts about each lead (its stage, the furthest stage it ever reached, when it was
//! captured) and each stay in a stage; every figure is computed from them at read time, so the
//! tables stay a plain fold of the log and the numbers can never drift from it.

use std::collections::{BTreeMap, HashMap};

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::lead::{LeadEvent, LeadStage};
use serde_json::{json, Value};

use crate::{decode, micros, Projection, ProjectionError};

pub struct Funnel;

/// The funnel stages in order (archived is off the funnel).
pub const FUNNEL: [LeadStage; 7] = [
    LeadStage::New,
    LeadStage::Qualified,
    LeadStage::DemoBooked,
    LeadStage::Proposal,
    LeadStage::Paid,
    LeadStage::Onboarding,
    LeadStage::Active,
];

fn iso_week(at: time::OffsetDateTime) -> String {
    let (year, week, _) = at.to_iso_week_date();
    format!("{year}-W{week:02}")
}

/// Lead ids a batch reads the last visit of in one query at most (bound parameters).
const LOOKUP_CHUNK: usize = 500;

/// A lead's row as the batch captured it (written whole at the end).
struct Captured {
    source: String,
    partner_id: Option<String>,
    capture_week: String,
    captured_at_us: i64,
}

/// A stay in a stage that the batch began.
struct Visit {
    visit: i64,
    stage: LeadStage,
    entered_at_us: i64,
    left_at_us: Option<i64>,
}

/// What a batch did to one lead: its rows are written once, at the end of the batch, instead
/// of three statements per stage change (close the open stay, number and open the next, move
/// the lead), which were the funnel's whole cost in a rebuild.
struct Fold {
    /// Captured in this batch: its `funnel_leads` row goes in as the batch leaves it.
    captured: Option<Captured>,
    /// The stage it is in and since when, once the batch moved it.
    stage: Option<(LeadStage, i64)>,
    /// The furthest funnel rank the batch took it to (-1: none).
    furthest: i64,
    /// The highest visit number so far: the table's, then the batch's.
    last_visit: i64,
    /// When the stay open before the batch ended, when the batch moved the lead on.
    closed_before: Option<i64>,
    visits: Vec<Visit>,
}

impl Fold {
    fn new() -> Fold {
        Fold {
            captured: None,
            stage: None,
            furthest: -1,
            last_visit: 0,
            closed_before: None,
            visits: Vec::new(),
        }
    }

    fn capture(&mut self, captured: Captured) {
        let at = captured.captured_at_us;
        self.captured = Some(captured);
        self.stage = Some((LeadStage::New, at));
        self.furthest = self.furthest.max(0);
        self.last_visit = self.last_visit.max(1);
        self.visits.push(Visit {
            visit: 1,
            stage: LeadStage::New,
            entered_at_us: at,
            left_at_us: None,
        });
    }

    /// Closes the open stay and opens one in `stage`.
    fn enter(&mut self, stage: LeadStage, at: time::OffsetDateTime) {
        let at = micros(at);
        match self.visits.last_mut() {
            // The batch's latest stay is the open one (every change opens one).
            Some(open) => open.left_at_us = Some(at),
            None => self.closed_before = Some(at),
        }
        self.last_visit += 1;
        self.visits.push(Visit {
            visit: self.last_visit,
            stage,
            entered_at_us: at,
            left_at_us: None,
        });
        self.stage = Some((stage, at));
        let rank = stage.funnel_position().map_or(-1, i64::from);
        self.furthest = self.furthest.max(rank);
    }
}

/// What one event does to its lead's funnel rows.
enum Change {
    Capture(Captured),
    /// Into this stage, at this moment.
    Enter(LeadStage, time::OffsetDateTime),
}

/// The lead an event is about and what it does to it (None: nothing the funnel keeps).
fn change(event: LeadEvent) -> Option<(String, Change)> {
    let enter = |lead_id, stage, at| Some((lead_id, Change::Enter(stage, at)));
    match event {
        LeadEvent::LeadCaptured {
            lead_id,
            source,
            partner_id,
            captured_at,
            ..
        } => Some((
            lead_id,
            Change::Capture(Captured {
                source,
                partner_id,
                capture_week: iso_week(captured_at),
                captured_at_us: micros(captured_at),
            }),
        )),
        LeadEvent::LeadQualified {
            lead_id,
            qualified_at,
            ..
        } => enter(lead_id, LeadStage::Qualified, qualified_at),
        LeadEvent::DemoBooked {
            lead_id, booked_at, ..
        } => enter(lead_id, LeadStage::DemoBooked, booked_at),
        LeadEvent::DemoCanceled {
            lead_id,
            canceled_at,
            ..
        } => enter(lead_id, LeadStage::Qualified, canceled_at),
        LeadEvent::ProposalSent {
            lead_id, sent_at, ..
        } => enter(lead_id, LeadStage::Proposal, sent_at),
        LeadEvent::LeadPaid {
            lead_id, paid_at, ..
        } => enter(lead_id, LeadStage::Paid, paid_at),
        LeadEvent::OnboardingStarted {
            lead_id,
            started_at,
            ..
        } => enter(lead_id, LeadStage::Onboarding, started_at),
        LeadEvent::LeadActivated {
            lead_id,
            activated_at,
            ..
        } => enter(lead_id, LeadStage::Active, activated_at),
        LeadEvent::LeadArchived {
            lead_id,
            archived_at,
            ..
        } => enter(lead_id, LeadStage::Archived, archived_at),
        LeadEvent::LeadReopened {
            lead_id,
            stage,
            reopened_at,
            ..
        } => enter(lead_id, stage, reopened_at),
        LeadEvent::DemoNoShowRecorded { .. } | LeadEvent::FollowUpLogged { .. } => None,
    }
}

/// The highest visit number of each of `leads` in the table (leads without one are absent).
async fn last_visits(
    tx: &mut SqlTx,
    leads: &[&str],
) -> Result<HashMap<String, i64>, ProjectionError> {
    let mut found = HashMap::new();
    for chunk in leads.chunks(LOOKUP_CHUNK) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let params: Vec<SqlValue> = chunk.iter().map(|lead| (*lead).into()).collect();
        let sql = format!(
            "SELECT lead_id, MAX(visit) FROM funnel_stage_visits WHERE lead_id IN ({marks}) GROUP BY lead_id"
        );
        for row in tx.fetch_all(&sql, &params).await? {
            found.insert(row.text(0)?, row.i64(1)?);
        }
    }
    Ok(found)
}

/// Writes what the batch did: stays it closed first (before any it opened), then the stays it
/// began, then each lead's row (inserted when the batch captured it, else moved).
async fn write_folds(tx: &mut SqlTx, folds: Vec<(String, Fold)>) -> Result<(), ProjectionError> {
    for (lead_id, fold) in &folds {
        if let Some(at) = fold.closed_before {
            tx.write(
                "UPDATE funnel_stage_visits SET left_at_us = ? WHERE lead_id = ? AND left_at_us IS NULL",
                &[at.into(), lead_id.as_str().into()],
            )
            .await?;
        }
    }
    for (lead_id, fold) in &folds {
        for visit in &fold.visits {
            tx.write(
                "INSERT INTO funnel_stage_visits (lead_id, visit, stage, entered_at_us, left_at_us) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    lead_id.as_str().into(),
                    visit.visit.into(),
                    visit.stage.as_str().into(),
                    visit.entered_at_us.into(),
                    visit.left_at_us.into(),
                ],
            )
            .await?;
        }
    }
    for (lead_id, fold) in folds {
        let Some((stage, entered)) = fold.stage else {
            continue;
        };
        let Some(captured) = fold.captured else {
            // Captured before the batch: its row is there to move.
            tx.write(
                "UPDATE funnel_leads SET stage = ?, stage_entered_at_us = ?, \
                 furthest_rank = CASE WHEN furthest_rank < ? THEN ? ELSE furthest_rank END WHERE lead_id = ?",
                &[
                    stage.as_str().into(),
                    entered.into(),
                    fold.furthest.into(),
                    fold.furthest.into(),
                    lead_id.into(),
                ],
            )
            .await?;
            continue;
        };
        tx.write(
            "INSERT INTO funnel_leads (lead_id, source, partner_id, capture_week, captured_at_us, \
             stage, stage_entered_at_us, furthest_rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                lead_id.into(),
                captured.source.into(),
                captured.partner_id.into(),
                captured.capture_week.into(),
                captured.captured_at_us.into(),
                stage.as_str().into(),
                entered.into(),
                fold.furthest.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Projection for Funnel {
    fn name(&self) -> &'static str {
        "funnel"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["funnel_leads", "funnel_stage_visits"]
    }

    /// Folds the batch per lead, reading the last visit number of the leads it did not
    /// capture itself in one query, and writes each lead's rows once.
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut changes = Vec::new();
        for event in events.iter().filter(|event| event.stream_type == "lead") {
            changes.extend(change(decode::<LeadEvent>(event)?));
        }
        // One fold per lead, in the order the batch first touched each, so the writes come
        // out the same every time; a lead whose first change here is not its capture was
        // captured before the batch, and its stays are numbered on from the table's.
        let mut folds: Vec<(String, Fold)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut earlier: Vec<&str> = Vec::new();
        let mut touched = Vec::with_capacity(changes.len());
        for (lead_id, change) in &changes {
            let at = *index.entry(lead_id).or_insert_with(|| {
                if matches!(change, Change::Enter(..)) {
                    earlier.push(lead_id);
                }
                folds.push((lead_id.clone(), Fold::new()));
                folds.len() - 1
            });
            touched.push(at);
        }
        let last = last_visits(tx, &earlier).await?;
        for (lead_id, fold) in &mut folds {
            fold.last_visit = last.get(lead_id.as_str()).copied().unwrap_or(0);
        }
        for (at, (_, change)) in touched.into_iter().zip(changes) {
            let fold = &mut folds[at].1;
            match change {
                Change::Capture(captured) => fold.capture(captured),
                Change::Enter(stage, when) => fold.enter(stage, when),
            }
        }
        write_folds(tx, folds).await
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        let now = funnel_now(db).await?;
        Ok(json!({
            "leads": now.leads,
            "stages": now.stages,
            "conversion": now.conversion,
            "by_week": grouped(reached_by_group(db, Some("capture_week")).await?),
            "by_source": grouped(reached_by_group(db, Some("source")).await?),
            "by_partner": grouped(reached_by_group(db, Some("COALESCE(partner_id, '(none)')")).await?),
            "median_seconds_in_stage": median_seconds_in_stage(db).await?,
        }))
    }
}

/// How many leads stand in one stage now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StageLeads {
    pub stage: &'static str,
    pub leads: i64,
}

/// From one funnel stage to the next: how many reached each, and the rate in basis points of
/// those who reached the earlier one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConversionStep {
    pub from: &'static str,
    pub to: &'static str,
    pub reached_from: i64,
    pub reached_to: i64,
    pub rate_bps: i64,
}

/// The funnel now: every lead, the leads in each stage (the seven funnel stages in order, then
/// archived), and the conversion between consecutive stages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FunnelNow {
    pub leads: i64,
    pub stages: Vec<StageLeads>,
    pub conversion: Vec<ConversionStep>,
}

impl FunnelNow {
    /// How many leads ever reached each funnel stage, in funnel order.
    pub fn reached(&self) -> Vec<i64> {
        let first = self
            .conversion
            .first()
            .map_or(self.leads, |step| step.reached_from);
        std::iter::once(first)
            .chain(self.conversion.iter().map(|step| step.reached_to))
            .collect()
    }
}

/// The funnel now ([`FunnelNow`]).
pub async fn funnel_now(db: &SqlDb) -> Result<FunnelNow, ProjectionError> {
    let mut stages: BTreeMap<&str, i64> = FUNNEL.iter().map(|s| (s.as_str(), 0)).collect();
    stages.insert(LeadStage::Archived.as_str(), 0);
    let mut total = 0;
    for row in db
        .fetch_all(
            "SELECT stage, COUNT(*) FROM funnel_leads GROUP BY stage",
            &[],
        )
        .await?
    {
        let count = row.i64(1)?;
        total += count;
        if let Some(slot) = stages.get_mut(row.text(0)?.as_str()) {
            *slot = count;
        }
    }
    let overall = reached_by_group(db, None)
        .await?
        .remove("")
        .unwrap_or_default();
    Ok(FunnelNow {
        leads: total,
        stages: FUNNEL
            .iter()
            .chain([LeadStage::Archived].iter())
            .map(|stage| StageLeads {
                stage: stage.as_str(),
                leads: stages[stage.as_str()],
            })
            .collect(),
        conversion: conversion(&overall),
    })
}

/// For each group (all leads as one group `""` when `group` is None), how many leads reached
/// each funnel stage (index = funnel position).
async fn reached_by_group(
    db: &SqlDb,
    group: Option<&str>,
) -> Result<BTreeMap<String, [i64; 7]>, ProjectionError> {
    let sql = match group {
        Some(group) => format!(
            "SELECT {group}, furthest_rank, COUNT(*) FROM funnel_leads GROUP BY {group}, furthest_rank"
        ),
        None => "SELECT '', furthest_rank, COUNT(*) FROM funnel_leads GROUP BY furthest_rank".to_owned(),
    };
    let mut groups: BTreeMap<String, [i64; 7]> = BTreeMap::new();
    for row in db.fetch_all(&sql, &[]).await? {
        let reached = groups.entry(row.text(0)?).or_default();
        let furthest = row.i64(1)?.clamp(0, 6) as usize;
        let count = row.i64(2)?;
        for slot in reached.iter_mut().take(furthest + 1) {
            *slot += count;
        }
    }
    Ok(groups)
}

/// Conversion between consecutive stages in basis points of those who reached the earlier one.
fn conversion(reached: &[i64; 7]) -> Vec<ConversionStep> {
    FUNNEL
        .windows(2)
        .zip(reached.windows(2))
        .map(|(stages, counts)| {
            let rate_bps = if counts[0] == 0 {
                0
            } else {
                counts[1] * 10_000 / counts[0]
            };
            ConversionStep {
                from: stages[0].as_str(),
                to: stages[1].as_str(),
                reached_from: counts[0],
                reached_to: counts[1],
                rate_bps,
            }
        })
        .collect()
}

fn grouped(groups: BTreeMap<String, [i64; 7]>) -> Value {
    Value::Array(
        groups
            .into_iter()
            .map(|(key, reached)| {
                let by_stage: serde_json::Map<String, Value> =
                    FUNNEL.iter().zip(reached).map(|(s, n)| (s.as_str().to_owned(), n.into())).collect();
                json!({"key": key, "leads": reached[0], "reached": by_stage, "conversion": conversion(&reached)})
            })
            .collect(),
    )
}

/// Median completed stay per stage, in whole seconds (the lower middle for an even count).
async fn median_seconds_in_stage(db: &SqlDb) -> Result<Value, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT stage, left_at_us - entered_at_us FROM funnel_stage_visits \
             WHERE left_at_us IS NOT NULL ORDER BY stage, 2",
            &[],
        )
        .await?;
    let mut stays: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in rows {
        stays.entry(row.text(0)?).or_default().push(row.i64(1)?);
    }
    let medians: serde_json::Map<String, Value> = stays
        .into_iter()
        .map(|(stage, durations)| {
            let median = durations[(durations.len() - 1) / 2] / 1_000_000;
            (
                stage,
                json!({"median_seconds": median, "stays": durations.len()}),
            )
        })
        .collect();
    Ok(Value::Object(medians))
}
