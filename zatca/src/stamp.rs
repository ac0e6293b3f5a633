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
