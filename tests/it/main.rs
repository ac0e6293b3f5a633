//! The one integration-test binary (matklad's "Delete Cargo Integration Tests").
//!
//! - [`helpers`]: fresh databases per test (a temp SQLite file, or a uuid-named PostgreSQL
//!   database created from `REVLEDGER_TEST_POSTGRES_URL`), and the engine-parametrised macro.
//! - [`store_contract`]: the event-store contract, run against both engines.
//! - [`command_handler`]: load/decide/append with the cache, conflicts and idempotency.
//! - [`cli`]: the `revledger` binary itself (serve, verify, events).
//! - [`moyasar_api`]: creating Moyasar invoices against a local fake of Moyasar's API.
//! - [`fatoora`]: the ZATCA e-invoicing client against [`fake_fatoora`], a local fake of
//!   Fatoora that checks submitted documents with the `zatca` crate.
//! - [`zatca_onboarding`]: onboarding and renewing the EGS unit against the fake, in process
//!   and through the binary (`zatca onboard`, `renew`, `status`, `config check`).

mod api_routes;
mod app;
mod authz;
mod batched;
mod chromium;
mod cli;
mod command_handler;
mod dashboard;
mod desk;
mod desk_browser;
mod fake_fatoora;
mod fatoora;
mod finance;
mod finance_api;
mod finance_ledger;
mod finance_reads;
mod funnel_counters;
mod hardening;
mod helpers;
mod history;

mod kept_reads;
mod limits;
mod metrics;
mod migrations;
mod moyasar_api;
mod moyasar_sweep;
mod openapi;
mod ops;
mod personal;
mod projections;
mod rebuild;
mod reconciliation_maintained;
mod replicas;
mod snapshots;
mod store_contract;
mod storm;
mod tamper;
mod tokens;
mod webhooks;
mod zatca_onboarding;
mod zatca_phase2;
