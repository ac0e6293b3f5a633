//! Money per calendar month, in Riyadh's time (UTC+3, no daylight saving), for the
//! dashboard's charts: MRR at each month's end and collections in each month.
//!
//! Both are read from figures kept as the events arrive, so a chart costs the same after five
//! years as on the first day:
//!
//! - **MRR at a moment** follows [`crate::revenue`]'s rule: a customer's subscription is the
//!   plan of its latest paid invoice that sells a plan, active until that invoice is refunded
//!   in full; MRR sums the monthly price before VAT of active paid plans (the pilot counts 0).
//!   The revenue read model keeps how much MRR changed in each month (`revenue_mrr_changes`):
//!   MRR at a month's end is the sum of the changes up to that month.
//! - **Collections** are what the gateway took (the journal's capture entries, `Dr
//!   gateway_clearing`, entry 0 of a payment event) less what it handed back
//!   (`PaymentRefunded`'s `Cr cash`); the journal keeps them per Riyadh day
//!   (`ledger_collection_days`).
//!
//! [`facts`] computes both again from the facts themselves (the paid and refunded invoices,
//! the journal's lines): the tests' from-scratch check of the kept figures.
//!
//! The months are computed here from Unix microseconds, so both engines agree (no
//! engine-specific date functions in SQL).

use std::collections::{BTreeMap, HashMap};

use adapters::sql::SqlDb;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::revenue::{monthly_halalas, parse_plan};
use crate::ProjectionError;

/// Riyadh's offset from UTC, all year.
const RIYADH_OFFSET_HOURS: i8 = 3;

/// One month's figure.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MonthFigure {
    /// `YYYY-MM`, in Riyadh.
    pub month: String,
    pub halalas: i64,
}

fn riyadh() -> UtcOffset {
    UtcOffset::from_hms(RIYADH_OFFSET_HOURS, 0, 0).unwrap_or(UtcOffset::UTC)
}

fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The month (`YYYY-MM`, in Riyadh) of a moment in Unix microseconds.
pub fn month_of(us: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok()?;
    let local = at.to_offset(riyadh());
    Some(format!(
        "{:04}-{:02}",
        local.year(),
        u8::from(local.month())
    ))
}

/// The `count` months ending with the one `now` falls in (oldest first), each with the moment
/// it ends (exclusive, Unix microseconds; the current month's is `now`).
pub fn months_ending(now: OffsetDateTime, count: u32) -> Vec<(String, i64)> {
    let local = now.to_offset(riyadh());
    let (mut year, mut month) = (local.year(), local.month());
    let mut months = Vec::with_capacity(count as usize);
    let mut end = micros(now);
    for _ in 0..count.max(1) {
        months.push((format!("{year:04}-{:02}", u8::from(month)), end));
        // This month's start is the previous month's end.
        let start = Date::from_calendar_date(year, month, 1)
            .map(|date| date.with_time(Time::MIDNIGHT).assume_offset(riyadh()));
        let Ok(start) = start else { break };
        end = micros(start);
        if month == Month::January {
            year -= 1;
        }
        month = month.previous();
    }
    months.reverse();
    months
}

/// The first moment of the oldest of `months` (midnight of its first day in Riyadh).
fn start_of_first(months: &[(String, i64)]) -> i64 {
    months.first().map_or(0, |(month, _)| {
        // One month before its end is not exact, so take its first day at midnight in Riyadh.
        let year: i32 = month[..4].parse().unwrap_or(1970);
        let number: u8 = month[5..].parse().unwrap_or(1);
        Month::try_from(number)
            .ok()
            .and_then(|m| Date::from_calendar_date(year, m, 1).ok())
            .map_or(0, |date| {
                micros(date.with_time(Time::MIDNIGHT).assume_offset(riyadh()))
            })
    })
}

/// MRR at the end of each of the `count` months ending with `now`'s (oldest first): the sum
/// of the kept monthly changes up to each.
pub async fn mrr_by_month(
    db: &SqlDb,
    now: OffsetDateTime,
    count: u32,
) -> Result<Vec<MonthFigure>, ProjectionError> {
    let changes = db
        .fetch_all(
            "SELECT month, halalas FROM revenue_mrr_changes ORDER BY month",
            &[],
        )
        .await?;
    let mut changes = changes
        .iter()
        .map(|row| Ok((row.text(0)?, row.i64(1)?)))
        .collect::<Result<Vec<_>, ProjectionError>>()?
        .into_iter()
        .peekable();
    let mut running = 0i64;
    Ok(months_ending(now, count)
        .into_iter()
        .map(|(month, _)| {
            while let Some((_, halalas)) = changes.next_if(|(changed, _)| *changed <= month) {
                running += halalas;
            }
            MonthFigure {
                month,
                halalas: running,
            }
        })
        .collect())
}

/// Collections (captured less refunded) in each of the `count` months ending with `now`'s
/// (oldest first), from the journal's kept days.
pub async fn collections_by_month(
    db: &SqlDb,
    now: OffsetDateTime,
    count: u32,
) -> Result<Vec<MonthFigure>, ProjectionError> {
    let months = months_ending(now, count);
    let since_day = crate::ledger::balances::riyadh_day(start_of_first(&months));
    let rows = db
        .fetch_all(
            "SELECT day, halalas FROM ledger_collection_days WHERE day >= ?",
            &[since_day.into()],
        )
        .await?;
    let mut by_month: HashMap<String, i64> = HashMap::new();
    for row in &rows {
        let date = crate::ledger::balances::day_date(row.i64(0)?);
        *by_month.entry(date[..7].to_owned()).or_default() += row.i64(1)?;
    }
    Ok(per_month(months, &by_month))
}

/// Each of `months` with its sum in `by_month` (0 for a month with none).
fn per_month(months: Vec<(String, i64)>, by_month: &HashMap<String, i64>) -> Vec<MonthFigure> {
    months
        .into_iter()
        .map(|(month, _)| {
            let halalas = by_month.get(&month).copied().unwrap_or(0);
            MonthFigure { month, halalas }
        })
        .collect()
}

/// Both charts computed again from the facts, not from the kept figures: the paid and
/// refunded plan invoices (with when the journal applied their last payment and posted their
/// last refund) and every capture and refund line of the journal. Reads grow with history;
/// for the tests' check of the kept figures.
pub mod facts {
    use super::*;

    /// The latest time of each stream's journal entries of `event_type`.
    async fn latest_entry_by_stream(
        db: &SqlDb,
        event_type: &str,
    ) -> Result<HashMap<String, i64>, ProjectionError> {
        let rows = db
        .fetch_all(
            "SELECT stream_id, MAX(occurred_at_us) FROM ledger_entries WHERE event_type = ? GROUP BY stream_id",
            &[event_type.into()],
        )
        .await?;
        rows.iter()
            .map(|row| Ok((row.text(0)?, row.i64(1)?)))
            .collect()
    }

    /// A plan invoice that was paid: who, what per month, since when, and until when (refunded
    /// in full).
    struct Subscription {
        lead_id: String,
        monthly_halalas: i64,
        paid_at_us: i64,
        ended_at_us: Option<i64>,
    }

    /// MRR at the end of each of the `count` months ending with `now`'s (oldest first).
    pub async fn mrr_by_month(
        db: &SqlDb,
        now: OffsetDateTime,
        count: u32,
    ) -> Result<Vec<MonthFigure>, ProjectionError> {
        let paid = latest_entry_by_stream(db, "PaymentRecorded").await?;
        let refunded = latest_entry_by_stream(db, "InvoiceRefunded").await?;
        let rows = db
            .fetch_all(
                "SELECT invoice_id, lead_id, plan, status FROM revenue_invoices \
             WHERE plan IS NOT NULL AND status IN ('paid', 'refunded')",
                &[],
            )
            .await?;
        let mut subscriptions = Vec::with_capacity(rows.len());
        for row in &rows {
            let stream = format!("invoice-{}", row.text(0)?);
            let (Some(plan), Some(paid_at_us)) = (
                row.opt_text(2)?.as_deref().and_then(parse_plan),
                paid.get(&stream).copied(),
            ) else {
                continue;
            };
            let ended_at_us = if row.text(3)? == "refunded" {
                refunded.get(&stream).copied()
            } else {
                None
            };
            subscriptions.push(Subscription {
                lead_id: row.text(1)?,
                monthly_halalas: monthly_halalas(plan),
                paid_at_us,
                ended_at_us,
            });
        }
        // Each customer's latest paid plan invoice wins, so order by payment time.
        subscriptions.sort_by_key(|s| s.paid_at_us);
        Ok(months_ending(now, count)
            .into_iter()
            .map(|(month, end_us)| {
                let mut current: BTreeMap<&str, &Subscription> = BTreeMap::new();
                for subscription in subscriptions.iter().filter(|s| s.paid_at_us < end_us) {
                    current.insert(&subscription.lead_id, subscription);
                }
                let halalas = current
                    .values()
                    .filter(|s| s.ended_at_us.is_none_or(|ended| ended >= end_us))
                    .map(|s| s.monthly_halalas)
                    .sum();
                MonthFigure { month, halalas }
            })
            .collect())
    }

    /// Collections in each of the `count` months ending with `now`'s, from the journal's lines.
    pub async fn collections_by_month(
        db: &SqlDb,
        now: OffsetDateTime,
        count: u32,
    ) -> Result<Vec<MonthFigure>, ProjectionError> {
        let months = months_ending(now, count);
        let since_us = start_of_first(&months);
        let rows = db
        .fetch_all(
            "SELECT e.occurred_at_us, \
             CAST(l.debit_halalas - l.credit_halalas AS BIGINT) \
             FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id \
             WHERE l.account = 'gateway_clearing' AND e.entry_index = 0 AND e.occurred_at_us >= ? \
             UNION ALL \
             SELECT e.occurred_at_us, CAST(l.debit_halalas - l.credit_halalas AS BIGINT) \
             FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id \
             WHERE l.account = 'cash' AND e.event_type = 'PaymentRefunded' AND e.occurred_at_us >= ?",
            &[since_us.into(), since_us.into()],
        )
        .await?;
        let mut by_month: HashMap<String, i64> = HashMap::new();
        for row in &rows {
            let Some(month) = month_of(row.i64(0)?) else {
                continue;
            };
            *by_month.entry(month).or_default() += row.i64(1)?;
        }
        Ok(per_month(months, &by_month))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_end_at_midnight_in_riyadh_and_the_current_one_now() {
        // 2027-01-01 01:30 in Riyadh.
        let now = OffsetDateTime::from_unix_timestamp(1_798_756_200).unwrap();
        let months = months_ending(now, 3);
        let names: Vec<&str> = months.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, ["2026-11", "2026-12", "2027-01"]);
        assert_eq!(months[2].1, 1_798_756_200_000_000);
        // December ends at 2026-12-31 21:00 UTC, midnight in Riyadh.
        assert_eq!(months[1].1, 1_798_750_800_000_000);
        assert_eq!(
            month_of(1_798_750_800_000_000 - 1).as_deref(),
            Some("2026-12")
        );
        assert_eq!(month_of(1_798_750_800_000_000).as_deref(), Some("2027-01"));
    }
}
