//! Personal data: the record that a person's data was erased at their request.
//!
//! The personal fields themselves are sealed and opened outside the domain, at the store
//! boundary (`adapters::personal`); the domain folds clear values and never sees a key. What
//! the domain keeps is the fact of an erasure, which holds no personal data: the subjects
//! erased are opaque ids (`lead-<id>`, `partner-<id>`), and the emails and webhook deliveries
//! erased with them are only counted.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The stream type of erasures: one stream per erasure, `erasure-<id>`.
pub const ERASURE_STREAM_TYPE: &str = "erasure";

/// What happened to a person's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonalDataEvent {
    /// The data keys of `subjects` (and of `linked_subjects` more: the emails indexed for them
    /// and the raw webhook deliveries that named them) were deleted: every personal value
    /// sealed under them reads as erased from now on.
    SubjectErased {
        erasure_id: String,
        /// The lead and partner subjects erased, sorted.
        subjects: Vec<String>,
        /// How many linked subjects (`email-…`, `delivery-…`) went with them.
        linked_subjects: u32,
        /// `lead` or `email`: what the request named (never the email itself).
        requested_by: String,
        #[serde(with = "time::serde::rfc3339")]
        erased_at: OffsetDateTime,
    },
}

crate::events::event_types!(PersonalDataEvent { SubjectErased });

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One of each event (the upcaster's fixtures are made from these).
    pub(crate) fn samples() -> Vec<PersonalDataEvent> {
        vec![PersonalDataEvent::SubjectErased {
            erasure_id: "0193a1f0-7c00-7000-8000-000000000001".into(),
            subjects: vec!["lead-lead-1".into()],
            linked_subjects: 2,
            requested_by: "lead".into(),
            erased_at: time::macros::datetime!(2025-03-09 10:00 UTC),
        }]
    }
}
