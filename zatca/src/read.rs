//! Reading the stamp back out of a signed document: what a verifier, an audit, or a test
//! against ZATCA's samples needs, and what the integration needs from a cleared invoice
//! that ZATCA returns (its hash for the PIH chain, its QR).

use crate::tree::{self, find, find_descendant, Element, XmlError};

/// The parts of a signed document's stamp, as written in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedStamp {
    /// The `invoiceSignedData` reference's digest: the invoice hash, base64.
    pub invoice_digest_base64: String,
    /// The `#xadesSignedProperties` reference's digest.
    pub signed_properties_digest_base64: String,
    /// `ds:SignatureValue`: the DER ECDSA signature, base64.
    pub signature_base64: String,
    /// `ds:X509Certificate`: the DER certificate, base64.
    pub certificate_base64: String,
    /// `xades:SigningTime` as written.
    pub signing_time: String,
    /// `xades:CertDigest`'s digest value.
    pub certificate_digest_base64: String,
    /// `ds:X509IssuerName`.
    pub issuer_name: String,
    /// `ds:X509SerialNumber`.
    pub serial_number: String,
}

/// Reads the stamp of a signed document.
pub fn read_stamp(signed_xml: &str) -> Result<EmbeddedStamp, XmlError> {
    let document = tree::parse(signed_xml)?;
    let root = &document.root;
    let signature = required_descendant(root, "ds:Signature")?;
    let signed_info = required(signature, &["ds:SignedInfo"])?;
    let reference_digest = |attribute: &str, value: &str| -> Result<String, XmlError> {
        let reference = signed_info
            .child_elements()
            .find(|element| {
                element.local_name() == "Reference" && element.attribute(attribute) == Some(value)
            })
            .ok_or_else(|| missing(&format!("ds:Reference[@{attribute}='{value}']")))?;
        Ok(required(reference, &["ds:DigestValue"])?.text())
    };
    let signed_properties = required_descendant(signature, "xades:SignedProperties")?;
    Ok(EmbeddedStamp {
        invoice_digest_base64: reference_digest("Id", "invoiceSignedData")?,
        signed_properties_digest_base64: reference_digest("URI", "#xadesSignedProperties")?,
        signature_base64: required(signature, &["ds:SignatureValue"])?.text(),
        certificate_base64: required(
            signature,
            &["ds:KeyInfo", "ds:X509Data", "ds:X509Certificate"],
        )?
        .text(),
        signing_time: required_descendant(signed_properties, "xades:SigningTime")?.text(),
        certificate_digest_base64: required(
            required_descendant(signed_properties, "xades:CertDigest")?,
            &["ds:DigestValue"],
        )?
        .text(),
        issuer_name: required_descendant(signed_properties, "ds:X509IssuerName")?.text(),
        serial_number: required_descendant(signed_properties, "ds:X509SerialNumber")?.text(),
    })
}

/// The base64 QR of a document (`cac:AdditionalDocumentReference` with `cbc:ID` `QR`), if it
/// has one.
pub fn read_qr(xml: &str) -> Result<Option<String>, XmlError> {
    let document = tree::parse(xml)?;
    let qr = document
        .root
        .child_elements()
        .filter(|element| element.name == "cac:AdditionalDocumentReference")
        .find(|reference| find(reference, &["cbc:ID"]).is_some_and(|id| id.text().trim() == "QR"))
        .and_then(|reference| {
            find(
                reference,
                &["cac:Attachment", "cbc:EmbeddedDocumentBinaryObject"],
            )
        })
        .map(|object| object.text().trim().to_owned());
    Ok(qr)
}

fn required<'a>(element: &'a Element, path: &[&str]) -> Result<&'a Element, XmlError> {
    find(element, path).ok_or_else(|| missing(&path.join("/")))
}

fn required_descendant<'a>(element: &'a Element, name: &str) -> Result<&'a Element, XmlError> {
    find_descendant(element, name).ok_or_else(|| missing(name))
}

fn missing(path: &str) -> XmlError {
    XmlError::MissingElement {
        path: path.to_owned(),
    }
}
