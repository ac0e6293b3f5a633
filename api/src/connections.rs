//! The listener's connections: how many each client holds, which have a request in flight, and
//! which may be let go so that a newcomer is served.
//!
//! A connection is *serving* while a request is in flight on it: from the moment its headers
//! have been read (hyper calls the service) until its response body has been sent in full, or
//! dropped. A body uploaded slowly, or a long download such as the NDJSON event feed, is
//! serving for as long as it lasts. Otherwise a connection is *waiting*: reading the headers of
//! its first request, or idle between keep-alive requests. A waiting connection holds a slot and
//! gives nothing back, and a client can open them for free; 1,100 half-open connections from
//! one client once made every other request 503 for as long as they were held (attack review,
//! issue 20). So:
//!
//! - one client holds at most `max_connections_per_client` connections; one beyond is shed (the
//!   caller answers 503 and closes it). A client is an IP address: an IPv4-mapped IPv6 address
//!   (how a dual-stack listener sees an IPv4 peer) counts as its IPv4 address, and an IPv6
//!   address as its /64 ([`IPV6_CLIENT_PREFIX_BITS`]);
//! - when all `max_connections` slots are taken, a newcomer evicts the connection that has been
//!   waiting longest and takes its slot; only when every slot is serving is the newcomer shed.
//!   A serving connection is never evicted.
//!
//! Everything is decided under one mutex, held for a few map operations and never across an
//! await: admitting a connection, evicting one, a request starting and a request ending. So a
//! request whose headers complete just as its connection is evicted finds it evicted and is
//! answered 503 (`connection: close`) instead of being served on a connection about to close.
//!
//! Everything is bounded: at most `max_connections` connections are open, and at most as many
//! more are evicted but not yet closed (an evicted task closes its connection at once, or after
//! [`crate::service`]'s short grace when it has answered a request); the per-client counts hold
//! one entry per client with a live connection, removed when its count returns to zero.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Response};
use axum::response::IntoResponse;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{oneshot, Notify};

use crate::ApiError;

/// IPv6 clients are counted by this prefix: a host is usually given a whole /64, so counting
/// single addresses would give one host 2^64 allowances.
pub const IPV6_CLIENT_PREFIX_BITS: u32 = 64;

/// The client a peer address counts as (see the module documentation).
pub fn client_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(address) => {
            let host_bits = 128 - IPV6_CLIENT_PREFIX_BITS;
            let prefix = u128::from(address) >> host_bits << host_bits;
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Why a connection was not admitted; it is answered 503 and closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every slot holds a connection with a request in flight (or an evicted one still closing).
    ServerFull,
    /// Its client already holds `max_connections_per_client` connections.
    ClientFull,
}

impl Refused {
    /// The setting that refused it (the `limit` label of the shed counter).
    pub fn limit(self) -> &'static str {
        match self {
            Refused::ServerFull => "max_connections",
            Refused::ClientFull => "max_connections_per_client",
        }
    }

    /// What the 503 tells the client.
    pub fn detail(self) -> &'static str {
        match self {
            Refused::ServerFull => "too many connections; retry shortly",
            Refused::ClientFull => "too many connections from your address; retry shortly",
        }
    }
}

/// What an evicted connection's task is told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It never had a request: nothing was written on it, so drop it at once.
    Unserved,
    /// It answered a request before and is idle: close it gracefully (the last answer may
    /// still be leaving its buffer).
    Idle,
}

/// The connections of one listener.
pub struct Connections {
    max_open: usize,
    max_per_client: usize,
    registry: Mutex<Registry>,
    /// Woken when the last connection is gone.
    emptied: Notify,
}

#[derive(Default)]
struct Registry {
    /// Admitted and not evicted: at most `max_open`.
    open: usize,
    /// Evicted, their task not ended yet: at most `max_open` too.
    closing: usize,
    /// Connections by client, evicted ones included until they end; no zero entries.
    per_client: HashMap<IpAddr, usize>,
    connections: HashMap<u64, Entry>,
    /// Waiting connections by when they began to wait: the first has waited longest.
    waiting: BTreeMap<u64, u64>,
    /// Ids and waiting turns, in the order they were handed out.
    next: u64,
    /// Shutting down: a connection is evicted as soon as it waits.
    draining: bool,
}

struct Entry {
    client: IpAddr,
    in_flight: usize,
    /// Whether a request was ever in flight on it.
    served: bool,
    /// Its key in `waiting` while it waits.
    waiting_since: Option<u64>,
    /// How its task is told to close; taken when it is evicted.
    evict: Option<oneshot::Sender<Eviction>>,
}

impl Registry {
    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn start_waiting(&mut self, id: u64) {
        let since = self.next();
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.waiting_since = Some(since);
            self.waiting.insert(since, id);
        }
    }

    /// Evicts `id`, taken from `waiting`: its task is told to close it, and its slot is free.
    fn evict(&mut self, id: u64) {
        let Some(entry) = self.connections.get_mut(&id) else {
            return;
        };
        if let Some(since) = entry.waiting_since.take() {
            self.waiting.remove(&since);
        }
        let Some(evict) = entry.evict.take() else {
            return;
        };
        let kind = if entry.served {
            Eviction::Idle
        } else {
            Eviction::Unserved
        };
        let _ = evict.send(kind);
        self.open -= 1;
        self.closing += 1;
        crate::metrics::connection_evicted();
    }
}

impl Connections {
    pub fn new(max_open: usize, max_per_client: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max_open: max_open.max(1),
            max_per_client: max_per_client.max(1),
            registry: Mutex::new(Registry::default()),
            emptied: Notify::new(),
        })
    }

    /// The registry stays consistent whatever panics elsewhere: every change to it is a few
    /// map operations that cannot panic halfway.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `peer`, evicting the connection that has waited longest when
    /// every slot is taken; refused when its client is at its limit, or every slot is serving.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        let client = client_of(peer);
        let mut registry = self.registry();
        if registry.per_client.get(&client).copied().unwrap_or(0) >= self.max_per_client {
            return Err(Refused::ClientFull);
        }
        while registry.open >= self.max_open {
            if registry.closing >= self.max_open {
                return Err(Refused::ServerFull);
            }
            let Some((_, longest_waiting)) = registry.waiting.pop_first() else {
                return Err(Refused::ServerFull);
            };
            registry.evict(longest_waiting);
        }
        let id = registry.next();
        let (evict, eviction) = oneshot::channel();
        registry.open += 1;
        *registry.per_client.entry(client).or_default() += 1;
        registry.connections.insert(
            id,
            Entry {
                client,
                in_flight: 0,
                served: false,
                waiting_since: None,
                evict: Some(evict),
            },
        );
        registry.start_waiting(id);
        Ok(Admitted {
            connection: Tracked {
                connections: self.clone(),
                id,
                client,
            },
            eviction,
        })
    }

    /// A request starts on `id`; `None` when the connection was evicted.
    fn begin_request(self: &Arc<Self>, id: u64) -> Option<RequestInFlight> {
        let mut registry = self.registry();
        let registry = &mut *registry;
        let entry = registry.connections.get_mut(&id)?;
        entry.evict.as_ref()?;
        if let Some(since) = entry.waiting_since.take() {
            registry.waiting.remove(&since);
        }
        entry.in_flight += 1;
        entry.served = true;
        Some(RequestInFlight {
            connections: self.clone(),
            id,
        })
    }

    /// A request on `id` has ended (its answer sent, or dropped).
    fn end_request(&self, id: u64) {
        let mut registry = self.registry();
        let Some(entry) = registry.connections.get_mut(&id) else {
            return;
        };
        entry.in_flight -= 1;
        if entry.in_flight > 0 || entry.evict.is_none() {
            return;
        }
        if registry.draining {
            registry.evict(id);
        } else {
            registry.start_waiting(id);
        }
    }

    /// The connection's task has ended (its connection is closed).
    fn forget(&self, id: u64) {
        let mut registry = self.registry();
        let Some(entry) = registry.connections.remove(&id) else {
            return;
        };
        if let Some(since) = entry.waiting_since {
            registry.waiting.remove(&since);
        }
        if entry.evict.is_some() {
            registry.open -= 1;
        } else {
            registry.closing -= 1;
        }
        if let Some(count) = registry.per_client.get_mut(&entry.client) {
            *count -= 1;
            if *count == 0 {
                registry.per_client.remove(&entry.client);
            }
        }
        if registry.open + registry.closing == 0 {
            self.emptied.notify_waiters();
        }
    }

    /// For shutdown: evicts every waiting connection now, and each one that starts waiting
    /// from now on (once its request is answered).
    pub fn drain(&self) {
        let mut registry = self.registry();
        registry.draining = true;
        while let Some((_, id)) = registry.waiting.pop_first() {
            registry.evict(id);
        }
    }

    /// Resolves once every admitted connection's task has ended.
    pub async fn all_closed(&self) {
        loop {
            // Created before the check, so a wake-up between the two is not lost.
            let emptied = self.emptied.notified();
            {
                let registry = self.registry();
                if registry.open + registry.closing == 0 {
                    return;
                }
            }
            emptied.await;
        }
    }

    /// Open connections (not counting evicted ones still closing), and distinct clients.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let registry = self.registry();
        (registry.open, registry.per_client.len())
    }
}

/// An admitted connection: its place in the registry, and how it is told to close.
pub struct Admitted {
    pub connection: Tracked,
    pub eviction: oneshot::Receiver<Eviction>,
}

/// A connection's place in the registry, held by its task: dropping it frees the slot, so drop
/// it only once the connection is closed.
pub struct Tracked {
    connections: Arc<Connections>,
    id: u64,
    client: IpAddr,
}

/// The client a request came from ([`client_of`] its peer address), in the request's
/// extensions for the handlers that limit per client (the dashboard's sign-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl Tracked {
    /// `inner` with each request counted in flight on this connection until its answer has
    /// been sent.
    pub fn track<S>(&self, inner: S) -> TrackRequests<S> {
        TrackRequests {
            inner,
            connections: self.connections.clone(),
            id: self.id,
            client: self.client,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.connections.forget(self.id);
    }
}

/// A request in flight; dropping it ends the request.
struct RequestInFlight {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.connections.end_request(self.id);
    }
}

/// A hyper service (the router's) whose requests are counted in flight on their connection:
/// from the call until the answer's body has been sent in full or dropped.
#[derive(Clone)]
pub struct TrackRequests<S> {
    inner: S,
    connections: Arc<Connections>,
    id: u64,
    client: IpAddr,
}

type Answering = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S, B> hyper::service::Service<axum::http::Request<B>> for TrackRequests<S>
where
    S: hyper::service::Service<
        axum::http::Request<B>,
        Response = Response<Body>,
        Error = Infallible,
    >,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, mut request: axum::http::Request<B>) -> Answering {
        request.extensions_mut().insert(ClientAddress(self.client));
        let Some(in_flight) = self.connections.begin_request(self.id) else {
            return Box::pin(std::future::ready(Ok(evicted_answer())));
        };
        let answering = self.inner.call(request);
        Box::pin(async move {
            let response = answering.await?;
            Ok(response.map(|body| {
                Body::new(TrackedBody {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A request that arrived on a connection already evicted.
fn evicted_answer() -> Response<Body> {
    let mut response = ApiError::Unavailable(Refused::ServerFull.detail().into()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// An answer's body that keeps its request in flight until it is sent in full, or dropped.
struct TrackedBody {
    inner: Body,
    _in_flight: RequestInFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn admit(connections: &Arc<Connections>, peer: IpAddr) -> Admitted {
        connections.admit(peer).expect("admitted")
    }

    #[test]
    fn a_client_beyond_its_limit_is_refused_while_another_is_admitted() {
        let connections = Connections::new(10, 2);
        let _first = admit(&connections, CLIENT);
        let _second = admit(&connections, CLIENT);
        assert_eq!(connections.admit(CLIENT).err(), Some(Refused::ClientFull));
        let _other = admit(&connections, OTHER);
        assert_eq!(connections.counts(), (3, 2));
    }

    #[test]
    fn per_client_counts_are_forgotten_when_their_connections_close() {
        let connections = Connections::new(10, 2);
        let admitted: Vec<_> = [CLIENT, CLIENT, OTHER]
            .into_iter()
            .map(|peer| admit(&connections, peer))
            .collect();
        drop(admitted);
        assert_eq!(connections.counts(), (0, 0));
        assert!(connections.registry().connections.is_empty());
        assert!(connections.registry().waiting.is_empty());
        let _again = admit(&connections, CLIENT);
    }

    #[test]
    fn an_ipv4_mapped_ipv6_peer_counts_as_its_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_of(mapped), CLIENT);
        let connections = Connections::new(10, 1);
        let _ipv4 = admit(&connections, CLIENT);
        assert_eq!(connections.admit(mapped).err(), Some(Refused::ClientFull));
    }

    #[test]
    fn ipv6_peers_in_one_slash_64_are_one_client() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same_host: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let next_network: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_of(one), client_of(same_host));
        assert_ne!(client_of(one), client_of(next_network));
        assert_eq!(client_of(one), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_newcomer_evicts_the_connection_waiting_longest_when_every_slot_is_taken() {
        let connections = Connections::new(2, 10);
        let mut oldest = admit(&connections, CLIENT);
        let mut younger = admit(&connections, CLIENT);
        let _newcomer = admit(&connections, OTHER);
        assert_eq!(oldest.eviction.try_recv(), Ok(Eviction::Unserved));
        assert!(younger.eviction.try_recv().is_err(), "not evicted");
        // The evicted one still counts for its client until its task ends, not for the slots.
        assert_eq!(connections.counts(), (2, 2));
        drop(oldest);
        assert_eq!(connections.counts(), (2, 2));
        drop(younger);
        assert_eq!(connections.counts(), (1, 1));
    }

    #[test]
    fn a_connection_with_a_request_in_flight_is_never_evicted() {
        let connections = Connections::new(2, 10);
        let mut serving = admit(&connections, CLIENT);
        let request = connections.begin_request(serving.connection.id).unwrap();
        let mut waiting = admit(&connections, CLIENT);
        let newcomer = admit(&connections, OTHER);
        assert_eq!(waiting.eviction.try_recv(), Ok(Eviction::Unserved));
        assert!(serving.eviction.try_recv().is_err(), "not evicted");
        // Both slots serve (or are still closing): the next newcomer is refused.
        let _second = connections.begin_request(newcomer.connection.id).unwrap();
        assert_eq!(connections.admit(OTHER).err(), Some(Refused::ServerFull));
        // Once its answer is sent it waits, and is evicted in turn (closed gracefully).
        drop(request);
        drop(waiting);
        let _third = admit(&connections, OTHER);
        assert_eq!(serving.eviction.try_recv(), Ok(Eviction::Idle));
    }

    #[test]
    fn the_longest_waiting_goes_first_counting_from_its_last_answer() {
        let connections = Connections::new(2, 10);
        let mut first = admit(&connections, CLIENT);
        let mut second = admit(&connections, CLIENT);
        // The first answers a request after the second was admitted: it has waited less.
        drop(connections.begin_request(first.connection.id).unwrap());
        let _newcomer = admit(&connections, OTHER);
        assert_eq!(second.eviction.try_recv(), Ok(Eviction::Unserved));
        assert!(first.eviction.try_recv().is_err(), "not evicted");
    }

    #[test]
    fn a_request_on_an_evicted_connection_is_not_started() {
        let connections = Connections::new(1, 10);
        let evicted = admit(&connections, CLIENT);
        let _newcomer = admit(&connections, OTHER);
        assert!(connections.begin_request(evicted.connection.id).is_none());
    }

    #[test]
    fn evicted_connections_still_closing_are_bounded_by_the_limit_too() {
        let connections = Connections::new(1, 10);
        let _evicted = admit(&connections, CLIENT);
        let _newcomer = admit(&connections, OTHER);
        // One open (waiting), one evicted and not closed yet: nothing more is evicted.
        assert_eq!(connections.admit(OTHER).err(), Some(Refused::ServerFull));
    }

    #[test]
    fn draining_evicts_waiting_connections_now_and_serving_ones_once_answered() {
        let connections = Connections::new(4, 10);
        let mut waiting = admit(&connections, CLIENT);
        let mut serving = admit(&connections, CLIENT);
        let request = connections.begin_request(serving.connection.id).unwrap();
        connections.drain();
        assert_eq!(waiting.eviction.try_recv(), Ok(Eviction::Unserved));
        assert!(serving.eviction.try_recv().is_err(), "not evicted");
        drop(request);
        assert_eq!(serving.eviction.try_recv(), Ok(Eviction::Idle));
    }

    #[tokio::test]
    async fn all_closed_resolves_once_every_connection_has_ended() {
        let connections = Connections::new(4, 10);
        let admitted = admit(&connections, CLIENT);
        let waiting = tokio::spawn({
            let connections = connections.clone();
            async move { connections.all_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(admitted);
        waiting.await.unwrap();
        connections.all_closed().await;
    }
}
