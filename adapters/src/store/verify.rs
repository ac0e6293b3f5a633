//! Recomputing hash chains: the engine-independent fold behind [`super::EventStore::verify`].
//!
//! Events are fed in position order. For each stream the verifier remembers only the last
//! version and hash (memory grows with the number of streams, not events) and reports the
//! first event, by position, whose version does not follow, whose `prev_hash` is not the hash
//! before it, or whose `hash` does not match its recomputed value.

use std::collections::HashMap;

use serde::Serialize;

use super::hash::{chain, EventHash, HashedFields, GENESIS_HASH};
use super::{Position, RecordedEvent};

/// The first event that does not match its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub stream_id: String,
    pub version: u64,
    pub position: Position,
    pub reason: String,
}

/// The result of a full verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub events_checked: u64,
    pub streams_checked: u64,
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Folds events, in position order, into a [`VerifyReport`].
#[derive(Default)]
pub struct ChainVerifier {
    heads: HashMap<String, (u64, EventHash)>,
    report: VerifyReport,
}

impl ChainVerifier {
    /// Checks one event; returns false once a break has been found (the caller may stop).
    pub fn check(&mut self, event: &RecordedEvent) -> bool {
        if self.report.first_break.is_some() {
            return false;
        }
        self.report.events_checked += 1;
        let (last_version, last_hash) = self
            .heads
            .get(&event.stream_id)
            .copied()
            .unwrap_or((0, GENESIS_HASH));
        if let Some(reason) = mismatch(event, last_version, last_hash) {
            self.report.first_break = Some(ChainBreak {
                stream_id: event.stream_id.clone(),
                version: event.version,
                position: event.position,
                reason,
            });
            return false;
        }
        self.heads
            .insert(event.stream_id.clone(), (event.version, event.hash));
        true
    }

    /// Records a break found outside the chain itself (a row that cannot be decoded).
    pub fn record_undecodable(&mut self, position: Position, reason: String) {
        if self.report.first_break.is_none() {
            self.report.first_break = Some(ChainBreak {
                stream_id: String::new(),
                version: 0,
                position,
                reason,
            });
        }
    }

    pub fn finish(mut self) -> VerifyReport {
        self.report.streams_checked = self.heads.len() as u64;
        self.report
    }
}

fn mismatch(event: &RecordedEvent, last_version: u64, last_hash: EventHash) -> Option<String> {
    if event.version != last_version + 1 {
        return Some(format!(
            "version {} follows version {last_version}: an event is missing, added or moved",
            event.version
        ));
    }
    if event.prev_hash != last_hash {
        return Some(format!(
            "prev_hash {} is not the hash of the previous event ({last_hash})",
            event.prev_hash
        ));
    }
    let recomputed = chain(
        &event.prev_hash,
        &HashedFields {
            event_id: event.event_id,
            stream_id: &event.stream_id,
            stream_type: &event.stream_type,
            version: event.version,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            payload: &event.payload,
            metadata: &event.metadata,
            command_id: event.command_id,
            recorded_at: event.recorded_at,
        },
    );
    if recomputed != event.hash {
        return Some(format!(
            "stored hash {} does not match the recomputed {recomputed}: the event was altered",
            event.hash
        ));
    }
    None
}
