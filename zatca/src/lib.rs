//! Pure ZATCA e-invoicing Phase 2 (Fatoora).

pub mod c14n;
pub mod certificate;
pub mod hash;
pub mod read;
pub mod stamp;
pub mod tree;

pub use certificate::{Certificate, CertificateError};
pub use hash::{invoice_hash, InvoiceHash};
pub use tree::XmlError;
