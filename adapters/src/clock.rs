//! The one place that reads the wall clock.
//!
//! The domain never reads a clock: commands carry their time. Adapters that stamp events
//! (`recorded_at`) take it from here, truncated to microseconds because that is the precision
//! both PostgreSQL (`timestamptz`) and our SQLite schema keep, and the hash chain must be
//! recomputable from what was stored.

use time::OffsetDateTime;

/// Current UTC time truncated to whole microseconds.
pub fn now_micros() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

/// Drops sub-microsecond precision so a stored and re-read timestamp compares equal.
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000)
        .expect("a nanosecond value rounded down stays in range")
}

/// Unix time in microseconds, the form hashed into the chain and stored by SQLite.
pub fn unix_micros(at: OffsetDateTime) -> i64 {
    // i128 -> i64 cannot overflow for any date `time` can represent within +-292,000 years.
    (at.unix_timestamp_nanos() / 1_000) as i64
}

/// The inverse of [`unix_micros`].
pub fn from_unix_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}
