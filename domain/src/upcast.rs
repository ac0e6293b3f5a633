//! Event schema evolution: the upcaster chain that reads a stored event's payload at the
//! schema version it was written with and hands the decoders the current version's shape.
//!
//! Stored events never change (their hashes cover the bytes as written), so when the shape of
//! an event changes, the old shape stays in the log for ever. Rather than teach every decoder
//! every old shape, each change is one [`UpcastStep`]: a pure function taking the payload of
//! version N to version N+1. On read, [`upcast`] applies the steps from the stored
//! `schema_version` up to [`current_version`]; writers write the current version (the
//! `event_types!` macro's `event_version` asks [`current_version`]).
//!
//! An event type's current version is one past its last step, so adding a version is one line
//! in [`STEPS`] and a frozen fixture of the new shape (`domain/tests/fixtures/events/`; see
//! ARCHITECTURE.md, "Event schema evolution"). The event types with personal fields are at
//! version 2 (sealed fields); every other type is at version 1.
//!
//! The chain runs on every read of every event, so an event already at the current version
//! passes through by reference: no copy of its payload, no allocation.

use std::borrow::Cow;

use serde_json::Value;

use crate::commission::CommissionEvent;
use crate::invoice::InvoiceEvent;
use crate::lead::LeadEvent;
use crate::partner::{PartnerEvent, PartnerProgramEvent};
use crate::payment::PaymentEvent;
use crate::payout::PayoutEvent;
use crate::personal::PersonalDataEvent;
use crate::provider_reconciliation::ProviderReconciliationEvent;
use crate::sequence::SequenceEvent;
use crate::submission::SubmissionEvent;

/// One step of an event type's schema: its payload at `from_version` to `from_version + 1`.
#[derive(Clone, Copy, Debug)]
pub struct UpcastStep {
    /// The event type (the variant's name, as stored in `event_type`).
    pub event_type: &'static str,
    pub from_version: u32,
    /// Pure: the same payload always gives the same result. A payload it cannot read is
    /// refused with [`UpcastError::malformed`]; the chain names the type and versions.
    pub upcast: fn(Value) -> Result<Value, UpcastError>,
}

/// Every schema step of every event type, in any order.
pub const STEPS: &[UpcastStep] = &[
    sealed_from_version_2("LeadCaptured"),
    sealed_from_version_2("FollowUpLogged"),
    sealed_from_version_2("PartnerApplied"),
    sealed_from_version_2("PartnerEnrolled"),
    sealed_from_version_2("ReferralRecorded"),
];

/// Version 2 of an event type with personal fields (issue 25): those fields are sealed
/// envelopes (`pd1:<subject>:…`, sealed and opened at the store boundary, `adapters::personal`)
/// where version 1 held them in clear. The shape is the same, strings either way, so a
/// version-1 payload reads as version 2 unchanged: its clear values simply open as themselves.
/// What the version records is the meaning: a version-1 capture is in clear in the hash chain
/// and cannot be erased (ARCHITECTURE.md, "Personal data").
const fn sealed_from_version_2(event_type: &'static str) -> UpcastStep {
    UpcastStep {
        event_type,
        from_version: 1,
        upcast: Ok,
    }
}

/// Every event enum of the domain with its event types, complete by construction: each list is
/// the enum's `EVENT_TYPES`, written by `event_types!` from the variants its exhaustive match
/// names. The fixture test checks that no enum declared with `event_types!` is missing here.
pub const EVENT_TYPES_BY_ENUM: &[(&str, &[&str])] = &[
    ("CommissionEvent", CommissionEvent::EVENT_TYPES),
    ("InvoiceEvent", InvoiceEvent::EVENT_TYPES),
    ("LeadEvent", LeadEvent::EVENT_TYPES),
    ("PartnerEvent", PartnerEvent::EVENT_TYPES),
    ("PartnerProgramEvent", PartnerProgramEvent::EVENT_TYPES),
    ("PaymentEvent", PaymentEvent::EVENT_TYPES),
    ("PayoutEvent", PayoutEvent::EVENT_TYPES),
    ("PersonalDataEvent", PersonalDataEvent::EVENT_TYPES),
    (
        "ProviderReconciliationEvent",
        ProviderReconciliationEvent::EVENT_TYPES,
    ),
    ("SequenceEvent", SequenceEvent::EVENT_TYPES),
    ("SubmissionEvent", SubmissionEvent::EVENT_TYPES),
];

/// Why a stored payload cannot be brought to the current version. Each names the event type
/// and the versions involved, so a log line says which event needs which code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("{event_type} is stored at schema version 0; versions start at 1")]
    VersionZero { event_type: String },
    /// Written by newer code than this: reading it with this code would drop what it added.
    #[error(
        "{event_type} is stored at schema version {stored}, newer than this build's version {current}"
    )]
    NewerThanCurrent {
        event_type: String,
        stored: u32,
        current: u32,
    },
    /// The steps skip a version: a gap in the table (the production table's test finds one).
    #[error("{event_type} has no upcast step from schema version {from_version} to {}", from_version + 1)]
    MissingStep {
        event_type: String,
        from_version: u32,
    },
    /// A step refused the payload: it is not the shape its stored version should have.
    #[error("{event_type} at schema version {from_version} cannot be upcast to {}: {reason}", from_version + 1)]
    Malformed {
        event_type: String,
        from_version: u32,
        reason: String,
    },
}

impl UpcastError {
    /// A step's refusal of a payload it cannot read; the chain fills in the event type and the
    /// version the step started from.
    pub fn malformed(reason: impl Into<String>) -> UpcastError {
        UpcastError::Malformed {
            event_type: String::new(),
            from_version: 0,
            reason: reason.into(),
        }
    }

    /// This error as raised by `event_type`'s step from `from_version`.
    fn in_step(self, event_type: &str, from_version: u32) -> UpcastError {
        match self {
            UpcastError::Malformed { reason, .. } => UpcastError::Malformed {
                event_type: event_type.to_owned(),
                from_version,
                reason,
            },
            other => other,
        }
    }
}

/// The schema version writers write `event_type` at: one past its last step, or 1. A type this
/// crate does not define (a test's own aggregate) has no steps, so it is at version 1 too;
/// decoding decides whether the type is known.
pub fn current_version(event_type: &str) -> u32 {
    current_version_in(STEPS, event_type)
}

/// `payload`, stored as `event_type` at `schema_version`, at the current version: borrowed
/// when it already is, otherwise a copy taken through each step in turn.
pub fn upcast<'a>(
    event_type: &str,
    schema_version: u32,
    payload: &'a Value,
) -> Result<Cow<'a, Value>, UpcastError> {
    upcast_with(STEPS, event_type, schema_version, payload)
}

/// [`current_version`] over `steps` instead of [`STEPS`].
pub fn current_version_in(steps: &[UpcastStep], event_type: &str) -> u32 {
    steps
        .iter()
        .filter(|step| step.event_type == event_type)
        .map(|step| step.from_version.saturating_add(1))
        .max()
        .unwrap_or(1)
}

/// [`upcast`] over `steps` instead of [`STEPS`], so the chain's rules can be tested with steps
/// no production event has.
pub fn upcast_with<'a>(
    steps: &[UpcastStep],
    event_type: &str,
    schema_version: u32,
    payload: &'a Value,
) -> Result<Cow<'a, Value>, UpcastError> {
    if schema_version == 0 {
        return Err(UpcastError::VersionZero {
            event_type: event_type.to_owned(),
        });
    }
    let current = current_version_in(steps, event_type);
    if schema_version > current {
        return Err(UpcastError::NewerThanCurrent {
            event_type: event_type.to_owned(),
            stored: schema_version,
            current,
        });
    }
    if schema_version == current {
        return Ok(Cow::Borrowed(payload));
    }
    let mut upcast = payload.clone();
    for from_version in schema_version..current {
        let step = steps
            .iter()
            .find(|step| step.event_type == event_type && step.from_version == from_version)
            .ok_or_else(|| UpcastError::MissingStep {
                event_type: event_type.to_owned(),
                from_version,
            })?;
        upcast = (step.upcast)(upcast).map_err(|error| error.in_step(event_type, from_version))?;
    }
    Ok(Cow::Owned(upcast))
}

/// Every event type the domain defines, each once.
pub fn event_types() -> impl Iterator<Item = &'static str> {
    EVENT_TYPES_BY_ENUM
        .iter()
        .flat_map(|(_, types)| types.iter().copied())
}

#[cfg(test)]
mod tests;
