//! Stamping a document: the invoice hash, the ECDSA signature, the XAdES block and the QR,
//! assembled into the signed XML that is cleared or reported.
//!
//! Pure: the private key, the certificate and the signing time are inputs, and the signature
//! nonce is derived from the key and the hash (RFC 6979), so the same inputs always give the
//! same signed document.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use k256::ecdsa::SigningKey;
use thiserror::Error;
use time::PrimitiveDateTime;

use crate::certificate::{Certificate, CertificateError};
use crate::document::{sar_text, Document, DocumentError, InvoiceSubtype};
use crate::hash::{invoice_hash, InvoiceHash};
use crate::qr::{QrError, QrFields};
use crate::stamp::{self, XadesValues};
use crate::tree::XmlError;
use crate::xml::{self, StampParts, XmlWriter};

/// A stamped document and the values the integration keeps from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDocument {
    /// The signed UBL XML, to be cleared (standard) or reported (simplified).
    pub xml: String,
    /// Its invoice hash: the next document's PIH, and what ZATCA's API takes as
    /// `invoiceHash`.
    pub invoice_hash: InvoiceHash,
    /// `ds:SignatureValue`: the DER ECDSA signature over the hash, base64.
    pub signature_base64: String,
    /// The QR code's base64 text, also embedded in the XML.
    pub qr_base64: String,
}

/// Why a document could not be stamped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error(transparent)]
    Qr(#[from] QrError),
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The private key is not the one the certificate was issued for; ZATCA would reject
    /// every document signed with it.
    #[error("the signing key does not match the certificate's public key")]
    KeyDoesNotMatchCertificate,
}

/// Stamps `document` with `key` under `certificate`, at `signing_time` (written as
/// `xades:SigningTime`, `YYYY-MM-DDThh:mm:ss`, as ZATCA's SDK writes it).
pub fn sign(
    document: &Document,
    key: &SigningKey,
    certificate: &Certificate,
    signing_time: PrimitiveDateTime,
) -> Result<SignedDocument, SignError> {
    if *key.verifying_key() != certificate.verifying_key()? {
        return Err(SignError::KeyDoesNotMatchCertificate);
    }
    let unsigned = xml::to_unsigned_xml(document)?;
    let invoice_hash = invoice_hash(&unsigned)?;
    let signature_base64 = BASE64.encode(stamp::sign_hash(&invoice_hash, key));
    let qr_base64 = qr_fields(document, &invoice_hash, &signature_base64, certificate).encode()?;

    let invoice_hash_base64 = invoice_hash.to_base64();
    let certificate_base64 = certificate.base64_der();
    let signing_time = signing_time_text(signing_time);
    let certificate_digest_base64 = certificate.digest_base64();
    let issuer_name = certificate.issuer_name();
    let serial_number = certificate.serial_number_decimal();
    let write = |signed_properties_digest_base64: &str| {
        let values = XadesValues {
            invoice_hash_base64: &invoice_hash_base64,
            signed_properties_digest_base64,
            signature_base64: &signature_base64,
            certificate_base64: &certificate_base64,
            signing_time: &signing_time,
            certificate_digest_base64: &certificate_digest_base64,
            issuer_name: &issuer_name,
            serial_number: &serial_number,
        };
        let extensions = |xml: &mut XmlWriter| stamp::write_extensions(xml, &values);
        xml::write_invoice(
            document,
            Some(&StampParts {
                extensions: &extensions,
                qr_base64: &qr_base64,
            }),
        )
    };
    // The signed properties come after the reference that carries their digest, and the
    // digest is taken from their text as written: write once to read them, then again with
    // the digest in place (nothing in the signed properties depends on it).
    let signed_properties_digest = stamp::signed_properties_digest(&write(""))?;
    let xml = write(&signed_properties_digest);
    Ok(SignedDocument {
        xml,
        invoice_hash,
        signature_base64,
        qr_base64,
    })
}

/// The QR fields of a document with its stamp.
pub fn qr_fields(
    document: &Document,
    invoice_hash: &InvoiceHash,
    signature_base64: &str,
    certificate: &Certificate,
) -> QrFields {
    let totals = document.totals();
    QrFields {
        seller_name: document.seller.registration_name.clone(),
        vat_number: document.seller.vat_number.clone(),
        timestamp: format!(
            "{}T{}",
            xml::date_text(document.issue_date),
            xml::time_text(document.issue_time)
        ),
        total_with_vat: sar_text(totals.tax_inclusive_halalas),
        vat_total: sar_text(totals.vat_halalas),
        invoice_hash_base64: invoice_hash.to_base64(),
        signature_base64: signature_base64.to_owned(),
        public_key_der: certificate.public_key_info_der(),
        certificate_signature: (document.subtype == InvoiceSubtype::Simplified)
            .then(|| certificate.signature_bytes().to_vec()),
    }
}

fn signing_time_text(time: PrimitiveDateTime) -> String {
    format!(
        "{}T{}",
        xml::date_text(time.date()),
        xml::time_text(time.time())
    )
}
