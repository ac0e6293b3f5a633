//! The cryptographic stamp: the ECDSA signature over the invoice hash and the XAdES
//! signed properties around it, each computed the way ZATCA's SDK computes it (every rule
//! below reproduces the values in ZATCA's signed samples; see `tests/samples.rs`).
//!
//! - **What is signed** is the invoice hash, not `ds:SignedInfo` as generic XML-DSig would
//!   have it: ECDSA on secp256k1 with SHA-256 over the 32 hash bytes (so the curve signs
//!   SHA-256 of the digest), DER-encoded, base64 in `ds:SignatureValue`. Nonces are
//!   deterministic (RFC 6979), so signing needs no random numbers and the same input gives
//!   the same stamp.
//! - **The signed properties digest** (`ds:Reference URI="#xadesSignedProperties"`) is
//!   SHA-256 over the `xades:SignedProperties` element *as written in the document* — its
//!   indentation and its self-closed `ds:DigestMethod` kept, not canonicalised — with the
//!   namespaces it uses declared where they are first used: `xmlns:xades` on the element
//!   itself and `xmlns:ds` on each `ds:` element. The digest is then written as lowercase hex
//!   and the hex text in base64 (88 characters, not 44). [`signed_properties_digest`].
//! - **The certificate digest** follows the same hex-then-base64 form over the certificate's
//!   base64 text ([`crate::Certificate::digest_base64`]).
//!
//! Verification accepts a signature with either of the two equivalent `s` values: ZATCA's
//! SDK does not normalise `s` to the lower half, and the `k256` verifier insists on it, so a
//! high `s` is normalised before verifying. Signatures made here are always low-`s`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use k256::ecdsa::signature::{Signer as _, Verifier as _};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::certificate::lowercase_hex;
use crate::hash::InvoiceHash;
use crate::tree::{self, Element, Scope, XmlError};
use crate::xml::XmlWriter;

/// XML-DSig's namespace (`ds:`).
pub const DSIG_NAMESPACE: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XAdES 1.3.2's namespace (`xades:`).
pub const XADES_NAMESPACE: &str = "http://uri.etsi.org/01903/v1.3.2#";

/// What can be wrong with a stamp.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StampError {
    /// The signature is not base64 of a DER ECDSA signature.
    #[error("the signature is not a base64 DER ECDSA signature")]
    MalformedSignature,
    /// The signature does not verify with the certificate's key over the invoice hash.
    #[error("the signature does not verify over the invoice hash")]
    SignatureMismatch,
}

/// The DER ECDSA signature over the invoice hash.
pub fn sign_hash(hash: &InvoiceHash, key: &SigningKey) -> Vec<u8> {
    let signature: Signature = key.sign(hash.as_bytes());
    signature.to_der().as_bytes().to_vec()
}

/// Checks a base64 DER signature (`ds:SignatureValue`) over `hash` with `key`.
pub fn verify_hash_signature(
    hash: &InvoiceHash,
    signature_base64: &str,
    key: &VerifyingKey,
) -> Result<(), StampError> {
    let der = BASE64
        .decode(signature_base64.trim())
        .map_err(|_| StampError::MalformedSignature)?;
    let signature = Signature::from_der(&der).map_err(|_| StampError::MalformedSignature)?;
    let signature = signature.normalize_s().unwrap_or(signature);
    key.verify(hash.as_bytes(), &signature)
        .map_err(|_| StampError::SignatureMismatch)
}

/// The `#xadesSignedProperties` digest of a signed document, computed from its
/// `xades:SignedProperties` element as written.
pub fn signed_properties_digest(signed_xml: &str) -> Result<String, XmlError> {
    let document = tree::parse(signed_xml)?;
    let (element, scope) =
        find_with_scope(&document.root, "xades:SignedProperties", &Scope::default()).ok_or(
            XmlError::MissingElement {
                path: "xades:SignedProperties".to_owned(),
            },
        )?;
    let text = standalone_text(signed_xml, element, &scope)?;
    Ok(hex_digest_base64(text.as_bytes()))
}

/// Base64 of the lowercase hex SHA-256 of `bytes`: the form of ZATCA's XAdES digests.
pub fn hex_digest_base64(bytes: &[u8]) -> String {
    BASE64.encode(lowercase_hex(&Sha256::digest(bytes)))
}

/// Finds the first element named `name` at or below `element`, with the scope around it.
fn find_with_scope<'a>(
    element: &'a Element,
    name: &str,
    outer: &Scope,
) -> Option<(&'a Element, Scope)> {
    if element.name == name {
        return Some((element, outer.clone()));
    }
    let inner = outer.enter(element);
    element
        .child_elements()
        .find_map(|child| find_with_scope(child, name, &inner))
}

/// `element`'s source text with each namespace it uses declared where first used, as ZATCA's
/// SDK serialises the signed properties before digesting them.
fn standalone_text(source: &str, element: &Element, scope: &Scope) -> Result<String, XmlError> {
    let mut insertions = Vec::new();
    collect_declarations(element, scope, &BTreeMap::new(), &mut insertions)?;
    insertions.sort_by_key(|(position, _)| *position);
    let span = element.source_span.clone();
    let mut text = String::with_capacity(span.len() + insertions.len() * 48);
    let mut copied_to = span.start;
    for (position, declaration) in insertions {
        text.push_str(&source[copied_to..position]);
        text.push_str(&declaration);
        copied_to = position;
    }
    text.push_str(&source[copied_to..span.end]);
    Ok(text)
}

fn collect_declarations(
    element: &Element,
    outer: &Scope,
    rendered: &BTreeMap<String, String>,
    insertions: &mut Vec<(usize, String)>,
) -> Result<(), XmlError> {
    let scope = outer.enter(element);
    let mut rendered = rendered.clone();
    for (prefix, uri) in &element.namespace_declarations {
        rendered.insert(prefix.clone(), uri.clone());
    }
    let mut used: Vec<&str> = vec![element.prefix()];
    used.extend(
        element
            .attributes
            .iter()
            .map(|(name, _)| tree::split_name(name).0)
            .filter(|prefix| !prefix.is_empty()),
    );
    used.sort_unstable();
    used.dedup();
    let after_name = element.source_span.start + 1 + element.name.len();
    for prefix in used {
        if prefix == "xml" {
            continue;
        }
        let uri = scope.resolve(prefix)?;
        if rendered.get(prefix).map(String::as_str) == Some(uri)
            || (prefix.is_empty() && uri.is_empty())
        {
            continue;
        }
        let name = if prefix.is_empty() {
            "xmlns".to_owned()
        } else {
            format!("xmlns:{prefix}")
        };
        let uri = uri
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;");
        insertions.push((after_name, format!(" {name}=\"{uri}\"")));
        rendered.insert(prefix.to_owned(), uri.to_owned());
    }
    for child in element.child_elements() {
        collect_declarations(child, &scope, &rendered, insertions)?;
    }
    Ok(())
}

/// The algorithms and fixed values of ZATCA's XAdES signature.
pub const C14N11_ALGORITHM: &str = "http://www.w3.org/2006/12/xml-c14n11";
pub const ECDSA_SHA256_ALGORITHM: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
pub const SHA256_ALGORITHM: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const XPATH_ALGORITHM: &str = "http://www.w3.org/TR/1999/REC-xpath-19991116";
pub const SIGNATURE_PROPERTIES_TYPE: &str = "http://www.w3.org/2000/09/xmldsig#SignatureProperties";
/// The XPath filters ZATCA's signed documents list (see [`crate::hash`] for what is really
/// done); written as ZATCA writes them, since validators compare them.
pub const INVOICE_TRANSFORM_XPATHS: [&str; 3] = [
    "not(//ancestor-or-self::ext:UBLExtensions)",
    "not(//ancestor-or-self::cac:Signature)",
    "not(//ancestor-or-self::cac:AdditionalDocumentReference[cbc:ID='QR'])",
];
const SIGNATURE_NAMESPACE: &str =
    "urn:oasis:names:specification:ubl:schema:xsd:CommonSignatureComponents-2";
const SIGNATURE_AGGREGATE_NAMESPACE: &str =
    "urn:oasis:names:specification:ubl:schema:xsd:SignatureAggregateComponents-2";
const SIGNATURE_BASIC_NAMESPACE: &str =
    "urn:oasis:names:specification:ubl:schema:xsd:SignatureBasicComponents-2";
const SIGNATURE_INFORMATION_ID: &str = "urn:oasis:names:specification:ubl:signature:1";

/// The values written into `ext:UBLExtensions`.
pub(crate) struct XadesValues<'a> {
    pub invoice_hash_base64: &'a str,
    pub signed_properties_digest_base64: &'a str,
    pub signature_base64: &'a str,
    pub certificate_base64: &'a str,
    pub signing_time: &'a str,
    pub certificate_digest_base64: &'a str,
    pub issuer_name: &'a str,
    pub serial_number: &'a str,
}

/// Writes the `ext:UBLExtensions` element with the XAdES signature, laid out as ZATCA's SDK
/// lays it out.
pub(crate) fn write_extensions(xml: &mut XmlWriter, values: &XadesValues<'_>) {
    xml.start("ext:UBLExtensions", &[]);
    xml.start("ext:UBLExtension", &[]);
    xml.leaf("ext:ExtensionURI", &[], crate::xml::SIGNATURE_METHOD);
    xml.start("ext:ExtensionContent", &[]);
    xml.start(
        "sig:UBLDocumentSignatures",
        &[
            ("xmlns:sig", SIGNATURE_NAMESPACE),
            ("xmlns:sac", SIGNATURE_AGGREGATE_NAMESPACE),
            ("xmlns:sbc", SIGNATURE_BASIC_NAMESPACE),
        ],
    );
    xml.start("sac:SignatureInformation", &[]);
    xml.leaf("cbc:ID", &[], SIGNATURE_INFORMATION_ID);
    xml.leaf("sbc:ReferencedSignatureID", &[], crate::xml::SIGNATURE_ID);
    xml.start(
        "ds:Signature",
        &[("xmlns:ds", DSIG_NAMESPACE), ("Id", "signature")],
    );
    write_signed_info(xml, values);
    xml.leaf("ds:SignatureValue", &[], values.signature_base64);
    xml.start("ds:KeyInfo", &[]);
    xml.start("ds:X509Data", &[]);
    xml.leaf("ds:X509Certificate", &[], values.certificate_base64);
    xml.end("ds:X509Data");
    xml.end("ds:KeyInfo");
    xml.start("ds:Object", &[]);
    xml.start(
        "xades:QualifyingProperties",
        &[("xmlns:xades", XADES_NAMESPACE), ("Target", "signature")],
    );
    write_signed_properties(xml, values);
    xml.end("xades:QualifyingProperties");
    xml.end("ds:Object");
    xml.end("ds:Signature");
    xml.end("sac:SignatureInformation");
    xml.end("sig:UBLDocumentSignatures");
    xml.end("ext:ExtensionContent");
    xml.end("ext:UBLExtension");
    xml.end("ext:UBLExtensions");
}

fn write_signed_info(xml: &mut XmlWriter, values: &XadesValues<'_>) {
    xml.start("ds:SignedInfo", &[]);
    xml.empty(
        "ds:CanonicalizationMethod",
        &[("Algorithm", C14N11_ALGORITHM)],
    );
    xml.empty(
        "ds:SignatureMethod",
        &[("Algorithm", ECDSA_SHA256_ALGORITHM)],
    );
    xml.start("ds:Reference", &[("Id", "invoiceSignedData"), ("URI", "")]);
    xml.start("ds:Transforms", &[]);
    for xpath in INVOICE_TRANSFORM_XPATHS {
        xml.start("ds:Transform", &[("Algorithm", XPATH_ALGORITHM)]);
        xml.leaf("ds:XPath", &[], xpath);
        xml.end("ds:Transform");
    }
    xml.empty("ds:Transform", &[("Algorithm", C14N11_ALGORITHM)]);
    xml.end("ds:Transforms");
    xml.empty("ds:DigestMethod", &[("Algorithm", SHA256_ALGORITHM)]);
    xml.leaf("ds:DigestValue", &[], values.invoice_hash_base64);
    xml.end("ds:Reference");
    xml.start(
        "ds:Reference",
        &[
            ("Type", SIGNATURE_PROPERTIES_TYPE),
            ("URI", "#xadesSignedProperties"),
        ],
    );
    xml.empty("ds:DigestMethod", &[("Algorithm", SHA256_ALGORITHM)]);
    xml.leaf(
        "ds:DigestValue",
        &[],
        values.signed_properties_digest_base64,
    );
    xml.end("ds:Reference");
    xml.end("ds:SignedInfo");
}

fn write_signed_properties(xml: &mut XmlWriter, values: &XadesValues<'_>) {
    xml.start("xades:SignedProperties", &[("Id", "xadesSignedProperties")]);
    xml.start("xades:SignedSignatureProperties", &[]);
    xml.leaf("xades:SigningTime", &[], values.signing_time);
    xml.start("xades:SigningCertificate", &[]);
    xml.start("xades:Cert", &[]);
    xml.start("xades:CertDigest", &[]);
    xml.empty("ds:DigestMethod", &[("Algorithm", SHA256_ALGORITHM)]);
    xml.leaf("ds:DigestValue", &[], values.certificate_digest_base64);
    xml.end("xades:CertDigest");
    xml.start("xades:IssuerSerial", &[]);
    xml.leaf("ds:X509IssuerName", &[], values.issuer_name);
    xml.leaf("ds:X509SerialNumber", &[], values.serial_number);
    xml.end("xades:IssuerSerial");
    xml.end("xades:Cert");
    xml.end("xades:SigningCertificate");
    xml.end("xades:SignedSignatureProperties");
    xml.end("xades:SignedProperties");
}
