//! Events a money read model does not fold, and why.
//!
//! Every amount in revledger is refused above [`MAX_AMOUNT_HALALAS`] where it enters (the API,
//! the webhooks, the domain's rules), so the sums a read model forms stay inside `i64`. A log
//! written before that ceiling existed may still hold an event beyond it, and events are
//! permanent: folded, it would overflow the journal's and the statements' sums for good, and
//! every read of those models would fail from then on.
//!
//! So the read models that add money up ([`crate::Projection::folds_money`]) set such an event
//! aside instead: it is recorded in `quarantined_events` with the field and amount at fault, in
//! the same transaction as the rest of the batch, and everything else is folded as usual. The
//! choice is deterministic (it depends on the event alone), so a rebuild quarantines the same
//! events and still equals the live tables. `GET /api/projections` lists them, the metric
//! `revledger_projection_quarantined_events{projection}` counts them and an alert fires while
//! any exists: a quarantined event is a fact finance must look at (RUNBOOK, "Quarantined
//! events"), not something the service hides.

use adapters::sql::{SqlDb, SqlTx};
use adapters::store::RecordedEvent;
use domain::money::MAX_AMOUNT_HALALAS;
use serde::Serialize;
use serde_json::Value;

use crate::{Projection, ProjectionError};

/// The suffix of every money field in an event (units last in names: `amount_halalas`).
const MONEY_FIELD_SUFFIX: &str = "_halalas";

/// Quarantined events one listing returns at most.
pub const MAX_LISTED: i64 = 100;

/// One event a read model set aside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuarantinedEvent {
    pub position: i64,
    pub event_id: String,
    pub stream_id: String,
    pub event_type: String,
    pub reason: String,
}

/// Why an event's payload cannot be added up: the first money field (`…_halalas`, at any
/// depth) that is not a whole number within ±[`MAX_AMOUNT_HALALAS`], named by its path.
pub fn money_beyond_ceiling(payload: &Value) -> Option<String> {
    beyond_ceiling_at(payload, "")
}

fn beyond_ceiling_at(value: &Value, path: &str) -> Option<String> {
    // Found first, named after: most events hold no such field, and building each path as
    // the walk went was a sixth of a rebuild's time.
    let (mut steps, amount) = first_beyond_ceiling(value)?;
    steps.reverse();
    let mut named = path.to_owned();
    for step in steps {
        match step {
            Step::Key(key) if named.is_empty() => named.push_str(key),
            Step::Key(key) => {
                named.push('.');
                named.push_str(key);
            }
            Step::Index(index) => named.push_str(&format!("[{index}]")),
        }
    }
    Some(format!(
        "{named} is {amount}, beyond the ceiling of ±{MAX_AMOUNT_HALALAS} halalas"
    ))
}

/// One step of a path into a payload.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The first money field beyond the ceiling: its path, innermost step first, and its amount.
fn first_beyond_ceiling(value: &Value) -> Option<(Vec<Step<'_>>, String)> {
    match value {
        Value::Object(fields) => fields.iter().find_map(|(key, field)| {
            let found =
                if key.ends_with(MONEY_FIELD_SUFFIX) && !field.is_object() && !field.is_array() {
                    beyond_ceiling(field).map(|amount| (Vec::new(), amount))
                } else {
                    first_beyond_ceiling(field)
                };
            found.map(|(mut steps, amount)| {
                steps.push(Step::Key(key));
                (steps, amount)
            })
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            first_beyond_ceiling(item).map(|(mut steps, amount)| {
                steps.push(Step::Index(index));
                (steps, amount)
            })
        }),
        _ => None,
    }
}

/// The amount as written, when it is not a whole number within the ceiling (`null` is no amount).
fn beyond_ceiling(field: &Value) -> Option<String> {
    match field {
        Value::Null => None,
        Value::Number(number) => match number.as_i64() {
            Some(amount) if amount.unsigned_abs() <= MAX_AMOUNT_HALALAS.unsigned_abs() => None,
            _ => Some(number.to_string()),
        },
        other => Some(other.to_string()),
    }
}

/// Which events of a batch carry an amount beyond the ceiling, worked out once for the batch
/// on first use, however many money read models fold it (each would otherwise walk every
/// payload again).
pub(crate) struct Admission<'a> {
    batch: &'a [RecordedEvent],
    verdicts: std::sync::OnceLock<Vec<Option<String>>>,
}

impl<'a> Admission<'a> {
    pub(crate) fn new(batch: &'a [RecordedEvent]) -> Admission<'a> {
        Admission {
            batch,
            verdicts: std::sync::OnceLock::new(),
        }
    }

    /// The verdicts of `events`, which must end the batch (a member's events after its
    /// checkpoint are a suffix of it).
    fn of(&self, events: &[RecordedEvent]) -> &[Option<String>] {
        let verdicts = self.verdicts.get_or_init(|| {
            self.batch
                .iter()
                .map(|event| money_beyond_ceiling(&event.payload))
                .collect()
        });
        let start = self.batch.len().saturating_sub(events.len());
        debug_assert!(std::ptr::eq(&self.batch[start..], events));
        &verdicts[start..]
    }
}

/// Applies `events` (the end of `admission`'s batch) to `projection` inside `tx`, setting
/// aside (and recording) those a money read model cannot fold. Every read model's batch goes
/// through here.
pub(crate) async fn apply_admissible(
    tx: &mut SqlTx,
    projection: &dyn Projection,
    events: &[RecordedEvent],
    admission: &Admission<'_>,
) -> Result<(), ProjectionError> {
    if !projection.folds_money() {
        return projection.apply_batch(tx, events).await;
    }
    let verdicts = admission.of(events);
    if verdicts.iter().all(Option::is_none) {
        return projection.apply_batch(tx, events).await;
    }
    let mut admitted = Vec::with_capacity(events.len());
    for (event, verdict) in events.iter().zip(verdicts) {
        match verdict {
            None => admitted.push(event.clone()),
            Some(reason) => record(tx, projection.name(), event, reason).await?,
        }
    }
    projection.apply_batch(tx, &admitted).await
}

async fn record(
    tx: &mut SqlTx,
    projection: &str,
    event: &RecordedEvent,
    reason: &str,
) -> Result<(), ProjectionError> {
    tracing::error!(
        projection,
        position = event.position,
        event_type = %event.event_type,
        reason,
        "event quarantined: this read model does not fold it"
    );
    tx.execute(
        "INSERT INTO quarantined_events (projection, position, event_id, stream_id, event_type, reason) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (projection, position) DO NOTHING",
        &[
            projection.into(),
            event.position.into(),
            event.event_id.to_string().into(),
            event.stream_id.as_str().into(),
            event.event_type.as_str().into(),
            reason.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The events `projection` set aside, oldest first, at most [`MAX_LISTED`].
pub async fn listed(
    db: &SqlDb,
    projection: &str,
) -> Result<Vec<QuarantinedEvent>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT position, event_id, stream_id, event_type, reason FROM quarantined_events \
             WHERE projection = ? ORDER BY position LIMIT ?",
            &[projection.into(), MAX_LISTED.into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(QuarantinedEvent {
                position: row.i64(0)?,
                event_id: row.text(1)?,
                stream_id: row.text(2)?,
                event_type: row.text(3)?,
                reason: row.text(4)?,
            })
        })
        .collect()
}

/// How many events each read model set aside (only those with any).
pub async fn counts(db: &SqlDb) -> Result<Vec<(String, i64)>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT projection, COUNT(*) FROM quarantined_events GROUP BY projection ORDER BY projection",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.text(0)?, row.i64(1)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_amount_beyond_the_ceiling_is_named_by_its_path_at_any_depth() {
        assert_eq!(money_beyond_ceiling(&json!({"amount_halalas": 100})), None);
        assert_eq!(
            money_beyond_ceiling(&json!({"amount_halalas": -MAX_AMOUNT_HALALAS})),
            None
        );
        assert_eq!(
            money_beyond_ceiling(&json!({"note": "x", "fee_halalas": null})),
            None
        );
        let reason = money_beyond_ceiling(&json!({
            "lines": [{"unit_price_halalas": 5}, {"unit_price_halalas": 8_000_000_000_000_000_000u64}]
        }))
        .unwrap();
        assert!(
            reason.starts_with("lines[1].unit_price_halalas is 8000000000000000000"),
            "{reason}"
        );
        let reason = money_beyond_ceiling(
            &json!({"credit_note": {"total_halalas": -MAX_AMOUNT_HALALAS - 1}}),
        )
        .unwrap();
        assert!(
            reason.starts_with("credit_note.total_halalas is -"),
            "{reason}"
        );
        assert!(money_beyond_ceiling(&json!({"amount_halalas": 1.5})).is_some());
        assert!(money_beyond_ceiling(&json!({"amount_halalas": "12"})).is_some());
    }
}
