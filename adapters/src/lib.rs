//! The outside world of revledger.
//!
//! Everything that touches I/O and is not HTTP lives here: the append-only event store on
//! SQLite and PostgreSQL ([`store`]) and the SQL the read models write through ([`sql`]), the
//! webhook inbox ([`inbox`]) and the verification and parsing of deliveries ([`webhooks`]),
//! `Idempotency-Key` claims ([`idempotency`]), API tokens and dashboard sessions as stored
//! ([`tokens`], [`sessions`]), the clock ([`clock`]), and the outbound APIs we call: Moyasar's
//! ([`moyasar_api`]) and ZATCA's e-invoicing API, Fatoora ([`fatoora`]). The domain crate
//! never sees any of it: time and ids are passed in. What the service *does* with all this
//! lives in the `app` crate.

pub mod clock;
pub mod fatoora;
pub mod idempotency;
pub mod inbox;
pub mod leadership;
pub mod moyasar_api;
pub mod personal;
pub mod sessions;
pub mod sql;
pub mod sqlite_conn;
pub mod store;
pub mod tokens;
pub mod webhooks;
pub mod zatca_keys;

pub use store::{
    AppendOutcome, AppendRequest, Checkpoint, EventMetadata, EventStore, ExpectedVersion, NewEvent,
    RecordedEvent, StoreError,
};
