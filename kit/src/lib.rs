//! The test kit: the one way the integration tests, the fault harness and the benches start
//! the service and talk to it.
//!
//! - [`Served`]: the whole service in this process, on a loopback port the system picks, over
//!   a store the caller opened (a fresh database per test); stopped by [`Served::stop`] as
//!   `serve` stops on SIGTERM (requests drain, workers commit their batch).
//! - [`Client`]: an HTTP client for it (reqwest), with [`Answer`] (status, headers, text and
//!   JSON body) for tests and [`Raw`] (the bytes, nothing parsed).
//! - [`Connection`]: one keep-alive HTTP/1.1 connection written and read in place, for the
//!   benches, which time the service and not the client (reqwest's and hyper's clients cost
//!   the SQLite lifecycle bench 5-15% and about 6% of its commands per second).
//!
//! Tests that attack the server with bytes no client would send (slow heads, malformed
//! framing, floods of half-open connections) write to a socket themselves and read the answer
//! with [`Answer::from_http`].

mod client;
mod connection;
mod served;

pub use client::{Answer, Client, Raw};
pub use connection::Connection;
/// Why a request got no answer (nothing listening, the connection cut, the timeout).
pub use reqwest::Error as HttpError;
pub use served::Served;
