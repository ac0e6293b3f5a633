//! The sales funnel: leads per stage now, conversion between consecutive stages, by ISO week of
//! capture, by source and by partner, and the median time spent in each stage.
//!
//! Rows are facts about each lead (`funnel_leads`: its stage, the furthest stage it ever
//! reached, when it was captured) and each stay in a stage (`funnel_stage_visits`). Beside
//! them, in the same transaction, each batch keeps the figures the funnel answers with, so a
//! read is a handful of rows however long the history (migration `0017`): the leads in each
//! stage now (`funnel_stage_counts`), how many leads reached each stage overall and per capture
//! week, source and partner (`funnel_reached_counts`, counts that only grow), and each stage's
//! completed stays with their median kept in place ([`median`]). A batch folds its events per
//! lead in memory, then writes each figure it changed once. `tests/it/funnel_counters.rs`
//! checks every figure against a count from the facts as a generated history grows.

use std::collections::{BTreeMap, HashMap};

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::lead::{LeadEvent, LeadStage};
use serde_json::{json, Value};

use crate::{decode, micros, Projection, ProjectionError};

mod median;

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

/// Lead ids a batch reads the open stay and row of in one query at most (bound parameters).
const LOOKUP_CHUNK: usize = 500;

/// Counter rows added per statement at most: a batch's changed counters go in a few upserts,
/// each well within either engine's limit of bound parameters.
const COUNTS_PER_STATEMENT: usize = 200;

/// The group key of a lead without a partner.
pub const NO_PARTNER: &str = "(none)";

/// The groups a lead counts in: all leads (one group, key ""), and its ISO week of capture,
/// its source and its partner.
fn groups_of(
    capture_week: &str,
    source: &str,
    partner_id: Option<&str>,
) -> [(&'static str, String); 4] {
    [
        ("all", String::new()),
        ("capture_week", capture_week.to_owned()),
        ("source", source.to_owned()),
        ("partner", partner_id.unwrap_or(NO_PARTNER).to_owned()),
    ]
}

/// The furthest rank a lead counts as having reached (every lead reached `new`).
fn reached_rank(furthest_rank: i64) -> i64 {
    furthest_rank.clamp(0, FUNNEL.len() as i64 - 1)
}

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

/// A lead captured before the batch, as its row stood.
struct Before {
    stage: String,
    furthest_rank: i64,
    groups: [(&'static str, String); 4],
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
    /// The stay open before the batch: its stage and when it began.
    open_before: Option<(String, i64)>,
    /// Its row before the batch, when it was captured earlier.
    before: Option<Before>,
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
            open_before: None,
            before: None,
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

/// What the table holds of a lead the batch moves but did not capture.
struct Earlier {
    last_visit: i64,
    /// The open stay: its stage and when it began.
    open: (String, i64),
    /// Its row, absent for a lead never captured.
    before: Option<Before>,
}

/// The open stay (always the highest visit) and the row of each of `leads` (leads without a
/// stay are absent), in one query per [`LOOKUP_CHUNK`] leads.
async fn earlier_leads(
    tx: &mut SqlTx,
    leads: &[&str],
) -> Result<HashMap<String, Earlier>, ProjectionError> {
    let mut found = HashMap::new();
    for chunk in leads.chunks(LOOKUP_CHUNK) {
        let (marks, params) = adapters::sql::in_list(chunk.iter().copied());
        let sql = format!(
            "SELECT v.lead_id, v.visit, v.stage, v.entered_at_us, l.stage, l.furthest_rank, \
             l.capture_week, l.source, l.partner_id FROM funnel_stage_visits AS v \
             LEFT JOIN funnel_leads AS l ON l.lead_id = v.lead_id \
             WHERE v.lead_id IN ({marks}) AND v.left_at_us IS NULL"
        );
        for row in tx.fetch_all(&sql, &params).await? {
            let before = match row.opt_text(4)? {
                Some(stage) => Some(Before {
                    stage,
                    furthest_rank: row.i64(5)?,
                    groups: groups_of(&row.text(6)?, &row.text(7)?, row.opt_text(8)?.as_deref()),
                }),
                None => None,
            };
            let earlier = Earlier {
                last_visit: row.i64(1)?,
                open: (row.text(2)?, row.i64(3)?),
                before,
            };
            found.insert(row.text(0)?, earlier);
        }
    }
    Ok(found)
}

/// What a batch changed of the funnel's figures: leads per stage now (up or down), leads that
/// reached each stage per group (only up), and the stays it completed per stage.
#[derive(Default)]
struct Tally {
    stages: BTreeMap<String, i64>,
    reached: BTreeMap<(&'static str, String, i64), i64>,
    stays: BTreeMap<String, Vec<i64>>,
}

impl Tally {
    fn count(&mut self, fold: &Fold) {
        if let (Some(left), Some((stage, entered))) = (fold.closed_before, &fold.open_before) {
            self.stays
                .entry(stage.clone())
                .or_default()
                .push(left - entered);
        }
        for visit in &fold.visits {
            if let Some(left) = visit.left_at_us {
                self.stays
                    .entry(visit.stage.as_str().to_owned())
                    .or_default()
                    .push(left - visit.entered_at_us);
            }
        }
        // A lead counts once it has a row: captured here, or before the batch.
        let (groups, newly_reached, from_stage) = match (&fold.captured, &fold.before) {
            (Some(captured), _) => (
                groups_of(
                    &captured.capture_week,
                    &captured.source,
                    captured.partner_id.as_deref(),
                ),
                0..=reached_rank(fold.furthest),
                None,
            ),
            (None, Some(before)) => (
                before.groups.clone(),
                reached_rank(before.furthest_rank) + 1
                    ..=reached_rank(before.furthest_rank.max(fold.furthest)),
                Some(before.stage.as_str()),
            ),
            (None, None) => return,
        };
        if let Some((stage, _)) = fold.stage {
            *self.stages.entry(stage.as_str().to_owned()).or_default() += 1;
            if let Some(from) = from_stage {
                *self.stages.entry(from.to_owned()).or_default() -= 1;
            }
        }
        for rank in newly_reached {
            for (kind, key) in &groups {
                *self.reached.entry((kind, key.clone(), rank)).or_default() += 1;
            }
        }
    }

    /// Writes the changed figures: a few upserts per table, whatever the batch's size.
    async fn write(self, tx: &mut SqlTx) -> Result<(), ProjectionError> {
        let moved: Vec<Vec<SqlValue>> = self
            .stages
            .iter()
            .filter(|(_, change)| **change != 0)
            .map(|(stage, change)| vec![stage.into(), (*change).into()])
            .collect();
        add_to_counts(tx, "funnel_stage_counts", &["stage"], "leads", moved).await?;
        if self.stages.values().any(|change| *change < 0) {
            // A stage left empty has no row, as a rebuild that never counted it there.
            tx.write("DELETE FROM funnel_stage_counts WHERE leads = 0", &[])
                .await?;
        }
        let reached = self
            .reached
            .into_iter()
            .map(|((kind, key, rank), leads)| {
                vec![kind.into(), key.into(), rank.into(), leads.into()]
            })
            .collect();
        add_to_counts(
            tx,
            "funnel_reached_counts",
            &["group_kind", "group_key", "stage_rank"],
            "leads",
            reached,
        )
        .await?;
        median::add_stays(tx, self.stays).await
    }
}

/// Adds each row's last value to `column` of `table`'s row that its other values key (a new
/// row starts at it), [`COUNTS_PER_STATEMENT`] rows per upsert. Each key comes once.
async fn add_to_counts(
    tx: &mut SqlTx,
    table: &str,
    keys: &[&str],
    column: &str,
    rows: Vec<Vec<SqlValue>>,
) -> Result<(), ProjectionError> {
    let keys = keys.join(", ");
    let marks = format!(
        "({})",
        vec!["?"; rows.first().map_or(0, Vec::len)].join(", ")
    );
    for chunk in rows.chunks(COUNTS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} ({keys}, {column}) VALUES {} ON CONFLICT ({keys}) \
             DO UPDATE SET {column} = {table}.{column} + excluded.{column}",
            vec![marks.as_str(); chunk.len()].join(", ")
        );
        tx.write(&sql, &chunk.concat()).await?;
    }
    Ok(())
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
        &[
            "funnel_leads",
            "funnel_stage_visits",
            "funnel_stage_counts",
            "funnel_reached_counts",
            "funnel_stay_lengths",
            "funnel_stay_medians",
        ]
    }

    /// Folds the batch per lead, reading the open stay and the row of the leads it did not
    /// capture itself in one query, writes each lead's rows once and then the figures the
    /// batch changed.
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
        let mut found = earlier_leads(tx, &earlier).await?;
        for (lead_id, fold) in &mut folds {
            if let Some(earlier) = found.remove(lead_id.as_str()) {
                fold.last_visit = earlier.last_visit;
                fold.open_before = Some(earlier.open);
                fold.before = earlier.before;
            }
        }
        for (at, (_, change)) in touched.into_iter().zip(changes) {
            let fold = &mut folds[at].1;
            match change {
                Change::Capture(captured) => fold.capture(captured),
                Change::Enter(stage, when) => fold.enter(stage, when),
            }
        }
        let mut tally = Tally::default();
        folds.iter().for_each(|(_, fold)| tally.count(fold));
        write_folds(tx, folds).await?;
        tally.write(tx).await
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        let counts = FunnelCounts::read(db).await?;
        let now = FunnelNow::new(&counts.stages, counts.group("all").remove(""));
        let medians: serde_json::Map<String, Value> = counts
            .stays
            .iter()
            .map(|(stage, stays)| {
                let median = stays.median_us / 1_000_000;
                let figures = json!({"median_seconds": median, "stays": stays.stays});
                (stage.clone(), figures)
            })
            .collect();
        Ok(json!({
            "leads": now.leads,
            "stages": now.stages,
            "conversion": now.conversion,
            "by_week": grouped(counts.group("capture_week")),
            "by_source": grouped(counts.group("source")),
            "by_partner": grouped(counts.group("partner")),
            "median_seconds_in_stage": Value::Object(medians),
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

impl FunnelNow {
    /// From the leads in each stage now and how many of all leads reached each funnel stage.
    fn new(stage_counts: &BTreeMap<String, i64>, reached: Option<[i64; 7]>) -> FunnelNow {
        let stages = FUNNEL
            .iter()
            .chain([LeadStage::Archived].iter())
            .map(|stage| StageLeads {
                stage: stage.as_str(),
                leads: stage_counts.get(stage.as_str()).copied().unwrap_or(0),
            })
            .collect();
        FunnelNow {
            leads: stage_counts.values().sum(),
            stages,
            conversion: conversion(&reached.unwrap_or_default()),
        }
    }
}

/// The funnel now ([`FunnelNow`]): two reads of a few rows each.
pub async fn funnel_now(db: &SqlDb) -> Result<FunnelNow, ProjectionError> {
    let stages = stage_counts(db).await?;
    let mut reached = reached_counts(db, Some("all")).await?;
    Ok(FunnelNow::new(
        &stages,
        reached.remove(&("all".to_owned(), String::new())),
    ))
}

/// The funnel's figures as it keeps them: what [`Funnel::render`] answers with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunnelCounts {
    /// Leads in each stage now, by stage (a stage without any is absent).
    pub stages: BTreeMap<String, i64>,
    /// How many leads reached each funnel stage (index = funnel position), by group: kind
    /// (`all`, `capture_week`, `source`, `partner`) and key (`""` for all leads, [`NO_PARTNER`]
    /// for leads without a partner).
    pub reached: BTreeMap<(String, String), [i64; 7]>,
    /// Each stage's completed stays (a stage without any is absent).
    pub stays: BTreeMap<String, StayMedian>,
}

/// A stage's completed stays: how many, and the lower middle of their lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StayMedian {
    pub stays: i64,
    pub median_us: i64,
}

impl FunnelCounts {
    /// The maintained tables, whole: a row per stage and per group and stage reached.
    pub async fn read(db: &SqlDb) -> Result<FunnelCounts, ProjectionError> {
        let rows = db
            .fetch_all(
                "SELECT stage, stays, median_us FROM funnel_stay_medians",
                &[],
            )
            .await?;
        let stays = rows
            .iter()
            .map(|row| {
                let stays = StayMedian {
                    stays: row.i64(1)?,
                    median_us: row.i64(2)?,
                };
                Ok((row.text(0)?, stays))
            })
            .collect::<Result<_, ProjectionError>>()?;
        Ok(FunnelCounts {
            stages: stage_counts(db).await?,
            reached: reached_counts(db, None).await?,
            stays,
        })
    }

    /// How many leads reached each funnel stage in each group of `kind`, by key.
    fn group(&self, kind: &str) -> BTreeMap<String, [i64; 7]> {
        self.reached
            .iter()
            .filter(|((of, _), _)| of == kind)
            .map(|((_, key), reached)| (key.clone(), *reached))
            .collect()
    }
}

/// Leads in each stage now, by stage.
async fn stage_counts(db: &SqlDb) -> Result<BTreeMap<String, i64>, ProjectionError> {
    db.fetch_all("SELECT stage, leads FROM funnel_stage_counts", &[])
        .await?
        .iter()
        .map(|row| Ok((row.text(0)?, row.i64(1)?)))
        .collect()
}

/// How many leads reached each funnel stage, by group (of `kind` only, when given).
async fn reached_counts(
    db: &SqlDb,
    kind: Option<&str>,
) -> Result<BTreeMap<(String, String), [i64; 7]>, ProjectionError> {
    let select = "SELECT group_kind, group_key, stage_rank, leads FROM funnel_reached_counts";
    let rows = match kind {
        Some(kind) => {
            let sql = format!("{select} WHERE group_kind = ?");
            db.fetch_all(&sql, &[kind.into()]).await?
        }
        None => db.fetch_all(select, &[]).await?,
    };
    let mut groups: BTreeMap<(String, String), [i64; 7]> = BTreeMap::new();
    for row in rows {
        let reached = groups.entry((row.text(0)?, row.text(1)?)).or_default();
        reached[reached_rank(row.i64(2)?) as usize] = row.i64(3)?;
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
