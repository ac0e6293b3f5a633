//! Pure ZATCA e-invoicing Phase 2 (Fatoora).

pub mod c14n;
pub mod hash;
pub mod tree;

pub use hash::{invoice_hash, InvoiceHash};
pub use tree::XmlError;
