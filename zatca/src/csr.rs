//! The certificate signing request an EGS unit sends to be onboarded (ZATCA's compliance
//! CSID API), built from its secp256k1 key, which is an input: generating and keeping the key
//! is the key store's job, not this crate's.
//!
//! What ZATCA asks for (the SDK's `csr-config` properties and its onboarding guide, the
//! Fatoora portal user manual):
//!
//! - subject: `C=SA`, `O` the taxpayer's name, `OU` the branch (for a VAT group, the member's
//!   TIN), `CN` the unit's common name, and `organizationIdentifier` (2.5.4.97) the VAT number;
//! - a subject alternative name holding one directory name with `SN` (2.5.4.4) the EGS serial
//!   `1-<solution>|2-<model>|3-<serial>`, `UID` (0.9.2342.19200300.100.1.1) the VAT number,
//!   `title` (2.5.4.12) the document types the unit issues as four flags (`1100`: standard and
//!   simplified), `registeredAddress` (2.5.4.26) the unit's location and `businessCategory`
//!   (2.5.4.15) the industry — encoded exactly as ZATCA's own test certificate carries it
//!   (each attribute its own RDN, UTF8String; `tests` compares the bytes);
//! - the Microsoft certificate template name extension (1.3.6.1.4.1.311.20.2), a
//!   PrintableString naming the environment: `TSTZATCA-Code-Signing` for the developer
//!   portal (sandbox), `PREZATCA-Code-Signing` for simulation, `ZATCA-Code-Signing` for
//!   production (ZATCA's openssl instructions write it `ASN1:PRINTABLESTRING:…`). A CSR made
//!   for one environment is refused by the others;
//! - signed with ECDSA-SHA256 by the unit's key.
//!
//! The compliance API takes the CSR as base64 of the PEM text ([`Csr::base64_pem`]).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use k256::ecdsa::signature::Signer as _;
use k256::ecdsa::{Signature, SigningKey};
use k256::pkcs8::EncodePublicKey as _;
use thiserror::Error;
use x509_cert::attr::{Attribute, AttributeTypeAndValue};
use x509_cert::der::asn1::{
    Any, BitString, OctetString, PrintableStringRef, SetOfVec, Utf8StringRef,
};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{Decode, Encode, EncodePem};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// countryName.
pub const COUNTRY_NAME_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
/// organizationName.
pub const ORGANIZATION_NAME_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
/// organizationalUnitName.
pub const ORGANIZATIONAL_UNIT_NAME_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
/// commonName.
pub const COMMON_NAME_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// organizationIdentifier: the VAT number.
pub const ORGANIZATION_IDENTIFIER_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.97");
/// surname, which ZATCA uses for the EGS serial (`SN` in openssl's configuration).
pub const SERIAL_NAME_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.4");
/// userId: the VAT number again.
pub const USER_ID_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1");
/// title: the invoice-type flags.
pub const TITLE_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.12");
/// registeredAddress: the unit's location.
pub const REGISTERED_ADDRESS_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.26");
/// businessCategory: the industry.
pub const BUSINESS_CATEGORY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.15");
/// Microsoft's certificate template name extension, which ZATCA's CA reads.
pub const CERTIFICATE_TEMPLATE_NAME_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2");
/// subjectAltName.
pub const SUBJECT_ALT_NAME_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// PKCS#9 extensionRequest.
pub const EXTENSION_REQUEST_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Which of ZATCA's environments the certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// The developer portal (sandbox), `…/e-invoicing/developer-portal`.
    DeveloperPortal,
    /// The simulation environment, `…/e-invoicing/simulation`.
    Simulation,
    /// Production, `…/e-invoicing/core`.
    Production,
}

impl Environment {
    /// The certificate template name the CSR carries.
    pub fn certificate_template_name(self) -> &'static str {
        match self {
            Environment::DeveloperPortal => "TSTZATCA-Code-Signing",
            Environment::Simulation => "PREZATCA-Code-Signing",
            Environment::Production => "ZATCA-Code-Signing",
        }
    }
}

/// What the CSR says about the unit and its taxpayer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrFields {
    pub environment: Environment,
    /// `CN`: the unit's common name.
    pub common_name: String,
    /// The EGS serial, `1-<solution>|2-<model>|3-<serial>`.
    pub egs_serial_number: String,
    /// The taxpayer's VAT number (`organizationIdentifier` and `UID`).
    pub vat_number: String,
    /// `OU`: the branch name (for a VAT group member, its TIN).
    pub organizational_unit: String,
    /// `O`: the taxpayer's name.
    pub organization: String,
    /// `title`: four flags, standard / simplified / reserved / reserved (`1100`, `1000`, `0100`).
    pub invoice_types: String,
    /// `registeredAddress`: where the unit is.
    pub location: String,
    /// `businessCategory`: the taxpayer's industry.
    pub industry: String,
}

/// A signed CSR in the forms it is handled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csr {
    pub der: Vec<u8>,
    /// `-----BEGIN CERTIFICATE REQUEST-----` …
    pub pem: String,
}

impl Csr {
    /// Base64 of the PEM text: the `csr` of the compliance CSID API's request body.
    pub fn base64_pem(&self) -> String {
        BASE64.encode(self.pem.as_bytes())
    }
}

/// Why a CSR cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CsrError {
    #[error("{field} is empty")]
    MissingField { field: &'static str },
    #[error("the EGS serial {value:?} must read 1-…|2-…|3-…")]
    InvalidEgsSerial { value: String },
    #[error(
        "invoice_types {value:?} must be four 0/1 flags with at least one of the first two set"
    )]
    InvalidInvoiceTypes { value: String },
    #[error("vat_number {value:?} must be 15 digits, first and last 3")]
    InvalidVatNumber { value: String },
    #[error("a field cannot be encoded: {reason}")]
    Encoding { reason: String },
}

impl From<x509_cert::der::Error> for CsrError {
    fn from(error: x509_cert::der::Error) -> Self {
        CsrError::Encoding {
            reason: error.to_string(),
        }
    }
}

/// Builds and signs the CSR.
pub fn build_csr(fields: &CsrFields, key: &SigningKey) -> Result<Csr, CsrError> {
    validate(fields)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject(fields)?,
        public_key: public_key_info(key)?,
        attributes: [extension_request(fields)?]
            .into_iter()
            .collect::<Vec<_>>()
            .try_into()?,
    };
    let signature: Signature = key.sign(&info.to_der()?);
    let request = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256_OID,
            parameters: None,
        },
        signature: BitString::from_bytes(signature.to_der().as_bytes())?,
    };
    Ok(Csr {
        der: request.to_der()?,
        pem: request.to_pem(LineEnding::LF)?,
    })
}

/// The subject alternative name extension's value (the DER of its `GeneralNames`).
pub fn subject_alt_name_der(fields: &CsrFields) -> Result<Vec<u8>, CsrError> {
    let directory_name = name(&[
        (SERIAL_NAME_OID, utf8(&fields.egs_serial_number)?),
        (USER_ID_OID, utf8(&fields.vat_number)?),
        (TITLE_OID, utf8(&fields.invoice_types)?),
        (REGISTERED_ADDRESS_OID, utf8(&fields.location)?),
        (BUSINESS_CATEGORY_OID, utf8(&fields.industry)?),
    ])?;
    Ok(vec![GeneralName::DirectoryName(directory_name)].to_der()?)
}

fn validate(fields: &CsrFields) -> Result<(), CsrError> {
    for (field, value) in [
        ("common_name", &fields.common_name),
        ("organizational_unit", &fields.organizational_unit),
        ("organization", &fields.organization),
        ("location", &fields.location),
        ("industry", &fields.industry),
    ] {
        if value.trim().is_empty() {
            return Err(CsrError::MissingField { field });
        }
    }
    let serial_parts: Vec<&str> = fields.egs_serial_number.split('|').collect();
    let serial_ok = serial_parts.len() == 3
        && serial_parts
            .iter()
            .zip(["1-", "2-", "3-"])
            .all(|(part, prefix)| part.len() > prefix.len() && part.starts_with(prefix));
    if !serial_ok {
        return Err(CsrError::InvalidEgsSerial {
            value: fields.egs_serial_number.clone(),
        });
    }
    let flags = fields.invoice_types.as_bytes();
    let flags_ok = flags.len() == 4
        && flags.iter().all(|flag| matches!(flag, b'0' | b'1'))
        && (flags[0] == b'1' || flags[1] == b'1');
    if !flags_ok {
        return Err(CsrError::InvalidInvoiceTypes {
            value: fields.invoice_types.clone(),
        });
    }
    let vat = &fields.vat_number;
    if !(vat.len() == 15
        && vat.bytes().all(|byte| byte.is_ascii_digit())
        && vat.starts_with('3')
        && vat.ends_with('3'))
    {
        return Err(CsrError::InvalidVatNumber { value: vat.clone() });
    }
    Ok(())
}

fn subject(fields: &CsrFields) -> Result<Name, CsrError> {
    name(&[
        (COUNTRY_NAME_OID, Any::from(PrintableStringRef::new("SA")?)),
        (ORGANIZATION_NAME_OID, utf8(&fields.organization)?),
        (
            ORGANIZATIONAL_UNIT_NAME_OID,
            utf8(&fields.organizational_unit)?,
        ),
        (COMMON_NAME_OID, utf8(&fields.common_name)?),
        (ORGANIZATION_IDENTIFIER_OID, utf8(&fields.vat_number)?),
    ])
}

fn extension_request(fields: &CsrFields) -> Result<Attribute, CsrError> {
    let template_name = PrintableStringRef::new(fields.environment.certificate_template_name())?;
    let extensions = vec![
        Extension {
            extn_id: CERTIFICATE_TEMPLATE_NAME_OID,
            critical: false,
            extn_value: OctetString::new(template_name.to_der()?)?,
        },
        Extension {
            extn_id: SUBJECT_ALT_NAME_OID,
            critical: false,
            extn_value: OctetString::new(subject_alt_name_der(fields)?)?,
        },
    ];
    let mut values = SetOfVec::new();
    values.insert(Any::from_der(&extensions.to_der()?)?)?;
    Ok(Attribute {
        oid: EXTENSION_REQUEST_OID,
        values,
    })
}

fn public_key_info(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned, CsrError> {
    let der = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|error| CsrError::Encoding {
            reason: error.to_string(),
        })?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

fn utf8(value: &str) -> Result<Any, CsrError> {
    Ok(Any::from(Utf8StringRef::new(value)?))
}

/// A name of single-attribute RDNs, in the order given.
fn name(attributes: &[(ObjectIdentifier, Any)]) -> Result<Name, CsrError> {
    let mut rdns = Vec::with_capacity(attributes.len());
    for (oid, value) in attributes {
        let mut set = SetOfVec::new();
        set.insert(AttributeTypeAndValue {
            oid: *oid,
            value: value.clone(),
        })?;
        rdns.push(RelativeDistinguishedName(set));
    }
    Ok(RdnSequence(rdns))
}
