//! Which fields of which events hold personal data, and whose data they are.
//!
//! The list is the one in ARCHITECTURE.md ("Personal data"); a field not listed here is stored
//! as it is. Each entry names the subject a payload's fields belong to, derived from the
//! payload itself, so sealing needs nothing but the event.

use serde_json::Value;

/// The schema version at which an event type's personal fields are sealed envelopes. Version 1
/// of these types held them in clear (see ARCHITECTURE.md on the events written before).
pub const SEALED_SCHEMA_VERSION: u32 = 2;

/// Whose data an event's personal fields are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectOf {
    /// `<prefix>-<payload[field]>`: a lead (`lead-L1`) or a partner contact (`partner-P1`).
    Id {
        prefix: &'static str,
        field: &'static str,
    },
    /// The person behind an email that has no lead yet (a referral click):
    /// `email-<keyed hash of the normalized email>` ([`super::Vault::email_index`]).
    Email { field: &'static str },
}

/// The personal fields of one event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersonalFields {
    pub event_type: &'static str,
    pub subject: SubjectOf,
    /// Top-level string fields of the payload sealed under the subject's key (absent or
    /// `null` ones are left as they are).
    pub sealed: &'static [&'static str],
    /// Those of `sealed` that are emails: each is indexed by its keyed hash so the person can
    /// be found by email (webhook matching, erasure by email) without it being stored.
    pub emails: &'static [&'static str],
}

/// Every event type with personal fields.
pub const PERSONAL_FIELDS: &[PersonalFields] = &[
    PersonalFields {
        event_type: "LeadCaptured",
        subject: SubjectOf::Id {
            prefix: "lead",
            field: "lead_id",
        },
        sealed: &["name", "company", "email", "phone"],
        emails: &["email"],
    },
    PersonalFields {
        event_type: "FollowUpLogged",
        subject: SubjectOf::Id {
            prefix: "lead",
            field: "lead_id",
        },
        sealed: &["note"],
        emails: &[],
    },
    partner_contact("PartnerApplied"),
    partner_contact("PartnerEnrolled"),
    PersonalFields {
        event_type: "ReferralRecorded",
        subject: SubjectOf::Email {
            field: "lead_email",
        },
        sealed: &["lead_email"],
        emails: &["lead_email"],
    },
];

/// A partner's contact person, as an application and an enrollment name them.
const fn partner_contact(event_type: &'static str) -> PersonalFields {
    PersonalFields {
        event_type,
        subject: SubjectOf::Id {
            prefix: "partner",
            field: "partner_id",
        },
        sealed: &["name", "email"],
        emails: &["email"],
    }
}

/// The personal fields of `event_type`, if it has any.
pub fn of(event_type: &str) -> Option<&'static PersonalFields> {
    PERSONAL_FIELDS
        .iter()
        .find(|fields| fields.event_type == event_type)
}

/// The id-based subject of a payload (`lead-L1`), or `None` for email subjects or a payload
/// without the id field.
pub fn id_subject(fields: &PersonalFields, payload: &Value) -> Option<String> {
    match fields.subject {
        SubjectOf::Id { prefix, field } => payload
            .get(field)
            .and_then(Value::as_str)
            .map(|id| format!("{prefix}-{id}")),
        SubjectOf::Email { .. } => None,
    }
}

/// An email as it is indexed and compared: trimmed and lowercased (as referrals and the CRM
/// board have always compared them).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
