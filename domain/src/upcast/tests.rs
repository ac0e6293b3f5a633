//! The chain's rules, checked with steps of a made-up event type (no production event has a
//! version 2 yet); the production table's shape; and the generator of the stored fixtures.

use std::collections::BTreeSet;

use cqrs_es::DomainEvent;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

/// `Sample` v1 `{amount}` became v2 `{amount_halalas}`, then v3 added `currency`.
const SAMPLE_STEPS: &[UpcastStep] = &[
    UpcastStep {
        event_type: "Sample",
        from_version: 2,
        upcast: add_currency,
    },
    UpcastStep {
        event_type: "Sample",
        from_version: 1,
        upcast: rename_amount,
    },
];

fn rename_amount(mut payload: Value) -> Result<Value, UpcastError> {
    let fields = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::malformed("the payload is not an object"))?;
    let amount = fields
        .remove("amount")
        .ok_or_else(|| UpcastError::malformed("no amount"))?;
    fields.insert("amount_halalas".into(), amount);
    Ok(payload)
}

fn add_currency(mut payload: Value) -> Result<Value, UpcastError> {
    let fields = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::malformed("the payload is not an object"))?;
    fields.insert("currency".into(), json!("SAR"));
    Ok(payload)
}

#[test]
fn an_event_at_its_current_version_is_passed_through_without_a_copy() {
    let payload = json!({"lead_id": "lead-1"});
    let upcast = upcast("LeadQualified", 1, &payload).unwrap();
    assert!(matches!(upcast, Cow::Borrowed(borrowed) if std::ptr::eq(borrowed, &payload)));
    let sample = json!({"amount_halalas": 5, "currency": "SAR"});
    let upcast = upcast_with(SAMPLE_STEPS, "Sample", 3, &sample).unwrap();
    assert!(matches!(upcast, Cow::Borrowed(borrowed) if std::ptr::eq(borrowed, &sample)));
}

#[test]
fn an_old_event_goes_through_every_step_from_its_version_in_order() {
    let v1 = json!({"amount": 5});
    assert_eq!(
        upcast_with(SAMPLE_STEPS, "Sample", 1, &v1)
            .unwrap()
            .into_owned(),
        json!({"amount_halalas": 5, "currency": "SAR"})
    );
    let v2 = json!({"amount_halalas": 7});
    assert_eq!(
        upcast_with(SAMPLE_STEPS, "Sample", 2, &v2)
            .unwrap()
            .into_owned(),
        json!({"amount_halalas": 7, "currency": "SAR"})
    );
}

#[test]
fn the_current_version_is_one_past_the_last_step_and_one_without_steps() {
    assert_eq!(current_version_in(SAMPLE_STEPS, "Sample"), 3);
    assert_eq!(current_version_in(SAMPLE_STEPS, "LeadCaptured"), 1);
    assert_eq!(current_version_in(&[], "Sample"), 1);
    // A type the domain does not define (a test's own aggregate) is read at version 1.
    let payload = json!({"amount": 4});
    assert!(matches!(upcast("Added", 1, &payload), Ok(Cow::Borrowed(_))));
}

#[test]
fn version_zero_is_refused_naming_the_event_type() {
    let error = upcast_with(SAMPLE_STEPS, "Sample", 0, &json!({})).unwrap_err();
    assert_eq!(
        error,
        UpcastError::VersionZero {
            event_type: "Sample".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "Sample is stored at schema version 0; versions start at 1"
    );
}

#[test]
fn a_version_newer_than_this_build_is_refused_naming_both_versions() {
    let error = upcast_with(SAMPLE_STEPS, "Sample", 4, &json!({})).unwrap_err();
    assert_eq!(
        error,
        UpcastError::NewerThanCurrent {
            event_type: "Sample".into(),
            stored: 4,
            current: 3,
        }
    );
    assert_eq!(
        error.to_string(),
        "Sample is stored at schema version 4, newer than this build's version 3"
    );
    assert!(matches!(
        upcast("LeadQualified", 2, &json!({})),
        Err(UpcastError::NewerThanCurrent {
            stored: 2,
            current: 1,
            ..
        })
    ));
}

#[test]
fn a_gap_in_the_steps_is_refused_naming_the_missing_step() {
    let gap = [SAMPLE_STEPS[0]];
    let error = upcast_with(&gap, "Sample", 1, &json!({"amount": 5})).unwrap_err();
    assert_eq!(
        error,
        UpcastError::MissingStep {
            event_type: "Sample".into(),
            from_version: 1,
        }
    );
    assert_eq!(
        error.to_string(),
        "Sample has no upcast step from schema version 1 to 2"
    );
}

#[test]
fn a_payload_a_step_cannot_read_is_refused_naming_the_type_and_the_step() {
    let error = upcast_with(SAMPLE_STEPS, "Sample", 1, &json!({"total": 5})).unwrap_err();
    assert_eq!(
        error,
        UpcastError::Malformed {
            event_type: "Sample".into(),
            from_version: 1,
            reason: "no amount".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        "Sample at schema version 1 cannot be upcast to 2: no amount"
    );
}

#[test]
fn every_production_step_names_a_known_type_and_each_types_steps_have_no_gap() {
    let known: BTreeSet<&str> = event_types().collect();
    for step in STEPS {
        assert!(
            known.contains(step.event_type),
            "a step names {}, which no event enum defines",
            step.event_type
        );
        let mut froms: Vec<u32> = STEPS
            .iter()
            .filter(|other| other.event_type == step.event_type)
            .map(|other| other.from_version)
            .collect();
        froms.sort_unstable();
        let expected: Vec<u32> = (1..current_version(step.event_type)).collect();
        assert_eq!(froms, expected, "the steps of {}", step.event_type);
    }
}

#[test]
fn event_types_are_unique_across_every_enum() {
    // The version table is keyed by the event type alone.
    let mut seen = BTreeSet::new();
    for event_type in event_types() {
        assert!(seen.insert(event_type), "{event_type} is defined twice");
    }
}

/// An event as the store keeps it (as `app::command::to_new_event` writes it): the type, the
/// version the writer writes and the variant's fields.
#[derive(Debug, Serialize)]
struct Stored {
    event_type: String,
    schema_version: u32,
    payload: Value,
}

fn stored<E: DomainEvent>(events: Vec<E>) -> Vec<Stored> {
    events
        .into_iter()
        .map(|event| {
            let event_type = event.event_type();
            let tagged = serde_json::to_value(&event).unwrap();
            let Value::Object(mut fields) = tagged else {
                panic!("{event_type} is not an externally tagged variant: {tagged}");
            };
            Stored {
                schema_version: event.event_version().parse().unwrap(),
                payload: fields.remove(&event_type).unwrap(),
                event_type,
            }
        })
        .collect()
}

/// One of each event of every enum, built by each aggregate's tests.
fn samples() -> Vec<Stored> {
    [
        stored(crate::commission::tests::samples()),
        stored(crate::invoice::tests::samples()),
        stored(crate::lead::tests::samples()),
        stored(crate::partner::tests::samples()),
        stored(crate::partner::tests::program_samples()),
        stored(crate::payment::tests::samples()),
        stored(crate::payout::tests::samples()),
        stored(crate::personal::tests::samples()),
        stored(crate::provider_reconciliation::tests::samples()),
        stored(crate::sequence::tests::samples()),
        stored(crate::submission::tests::samples()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn the_samples_hold_each_event_type_once_written_at_its_current_version() {
    let samples = samples();
    let types: Vec<&str> = samples.iter().map(|s| s.event_type.as_str()).collect();
    let mut expected: Vec<&str> = event_types().collect();
    let mut sorted = types.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    for sample in &samples {
        assert_eq!(
            sample.schema_version,
            current_version(&sample.event_type),
            "{}",
            sample.event_type
        );
    }
}

/// Writes `tests/fixtures/events/<type>.v<current>.json` for each event type that has none.
/// Run by hand after adding a version (`cargo test -p domain --lib -- --ignored
/// write_missing_event_fixtures`); it never overwrites a fixture, since the stored ones are
/// the shapes the log already holds and must stay readable.
#[test]
#[ignore = "writes the fixture files; run by hand after adding a schema version"]
fn write_missing_event_fixtures() {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events");
    std::fs::create_dir_all(&directory).unwrap();
    for sample in samples() {
        let path = directory.join(format!(
            "{}.v{}.json",
            sample.event_type, sample.schema_version
        ));
        if path.exists() {
            continue;
        }
        let mut text = serde_json::to_string_pretty(&sample).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        println!("wrote {}", path.display());
    }
}
