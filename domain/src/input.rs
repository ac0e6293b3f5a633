//! What a client may send: one grammar for identifiers, one rule for text.
//!
//! **Identifiers** a client chooses or names (a lead's, a partner's, an invoice's, a
//! commission's, an account's, a stream's) are 1 to [`MAX_ID_CHARS`] characters of
//! `A-Z a-z 0-9 . _ : -`: no spaces (so `" lead-0001"` is not a second `lead-0001`), no `/`
//! (they are path segments), no markup, nothing a log, a URL or a CSV cell must escape.
//!
//! **Text** (names, emails, notes, reasons, references) holds no NUL (PostgreSQL stores none)
//! and is at most [`max_chars`] characters for its field: a bound per field, by the field's
//! name, the same for the API and for the webhooks, and documented as `maxLength` in the
//! OpenAPI document.
//!
//! The HTTP layer applies both to every path segment, query value, body field and webhook
//! field before anything else reads them; the rules live here so every door checks the same.

use thiserror::Error;

/// The longest identifier: a uuid is 36, a derived stream id a few more; 128 leaves room.
pub const MAX_ID_CHARS: usize = 128;

/// The pattern of an identifier, as the OpenAPI document states it.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// The longest text of a field the table in [`max_chars`] does not name.
pub const DEFAULT_MAX_TEXT_CHARS: usize = 1_000;

/// Body fields that are identifiers (client-chosen or naming an existing record).
pub const ID_FIELDS: [&str; 5] = [
    "lead_id",
    "partner_id",
    "invoice_id",
    "commission_id",
    "payment_id",
];

/// Why an input was refused, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("{field} is empty")]
    Empty { field: String },
    #[error(
        "{field} is not an identifier: use 1 to {MAX_ID_CHARS} of A-Z a-z 0-9 . _ : - (no spaces or slashes)"
    )]
    NotAnId { field: String },
    #[error("{field} is longer than {max_chars} characters")]
    TooLong { field: String, max_chars: usize },
    #[error("{field} contains a NUL character")]
    Nul { field: String },
}

impl InputError {
    /// The field at fault.
    pub fn field(&self) -> &str {
        match self {
            InputError::Empty { field }
            | InputError::NotAnId { field }
            | InputError::TooLong { field, .. }
            | InputError::Nul { field } => field,
        }
    }
}

/// Whether `text` follows the identifier grammar.
pub fn is_id(text: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// `text` as the identifier in `field`.
pub fn check_id(field: &str, text: &str) -> Result<(), InputError> {
    if text.is_empty() {
        return Err(InputError::Empty {
            field: field.to_owned(),
        });
    }
    if text.contains('\0') {
        return Err(InputError::Nul {
            field: field.to_owned(),
        });
    }
    if !is_id(text) {
        return Err(InputError::NotAnId {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// `text` as the text of `field` (its last path segment names its bound, [`max_chars`]).
pub fn check_text(field: &str, text: &str) -> Result<(), InputError> {
    if text.contains('\0') {
        return Err(InputError::Nul {
            field: field.to_owned(),
        });
    }
    let max_chars = max_chars(leaf(field));
    if text.chars().count() > max_chars {
        return Err(InputError::TooLong {
            field: field.to_owned(),
            max_chars,
        });
    }
    Ok(())
}

/// A body field (a dotted path such as `lines[0].description`): an identifier when its name
/// is one of [`ID_FIELDS`], text otherwise.
pub fn check_field(field: &str, text: &str) -> Result<(), InputError> {
    if ID_FIELDS.contains(&leaf(field)) {
        check_id(field, text)
    } else {
        check_text(field, text)
    }
}

/// The last name of a dotted path: `lines[0].description` -> `description`.
fn leaf(field: &str) -> &str {
    let last = field.rsplit('.').next().unwrap_or(field);
    last.split('[').next().unwrap_or(last)
}

/// The most characters the text field `name` may hold. Each bound is well above any real
/// value and keeps one event, inbox row or log line small.
pub fn max_chars(name: &str) -> usize {
    match name {
        // RFC 5321: a path is at most 256 octets, an address 254.
        "email" | "lead_email" => 254,
        // E.164 is 15 digits; room for spaces, a plus sign and an extension.
        "phone" => 32,
        // An API token's label says whose it is: a name and a purpose.
        "name" | "company" | "customer_name" | "account_name" | "label" => 200,
        "source" | "channel" | "stage" | "plan" | "tier" | "requested_tier" | "kind" => 64,
        "owner" | "actor" | "moyasar_invoice_id" | "event_type" | "stream" => MAX_ID_CHARS,
        "utm_source" | "utm_medium" | "utm_campaign" | "source_name" | "medium" | "campaign" => 200,
        // A Calendly booking id is its event's URI.
        "booking_id" | "uri" | "url" | "callback_url" | "payment_url" => 512,
        "description" | "message" => 1_000,
        "reason" | "note" | "cancel_reason" => 2_000,
        _ => DEFAULT_MAX_TEXT_CHARS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identifier_is_one_to_128_of_a_small_alphabet() {
        for good in [
            "lead-0001",
            "p_alpha",
            "a.b:c",
            "01a24d88-5ad0-74e3-93ce-b70a81cbe46b",
        ] {
            assert!(is_id(good), "{good}");
        }
        let too_long = "x".repeat(129);
        for bad in [
            "",
            " lead-0001",
            "lead-0001 ",
            "a/b",
            "<b>",
            "a\0b",
            "ليد",
            too_long.as_str(),
        ] {
            assert!(!is_id(bad), "{bad:?}");
        }
        assert!(is_id(&"x".repeat(128)));
        assert_eq!(
            check_id("lead_id", " lead"),
            Err(InputError::NotAnId {
                field: "lead_id".into()
            })
        );
        assert_eq!(
            check_id("lead_id", "a\0"),
            Err(InputError::Nul {
                field: "lead_id".into()
            })
        );
    }

    #[test]
    fn text_has_no_nul_and_a_bound_per_field_by_its_name() {
        assert!(check_text("note", &"n".repeat(2_000)).is_ok());
        assert_eq!(
            check_text("note", &"n".repeat(2_001)),
            Err(InputError::TooLong {
                field: "note".into(),
                max_chars: 2_000
            })
        );
        assert_eq!(
            check_text("lines[3].description", &"d".repeat(1_001)).unwrap_err(),
            InputError::TooLong {
                field: "lines[3].description".into(),
                max_chars: 1_000
            }
        );
        // Characters, not bytes: Arabic text is not cut short.
        assert!(check_text("name", &"ع".repeat(200)).is_ok());
        assert!(matches!(
            check_text("name", "a\0b"),
            Err(InputError::Nul { .. })
        ));
        assert!(check_field("partner_id", "a/b").is_err());
        assert!(check_field("name", "a/b").is_ok());
        assert_eq!(max_chars("unknown"), DEFAULT_MAX_TEXT_CHARS);
    }
}
