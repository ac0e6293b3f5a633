//! ZATCA (Saudi e-invoicing) encodings: the Phase 1 QR code and the invoice hash chain.
//!
//! The Phase 1 QR is a TLV byte string, base64-encoded: for each of five fields, one tag
//! byte, one length byte (the UTF-8 byte length of the value, so an Arabic seller name
//! counts bytes, not characters) and the value bytes. Tags: 1 seller name, 2 VAT
//! registration number, 3 timestamp (ISO 8601 in UTC, `2022-04-25T15:30:00Z`), 4 invoice
//! total with VAT, 5 VAT total (both as SAR with two decimals, `"3448.85"`). One length
//! byte means a value longer than 255 bytes cannot be encoded, which is an error rather
//! than a truncated code.
//!
//! The hash chain links each invoice to the previous one by its hash (PIH). The first
//! invoice uses [`FIRST_INVOICE_PIH`], which ZATCA defines as base64 of the *hex text* of
//! SHA-256("0"); every other hash here is base64 of the raw SHA-256 digest.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::money::Halalas;

/// The previous-invoice hash (PIH) of the first invoice in a chain: base64 of the hex
/// digest text of SHA-256("0"), as ZATCA specifies.
pub const FIRST_INVOICE_PIH: &str =
    "NWZlY2ViNjZmZmM4NmYzOGQ5NTI3ODZjNmQ2OTZjNzljMmRiYzIzOWRkNGU5MWI0NjcyOWQ3M2EyN2ZiNTdlOQ==";

/// UN/CEFACT 1001 document type code of a tax invoice.
pub const TAX_INVOICE_TYPE_CODE: u16 = 388;

/// UN/CEFACT 1001 document type code of a credit note.
pub const CREDIT_NOTE_TYPE_CODE: u16 = 381;

/// A TLV value is at most this many bytes, because its length is one byte.
pub const MAX_TLV_VALUE_BYTES: usize = 255;

/// QR tag of the seller's name.
pub const TAG_SELLER_NAME: u8 = 1;
/// QR tag of the seller's VAT registration number.
pub const TAG_VAT_NUMBER: u8 = 2;
/// QR tag of the invoice timestamp.
pub const TAG_TIMESTAMP: u8 = 3;
/// QR tag of the invoice total with VAT.
pub const TAG_TOTAL_WITH_VAT: u8 = 4;
/// QR tag of the VAT total.
pub const TAG_VAT_TOTAL: u8 = 5;

/// What can go wrong encoding or decoding ZATCA values.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ZatcaError {
    /// A QR value is longer than one length byte can describe.
    #[error("QR tag {tag} is {length_bytes} bytes; a TLV value holds at most 255")]
    QrValueTooLong { tag: u8, length_bytes: usize },
    /// The timestamp cannot be written as a UTC ISO 8601 time.
    #[error("the timestamp cannot be written as an ISO 8601 UTC time")]
    TimestampNotRepresentable,
    /// A QR string is not base64 or not well-formed TLV.
    #[error("malformed QR code: {reason}")]
    MalformedQr { reason: String },
}

/// Formats a time the way the QR's tag 3 expects: UTC, seconds precision,
/// `2022-04-25T15:30:00Z`.
pub fn qr_timestamp(timestamp: OffsetDateTime) -> Result<String, ZatcaError> {
    let utc = timestamp
        .checked_to_offset(UtcOffset::UTC)
        .ok_or(ZatcaError::TimestampNotRepresentable)?;
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .map_err(|_| ZatcaError::TimestampNotRepresentable)
}

/// The base64 Phase 1 QR payload for an invoice.
pub fn phase1_qr(
    seller_name: &str,
    vat_number: &str,
    timestamp: OffsetDateTime,
    total_halalas: i64,
    vat_halalas: i64,
) -> Result<String, ZatcaError> {
    let timestamp = qr_timestamp(timestamp)?;
    let total = Halalas(total_halalas).to_sar_string();
    let vat = Halalas(vat_halalas).to_sar_string();
    encode_tlv(&[
        (TAG_SELLER_NAME, seller_name),
        (TAG_VAT_NUMBER, vat_number),
        (TAG_TIMESTAMP, &timestamp),
        (TAG_TOTAL_WITH_VAT, &total),
        (TAG_VAT_TOTAL, &vat),
    ])
}

/// Encodes `(tag, value)` pairs as TLV (one tag byte, one byte of the value's UTF-8 length,
/// the value) and base64. Values are taken exactly as given: what support staff type from a
/// printed invoice must reproduce its code byte for byte.
pub fn encode_tlv(fields: &[(u8, &str)]) -> Result<String, ZatcaError> {
    let mut tlv = Vec::new();
    for (tag, value) in fields {
        let length = u8::try_from(value.len()).map_err(|_| ZatcaError::QrValueTooLong {
            tag: *tag,
            length_bytes: value.len(),
        })?;
        tlv.push(*tag);
        tlv.push(length);
        tlv.extend_from_slice(value.as_bytes());
    }
    Ok(BASE64.encode(tlv))
}

/// Decodes a base64 TLV QR payload into `(tag, value)` pairs, in order. The inverse of
/// [`phase1_qr`], for tests, audits and showing what a printed code says.
pub fn decode_qr(qr_base64: &str) -> Result<Vec<(u8, String)>, ZatcaError> {
    let malformed = |reason: &str| ZatcaError::MalformedQr {
        reason: reason.to_owned(),
    };
    let bytes = BASE64
        .decode(qr_base64)
        .map_err(|_| malformed("not base64"))?;
    let mut fields = Vec::new();
    let mut rest = bytes.as_slice();
    while let [tag, length, tail @ ..] = rest {
        let length = usize::from(*length);
        let value = tail
            .get(..length)
            .ok_or_else(|| malformed("a value is shorter than its length byte"))?;
        let value =
            String::from_utf8(value.to_vec()).map_err(|_| malformed("a value is not UTF-8"))?;
        fields.push((*tag, value));
        rest = &tail[length..];
    }
    if rest.is_empty() {
        Ok(fields)
    } else {
        Err(malformed("a trailing byte has no length"))
    }
}

/// Base64 of the raw SHA-256 digest of `bytes`: the form of an invoice hash.
pub fn sha256_base64(bytes: &[u8]) -> String {
    BASE64.encode(Sha256::digest(bytes))
}

/// Whether `text` is non-empty, valid base64: the shape of a PIH.
pub fn is_base64(text: &str) -> bool {
    !text.is_empty() && BASE64.decode(text).is_ok()
}

/// Appends one field to a canonical byte string, netstring style: the field's UTF-8
/// byte length, a colon, the bytes, and a comma. Length-prefixing makes the encoding
/// unambiguous whatever characters the field holds, so two different invoices can never
/// produce the same canonical bytes.
pub fn push_canonical_field(canonical: &mut String, value: &str) {
    canonical.push_str(&value.len().to_string());
    canonical.push(':');
    canonical.push_str(value);
    canonical.push(',');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn the_first_invoice_pih_is_base64_of_the_hex_digest_of_zero() {
        let hex_digest = hex::encode(Sha256::digest(b"0"));
        assert_eq!(
            hex_digest,
            "5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9"
        );
        assert_eq!(BASE64.encode(hex_digest.as_bytes()), FIRST_INVOICE_PIH);
        assert!(is_base64(FIRST_INVOICE_PIH));
    }

    #[test]
    fn the_qr_encodes_the_five_fields_as_tlv() {
        let qr = phase1_qr(
            "Dealix",
            "310122393500003",
            datetime!(2022-04-25 15:30:00 UTC),
            344_885,
            44_985,
        )
        .unwrap();
        let bytes = BASE64.decode(&qr).unwrap();
        assert_eq!(&bytes[..8], &[1, 6, b'D', b'e', b'a', b'l', b'i', b'x']);
        assert_eq!(
            decode_qr(&qr).unwrap(),
            vec![
                (1, "Dealix".to_owned()),
                (2, "310122393500003".to_owned()),
                (3, "2022-04-25T15:30:00Z".to_owned()),
                (4, "3448.85".to_owned()),
                (5, "449.85".to_owned()),
            ]
        );
    }

    #[test]
    fn an_arabic_seller_name_is_measured_in_utf8_bytes() {
        let seller = "شركة ديليكس";
        let qr = phase1_qr(
            seller,
            "310122393500003",
            datetime!(2022-04-25 18:30:00 +03:00),
            115,
            15,
        )
        .unwrap();
        let bytes = BASE64.decode(&qr).unwrap();
        assert_eq!(bytes[0], TAG_SELLER_NAME);
        assert_eq!(usize::from(bytes[1]), seller.len());
        assert_eq!(seller.len(), 21, "11 characters, 21 bytes");
        assert_eq!(&bytes[2..2 + seller.len()], seller.as_bytes());
        let fields = decode_qr(&qr).unwrap();
        assert_eq!(fields[0], (1, seller.to_owned()));
        assert_eq!(fields[2], (3, "2022-04-25T15:30:00Z".to_owned()));
        assert_eq!(fields[3], (4, "1.15".to_owned()));
        assert_eq!(fields[4], (5, "0.15".to_owned()));
    }

    #[test]
    fn a_value_longer_than_255_bytes_is_rejected() {
        let long_name = "ش".repeat(128);
        assert_eq!(
            phase1_qr(
                &long_name,
                "310122393500003",
                datetime!(2022-04-25 15:30 UTC),
                1,
                0
            ),
            Err(ZatcaError::QrValueTooLong {
                tag: 1,
                length_bytes: 256
            })
        );
        let exactly_255 = "a".repeat(255);
        assert!(phase1_qr(&exactly_255, "3", datetime!(2022-04-25 15:30 UTC), 1, 0).is_ok());
    }

    #[test]
    fn malformed_qr_payloads_are_reported() {
        assert!(decode_qr("not base64!").is_err());
        assert!(decode_qr(&BASE64.encode([1u8, 5, b'a'])).is_err());
        assert!(decode_qr(&BASE64.encode([1u8])).is_err());
    }

    #[test]
    fn a_published_ascii_vector_is_reproduced() {
        // The example in Salla's ZATCA package documentation.
        let qr = encode_tlv(&[
            (TAG_SELLER_NAME, "Salla"),
            (TAG_VAT_NUMBER, "1234567891"),
            (TAG_TIMESTAMP, "2021-07-12T14:25:09Z"),
            (TAG_TOTAL_WITH_VAT, "100.00"),
            (TAG_VAT_TOTAL, "15.00"),
        ])
        .unwrap();
        assert_eq!(
            qr,
            "AQVTYWxsYQIKMTIzNDU2Nzg5MQMUMjAyMS0wNy0xMlQxNDoyNTowOVoEBjEwMC4wMAUFMTUuMDA="
        );
    }

    #[test]
    fn a_published_arabic_vector_is_reproduced() {
        // The Unicode fixture of the mrsool/zatca test suite: the seller name is five Arabic
        // letters, ten UTF-8 bytes, and tag 1's length byte says 10.
        let qr = encode_tlv(&[
            (TAG_SELLER_NAME, "مرسول"),
            (TAG_VAT_NUMBER, "310228833400003"),
            (TAG_TIMESTAMP, "2021-10-20T19:29:32+03:00"),
            (TAG_TOTAL_WITH_VAT, "115"),
            (TAG_VAT_TOTAL, "15"),
        ])
        .unwrap();
        assert_eq!(qr, "AQrZhdix2LPZiNmEAg8zMTAyMjg4MzM0MDAwMDMDGTIwMjEtMTAtMjBUMTk6Mjk6MzIrMDM6MDAEAzExNQUCMTU=");
    }

    #[test]
    fn canonical_fields_are_length_prefixed() {
        let mut canonical = String::new();
        push_canonical_field(&mut canonical, "a,b");
        push_canonical_field(&mut canonical, "شركة");
        assert_eq!(canonical, "3:a,b,8:شركة,");
    }

    proptest! {
        #[test]
        fn any_short_seller_name_round_trips_through_the_qr(
            seller in "\\PC{0,60}",
            total in any::<i64>(),
            vat in any::<i64>(),
        ) {
            let qr = phase1_qr(&seller, "310122393500003", datetime!(2024-01-01 0:00 UTC), total, vat);
            if seller.len() <= MAX_TLV_VALUE_BYTES {
                let fields = decode_qr(&qr.unwrap()).unwrap();
                prop_assert_eq!(&fields[0].1, &seller);
                prop_assert_eq!(&fields[3].1, &Halalas(total).to_sar_string());
            } else {
                prop_assert!(qr.is_err());
            }
        }
    }
}
