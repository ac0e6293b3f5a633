//! The invoice hash: what the PIH chain links, what the stamp signs, and QR tag 6.
//!
//! ZATCA's definition (Security Features Implementation Standard, "generate invoice hash";
//! the `invoiceSignedData` reference of every signed document): take the document, remove
//! `ext:UBLExtensions`, `cac:Signature` and the `cac:AdditionalDocumentReference` whose
//! `cbc:ID` is `QR`, canonicalise with C14N 1.1 (<http://www.w3.org/2006/12/xml-c14n11>),
//! SHA-256 the UTF-8 bytes, and write the 32-byte digest in base64.
//!
//! Two things the XML of the reference does not say, both settled by ZATCA's own samples:
//!
//! - The three `ds:XPath` filters a signed document lists, taken literally, select nothing
//!   (`//ancestor-or-self::ext:UBLExtensions` is an absolute path, non-empty for every node of
//!   a document that has the element), so a generic XML-DSig verifier fails them. ZATCA's SDK
//!   removes the elements instead, and that is what is done here.
//! - Only the elements go. The whitespace text around them stays, byte for byte; a signed
//!   document is hashed exactly as it was written, line breaks and indentation included.
//!
//! Elements are matched by namespace URI and local name, not by prefix, so a document that
//! binds other prefixes to the UBL namespaces hashes the same.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::c14n::{canonicalize, Position};
use crate::tree::{self, XmlError};

/// UBL's extension components namespace (`ext:`).
pub const EXTENSION_NAMESPACE: &str =
    "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2";
/// UBL's aggregate components namespace (`cac:`).
pub const AGGREGATE_NAMESPACE: &str =
    "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2";
/// UBL's basic components namespace (`cbc:`).
pub const BASIC_NAMESPACE: &str =
    "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2";

/// The `cbc:ID` of the additional document reference that carries the QR code.
pub const QR_REFERENCE_ID: &str = "QR";

/// A SHA-256 invoice hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvoiceHash(pub [u8; 32]);

impl InvoiceHash {
    /// The 32 digest bytes: what the stamp signs.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The base64 text: the next document's PIH, the `invoiceSignedData` digest value and QR
    /// tag 6.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl fmt::Debug for InvoiceHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "InvoiceHash({})", self.to_base64())
    }
}

impl fmt::Display for InvoiceHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_base64())
    }
}

/// The invoice hash of a UBL document, signed or not (the parts a signature adds are
/// exactly the parts left out).
pub fn invoice_hash(xml: &str) -> Result<InvoiceHash, XmlError> {
    Ok(InvoiceHash(
        Sha256::digest(canonical_invoice(xml)?.as_bytes()).into(),
    ))
}

/// The text that is hashed: the canonical form of the document without its extensions, its
/// signature and its QR reference. Useful to see why two hashes differ.
pub fn canonical_invoice(xml: &str) -> Result<String, XmlError> {
    let document = tree::parse(xml)?;
    canonicalize(&document, &left_out_of_the_hash)
}

fn left_out_of_the_hash(position: &Position<'_>) -> Result<bool, XmlError> {
    let element = position.element;
    let is = |namespace: &str, local_name: &str| {
        position.namespace == namespace && element.local_name() == local_name
    };
    if is(EXTENSION_NAMESPACE, "UBLExtensions") || is(AGGREGATE_NAMESPACE, "Signature") {
        return Ok(true);
    }
    if !is(AGGREGATE_NAMESPACE, "AdditionalDocumentReference") {
        return Ok(false);
    }
    for child in element.child_elements() {
        let namespace = position.scope.enter(child).namespace_of(child)?.to_owned();
        if namespace == BASIC_NAMESPACE
            && child.local_name() == "ID"
            && child.text().trim() == QR_REFERENCE_ID
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKELETON: &str = concat!(
        "<Invoice xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2\" ",
        "xmlns:cac=\"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2\" ",
        "xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\" ",
        "xmlns:ext=\"urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2\">",
    );

    #[test]
    fn extensions_signature_and_the_qr_reference_are_left_out_but_not_their_whitespace() {
        let xml = format!(
            "{SKELETON}<ext:UBLExtensions><ext:UBLExtension/></ext:UBLExtensions>\n \
             <cbc:ID>1</cbc:ID>\n \
             <cac:AdditionalDocumentReference><cbc:ID>PIH</cbc:ID></cac:AdditionalDocumentReference>\n \
             <cac:AdditionalDocumentReference> <cbc:ID> QR </cbc:ID></cac:AdditionalDocumentReference>\n \
             <cac:Signature><cbc:ID>s</cbc:ID></cac:Signature></Invoice>"
        );
        let canonical = canonical_invoice(&xml).unwrap();
        assert!(canonical.ends_with(
            ">\n <cbc:ID>1</cbc:ID>\n \
             <cac:AdditionalDocumentReference><cbc:ID>PIH</cbc:ID></cac:AdditionalDocumentReference>\n \
             \n </Invoice>"
        ));
    }

    #[test]
    fn elements_are_matched_by_namespace_not_by_prefix() {
        let with_other_prefix = SKELETON.replace("xmlns:ext=", "xmlns:x=")
            + "<x:UBLExtensions/><cbc:ID>1</cbc:ID></Invoice>";
        let without = SKELETON.to_owned() + "<cbc:ID>1</cbc:ID></Invoice>";
        let canonical = canonical_invoice(&with_other_prefix).unwrap();
        assert!(!canonical.contains("UBLExtensions"));
        assert_ne!(
            invoice_hash(&with_other_prefix).unwrap(),
            invoice_hash(&without).unwrap(),
            "the namespace declarations themselves differ, so the hashes do"
        );
        let ext_named_element_elsewhere =
            SKELETON.to_owned() + "<cbc:UBLExtensions>kept</cbc:UBLExtensions></Invoice>";
        assert!(canonical_invoice(&ext_named_element_elsewhere)
            .unwrap()
            .contains("kept"));
    }
}
