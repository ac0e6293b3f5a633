//! The EGS unit's certificate (CSID) as the stamp and the QR use it.
//!
//! ZATCA issues it in answer to the onboarding CSR ([`crate::csr`]); its compliance and
//! production CSID APIs return it as `binarySecurityToken`, which is base64 of the *base64
//! text* of the DER certificate (so it decodes to text beginning `MII`), not base64 of the
//! DER. [`Certificate::from_binary_security_token`] takes that form, [`Certificate::from_pem`]
//! and [`Certificate::from_base64_der`] the usual ones.
//!
//! What is read from it, each checked against ZATCA's signed samples:
//! - the issuer name as XAdES `ds:X509IssuerName` writes it: the RDNs from the most specific,
//!   joined by a comma and a space (`CN=PRZEINVOICESCA4-CA, DC=extgazt, DC=gov, DC=local`);
//! - the serial number in decimal (`ds:X509SerialNumber`);
//! - the certificate digest of `xades:CertDigest`: SHA-256 over the certificate's *base64
//!   text* (not its DER bytes), written as lowercase hex, and that hex text in base64;
//! - the subject public key info in DER (QR tag 8) and the secp256k1 verifying key;
//! - the CA's signature over the certificate, the bit string's bytes (QR tag 9);
//! - its validity period, so the unit can say when it must renew (checking it against the
//!   clock is the caller's: this crate reads none).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use k256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::OffsetDateTime;
use x509_cert::der::{Decode, DecodePem, Encode};

/// What can be wrong with a certificate handed in.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertificateError {
    /// The text is not base64, or not what the form promises.
    #[error("the certificate is not in the expected encoding: {reason}")]
    Encoding { reason: String },
    /// The bytes are not an X.509 certificate.
    #[error("the certificate does not parse as X.509: {reason}")]
    NotX509 { reason: String },
    /// The key is not an uncompressed or compressed secp256k1 point; ZATCA's stamp is
    /// ECDSA on secp256k1.
    #[error("the certificate's public key is not a secp256k1 key")]
    NotSecp256k1,
}

/// A parsed X.509 certificate with the encodings ZATCA's stamp needs.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    parsed: x509_cert::Certificate,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Certificate")
            .field("issuer", &self.issuer_name())
            .field("serial_number", &self.serial_number_decimal())
            .finish()
    }
}

impl Certificate {
    /// From the DER bytes.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertificateError> {
        let parsed =
            x509_cert::Certificate::from_der(der).map_err(|error| CertificateError::NotX509 {
                reason: error.to_string(),
            })?;
        Ok(Certificate {
            der: der.to_vec(),
            parsed,
        })
    }

    /// From base64 of the DER bytes (the content of `ds:X509Certificate`).
    pub fn from_base64_der(base64_der: &str) -> Result<Certificate, CertificateError> {
        let compact: String = base64_der
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = BASE64
            .decode(compact)
            .map_err(|error| CertificateError::Encoding {
                reason: error.to_string(),
            })?;
        Certificate::from_der(&der)
    }

    /// From a PEM `CERTIFICATE` block.
    pub fn from_pem(pem: &str) -> Result<Certificate, CertificateError> {
        let parsed = x509_cert::Certificate::from_pem(pem.as_bytes()).map_err(|error| {
            CertificateError::NotX509 {
                reason: error.to_string(),
            }
        })?;
        let der = parsed.to_der().map_err(|error| CertificateError::NotX509 {
            reason: error.to_string(),
        })?;
        Ok(Certificate { der, parsed })
    }

    /// From the `binarySecurityToken` of ZATCA's CSID answers: base64 of the base64 DER text.
    pub fn from_binary_security_token(token: &str) -> Result<Certificate, CertificateError> {
        let inner = BASE64
            .decode(token.trim())
            .map_err(|error| CertificateError::Encoding {
                reason: error.to_string(),
            })?;
        let inner = String::from_utf8(inner).map_err(|_| CertificateError::Encoding {
            reason: "the token does not decode to base64 text".to_owned(),
        })?;
        Certificate::from_base64_der(&inner)
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Base64 of the DER bytes, on one line: the `ds:X509Certificate` text.
    pub fn base64_der(&self) -> String {
        BASE64.encode(&self.der)
    }

    /// The `xades:CertDigest` value: base64 of the lowercase hex SHA-256 of [`Self::base64_der`].
    pub fn digest_base64(&self) -> String {
        let digest = Sha256::digest(self.base64_der().as_bytes());
        BASE64.encode(lowercase_hex(&digest))
    }

    /// The issuer as `ds:X509IssuerName` writes it (`CN=…, DC=…`).
    pub fn issuer_name(&self) -> String {
        self.parsed
            .tbs_certificate
            .issuer
            .0
            .iter()
            .rev()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The subject in RFC 4514 form, for display.
    pub fn subject_name(&self) -> String {
        self.parsed.tbs_certificate.subject.to_string()
    }

    /// The serial number in decimal, as `ds:X509SerialNumber` writes it.
    pub fn serial_number_decimal(&self) -> String {
        unsigned_decimal(self.parsed.tbs_certificate.serial_number.as_bytes())
    }

    /// The subject public key info in DER: QR tag 8.
    pub fn public_key_info_der(&self) -> Vec<u8> {
        self.parsed
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap_or_default()
    }

    /// The key that verifies stamps made with this certificate.
    pub fn verifying_key(&self) -> Result<VerifyingKey, CertificateError> {
        let point = self
            .parsed
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        VerifyingKey::from_sec1_bytes(point).map_err(|_| CertificateError::NotSecp256k1)
    }

    /// The issuing CA's signature over this certificate (DER ECDSA): QR tag 9.
    pub fn signature_bytes(&self) -> &[u8] {
        self.parsed.signature.raw_bytes()
    }

    /// The first moment the certificate is valid (`notBefore`).
    pub fn not_before(&self) -> OffsetDateTime {
        offset_date_time(self.parsed.tbs_certificate.validity.not_before)
    }

    /// The last moment the certificate is valid (`notAfter`): after it ZATCA refuses the
    /// unit's submissions, so the production CSID must be renewed before.
    pub fn not_after(&self) -> OffsetDateTime {
        offset_date_time(self.parsed.tbs_certificate.validity.not_after)
    }

    /// The parsed certificate, for anything else.
    pub fn x509(&self) -> &x509_cert::Certificate {
        &self.parsed
    }
}

/// An X.509 time as an instant. The `der` crate holds both of X.509's forms (UTCTime and
/// GeneralizedTime) as seconds since 1970 up to the year 9999, all of which `time` represents,
/// so the conversion cannot fail; the fallback is unreachable.
fn offset_date_time(at: x509_cert::time::Time) -> OffsetDateTime {
    let seconds = at.to_unix_duration().as_secs();
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Lowercase hex text of `bytes`.
pub(crate) fn lowercase_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The decimal text of a big-endian unsigned integer, by long division.
fn unsigned_decimal(big_endian: &[u8]) -> String {
    let mut number: Vec<u8> = big_endian
        .iter()
        .copied()
        .skip_while(|byte| *byte == 0)
        .collect();
    let mut digits = Vec::new();
    while !number.is_empty() {
        let mut remainder = 0u16;
        for byte in &mut number {
            let value = (remainder << 8) | u16::from(*byte);
            *byte = u8::try_from(value / 10).unwrap_or(u8::MAX);
            remainder = value % 10;
        }
        digits.push(b'0' + u8::try_from(remainder).unwrap_or(0));
        let leading_zeros = number.iter().take_while(|byte| **byte == 0).count();
        number.drain(..leading_zeros);
    }
    if digits.is_empty() {
        return "0".to_owned();
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_serial_numbers_are_written_in_decimal() {
        assert_eq!(unsigned_decimal(&[]), "0");
        assert_eq!(unsigned_decimal(&[0]), "0");
        assert_eq!(unsigned_decimal(&[0, 1, 0]), "256");
        assert_eq!(
            unsigned_decimal(&[0xff; 8]),
            u64::MAX.to_string(),
            "2^64 - 1"
        );
        assert_eq!(
            unsigned_decimal(&u128::MAX.to_be_bytes()),
            u128::MAX.to_string()
        );
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        assert_eq!(lowercase_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            Certificate::from_base64_der("not base64!"),
            Err(CertificateError::Encoding { .. })
        ));
        assert!(matches!(
            Certificate::from_base64_der("AAAA"),
            Err(CertificateError::NotX509 { .. })
        ));
        assert!(
            Certificate::from_pem("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----")
                .is_err()
        );
    }
}
