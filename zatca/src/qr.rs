//! The Phase 2 QR code (KSA-14): TLV fields, base64, carried in the document's
//! `cac:AdditionalDocumentReference` with ID `QR` (BR-KSA-27).
//!
//! Each field is one tag byte, one length byte and the value; hence no value may exceed
//! [`MAX_TLV_VALUE_BYTES`]. The tags and how each value is encoded, as ZATCA's Security
//! Features Implementation Standard lists them and as ZATCA's signed samples carry them
//! (every tag below is checked against every sample in `tests/samples.rs`):
//!
//! | tag | value | encoding |
//! | --- | --- | --- |
//! | 1 | seller's name | UTF-8 text |
//! | 2 | seller's VAT number | UTF-8 text |
//! | 3 | issue date and time | `cbc:IssueDate` `T` `cbc:IssueTime`, as written (`2022-08-17T17:41:08`) |
//! | 4 | total with VAT | the amount text as written in the XML (the SDK takes `cbc:PayableAmount`) |
//! | 5 | VAT total | the amount text of the tax total in the tax currency, as written |
//! | 6 | invoice hash | its base64 *text* (44 bytes) |
//! | 7 | ECDSA signature | its base64 *text*, as in `ds:SignatureValue` |
//! | 8 | ECDSA public key | the certificate's subject public key info, DER bytes (88) |
//! | 9 | the CA's signature of the certificate | DER bytes; simplified documents only |
//!
//! Phase 1's five-tag code (`domain::zatca::phase1_qr`) differs in tag 3, which it writes in
//! UTC with a `Z`; a Phase 2 code repeats the document's own issue date and time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use thiserror::Error;

/// A TLV value is at most this many bytes, because its length is one byte.
pub const MAX_TLV_VALUE_BYTES: usize = 255;

/// What can go wrong encoding or decoding a QR code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QrError {
    /// A value is longer than one length byte can describe (a seller name of more than 255
    /// UTF-8 bytes, for instance).
    #[error("QR tag {tag} is {length_bytes} bytes; a TLV value holds at most 255")]
    ValueTooLong { tag: u8, length_bytes: usize },
    /// The text is not base64, or not well-formed TLV.
    #[error("malformed QR code: {reason}")]
    Malformed { reason: &'static str },
}

/// The values of a Phase 2 QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrFields {
    /// Tag 1.
    pub seller_name: String,
    /// Tag 2.
    pub vat_number: String,
    /// Tag 3, `YYYY-MM-DDThh:mm:ss`.
    pub timestamp: String,
    /// Tag 4, e.g. `231.15`.
    pub total_with_vat: String,
    /// Tag 5, e.g. `30.15`.
    pub vat_total: String,
    /// Tag 6, base64 text.
    pub invoice_hash_base64: String,
    /// Tag 7, base64 text.
    pub signature_base64: String,
    /// Tag 8, DER.
    pub public_key_der: Vec<u8>,
    /// Tag 9, DER; present for simplified documents only.
    pub certificate_signature: Option<Vec<u8>>,
}

impl QrFields {
    /// The `(tag, value)` pairs in tag order.
    pub fn to_tlv_fields(&self) -> Vec<(u8, Vec<u8>)> {
        let mut fields = vec![
            (1, self.seller_name.as_bytes().to_vec()),
            (2, self.vat_number.as_bytes().to_vec()),
            (3, self.timestamp.as_bytes().to_vec()),
            (4, self.total_with_vat.as_bytes().to_vec()),
            (5, self.vat_total.as_bytes().to_vec()),
            (6, self.invoice_hash_base64.as_bytes().to_vec()),
            (7, self.signature_base64.as_bytes().to_vec()),
            (8, self.public_key_der.clone()),
        ];
        if let Some(signature) = &self.certificate_signature {
            fields.push((9, signature.clone()));
        }
        fields
    }

    /// The base64 QR text.
    pub fn encode(&self) -> Result<String, QrError> {
        encode_tlv(&self.to_tlv_fields())
    }
}

/// Encodes `(tag, value)` pairs as TLV and base64.
pub fn encode_tlv(fields: &[(u8, Vec<u8>)]) -> Result<String, QrError> {
    let mut tlv = Vec::new();
    for (tag, value) in fields {
        let length = u8::try_from(value.len()).map_err(|_| QrError::ValueTooLong {
            tag: *tag,
            length_bytes: value.len(),
        })?;
        tlv.push(*tag);
        tlv.push(length);
        tlv.extend_from_slice(value);
    }
    Ok(BASE64.encode(tlv))
}

/// Decodes a base64 TLV QR into `(tag, value)` pairs, in order.
pub fn decode_tlv(qr_base64: &str) -> Result<Vec<(u8, Vec<u8>)>, QrError> {
    let bytes = BASE64
        .decode(qr_base64.trim())
        .map_err(|_| QrError::Malformed {
            reason: "not base64",
        })?;
    let mut fields = Vec::new();
    let mut rest = bytes.as_slice();
    while let [tag, length, tail @ ..] = rest {
        let length = usize::from(*length);
        let value = tail.get(..length).ok_or(QrError::Malformed {
            reason: "a value is shorter than its length byte",
        })?;
        fields.push((*tag, value.to_vec()));
        rest = &tail[length..];
    }
    if rest.is_empty() {
        Ok(fields)
    } else {
        Err(QrError::Malformed {
            reason: "a trailing byte has no length",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> QrFields {
        QrFields {
            seller_name: "شركة".to_owned(),
            vat_number: "399999999900003".to_owned(),
            timestamp: "2022-08-17T17:41:08".to_owned(),
            total_with_vat: "231.15".to_owned(),
            vat_total: "30.15".to_owned(),
            invoice_hash_base64: "aGFzaA==".to_owned(),
            signature_base64: "c2ln".to_owned(),
            public_key_der: vec![0x30, 0x56],
            certificate_signature: None,
        }
    }

    #[test]
    fn a_standard_document_code_has_eight_tags_and_a_simplified_one_nine() {
        let standard = decode_tlv(&fields().encode().unwrap()).unwrap();
        assert_eq!(
            standard.iter().map(|(tag, _)| *tag).collect::<Vec<_>>(),
            (1..=8).collect::<Vec<_>>()
        );
        assert_eq!(
            standard[0].1,
            "شركة".as_bytes(),
            "lengths count UTF-8 bytes"
        );
        let simplified = QrFields {
            certificate_signature: Some(vec![1, 2, 3]),
            ..fields()
        };
        let decoded = decode_tlv(&simplified.encode().unwrap()).unwrap();
        assert_eq!(decoded.last(), Some(&(9, vec![1, 2, 3])));
    }

    #[test]
    fn a_value_longer_than_255_bytes_is_an_error_not_a_truncated_code() {
        let long = QrFields {
            seller_name: "a".repeat(256),
            ..fields()
        };
        assert_eq!(
            long.encode(),
            Err(QrError::ValueTooLong {
                tag: 1,
                length_bytes: 256
            })
        );
    }

    #[test]
    fn malformed_codes_are_reported() {
        assert!(decode_tlv("not base64!").is_err());
        assert!(decode_tlv(&BASE64.encode([1u8, 5, b'a'])).is_err());
        assert!(decode_tlv(&BASE64.encode([1u8])).is_err());
    }
}
