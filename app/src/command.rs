//! Command handling: load, decide, append, with optimistic concurrency and idempotency.
//!
//! [`CommandHandler::execute`] runs one command against one aggregate:
//!
//! 1. **Load** the aggregate: from a bounded in-process LRU cache of `(state, version)` when
//!    present, else by folding its stream from the store. A stream in neither is first taken
//!    to be new, without a read: a command that creates it costs one round trip, the append
//!    expecting no stream, and that expectation is what catches a stream that exists after all.
//! 2. **Decide**: `cqrs_es::Aggregate::handle` on a copy, collecting events in an `EventSink`.
//! 3. **Append** the events expecting the loaded version. The store's unique `(stream_id,
//!    version)` constraint is the only arbiter: a stale cache entry (another replica wrote)
//!    turns into a [`adapters::store::StoreError::Conflict`], the entry is dropped, the stream re-read and
//!    the command decided again, at most [`MAX_CONFLICT_RETRIES`] times. A refusal or a
//!    decision of no events appends nothing, so no version check meets it: made on a cached
//!    state, it is confirmed by reading the stream's tail first (one indexed read) and made
//!    again when another process appended since.
//!
//! **Why a cache and not snapshots.** Streams here are short (a lead has a few dozen events, an
//! invoice a handful), so a cold load is one indexed range read; what costs is reading the same
//! hot stream on every command. The cache removes that read entirely on the hot path (one round
//! trip per command: the append) and needs no extra table, no snapshot versioning and no
//! upcasting of snapshots. Correctness never depends on the cache: the version check does (and,
//! for a refusal, the read of the tail).
//! Snapshots can be added for a stream type whose histories grow long (the partner program
//! stream is the candidate) without changing this interface.
//!
//! **Idempotency.** Every command carries a command id, stored with its events. A command
//! retried after success is answered from the store's command log: when the store reports a
//! replay, or when the aggregate rejects the command (the first run already changed its state),
//! the handler looks the command id up before returning the rejection or a decision of no events
//! (unless the id was minted for this very command: [`CommandEnvelope::fresh_id`]).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use lru::LruCache;
use serde_json::Value;
use uuid::Uuid;

mod together;

use adapters::store::{
    AppendOutcome, AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent,
    RecordedEvent, StoreError, MAX_READ_BATCH,
};

/// How many times a command is decided again after losing a race for its stream. Conflicts
/// only happen between writers of the same stream, so a handful of retries clears any
/// realistic contention; beyond that the caller gets a 409 rather than a server spinning.
pub const MAX_CONFLICT_RETRIES: usize = 5;

/// Locks per handler serialising commands on the same stream (see
/// [`CommandHandler::stream_lock`]); unrelated streams share one rarely.
pub const STREAM_LOCK_STRIPES: usize = 1024;

/// Aggregates kept in memory per handler. At a few KiB each this bounds the cache to tens of
/// MiB while holding every stream touched in the last several thousand commands.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// Why a command did not produce events.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The domain refused the command; the error names the broken rule.
    #[error(transparent)]
    Rejected(E),
    /// The stream kept changing under us for [`MAX_CONFLICT_RETRIES`] attempts.
    #[error("stream {stream_id} changed concurrently; try again")]
    Conflict { stream_id: String },
    /// A stored event of this stream could not be turned back into a domain event.
    #[error(
        "stream {stream_id} holds an event that cannot be decoded at version {version}: {reason}"
    )]
    Undecodable {
        stream_id: String,
        version: u64,
        reason: String,
    },
    /// The command was appended together with others ([`CommandHandler::execute_together`])
    /// and the append, or the caller that made it, failed in a way that leaves unknown
    /// whether it was recorded: look before running it again.
    #[error("whether the command on stream {stream_id} was recorded is not known: {reason}")]
    Undetermined { stream_id: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutcome {
    pub stream_id: String,
    /// The stream's version after the command.
    pub version: u64,
    /// The appended events' positions; `None` when the command decided no events.
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    pub events_appended: u64,
    /// True when this command id had run before and this is its original outcome.
    pub replayed: bool,
}

impl CommandOutcome {
    fn from_append(outcome: &AppendOutcome) -> CommandOutcome {
        CommandOutcome {
            stream_id: outcome.stream_id.clone(),
            version: outcome.last_version,
            first_position: Some(outcome.first_position),
            last_position: Some(outcome.last_position),
            events_appended: outcome.last_version - outcome.first_version + 1,
            replayed: outcome.replayed,
        }
    }
}

/// One command addressed to one aggregate instance.
#[derive(Clone, Debug)]
pub struct CommandEnvelope<C> {
    /// The aggregate's id; its stream is `"{A::TYPE}-{aggregate_id}"`.
    pub aggregate_id: String,
    /// Unique per logical command: a retry carries the same id.
    pub command_id: Uuid,
    pub command: C,
    pub metadata: EventMetadata,
    /// For a webhook delivery: its inbox row, stored with the events.
    pub inbox: Option<adapters::inbox::InboxRecord>,
    /// True when `command_id` was minted for this very command (an API request without an
    /// `Idempotency-Key`): no earlier run of it can exist, so a refusal, or a decision of no
    /// events, is answered without looking the id up in the command log. False whenever the
    /// id can come again (a key, a delivery, a process manager's derived id).
    pub fresh_id: bool,
}

#[derive(Clone)]
struct Loaded<A> {
    aggregate: A,
    version: u64,
}

/// Executes commands for one aggregate type. Cheap to share behind an `Arc`.
pub struct CommandHandler<A: Aggregate> {
    store: Arc<dyn EventStore>,
    cache: Mutex<LruCache<String, Loaded<A>>>,
    /// Commands on one stream take turns in this process ([`STREAM_LOCK_STRIPES`] locks, a
    /// stream's chosen by its hash). Two at once would only conflict, and while one holds the
    /// cached state the other would fold the whole stream from the store: under load on a hot
    /// stream (the seller's ZATCA sequence) that is a full read per command.
    stream_locks: Box<[tokio::sync::Mutex<()>]>,
    /// Commands waiting for their stream's turn to be decided with others
    /// ([`Self::execute_together`]), by stream.
    together: together::Waiting<A>,
}

impl<A> CommandHandler<A>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self::with_cache_capacity(store, DEFAULT_CACHE_CAPACITY)
    }

    pub fn with_cache_capacity(store: Arc<dyn EventStore>, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        CommandHandler {
            store,
            cache: Mutex::new(LruCache::new(capacity)),
            stream_locks: (0..STREAM_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            together: together::Waiting::default(),
        }
    }

    fn stream_lock(&self, stream_id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        stream_id.hash(&mut hasher);
        &self.stream_locks[(hasher.finish() % STREAM_LOCK_STRIPES as u64) as usize]
    }

    /// The stream an aggregate id lives in.
    pub fn stream_id(aggregate_id: &str) -> String {
        domain::ids::stream_id(A::TYPE, aggregate_id)
    }

    /// Runs one command; see the module docs for the steps. Counted in
    /// `revledger_commands_total{aggregate, outcome}`.
    pub async fn execute(
        &self,
        envelope: CommandEnvelope<A::Command>,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        let stream_id = Self::stream_id(&envelope.aggregate_id);
        let _turn = self.stream_lock(&stream_id).lock().await;
        let result = self.execute_in_turn(&stream_id, envelope, false).await;
        count::<A>(&result);
        result.map(|outcome| outcome.expect("a command on any stream always has an outcome"))
    }

    /// Runs one command on an aggregate that must exist already: `None`, with nothing decided
    /// or written, when its stream has no events. The existence check is the command's own
    /// load (a stream never stops existing, so a cached state answers it), not a read of its
    /// own.
    pub async fn execute_existing(
        &self,
        envelope: CommandEnvelope<A::Command>,
    ) -> Result<Option<CommandOutcome>, CommandError<A::Error>> {
        let stream_id = Self::stream_id(&envelope.aggregate_id);
        let _turn = self.stream_lock(&stream_id).lock().await;
        let result = self.execute_in_turn(&stream_id, envelope, true).await;
        count::<A>(&result);
        result
    }

    /// Runs one command, then reads the aggregate as the command left it through `read`, in
    /// the same turn: the state the command decided on is the stream's state at the outcome's
    /// version, so reading one's own write costs no second load. (Only a state older than
    /// the outcome, after a replay, is caught up first.)
    pub async fn execute_then<R>(
        &self,
        envelope: CommandEnvelope<A::Command>,
        read: impl FnOnce(&A, u64) -> R,
    ) -> Result<(CommandOutcome, R), CommandError<A::Error>> {
        let stream_id = Self::stream_id(&envelope.aggregate_id);
        let _turn = self.stream_lock(&stream_id).lock().await;
        self.execute_then_in_turn(&stream_id, envelope, read).await
    }

    /// [`Self::execute_then`], holding the stream's turn.
    async fn execute_then_in_turn<R>(
        &self,
        stream_id: &str,
        envelope: CommandEnvelope<A::Command>,
        read: impl FnOnce(&A, u64) -> R,
    ) -> Result<(CommandOutcome, R), CommandError<A::Error>> {
        let result = self.execute_in_turn(stream_id, envelope, false).await;
        count::<A>(&result);
        let outcome = result?.expect("a command on any stream always has an outcome");
        let mut loaded = self.take(stream_id).await?;
        if loaded.version < outcome.version {
            self.catch_up(stream_id, &mut loaded).await?;
        }
        let answer = read(&loaded.aggregate, loaded.version);
        self.remember(stream_id, loaded);
        Ok((outcome, answer))
    }

    /// Load, decide, append, holding the stream's turn. `None` only when `existing_only` and
    /// the stream has no events.
    async fn execute_in_turn(
        &self,
        stream_id: &str,
        envelope: CommandEnvelope<A::Command>,
        existing_only: bool,
    ) -> Result<Option<CommandOutcome>, CommandError<A::Error>> {
        let stream_id = stream_id.to_owned();
        // The version the stream was last read up to in this call: a state cached at it is
        // known to be current.
        let mut read_up_to = None;
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            // The cached state is taken out, not cloned (an aggregate like the seller's ZATCA
            // sequence grows with its history, and a clone per command would cost as much):
            // it goes back when the decision leaves it as it was or the append succeeds.
            // Not in the cache, the stream is first taken to be new, unread: a command that
            // creates it then costs one round trip (the append, expecting no stream), and if
            // the stream exists after all, that append is refused and the next attempt reads.
            // A command that must find the stream existing reads it at once.
            let assume_new = attempt == 0 && !existing_only;
            let (loaded, unread) = self.take_marked(&stream_id, assume_new).await?;
            if existing_only && loaded.version == 0 {
                return Ok(None);
            }
            let version = loaded.version;
            let mut decided = loaded.aggregate;
            let sink = EventSink::default();
            let decision = decided.handle(envelope.command.clone(), &(), &sink).await;
            let events = sink.collect().await;
            // A refusal, or a decision of no events, changes nothing, so no append checks the
            // version it was made at. Made on a state not read just now (cached, or assumed
            // new), it stands only once the stream is known to hold nothing newer: another
            // replica may have moved it on (a lead marked paid elsewhere must not stay unable
            // to start onboarding here).
            if (decision.is_err() || events.is_empty()) && unread && read_up_to != Some(version) {
                // `handle` writes events only after the pure `decide` accepted the command, so
                // a refused or empty decision left the state as it was.
                let mut current = Loaded {
                    aggregate: decided,
                    version,
                };
                self.catch_up(&stream_id, &mut current).await?;
                read_up_to = Some(current.version);
                if current.version != version {
                    self.remember(&stream_id, current);
                    continue;
                }
                decided = current.aggregate;
            }
            if let Err(rejection) = decision {
                self.remember(
                    &stream_id,
                    Loaded {
                        aggregate: decided,
                        version,
                    },
                );
                if envelope.fresh_id {
                    return Err(CommandError::Rejected(rejection));
                }
                return match self.store.find_command(envelope.command_id).await? {
                    Some(original) => Ok(Some(CommandOutcome::from_append(&original))),
                    None => Err(CommandError::Rejected(rejection)),
                };
            }
            if events.is_empty() {
                self.remember(
                    &stream_id,
                    Loaded {
                        aggregate: decided,
                        version,
                    },
                );
                // Nothing to do now may mean it was done before, under this very command id.
                if !envelope.fresh_id {
                    if let Some(original) = self.store.find_command(envelope.command_id).await? {
                        return Ok(Some(CommandOutcome::from_append(&original)));
                    }
                }
                return Ok(Some(CommandOutcome {
                    stream_id,
                    version,
                    first_position: None,
                    last_position: None,
                    events_appended: 0,
                    replayed: false,
                }));
            }
            let request = AppendRequest {
                stream_id: stream_id.clone(),
                stream_type: A::TYPE.to_owned(),
                expected_version: ExpectedVersion::from_loaded(version),
                command_id: Some(envelope.command_id),
                events: events
                    .iter()
                    .map(|event| to_new_event(event, &envelope.metadata))
                    .collect::<Result<_, _>>()?,
                inbox: envelope.inbox.clone(),
            };
            match self.store.append(request).await {
                Ok(outcome) if outcome.replayed => {
                    self.forget(&stream_id);
                    return Ok(Some(CommandOutcome::from_append(&outcome)));
                }
                Ok(outcome) => {
                    let version = outcome.last_version;
                    self.remember(
                        &stream_id,
                        Loaded {
                            aggregate: decided,
                            version,
                        },
                    );
                    return Ok(Some(CommandOutcome::from_append(&outcome)));
                }
                Err(StoreError::Conflict { .. }) => self.forget(&stream_id),
                Err(other) => {
                    self.forget(&stream_id);
                    return Err(other.into());
                }
            }
        }
        Err(CommandError::Conflict { stream_id })
    }

    /// The aggregate's current state and version, for reading: a copy of
    /// [`Self::inspect`]'s. Prefer `inspect` for an aggregate that grows with its history (the
    /// seller's document sequence), where the copy costs as much as the history.
    pub async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<(A, u64), CommandError<A::Error>> {
        self.inspect(aggregate_id, |aggregate, version| {
            (aggregate.clone(), version)
        })
        .await
    }

    /// Reads the aggregate's current state through `read`, in place. Unlike the command path,
    /// which may act on a cached state because the append's version check catches a stale
    /// one, a read must not be stale: the cached state is caught up with whatever another
    /// process appended since (one indexed read of the stream's tail). The read takes the
    /// stream's turn, as a command does, so it always finds the cached state rather than a
    /// command's hole in the cache (which would mean folding the whole stream again).
    pub async fn inspect<R>(
        &self,
        aggregate_id: &str,
        read: impl FnOnce(&A, u64) -> R,
    ) -> Result<R, CommandError<A::Error>> {
        let stream_id = Self::stream_id(aggregate_id);
        let _turn = self.stream_lock(&stream_id).lock().await;
        let mut loaded = self.take(&stream_id).await?;
        // A catch-up that fails part-way leaves a state between versions: it is dropped, not
        // cached.
        self.catch_up(&stream_id, &mut loaded).await?;
        let answer = read(&loaded.aggregate, loaded.version);
        self.remember(&stream_id, loaded);
        Ok(answer)
    }

    /// Reads a fact through `read` that an aggregate never changes once it has it (an
    /// invoice's lead, once issued): from the cached state as it is, without first reading the
    /// stream's tail as [`Self::inspect`] does, since a state behind the stream answers such a
    /// fact as the current one would. When nothing is cached, or the cached state does not have
    /// the fact yet (`None`), the answer is [`Self::inspect`]'s.
    pub async fn inspect_settled<R>(
        &self,
        aggregate_id: &str,
        read: impl Fn(&A, u64) -> Option<R>,
    ) -> Result<Option<R>, CommandError<A::Error>> {
        let stream_id = Self::stream_id(aggregate_id);
        {
            let _turn = self.stream_lock(&stream_id).lock().await;
            let mut cache = self.cache.lock().expect("cache lock");
            if let Some(answer) = cache
                .get(&stream_id)
                .and_then(|loaded| read(&loaded.aggregate, loaded.version))
            {
                return Ok(Some(answer));
            }
        }
        self.inspect(aggregate_id, read).await
    }

    /// Applies the stream's events after `loaded.version`.
    async fn catch_up(
        &self,
        stream_id: &str,
        loaded: &mut Loaded<A>,
    ) -> Result<(), CommandError<A::Error>> {
        loop {
            let batch = self
                .store
                .read_stream(stream_id, loaded.version + 1, MAX_READ_BATCH)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            let last_version = last.version;
            for recorded in &batch {
                loaded.aggregate.apply(decode_event::<A>(recorded)?);
            }
            loaded.version = last_version;
            if batch.len() < MAX_READ_BATCH {
                return Ok(());
            }
        }
    }

    /// The aggregate for a command: taken out of the cache (the caller puts it back), or
    /// folded from the store.
    async fn take(&self, stream_id: &str) -> Result<Loaded<A>, CommandError<A::Error>> {
        Ok(self.take_marked(stream_id, false).await?.0)
    }

    /// [`Self::take`], and whether the state was not read from the store just now (it came
    /// from the cache, and may be behind what another process appended, or it is the empty
    /// state of a stream assumed new). With `assume_new`, a stream not in the cache is not
    /// read: its state is the empty one, at version 0.
    async fn take_marked(
        &self,
        stream_id: &str,
        assume_new: bool,
    ) -> Result<(Loaded<A>, bool), CommandError<A::Error>> {
        if let Some(hit) = self.cache.lock().expect("cache lock").pop(stream_id) {
            return Ok((hit, true));
        }
        let mut loaded = Loaded {
            aggregate: A::default(),
            version: 0,
        };
        if assume_new {
            return Ok((loaded, true));
        }
        self.catch_up(stream_id, &mut loaded).await?;
        Ok((loaded, false))
    }

    /// Keeps the state for the next command. An empty one (no events) is not kept: a stream
    /// another process creates must not look absent here for as long as the entry lives.
    fn remember(&self, stream_id: &str, loaded: Loaded<A>) {
        if loaded.version == 0 {
            return;
        }
        self.cache
            .lock()
            .expect("cache lock")
            .put(stream_id.to_owned(), loaded);
    }

    fn forget(&self, stream_id: &str) {
        self.cache.lock().expect("cache lock").pop(stream_id);
    }
}

/// Counts a command in `revledger_commands_total{aggregate, outcome}`.
fn count<A: Aggregate>(result: &Result<Option<CommandOutcome>, CommandError<A::Error>>) {
    count_as::<A>(match result {
        Ok(Some(_)) => "ok",
        Ok(None) => "not_found",
        Err(error) => error_label(error),
    });
}

/// How `revledger_commands_total` names a command's error.
fn error_label<E: std::error::Error>(error: &CommandError<E>) -> &'static str {
    match error {
        CommandError::Rejected(_) => "rejected",
        CommandError::Conflict { .. } => "conflict",
        _ => "error",
    }
}

fn count_as<A: Aggregate>(outcome: &'static str) {
    metrics::counter!("revledger_commands_total", "aggregate" => A::TYPE, "outcome" => outcome)
        .increment(1);
}

/// A domain event as the store keeps it: `event_type` is the variant name and `payload` the
/// variant's fields (the events are externally tagged enums of struct variants).
pub fn to_new_event<E: DomainEvent, X: std::error::Error>(
    event: &E,
    metadata: &EventMetadata,
) -> Result<NewEvent, CommandError<X>> {
    let event_type = event.event_type();
    let tagged = serde_json::to_value(event).map_err(|e| {
        CommandError::Store(StoreError::InvalidAppend(format!("{event_type}: {e}")))
    })?;
    let payload = match tagged {
        Value::Object(mut map) if map.len() == 1 => map.remove(&event_type).unwrap_or(Value::Null),
        other => other,
    };
    let schema_version = event.event_version().parse().unwrap_or(1);
    Ok(NewEvent {
        event_id: Uuid::now_v7(),
        event_type,
        schema_version,
        payload,
        metadata: metadata.clone(),
    })
}

/// Turns a stored event back into the aggregate's event type.
pub fn decode_event<A: Aggregate>(
    recorded: &RecordedEvent,
) -> Result<A::Event, CommandError<A::Error>>
where
    A::Error: std::error::Error,
{
    recorded.decode().map_err(|e| CommandError::Undecodable {
        stream_id: recorded.stream_id.clone(),
        version: recorded.version,
        reason: e.to_string(),
    })
}
