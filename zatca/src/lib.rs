//! Pure ZATCA e-invoicing Phase 2 (Fatoora): the offline half of what an EGS unit does —
//! write the UBL document, hash it, stamp it, draw its QR, and ask for its certificate.
//! Sending anything to ZATCA (onboarding, compliance checks, clearance, reporting) is the
//! adapters' job; this crate has no I/O, reads no clock (times are inputs) and draws no random
//! numbers (the key is an input; ECDSA nonces are RFC 6979's).
//!
//! Every encoding rule below was checked against ZATCA's own signed SDK samples in
//! `../shared/zatca_samples/` (the tests read them there): the invoice hash, the signature,
//! the signed-properties and certificate digests, the issuer and serial, and each QR tag.
//!
//! # What is implemented, against ZATCA's specifications
//!
//! XML Implementation Standard (UBL 2.1, [`xml`], [`document`]):
//! - tax invoice 388, credit note 381, debit note 383, each standard (`0100000`) or
//!   simplified (`0200000`), all with the `Invoice` root;
//! - ProfileID `reporting:1.0`, ID, UUID, issue date and time, SAR as document and tax
//!   currency, ICV and PIH references;
//! - seller with CRN identification, national address, VAT number and legal name; buyer with
//!   address, VAT number and legal name (required on standard documents);
//! - supply date (required on standard tax invoices), payment means code, and for notes the
//!   billing reference and the reason (`cbc:InstructionNote`, KSA-10);
//! - lines with quantity, unit price, net amount, line VAT and amount with VAT, category S at
//!   15%; the two tax totals and the monetary totals, VAT rounded once per document (BR-S-09);
//! - validation of the content rules of ZATCA's schematron that the input decides, each error
//!   naming its field and rule ([`DocumentError`]).
//!
//! Security Features Implementation Standard ([`hash`], [`stamp`], [`mod@sign`], [`qr`], [`csr`]):
//! - the invoice hash (C14N 1.1 without UBLExtensions, cac:Signature and the QR reference;
//!   [`c14n`] says why the canonicaliser is written here);
//! - the ECDSA secp256k1 stamp over the hash, the XAdES signed properties with their
//!   digest computed as ZATCA's SDK computes it, `ds:SignedInfo` and `ext:UBLExtensions`;
//! - the QR with tags 1–8, and tag 9 on simplified documents;
//! - the certificate's fields ([`Certificate`], including the API's `binarySecurityToken`);
//! - the onboarding CSR with the subject, the SAN directory name and the certificate template
//!   of each environment (developer portal, simulation, production);
//! - reading the stamp and the QR back out of a signed document ([`read`]).
//!
//! # What is not implemented
//!
//! - VAT categories other than S at 15% (zero-rated Z, exempt E, out of scope O, with their
//!   exemption reason codes), and document- or line-level allowances and charges;
//! - currencies other than SAR (and so the exchange rate and a tax total in another currency);
//! - prepayments (advance-payment invoices and their adjustment lines), payable rounding;
//! - third-party, nominal, export, summary and self-billed transactions (KSA-2 flags), VAT
//!   groups, and other buyer identifications (national ID, CRN) for buyers without a VAT
//!   number (BR-KSA-14, BR-KSA-81): a standard document here always names the buyer's VAT
//!   number;
//! - the PDF/A-3 rendering with the XML embedded, and printing the QR as an image;
//! - key generation and storage; checking a certificate's chain or validity period against
//!   ZATCA's CA; the XAdES verification a full XML-DSig library would do (the XPath transforms
//!   are not evaluated; see [`hash`]);
//! - anything that needs the clock or the network: BR-KSA-04 (issue date not in the future),
//!   submission, and ZATCA's answers.

pub mod c14n;
pub mod certificate;
pub mod csr;
pub mod document;
pub mod hash;
pub mod qr;
pub mod read;
pub mod sign;
pub mod stamp;
pub mod tree;
pub mod xml;

pub use certificate::{Certificate, CertificateError};
pub use document::{
    Address, BillingReference, Buyer, Document, DocumentError, DocumentKind, InvoiceSubtype, Line,
    PaymentMeans, Seller,
};
pub use hash::{invoice_hash, InvoiceHash};
pub use qr::{QrError, QrFields};
pub use sign::{sign, SignError, SignedDocument};
pub use tree::XmlError;
pub use xml::to_unsigned_xml;
