//! Pure ZATCA e-invoicing Phase 2 (Fatoora).

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
