//! The median completed stay of each stage, kept exact as stays complete, without reading them.
//!
//! The funnel answers with the lower middle of a stage's completed stays: sorted, the one at
//! index `(stays - 1) / 2`. Sorting every stay on each read grew with the history, so the
//! stays are kept as a histogram, `funnel_stay_lengths` (how many stays lasted exactly so
//! long, keyed by stage and length), and each stage's middle as a maintained order statistic
//! in `funnel_stay_medians`: its length, how many stays are shorter (`below`) and how many
//! are exactly as long (`at_median`), which together place it in the sorted order.
//!
//! A batch adds its new stays to the histogram and to those two counts, then moves the middle
//! where the new count puts it: down to the next shorter lengths or up to the next longer
//! ones, each step one histogram row. Adding `n` stays moves the middle by at most `n`
//! places, so one indexed seek per stage and batch (`ORDER BY stay_us … LIMIT` the places it
//! may move) reads every row the moves need. A read is then one row per stage.

use std::collections::BTreeMap;

use adapters::sql::{SqlTx, SqlValue};

use super::add_to_counts;
use crate::ProjectionError;

/// A stage's completed stays and where their lower middle stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Middle {
    pub stays: i64,
    pub median_us: i64,
    /// Stays shorter than the median.
    pub below: i64,
    /// Stays exactly as long as the median (the median among them).
    pub at_median: i64,
}

/// Which way the middle must move, and at most how many distinct lengths it passes (each
/// length holds at least one stay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shift {
    Down(i64),
    Up(i64),
}

/// The histogram ran out before the middle reached its place: the two tables disagree.
#[derive(Debug)]
pub(super) struct ShortHistogram;

impl Middle {
    /// The middle of a stage's first stays.
    fn first(stays: &[i64]) -> Option<Middle> {
        let mut sorted = stays.to_vec();
        sorted.sort_unstable();
        let median_us = *sorted.get((sorted.len().checked_sub(1)?) / 2)?;
        Some(Middle {
            stays: sorted.len() as i64,
            median_us,
            below: sorted.iter().filter(|stay| **stay < median_us).count() as i64,
            at_median: sorted.iter().filter(|stay| **stay == median_us).count() as i64,
        })
    }

    /// Counts a new stay where it falls; the middle itself moves in [`Middle::settle`].
    fn add(&mut self, stay_us: i64) {
        self.stays += 1;
        if stay_us < self.median_us {
            self.below += 1;
        } else if stay_us == self.median_us {
            self.at_median += 1;
        }
    }

    /// Where the middle must go for the stays counted so far; `None` when it is in place.
    pub(super) fn shift(&self) -> Option<Shift> {
        let target = (self.stays - 1) / 2;
        if target < self.below {
            Some(Shift::Down(self.below - target))
        } else if target >= self.below + self.at_median {
            Some(Shift::Up(target - self.below - self.at_median + 1))
        } else {
            None
        }
    }

    /// Moves the middle over `lengths`, the histogram's rows `(stay_us, stays)` next to it in
    /// the direction of [`Middle::shift`], nearest first, until it is in place.
    pub(super) fn settle(
        &mut self,
        lengths: impl IntoIterator<Item = (i64, i64)>,
    ) -> Result<(), ShortHistogram> {
        let mut lengths = lengths.into_iter();
        while let Some(shift) = self.shift() {
            let (stay_us, stays) = lengths.next().ok_or(ShortHistogram)?;
            match shift {
                Shift::Down(_) => self.below -= stays,
                Shift::Up(_) => self.below += self.at_median,
            }
            self.median_us = stay_us;
            self.at_median = stays;
        }
        Ok(())
    }
}

/// Adds the batch's completed stays, by stage: to the histogram, then to each stage's middle,
/// moved with one seek at most per stage.
pub(super) async fn add_stays(
    tx: &mut SqlTx,
    stays: BTreeMap<String, Vec<i64>>,
) -> Result<(), ProjectionError> {
    if stays.is_empty() {
        return Ok(());
    }
    let mut lengths: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for (stage, stays) in &stays {
        for stay_us in stays {
            *lengths.entry((stage, *stay_us)).or_default() += 1;
        }
    }
    let rows = lengths
        .into_iter()
        .map(|((stage, stay_us), count)| vec![stage.into(), stay_us.into(), count.into()])
        .collect();
    add_to_counts(
        tx,
        "funnel_stay_lengths",
        &["stage", "stay_us"],
        "stays",
        rows,
    )
    .await?;

    let mut middles = middles(tx).await?;
    for (stage, new) in stays {
        let middle = match middles.get(&stage) {
            Some(before) => {
                let mut middle = *before;
                new.iter().for_each(|stay_us| middle.add(*stay_us));
                if let Some(shift) = middle.shift() {
                    let next = lengths_beside(tx, &stage, middle.median_us, shift).await?;
                    middle.settle(next).map_err(|ShortHistogram| {
                        ProjectionError::Inconsistent(format!(
                            "funnel_stay_lengths holds fewer {stage} stays than funnel_stay_medians counts"
                        ))
                    })?;
                }
                middle
            }
            None => match Middle::first(&new) {
                Some(middle) => middle,
                None => continue,
            },
        };
        tx.write(
            "INSERT INTO funnel_stay_medians (stage, stays, median_us, below, at_median) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (stage) DO UPDATE SET stays = excluded.stays, \
             median_us = excluded.median_us, below = excluded.below, at_median = excluded.at_median",
            &[
                stage.as_str().into(),
                middle.stays.into(),
                middle.median_us.into(),
                middle.below.into(),
                middle.at_median.into(),
            ],
        )
        .await?;
        middles.insert(stage, middle);
    }
    Ok(())
}

/// Every stage's middle as the table holds it (a row per stage with a completed stay).
async fn middles(tx: &mut SqlTx) -> Result<BTreeMap<String, Middle>, ProjectionError> {
    let rows = tx
        .fetch_all(
            "SELECT stage, stays, median_us, below, at_median FROM funnel_stay_medians",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let middle = Middle {
                stays: row.i64(1)?,
                median_us: row.i64(2)?,
                below: row.i64(3)?,
                at_median: row.i64(4)?,
            };
            Ok((row.text(0)?, middle))
        })
        .collect()
}

/// The histogram's rows next to `median_us` in the direction of `shift`, nearest first, as
/// many as the middle may pass.
async fn lengths_beside(
    tx: &mut SqlTx,
    stage: &str,
    median_us: i64,
    shift: Shift,
) -> Result<Vec<(i64, i64)>, ProjectionError> {
    let (sql, limit) = match shift {
        Shift::Down(limit) => (
            "SELECT stay_us, stays FROM funnel_stay_lengths WHERE stage = ? AND stay_us < ? \
             ORDER BY stay_us DESC LIMIT ?",
            limit,
        ),
        Shift::Up(limit) => (
            "SELECT stay_us, stays FROM funnel_stay_lengths WHERE stage = ? AND stay_us > ? \
             ORDER BY stay_us LIMIT ?",
            limit,
        ),
    };
    let params: [SqlValue; 3] = [stage.into(), median_us.into(), limit.into()];
    tx.fetch_all(sql, &params)
        .await?
        .iter()
        .map(|row| Ok((row.i64(0)?, row.i64(1)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The lower middle of `stays` and its place, from the sorted stays.
    fn from_sorted(stays: &[i64]) -> Middle {
        let mut sorted = stays.to_vec();
        sorted.sort_unstable();
        let median_us = sorted[(sorted.len() - 1) / 2];
        Middle {
            stays: sorted.len() as i64,
            median_us,
            below: sorted.iter().filter(|s| **s < median_us).count() as i64,
            at_median: sorted.iter().filter(|s| **s == median_us).count() as i64,
        }
    }

    /// What [`add_stays`] does, with a map for the histogram and its range for the seek.
    fn add_batch(
        histogram: &mut BTreeMap<i64, i64>,
        middle: Option<Middle>,
        batch: &[i64],
    ) -> Option<Middle> {
        for stay in batch {
            *histogram.entry(*stay).or_default() += 1;
        }
        let Some(mut middle) = middle else {
            return Middle::first(batch);
        };
        batch.iter().for_each(|stay| middle.add(*stay));
        let beside: Vec<(i64, i64)> = match middle.shift() {
            None => Vec::new(),
            Some(Shift::Down(limit)) => histogram
                .range(..middle.median_us)
                .rev()
                .take(limit as usize)
                .map(|(stay, count)| (*stay, *count))
                .collect(),
            Some(Shift::Up(limit)) => histogram
                .range(middle.median_us + 1..)
                .take(limit as usize)
                .map(|(stay, count)| (*stay, *count))
                .collect(),
        };
        middle
            .settle(beside)
            .expect("the histogram holds every stay");
        Some(middle)
    }

    #[test]
    fn four_hours_is_the_middle_of_two_four_and_six() {
        let hour = 3_600_000_000;
        let middle = Middle::first(&[6 * hour, 2 * hour, 4 * hour]).unwrap();
        assert_eq!(middle.median_us, 4 * hour);
        assert_eq!((middle.below, middle.at_median), (1, 1));
    }

    #[test]
    fn an_even_count_takes_the_lower_middle_and_a_short_stay_moves_it_down() {
        let mut histogram = BTreeMap::new();
        let middle = add_batch(&mut histogram, None, &[10, 20, 30, 40]);
        assert_eq!(middle.unwrap().median_us, 20);
        let middle = add_batch(&mut histogram, middle, &[1, 2]).unwrap();
        assert_eq!(middle, from_sorted(&[1, 2, 10, 20, 30, 40]));
        assert_eq!(middle.median_us, 10);
    }

    #[test]
    fn no_stays_have_no_middle() {
        assert_eq!(Middle::first(&[]), None);
    }

    #[test]
    fn a_histogram_that_runs_out_is_reported() {
        let mut middle = Middle::first(&[5]).unwrap();
        middle.add(9);
        middle.add(9);
        assert_eq!(middle.shift(), Some(Shift::Up(1)));
        assert!(middle.settle(Vec::new()).is_err());
    }

    proptest! {
        /// However the stays arrive (ties, negatives, batches of any size), the middle equals
        /// the lower middle of all of them sorted, and its place counts are exact.
        #[test]
        fn the_kept_middle_equals_the_sorted_lower_middle(
            batches in prop::collection::vec(prop::collection::vec(-5i64..40, 0..12), 1..25)
        ) {
            let mut histogram = BTreeMap::new();
            let mut middle = None;
            let mut all = Vec::new();
            for batch in &batches {
                middle = add_batch(&mut histogram, middle, batch);
                all.extend_from_slice(batch);
                if all.is_empty() {
                    prop_assert_eq!(middle, None);
                } else {
                    prop_assert_eq!(middle, Some(from_sorted(&all)));
                }
            }
        }
    }
}
