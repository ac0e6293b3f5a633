//! The per-stream hash chain.
//!
//! `hash = SHA-256(prev_hash || canonical_bytes(event))`, where the first event of a stream
//! chains onto [`GENESIS_HASH`] (32 zero bytes). The canonical bytes are a JSON object of every
//! stored column except `position`, `transaction_id` and the hashes, with object keys sorted at
//! every depth, no insignificant whitespace, and `recorded_at` as integer Unix microseconds.
//! They are rebuilt from what the database returns, so a value that changes on a round trip
//! (a float in a payload, a key order) would break verification: payloads hold integers,
//! strings, booleans and nulls only, which both engines return unchanged.
//!
//! Global order (positions) is covered by the audit projection's running hash and seals, not
//! here: chaining per stream keeps appends to different streams free of a global write lock.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::unix_micros;

/// A SHA-256 digest, shown and serialized as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventHash(pub [u8; 32]);

/// The `prev_hash` of every stream's first event.
pub const GENESIS_HASH: EventHash = EventHash([0; 32]);

impl EventHash {
    /// From a stored column; `None` when it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<EventHash> {
        bytes.try_into().ok().map(EventHash)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for EventHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for EventHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        EventHash::from_slice(&bytes)
            .ok_or_else(|| serde::de::Error::custom("a hash is 32 bytes (64 hex digits)"))
    }
}

/// The columns that go into an event's hash.
pub struct HashedFields<'a> {
    pub event_id: Uuid,
    pub stream_id: &'a str,
    pub stream_type: &'a str,
    pub version: u64,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub payload: &'a Value,
    pub metadata: &'a Value,
    pub command_id: Option<Uuid>,
    pub recorded_at: OffsetDateTime,
}

/// `SHA-256(prev_hash || canonical_bytes(fields))`.
pub fn chain(prev_hash: &EventHash, fields: &HashedFields<'_>) -> EventHash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.0);
    hasher.update(canonical_bytes(fields));
    EventHash(hasher.finalize().into())
}

/// The canonical encoding described in the module docs.
pub fn canonical_bytes(fields: &HashedFields<'_>) -> Vec<u8> {
    let command_id = match fields.command_id {
        Some(id) => Value::String(id.to_string()),
        None => Value::Null,
    };
    // Keys in sorted order, so the writer below and any other implementation agree.
    let entries: [(&str, Value); 10] = [
        ("command_id", command_id),
        ("event_id", Value::String(fields.event_id.to_string())),
        ("event_type", Value::String(fields.event_type.to_owned())),
        ("metadata", fields.metadata.clone()),
        ("payload", fields.payload.clone()),
        (
            "recorded_at_us",
            Value::from(unix_micros(fields.recorded_at)),
        ),
        ("schema_version", Value::from(fields.schema_version)),
        ("stream_id", Value::String(fields.stream_id.to_owned())),
        ("stream_type", Value::String(fields.stream_type.to_owned())),
        ("version", Value::from(fields.version)),
    ];
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (index, (key, value)) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(key, &mut out);
        out.push(b':');
        write_canonical(value, &mut out);
    }
    out.push(b'}');
    out
}

/// Writes `value` as compact JSON with object keys sorted at every depth, independent of
/// whether serde_json was built with `preserve_order`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            serde_json::to_writer(&mut *out, scalar).expect("writing JSON to a Vec cannot fail")
        }
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, text).expect("writing JSON to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields<'a>(payload: &'a Value, metadata: &'a Value) -> HashedFields<'a> {
        HashedFields {
            event_id: Uuid::nil(),
            stream_id: "lead-1",
            stream_type: "lead",
            version: 1,
            event_type: "LeadCaptured",
            schema_version: 1,
            payload,
            metadata,
            command_id: None,
            recorded_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn canonical_bytes_sort_keys_at_every_depth() {
        let payload = json!({"b": 1, "a": {"z": true, "y": [ {"d": null, "c": "x"} ]}});
        let metadata = json!({});
        let bytes = canonical_bytes(&fields(&payload, &metadata));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""payload":{"a":{"y":[{"c":"x","d":null}],"z":true},"b":1}"#));
        assert!(text.starts_with(
            r#"{"command_id":null,"event_id":"00000000-0000-0000-0000-000000000000""#
        ));
    }

    #[test]
    fn changing_any_payload_byte_changes_the_hash() {
        let metadata = json!({});
        let a = json!({"amount_halalas": 344885});
        let b = json!({"amount_halalas": 344886});
        assert_ne!(
            chain(&GENESIS_HASH, &fields(&a, &metadata)),
            chain(&GENESIS_HASH, &fields(&b, &metadata))
        );
    }

    #[test]
    fn the_same_event_on_another_prev_hash_hashes_differently() {
        let payload = json!({});
        let metadata = json!({});
        let other = EventHash([7; 32]);
        assert_ne!(
            chain(&GENESIS_HASH, &fields(&payload, &metadata)),
            chain(&other, &fields(&payload, &metadata))
        );
    }

    #[test]
    fn a_hash_round_trips_through_hex() {
        let hash = EventHash([0xab; 32]);
        let text = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<EventHash>(&text).unwrap(), hash);
    }
}
