//! The application: what revledger does, each use case once, between the HTTP layer above and
//! the store, the read models and the outside services below.
//!
//! - [`command`]: [`command::CommandHandler`] loads an aggregate, lets the pure domain decide,
//!   and appends the result with optimistic concurrency and command-id idempotency;
//!   [`handlers::Handlers`] holds one per aggregate type, shared by everything in a process.
//! - [`demo`]: a deterministic generated history for a newcomer's first run
//!   (`revledger serve --demo`), sent through the same handlers as everything else.
//! - [`invoices`]: issuing an invoice through its seller's ZATCA sequence, one workflow for the
//!   API, the demo and the invoice-issuer process manager.
//! - [`partners`]: commands that span aggregates (tier changes through the program stream's
//!   three Strategic slots).
//! - [`process`]: the process managers, durable subscribers that turn events into commands
//!   (invoice paid -> lead paid -> commission accrued, refunds -> clawbacks, payouts), with
//!   deterministic command ids so a replay never doubles an effect.
//!
//! - [`tokens`] and [`sessions`]: API tokens (made, listed, revoked; who a token stands for)
//!   and the dashboard's server-side sessions, one use case each for the CLI and the API.
//!
//! - [`webhooks`]: the delivery state machine (verify, keep, map to a command, execute; answer,
//!   park or dead-letter), the same for every provider.
//!
//! Nothing here speaks HTTP: inputs and outputs are typed, errors name the rule.

pub mod command;
pub mod commissions;
pub mod demo;
pub mod handlers;
pub mod invoices;
pub mod moyasar_sweep;
pub mod partners;
pub mod personal;
pub mod process;
pub mod seeded;
pub mod sessions;
pub mod tokens;
pub mod webhooks;
pub mod zatca;

pub use command::{CommandError, CommandHandler, CommandOutcome};
