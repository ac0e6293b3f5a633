//! The stored schema fixtures: one file per event type and schema version, as the store keeps
//! the event (`fixtures/events/<EventType>.v<N>.json`). They were written once from real events
//! (`upcast::tests::write_missing_event_fixtures`) and are never regenerated: each is a shape
//! the log may hold for ever, so this build must still read it. This test only reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use domain::personal::PersonalDataEvent;
use domain::provider_reconciliation::ProviderReconciliationEvent;
use domain::submission::SubmissionEvent;
use domain::upcast::{current_version, upcast, EVENT_TYPES_BY_ENUM};
use domain::{
    CommissionEvent, InvoiceEvent, LeadEvent, PartnerEvent, PartnerProgramEvent, PaymentEvent,
    PayoutEvent, SequenceEvent,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A fixture file: an event as the store keeps it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    event_type: String,
    schema_version: u32,
    payload: Value,
}

fn fixtures_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events")
}

/// Every fixture by `(event_type, schema_version)`, checked against its file name.
fn fixtures() -> BTreeMap<(String, u32), Fixture> {
    let mut fixtures = BTreeMap::new();
    for entry in std::fs::read_dir(fixtures_directory()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let (event_type, version) = name
            .strip_suffix(".json")
            .and_then(|stem| stem.rsplit_once(".v"))
            .unwrap_or_else(|| panic!("{name} is not named <EventType>.v<N>.json"));
        let version: u32 = version
            .parse()
            .unwrap_or_else(|_| panic!("{name}: the version is not a number"));
        let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            (fixture.event_type.as_str(), fixture.schema_version),
            (event_type, version),
            "{name} holds another event type or version than its name says"
        );
        fixtures.insert((event_type.to_owned(), version), fixture);
    }
    fixtures
}

/// Decodes `payload` as the `event_type` variant of `E` (the enum's JSON is
/// `{event_type: payload}`, as the store's decoder reads it) and encodes it again as the store
/// would keep it.
fn round_trip<E: DeserializeOwned + Serialize>(
    event_type: &str,
    payload: &Value,
) -> Result<Value, String> {
    let event: E = serde_json::from_value(json!({ event_type: payload }))
        .map_err(|error| format!("does not decode: {error}"))?;
    match serde_json::to_value(&event).map_err(|error| error.to_string())? {
        Value::Object(mut tagged) if tagged.len() == 1 => tagged
            .remove(event_type)
            .ok_or_else(|| format!("decodes as another variant: {tagged:?}")),
        other => Err(format!("encodes as {other}, not one variant")),
    }
}

type RoundTrip = fn(&str, &Value) -> Result<Value, String>;

/// The round trip through each event enum, by the enum's name in [`EVENT_TYPES_BY_ENUM`].
fn round_trip_of(enum_name: &str) -> RoundTrip {
    match enum_name {
        "CommissionEvent" => round_trip::<CommissionEvent>,
        "InvoiceEvent" => round_trip::<InvoiceEvent>,
        "LeadEvent" => round_trip::<LeadEvent>,
        "PartnerEvent" => round_trip::<PartnerEvent>,
        "PartnerProgramEvent" => round_trip::<PartnerProgramEvent>,
        "PaymentEvent" => round_trip::<PaymentEvent>,
        "PayoutEvent" => round_trip::<PayoutEvent>,
        "PersonalDataEvent" => round_trip::<PersonalDataEvent>,
        "ProviderReconciliationEvent" => round_trip::<ProviderReconciliationEvent>,
        "SequenceEvent" => round_trip::<SequenceEvent>,
        "SubmissionEvent" => round_trip::<SubmissionEvent>,
        other => panic!("{other} has no decoder in this test: add it to round_trip_of"),
    }
}

/// Each event type with the enum it belongs to.
fn known_types() -> BTreeMap<&'static str, &'static str> {
    EVENT_TYPES_BY_ENUM
        .iter()
        .flat_map(|(enum_name, types)| types.iter().map(move |t| (*t, *enum_name)))
        .collect()
}

/// Every `.rs` file under `directory`.
fn sources(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_event_enum_of_the_domain_is_in_the_registry() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut declared = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        const INVOCATION: &str = "event_types!(";
        for (at, _) in text.match_indices(INVOCATION) {
            let name: String = text[at + INVOCATION.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            declared.insert(name);
        }
    }
    let registered: BTreeSet<String> = EVENT_TYPES_BY_ENUM
        .iter()
        .map(|(enum_name, _)| (*enum_name).to_owned())
        .collect();
    assert_eq!(declared, registered);
}

#[test]
fn every_event_type_has_a_fixture_at_every_version_and_no_fixture_is_unknown() {
    let fixtures = fixtures();
    let known = known_types();
    let mut missing = Vec::new();
    for event_type in known.keys() {
        for version in 1..=current_version(event_type) {
            if !fixtures.contains_key(&(event_type.to_string(), version)) {
                missing.push(format!("{event_type}.v{version}.json"));
            }
        }
    }
    assert!(missing.is_empty(), "missing fixtures: {missing:?}");
    for (event_type, version) in fixtures.keys() {
        assert!(
            known.contains_key(event_type.as_str()),
            "{event_type}.v{version}.json is a fixture of an event type no enum defines"
        );
        assert!(
            *version <= current_version(event_type),
            "{event_type}.v{version}.json is newer than the type's current version"
        );
    }
}

#[test]
fn every_fixture_upcasts_to_the_current_version_and_decodes_into_its_enum() {
    let known = known_types();
    for ((event_type, version), fixture) in fixtures() {
        let upcast = upcast(&event_type, version, &fixture.payload)
            .unwrap_or_else(|error| panic!("{event_type}.v{version}: {error}"));
        round_trip_of(known[event_type.as_str()])(&event_type, &upcast)
            .unwrap_or_else(|error| panic!("{event_type}.v{version}: {error}"));
    }
}

#[test]
fn a_fixture_at_the_current_version_decodes_and_encodes_back_to_the_same_payload() {
    let known = known_types();
    for ((event_type, version), fixture) in fixtures() {
        if version != current_version(&event_type) {
            continue;
        }
        let encoded = round_trip_of(known[event_type.as_str()])(&event_type, &fixture.payload)
            .unwrap_or_else(|error| panic!("{event_type}.v{version}: {error}"));
        assert_eq!(
            encoded, fixture.payload,
            "{event_type}.v{version}: decoding and encoding again changed the payload"
        );
    }
}
