//! Commands that wait together for one stream's turn are decided together and appended at once.
//!
//! Commands on one stream take turns ([`CommandHandler::stream_lock`]), so on a hot stream
//! (the seller's ZATCA document sequence, where every invoice takes the next place) each
//! waits while the one before it appends. [`CommandHandler::execute_together`] lets the
//! commands that queued meanwhile share the next turn: whoever gets it decides every waiting
//! command in arrival order, each on the state the ones before it left, and appends all their
//! events in one append. A queue of n costs one append rather than n.
//!
//! - Each command keeps its own record: its events' metadata name it, and the store records
//!   every command of an append with its own events.
//! - Only a command under an id minted for it ([`CommandEnvelope::fresh_id`]) waits with
//!   others: nothing can be a replay of it, so no member can turn the shared append into a
//!   replay. A command whose id can come again runs alone, as
//!   [`CommandHandler::execute_then`] runs it.
//! - A refusal refuses its own command only. Made on a state not read just now, it is
//!   confirmed by a read of the stream's tail first, as it is for a command alone.
//! - When the shared append is refused with nothing written (another process appended, or
//!   one command's events cannot be stored), the commands run again one by one, in order, in
//!   the same turn: each gets the outcome it would have had alone. When it fails with the
//!   outcome unknown (the connection broke mid-commit), each command gets
//!   [`CommandError::Undetermined`]: running them again could record them twice.
//! - A command whose caller stopped waiting before its turn is dropped undecided, as it
//!   would have been alone. If the caller holding the turn stops, the commands it took get
//!   [`CommandError::Undetermined`].

use std::any::Any;
use std::collections::HashMap;

use tokio::sync::oneshot;

use super::*;

/// At most this many commands share one append: it bounds the append and the turn.
pub const MAX_TOGETHER: usize = 64;

/// What a waiting command's caller reads from the state the commands left.
type Read<A> = Box<dyn FnOnce(&A, u64) -> Box<dyn Any + Send> + Send>;

/// A waiting command's answer: its outcome and its read.
type Answer<A> =
    Result<(CommandOutcome, Box<dyn Any + Send>), CommandError<<A as Aggregate>::Error>>;

/// A command's outcome among others, before its read.
type Decided<A> = Result<CommandOutcome, CommandError<<A as Aggregate>::Error>>;

/// A command waiting for its stream's turn.
pub(super) struct Waiter<A: Aggregate> {
    envelope: CommandEnvelope<A::Command>,
    read: Read<A>,
    answer: oneshot::Sender<Answer<A>>,
}

/// The commands waiting for their stream's turn, by stream, in arrival order.
pub(super) struct Waiting<A: Aggregate>(Mutex<HashMap<String, Vec<Waiter<A>>>>);

impl<A: Aggregate> Default for Waiting<A> {
    fn default() -> Self {
        Waiting(Mutex::new(HashMap::new()))
    }
}

impl<A: Aggregate> Waiting<A> {
    fn push(&self, stream_id: &str, waiter: Waiter<A>) {
        self.0
            .lock()
            .expect("waiting lock")
            .entry(stream_id.to_owned())
            .or_default()
            .push(waiter);
    }

    /// The first [`MAX_TOGETHER`] commands waiting on `stream_id`.
    fn take(&self, stream_id: &str) -> Vec<Waiter<A>> {
        let mut waiting = self.0.lock().expect("waiting lock");
        match waiting.get_mut(stream_id) {
            Some(queue) if queue.len() > MAX_TOGETHER => queue.drain(..MAX_TOGETHER).collect(),
            Some(_) => waiting.remove(stream_id).unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

/// How commands decided together came out.
enum Together<A: Aggregate> {
    /// Each command's outcome, in order, and the state they left at its version.
    Done(Vec<Decided<A>>, Loaded<A>),
    /// Nothing was written: run them one by one.
    Alone,
    /// The append failed with its outcome unknown.
    Undetermined(String),
}

impl<A> CommandHandler<A>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    /// Runs one command, then reads the aggregate through `read`, like
    /// [`Self::execute_then`], but appended together with the commands on the same stream
    /// that wait for its turn at the same time (see the module docs). `read` sees the state
    /// all of them left. The outcome's versions are the command's own; its positions are the
    /// shared append's, among which its events lie.
    pub async fn execute_together<R: Send + 'static>(
        &self,
        envelope: CommandEnvelope<A::Command>,
        read: impl FnOnce(&A, u64) -> R + Send + 'static,
    ) -> Result<(CommandOutcome, R), CommandError<A::Error>> {
        if !envelope.fresh_id || envelope.inbox.is_some() {
            return self.execute_then(envelope, read).await;
        }
        let stream_id = Self::stream_id(&envelope.aggregate_id);
        let (sender, mut receiver) = oneshot::channel();
        let read: Read<A> = Box::new(move |aggregate, version| Box::new(read(aggregate, version)));
        self.together.push(
            &stream_id,
            Waiter {
                envelope,
                read,
                answer: sender,
            },
        );
        let undetermined = || CommandError::Undetermined {
            stream_id: stream_id.clone(),
            reason: "the request that appended it with others stopped first".into(),
        };
        let answer = tokio::select! {
            biased;
            answer = &mut receiver => answer.unwrap_or_else(|_| Err(undetermined())),
            _turn = self.stream_lock(&stream_id).lock() => loop {
                // Whoever took this command answered it before giving the turn up.
                match receiver.try_recv() {
                    Ok(answer) => break answer,
                    Err(oneshot::error::TryRecvError::Closed) => break Err(undetermined()),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        let waiters = self.together.take(&stream_id);
                        if waiters.is_empty() {
                            break Err(undetermined());
                        }
                        self.run_together(&stream_id, waiters).await;
                    }
                }
            },
        };
        let (outcome, read) = answer?;
        let read = read
            .downcast::<R>()
            .expect("a command's read answers with its own type");
        Ok((outcome, *read))
    }

    /// Decides and appends `waiters` together, holding the stream's turn, and answers each.
    async fn run_together(&self, stream_id: &str, waiters: Vec<Waiter<A>>) {
        let waiters: Vec<Waiter<A>> = waiters
            .into_iter()
            .filter(|waiter| !waiter.answer.is_closed())
            .collect();
        // The commands apart from their callers' reads, which are only ever sent, not shared.
        let (envelopes, callers): (Vec<_>, Vec<_>) = waiters
            .into_iter()
            .map(|waiter| (waiter.envelope, (waiter.read, waiter.answer)))
            .unzip();
        let together = match envelopes.len() {
            0 | 1 => Together::Alone,
            _ => self.decide_together(stream_id, &envelopes).await,
        };
        match together {
            Together::Done(decided, loaded) => {
                for ((read, answer), decided) in callers.into_iter().zip(decided) {
                    count_as::<A>(decided.as_ref().map_or_else(error_label, |_| "ok"));
                    let decided =
                        decided.map(|outcome| (outcome, read(&loaded.aggregate, loaded.version)));
                    let _ = answer.send(decided);
                }
                self.remember(stream_id, loaded);
            }
            Together::Undetermined(reason) => {
                for (_, answer) in callers {
                    count_as::<A>("error");
                    let _ = answer.send(Err(CommandError::Undetermined {
                        stream_id: stream_id.to_owned(),
                        reason: reason.clone(),
                    }));
                }
            }
            Together::Alone => {
                for (envelope, (read, answer)) in envelopes.into_iter().zip(callers) {
                    let decided = self.execute_then_in_turn(stream_id, envelope, read).await;
                    let _ = answer.send(decided);
                }
            }
        }
    }

    /// The outcomes of `commands` decided on one state and appended at once, or why not.
    async fn decide_together(
        &self,
        stream_id: &str,
        commands: &[CommandEnvelope<A::Command>],
    ) -> Together<A> {
        let Ok((loaded, unread)) = self.take_marked(stream_id, false).await else {
            return Together::Alone;
        };
        let version = loaded.version;
        let mut state = loaded.aggregate;
        // Each command's refusal, or where its events lie among the append's.
        let mut decisions = Vec::with_capacity(commands.len());
        let mut events = Vec::new();
        for envelope in commands {
            let sink = EventSink::default();
            let decision = state.handle(envelope.command.clone(), &(), &sink).await;
            let decided = sink.collect().await;
            let start = events.len();
            // Each event names the command that made it.
            let mut metadata = envelope.metadata.clone();
            metadata.command_id = Some(envelope.command_id);
            for event in &decided {
                match to_new_event::<_, A::Error>(event, &metadata) {
                    Ok(event) => events.push(event),
                    Err(_) => return Together::Alone,
                }
            }
            decisions.push(decision.map(|()| (start, decided.len())));
        }
        // A refusal, or a decision of no events, made on a state that may be behind the
        // stream stands only once the stream is known to hold nothing newer.
        let changes_nothing = |decision: &Result<(usize, usize), A::Error>| {
            decision.as_ref().map_or(true, |&(_, count)| count == 0)
        };
        if unread && decisions.iter().any(changes_nothing) {
            match self.store.read_stream(stream_id, version + 1, 1).await {
                Ok(newer) if newer.is_empty() => {}
                _ => return Together::Alone,
            }
        }
        let mut appended = None;
        if !events.is_empty() {
            let request = AppendRequest {
                stream_id: stream_id.to_owned(),
                stream_type: A::TYPE.to_owned(),
                expected_version: ExpectedVersion::from_loaded(version),
                // Each event's metadata names its own command, and the store records each
                // command with its events.
                command_id: None,
                events,
                inbox: None,
            };
            match self.store.append(request).await {
                Ok(outcome) if !outcome.replayed => appended = Some(outcome),
                Err(
                    error @ (StoreError::Database(_)
                    | StoreError::Sqlite(_)
                    | StoreError::Migration(_)
                    | StoreError::Corrupt { .. }),
                ) => return Together::Undetermined(error.to_string()),
                Ok(_) | Err(_) => return Together::Alone,
            }
        }
        let decided = decisions
            .into_iter()
            .map(|decision| {
                let (start, count) = decision.map_err(CommandError::Rejected)?;
                let positions = appended.as_ref().filter(|_| count > 0);
                Ok(CommandOutcome {
                    stream_id: stream_id.to_owned(),
                    version: version + (start + count) as u64,
                    first_position: positions.map(|o| o.first_position),
                    last_position: positions.map(|o| o.last_position),
                    events_appended: count as u64,
                    replayed: false,
                })
            })
            .collect();
        let loaded = Loaded {
            aggregate: state,
            version: appended.map_or(version, |o| o.last_version),
        };
        Together::Done(decided, loaded)
    }
}
