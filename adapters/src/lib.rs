//! The outside world of revledger.
//!
//! Everything that touches I/O and is not HTTP lives here: the append-only event store on
//! SQLite and PostgreSQL ([`store`]), the command handler that loads an aggregate, lets the
//! pure domain decide, and appends the result with optimistic concurrency ([`command`]), the
//! clock ([`clock`]), and the one outbound API we call, Moyasar's ([`moyasar_api`]). The domain
//! crate never sees any of it: time and ids are passed in.

pub mod clock;
pub mod command;
pub mod handlers;
pub mod idempotency;
pub mod inbox;
pub mod moyasar_api;
pub mod services;
pub mod sql;
pub mod sqlite_conn;
pub mod store;
pub mod webhooks;

pub use command::{CommandError, CommandHandler, CommandOutcome};
pub use store::{
    AppendOutcome, AppendRequest, Checkpoint, EventMetadata, EventStore, ExpectedVersion, NewEvent,
    RecordedEvent, StoreError,
};
