//! What the tests share: reading ZATCA's samples, a fixed test key, a certificate for it, and
//! a document shaped like ZATCA's simplified sample.

use std::str::FromStr as _;
use std::time::Duration;

use k256::ecdsa::signature::Signer as _;
use k256::ecdsa::{Signature, SigningKey};
use k256::pkcs8::EncodePublicKey as _;
use sha2::{Digest, Sha256};
use time::macros::{date, datetime, time};
use time::PrimitiveDateTime;
use x509_cert::der::asn1::{BitString, UtcTime};
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate as X509, TbsCertificate, Version};
use zatca::tree::{self, find_descendant};
use zatca::{
    Address, BillingReference, Buyer, Certificate, Document, DocumentKind, InvoiceSubtype, Line,
    PaymentMeans, Seller,
};

/// The shared samples, beside the workspace: `../shared/zatca_samples/` from its root.
pub const SAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/zatca_samples/");

/// Every signed sample in the folder. All of them carry their own hash, signature, signed
/// properties digest and QR, so each vector runs over all of them.
pub const SIGNED_SAMPLES: &[&str] = &[
    "sdk_simplified_invoice.xml",
    "sdk_standard_invoice.xml",
    "sdk_simplified_credit_note.xml",
    "sdk_standard_debit_note.xml",
    "sdk_standard_invoice_payable_rounding.xml",
    "sdk_standard_advance_payment_usd.xml",
    "wes4m_simplified_signed.xml",
];

pub fn sample(name: &str) -> String {
    let path = format!("{SAMPLES_DIR}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

pub fn sdk_certificate() -> Certificate {
    Certificate::from_pem(&sample("zatca_sdk_test_cert.pem")).unwrap()
}

/// The text of the first element at `path` (names as written) below the root of `xml`.
pub fn text_at(xml: &str, path: &[&str]) -> String {
    let document = tree::parse(xml).unwrap();
    tree::find(&document.root, path)
        .unwrap_or_else(|| panic!("no {}", path.join("/")))
        .text()
}

/// The text of the first element named `name` anywhere in `xml`.
pub fn text_of(xml: &str, name: &str) -> String {
    let document = tree::parse(xml).unwrap();
    find_descendant(&document.root, name)
        .unwrap_or_else(|| panic!("no {name}"))
        .text()
}

/// A fixed key: SHA-256 of a label, so tests need no random numbers.
pub fn test_key(label: &str) -> SigningKey {
    let secret: [u8; 32] = Sha256::digest(label.as_bytes()).into();
    SigningKey::from_bytes(&secret.into()).unwrap()
}

pub const TEST_ISSUER: &str = "CN=TEST-CA,DC=test,DC=local";

/// A certificate for `key`, issued (signed) by `ca_key`, with a serial number wider than a
/// u128 so its decimal writing is exercised.
pub fn test_certificate(key: &SigningKey, ca_key: &SigningKey) -> Certificate {
    let algorithm = AlgorithmIdentifierOwned {
        oid: zatca::csr::ECDSA_WITH_SHA256_OID,
        parameters: None,
    };
    let public_key = key.verifying_key().to_public_key_der().unwrap();
    let at =
        |seconds| Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(seconds)).unwrap());
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x11; 19]).unwrap(),
        signature: algorithm.clone(),
        issuer: Name::from_str(TEST_ISSUER).unwrap(),
        validity: Validity {
            not_before: at(1_700_000_000),
            not_after: at(1_900_000_000),
        },
        subject: Name::from_str("CN=TST-EGS-310122393500003,O=Dealix,C=SA").unwrap(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(public_key.as_bytes())
            .unwrap(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let signature: Signature = ca_key.sign(&tbs.to_der().unwrap());
    let certificate = X509 {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(signature.to_der().as_bytes()).unwrap(),
    };
    Certificate::from_der(&certificate.to_der().unwrap()).unwrap()
}

pub fn signing_time() -> PrimitiveDateTime {
    datetime!(2025-01-15 10:30:00)
}

pub fn seller() -> Seller {
    Seller {
        registration_name: "شركة ديليكس | Dealix".to_owned(),
        vat_number: "310122393500003".to_owned(),
        commercial_registration_number: "1010010000".to_owned(),
        address: Address {
            street: "الامير سلطان | Prince Sultan".to_owned(),
            building_number: "2322".to_owned(),
            district: "المربع | Al-Murabba".to_owned(),
            city: "الرياض | Riyadh".to_owned(),
            postal_code: "23333".to_owned(),
            country_code: "SA".to_owned(),
        },
    }
}

pub fn buyer() -> Buyer {
    Buyer {
        registration_name: "Fatoora Samples LTD & Co <B2B>".to_owned(),
        vat_number: Some("399999999800003".to_owned()),
        address: Some(Address {
            street: "صلاح الدين | Salah Al-Din".to_owned(),
            building_number: "1111".to_owned(),
            district: "المروج | Al-Murooj".to_owned(),
            city: "الرياض | Riyadh".to_owned(),
            postal_code: "12222".to_owned(),
            country_code: "SA".to_owned(),
        }),
    }
}

/// A simplified invoice with the lines of ZATCA's simplified sample (33 books at 3.00 and
/// 3 pens at 34.00), so its totals can be compared with that sample's.
pub fn simplified_invoice() -> Document {
    Document {
        kind: DocumentKind::Invoice,
        subtype: InvoiceSubtype::Simplified,
        id: "INV-2025-0001".to_owned(),
        uuid: "8e6000cf-1a98-4174-b3e7-b5d5954bc10d".to_owned(),
        issue_date: date!(2025 - 01 - 15),
        issue_time: time!(13:30:00),
        supply_date: None,
        icv: 1,
        previous_invoice_hash: "NWZlY2ViNjZmZmM4NmYzOGQ5NTI3ODZjNmQ2OTZjNzljMmRiYzIzOWRkNGU5MWI0NjcyOWQ3M2EyN2ZiNTdlOQ==".to_owned(),
        seller: seller(),
        buyer: None,
        payment_means: PaymentMeans::BankCard,
        billing_reference: None,
        lines: vec![
            Line {
                name: "كتاب".to_owned(),
                quantity: 33,
                unit_price_halalas: 300,
            },
            Line {
                name: "قلم".to_owned(),
                quantity: 3,
                unit_price_halalas: 3_400,
            },
        ],
    }
}

pub fn standard_invoice() -> Document {
    Document {
        subtype: InvoiceSubtype::Standard,
        supply_date: Some(date!(2025 - 01 - 15)),
        buyer: Some(buyer()),
        ..simplified_invoice()
    }
}

pub fn credit_note() -> Document {
    Document {
        kind: DocumentKind::CreditNote,
        id: "CN-2025-0001".to_owned(),
        uuid: "322efd74-5b1b-41e0-843c-1d13bec4475e".to_owned(),
        billing_reference: Some(BillingReference {
            original_invoice_id: "INV-2025-0001".to_owned(),
            reason: "Refund of the Growth plan | استرداد".to_owned(),
        }),
        ..standard_invoice()
    }
}
