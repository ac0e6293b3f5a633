//! A sealed personal value as it is stored: `pd1:<subject>:<base64url(nonce ‖ ciphertext)>`.
//!
//! AES-256-GCM under the subject's data key, with a fresh 96-bit random nonce per value and the
//! subject as associated data (a value moved under another subject's name does not open). The
//! envelope is plain text that needs no escaping in JSON, HTML, CSV or SQL: the subject is an
//! id (letters, digits and `. _ : -`) and the rest is unpadded base64url. The subject may itself
//! contain `:`, so an envelope is split at its *last* colon.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;

/// What every envelope begins with; the `1` is the format's version.
pub const PREFIX: &str = "pd1:";

/// What a sealed value reads as once its subject's key is gone.
pub const ERASED: &str = "[erased]";

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// A subject's 256-bit data key.
#[derive(Clone)]
pub struct DataKey(pub(crate) [u8; 32]);

impl DataKey {
    /// A new random key.
    pub fn generate() -> Result<DataKey, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(DataKey(bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        Some(DataKey(bytes.try_into().ok()?))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext` with `aad` bound to it.
    pub fn seal_bytes(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce)?;
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of [`DataKey::seal_bytes`]'s output, or `None` if it was not sealed by
    /// this key with this `aad` (or was altered).
    pub fn open_bytes(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
            .ok()
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

/// An envelope found in text, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub subject: &'a str,
    sealed: &'a str,
}

/// Seals `plaintext` under `subject`'s `key`.
pub fn seal(key: &DataKey, subject: &str, plaintext: &str) -> Result<String, getrandom::Error> {
    let sealed = key.seal_bytes(plaintext.as_bytes(), subject.as_bytes())?;
    Ok(format!("{PREFIX}{subject}:{}", BASE64URL.encode(sealed)))
}

/// The envelope `text` is, if it is exactly one.
pub fn parse(text: &str) -> Option<Envelope<'_>> {
    let rest = text.strip_prefix(PREFIX)?;
    let (subject, sealed) = rest.rsplit_once(':')?;
    let valid_subject = !subject.is_empty() && subject.bytes().all(is_subject_byte);
    let valid_sealed = !sealed.is_empty() && sealed.bytes().all(is_base64url_byte);
    (valid_subject && valid_sealed).then_some(Envelope { subject, sealed })
}

impl Envelope<'_> {
    /// The plaintext, or `None` if `key` is not the subject's key or the envelope was altered.
    pub fn open(&self, key: &DataKey) -> Option<String> {
        let sealed = BASE64URL.decode(self.sealed).ok()?;
        let plain = key.open_bytes(&sealed, self.subject.as_bytes())?;
        String::from_utf8(plain).ok()
    }
}

/// Every envelope inside `text` (a page, a CSV file, a log line), with its byte range.
pub fn find_all(text: &str) -> Vec<(std::ops::Range<usize>, Envelope<'_>)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find(PREFIX) {
        let start = from + offset;
        let end = text[start + PREFIX.len()..]
            .bytes()
            .position(|byte| !(is_subject_byte(byte) || is_base64url_byte(byte)))
            .map_or(text.len(), |length| start + PREFIX.len() + length);
        if let Some(envelope) = parse(&text[start..end]) {
            found.push((start..end, envelope));
        }
        from = end.max(start + PREFIX.len());
    }
    found
}

/// The bytes an id may hold (`domain::input::is_id`).
fn is_subject_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-')
}

fn is_base64url_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_subject_only() {
        let key = DataKey::generate().unwrap();
        let sealed = seal(&key, "lead-L:1", "Sara Al-Qahtani").unwrap();
        assert!(sealed.starts_with("pd1:lead-L:1:"));
        assert!(!sealed.contains("Sara"));
        let envelope = parse(&sealed).unwrap();
        assert_eq!(envelope.subject, "lead-L:1");
        assert_eq!(envelope.open(&key).as_deref(), Some("Sara Al-Qahtani"));

        let other = DataKey::generate().unwrap();
        assert_eq!(envelope.open(&other), None);
        let moved = sealed.replacen("lead-L:1", "lead-L:2", 1);
        assert_eq!(parse(&moved).unwrap().open(&key), None);
    }

    #[test]
    fn the_same_value_seals_differently_each_time() {
        let key = DataKey::generate().unwrap();
        assert_ne!(
            seal(&key, "lead-1", "x@y.sa").unwrap(),
            seal(&key, "lead-1", "x@y.sa").unwrap()
        );
    }

    #[test]
    fn envelopes_are_found_inside_text_and_nothing_else_is() {
        let key = DataKey::generate().unwrap();
        let a = seal(&key, "lead-1", "A").unwrap();
        let b = seal(&key, "partner-p", "B").unwrap();
        let page = format!("<td>{a}</td><td>pd1:</td>\"{b}\",pd1:x");
        let found = find_all(&page);
        assert_eq!(found.len(), 2);
        assert_eq!(&page[found[0].0.clone()], a);
        assert_eq!(found[1].1.subject, "partner-p");
        assert_eq!(parse("pd1:lead-1"), None);
        assert_eq!(parse("Sara"), None);
    }
}
