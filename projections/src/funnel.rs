//! The sales funnel: leads per stage now, conversion between consecutive stages, by ISO week of
//! capture, by source and by partner, and the median time spent in each stage.
//!
//! Rows are facts about each lead (its stage, the furthest stage it ever reached, when it was
//! captured) and each stay in a stage; every figure is computed from them at read time, so the
//! tables stay a plain fold of the log and the numbers can never drift from it.

use std::collections::BTreeMap;

use adapters::sql::{SqlDb, SqlTx};
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

async fn enter_stage(
    tx: &mut SqlTx,
    lead_id: &str,
    stage: LeadStage,
    at: time::OffsetDateTime,
) -> Result<(), ProjectionError> {
    let at = micros(at);
    tx.write(
        "UPDATE funnel_stage_visits SET left_at_us = ? WHERE lead_id = ? AND left_at_us IS NULL",
        &[at.into(), lead_id.into()],
    )
    .await?;
    tx.write(
        "INSERT INTO funnel_stage_visits (lead_id, visit, stage, entered_at_us, left_at_us) \
         SELECT ?, COALESCE(MAX(visit), 0) + 1, ?, ?, NULL FROM funnel_stage_visits WHERE lead_id = ?",
        &[lead_id.into(), stage.as_str().into(), at.into(), lead_id.into()],
    )
    .await?;
    let rank = stage.funnel_position().map_or(-1, i64::from);
    tx.write(
        "UPDATE funnel_leads SET stage = ?, stage_entered_at_us = ?, \
         furthest_rank = CASE WHEN furthest_rank < ? THEN ? ELSE furthest_rank END WHERE lead_id = ?",
        &[stage.as_str().into(), at.into(), rank.into(), rank.into(), lead_id.into()],
    )
    .await?;
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

    async fn apply(&self, tx: &mut SqlTx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.stream_type != "lead" {
            return Ok(());
        }
        match decode::<LeadEvent>(event)? {
            LeadEvent::LeadCaptured {
                lead_id,
                source,
                partner_id,
                captured_at,
                ..
            } => {
                tx.write(
                    "INSERT INTO funnel_leads (lead_id, source, partner_id, capture_week, captured_at_us, \
                     stage, stage_entered_at_us, furthest_rank) VALUES (?, ?, ?, ?, ?, 'new', ?, 0)",
                    &[
                        lead_id.as_str().into(),
                        source.into(),
                        partner_id.into(),
                        iso_week(captured_at).into(),
                        micros(captured_at).into(),
                        micros(captured_at).into(),
                    ],
                )
                .await?;
                tx.write(
                    "INSERT INTO funnel_stage_visits (lead_id, visit, stage, entered_at_us, left_at_us) \
                     VALUES (?, 1, 'new', ?, NULL)",
                    &[lead_id.into(), micros(captured_at).into()],
                )
                .await?;
            }
            LeadEvent::LeadQualified {
                lead_id,
                qualified_at,
                ..
            } => enter_stage(tx, &lead_id, LeadStage::Qualified, qualified_at).await?,
            LeadEvent::DemoBooked {
                lead_id, booked_at, ..
            } => enter_stage(tx, &lead_id, LeadStage::DemoBooked, booked_at).await?,
            LeadEvent::DemoCanceled {
                lead_id,
                canceled_at,
                ..
            } => enter_stage(tx, &lead_id, LeadStage::Qualified, canceled_at).await?,
            LeadEvent::ProposalSent {
                lead_id, sent_at, ..
            } => enter_stage(tx, &lead_id, LeadStage::Proposal, sent_at).await?,
            LeadEvent::LeadPaid {
                lead_id, paid_at, ..
            } => enter_stage(tx, &lead_id, LeadStage::Paid, paid_at).await?,
            LeadEvent::OnboardingStarted {
                lead_id,
                started_at,
                ..
            } => enter_stage(tx, &lead_id, LeadStage::Onboarding, started_at).await?,
            LeadEvent::LeadActivated {
                lead_id,
                activated_at,
                ..
            } => enter_stage(tx, &lead_id, LeadStage::Active, activated_at).await?,
            LeadEvent::LeadArchived {
                lead_id,
                archived_at,
                ..
            } => enter_stage(tx, &lead_id, LeadStage::Archived, archived_at).await?,
            LeadEvent::LeadReopened {
                lead_id,
                stage,
                reopened_at,
                ..
            } => enter_stage(tx, &lead_id, stage, reopened_at).await?,
            LeadEvent::DemoNoShowRecorded { .. } | LeadEvent::FollowUpLogged { .. } => {}
        }
        Ok(())
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
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
        let stages_now: Vec<Value> = FUNNEL
            .iter()
            .chain([LeadStage::Archived].iter())
            .map(|stage| json!({"stage": stage.as_str(), "leads": stages[stage.as_str()]}))
            .collect();
        Ok(json!({
            "leads": total,
            "stages": stages_now,
            "conversion": conversion(&overall),
            "by_week": grouped(reached_by_group(db, Some("capture_week")).await?),
            "by_source": grouped(reached_by_group(db, Some("source")).await?),
            "by_partner": grouped(reached_by_group(db, Some("COALESCE(partner_id, '(none)')")).await?),
            "median_seconds_in_stage": median_seconds_in_stage(db).await?,
        }))
    }
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
fn conversion(reached: &[i64; 7]) -> Vec<Value> {
    FUNNEL
        .windows(2)
        .zip(reached.windows(2))
        .map(|(stages, counts)| {
            let rate_bps = if counts[0] == 0 {
                0
            } else {
                counts[1] * 10_000 / counts[0]
            };
            json!({
                "from": stages[0].as_str(),
                "to": stages[1].as_str(),
                "reached_from": counts[0],
                "reached_to": counts[1],
                "rate_bps": rate_bps,
            })
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
