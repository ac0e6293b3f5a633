//! The zatca crate's integration tests, one binary: ZATCA's published samples as vectors,
//! signing our own documents, and the onboarding CSR.

mod csr;
mod kit;
mod samples;
mod signing;
