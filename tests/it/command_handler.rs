//! The command handler on both engines, with a small aggregate defined here so these tests
//! exercise the mechanism (cache, conflicts, idempotency) rather than business rules.

use std::sync::Arc;

use adapters::store::EventMetadata;
use app::command::{CommandEnvelope, CommandHandler};
use app::CommandError;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::helpers::TestDb;

crate::on_both_engines!(
    a_command_appends_its_events_and_the_next_one_sees_them,
    a_rejected_command_appends_nothing,
    a_command_retried_with_the_same_id_returns_the_first_outcome,
    a_stale_cache_in_another_replica_is_resolved_by_retrying_on_conflict,
    concurrent_commands_on_one_stream_all_apply_exactly_once,
    reads_in_place_between_commands_see_whole_commands_in_order,
    a_command_on_an_existing_aggregate_only_finds_no_stream_and_writes_nothing,
    a_command_then_a_read_sees_the_state_it_left,
    a_refusal_of_a_minted_command_id_is_answered_without_the_command_log,
    a_refusal_on_a_stale_cache_is_decided_again_on_what_another_replica_appended,
    a_stream_not_cached_is_taken_as_new_until_its_append_or_refusal_says_otherwise,
    a_settled_fact_is_read_from_the_cache_and_an_unsettled_one_from_the_stream,
    commands_waiting_together_are_decided_in_order_and_share_appends,
);

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Tally {
    total: i64,
    limit: Option<i64>,
}

#[derive(Clone, Debug)]
enum TallyCommand {
    Open {
        limit: i64,
    },
    Add {
        amount: i64,
    },
    /// Sets the limit; deciding nothing when it already is that.
    Limit {
        limit: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum TallyEvent {
    Opened { limit: i64 },
    Added { amount: i64 },
    Limited { limit: i64 },
}

impl DomainEvent for TallyEvent {
    fn event_type(&self) -> String {
        match self {
            TallyEvent::Opened { .. } => "Opened".into(),
            TallyEvent::Added { .. } => "Added".into(),
            TallyEvent::Limited { .. } => "Limited".into(),
        }
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum TallyError {
    #[error("the tally is already open")]
    AlreadyOpen,
    #[error("the tally is not open")]
    NotOpen,
    #[error("adding {amount} would pass the limit {limit}")]
    OverLimit { amount: i64, limit: i64 },
}

impl Aggregate for Tally {
    const TYPE: &'static str = "tally";
    type Command = TallyCommand;
    type Event = TallyEvent;
    type Error = TallyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TallyCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), TallyError> {
        let event = match (command, self.limit) {
            (TallyCommand::Open { .. }, Some(_)) => return Err(TallyError::AlreadyOpen),
            (TallyCommand::Open { limit }, None) => TallyEvent::Opened { limit },
            (TallyCommand::Add { .. }, None) => return Err(TallyError::NotOpen),
            (TallyCommand::Add { amount }, Some(limit)) if self.total + amount > limit => {
                return Err(TallyError::OverLimit { amount, limit })
            }
            (TallyCommand::Add { amount }, Some(_)) => TallyEvent::Added { amount },
            (TallyCommand::Limit { .. }, None) => return Err(TallyError::NotOpen),
            (TallyCommand::Limit { limit }, Some(current)) if limit == current => return Ok(()),
            (TallyCommand::Limit { limit }, Some(_)) => TallyEvent::Limited { limit },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TallyEvent) {
        match event {
            TallyEvent::Opened { limit } => self.limit = Some(limit),
            TallyEvent::Added { amount } => self.total += amount,
            TallyEvent::Limited { limit } => self.limit = Some(limit),
        }
    }
}

fn envelope(id: &str, command: TallyCommand) -> CommandEnvelope<TallyCommand> {
    CommandEnvelope {
        aggregate_id: id.to_owned(),
        command_id: Uuid::now_v7(),
        command,
        metadata: EventMetadata {
            actor: Some("tester".into()),
            source: Some("test".into()),
            ..Default::default()
        },
        inbox: None,
        fresh_id: false,
    }
}

async fn a_command_appends_its_events_and_the_next_one_sees_them(db: &TestDb) {
    let handler = CommandHandler::<Tally>::new(db.store.clone());
    let opened = handler
        .execute(envelope("t1", TallyCommand::Open { limit: 10 }))
        .await
        .unwrap();
    assert_eq!(
        (
            opened.stream_id.as_str(),
            opened.version,
            opened.events_appended
        ),
        ("tally-t1", 1, 1)
    );
    handler
        .execute(envelope("t1", TallyCommand::Add { amount: 4 }))
        .await
        .unwrap();
    let (tally, version) = handler.load_aggregate("t1").await.unwrap();
    assert_eq!((tally.total, version), (4, 2));

    let stored = db.store.read_stream("tally-t1", 1, 10).await.unwrap();
    assert_eq!(stored[1].event_type, "Added");
    assert_eq!(stored[1].payload, serde_json::json!({"amount": 4}));
    assert_eq!(stored[1].metadata["actor"], "tester");
    assert!(stored[1].command_id.is_some());

    // A fresh handler (another process) folds the same state from the store.
    let cold = CommandHandler::<Tally>::new(db.store.clone());
    assert_eq!(cold.load_aggregate("t1").await.unwrap().0.total, 4);
}

async fn a_rejected_command_appends_nothing(db: &TestDb) {
    let handler = CommandHandler::<Tally>::new(db.store.clone());
    let error = handler
        .execute(envelope("t2", TallyCommand::Add { amount: 1 }))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::Rejected(TallyError::NotOpen)),
        "{error:?}"
    );
    handler
        .execute(envelope("t2", TallyCommand::Open { limit: 5 }))
        .await
        .unwrap();
    let error = handler
        .execute(envelope("t2", TallyCommand::Add { amount: 6 }))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        CommandError::Rejected(TallyError::OverLimit {
            amount: 6,
            limit: 5
        })
    ));
    assert_eq!(
        db.store.read_stream("tally-t2", 1, 10).await.unwrap().len(),
        1
    );
}

async fn a_command_retried_with_the_same_id_returns_the_first_outcome(db: &TestDb) {
    let handler = CommandHandler::<Tally>::new(db.store.clone());
    let open = envelope("t3", TallyCommand::Open { limit: 100 });
    let first = handler.execute(open.clone()).await.unwrap();
    // The aggregate would now reject Open; the retry must still get the original outcome.
    let again = handler.execute(open.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.version, again.first_position),
        (first.version, first.first_position)
    );

    let add = envelope("t3", TallyCommand::Add { amount: 7 });
    let first_add = handler.execute(add.clone()).await.unwrap();
    // Another replica with a cold cache: it decides Add again, and the store answers a replay.
    let other = CommandHandler::<Tally>::new(db.store.clone());
    let retried = other.execute(add).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.first_position, first_add.first_position);
    assert_eq!(other.load_aggregate("t3").await.unwrap().0.total, 7);
    assert_eq!(
        db.store.read_stream("tally-t3", 1, 10).await.unwrap().len(),
        2
    );
}

async fn a_stale_cache_in_another_replica_is_resolved_by_retrying_on_conflict(db: &TestDb) {
    let replica_a = CommandHandler::<Tally>::new(db.store.clone());
    let replica_b = CommandHandler::<Tally>::new(db.store.clone());
    replica_a
        .execute(envelope("t4", TallyCommand::Open { limit: 10 }))
        .await
        .unwrap();
    replica_b
        .execute(envelope("t4", TallyCommand::Add { amount: 6 }))
        .await
        .unwrap();
    // replica_a's cache still says total 0 at version 1; its append conflicts, it reloads and
    // decides again against the real state, where 6 + 6 passes the limit.
    let error = replica_a
        .execute(envelope("t4", TallyCommand::Add { amount: 6 }))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::Rejected(TallyError::OverLimit { .. })),
        "{error:?}"
    );
    replica_a
        .execute(envelope("t4", TallyCommand::Add { amount: 4 }))
        .await
        .unwrap();
    assert_eq!(
        replica_b.load_aggregate("t4").await.unwrap().0.total,
        10,
        "a read catches up with what another replica wrote since b cached it"
    );
    let cold = CommandHandler::<Tally>::new(db.store.clone());
    assert_eq!(
        cold.load_aggregate("t4").await.unwrap().into_pair(),
        (10, Some(10), 3)
    );
}

async fn concurrent_commands_on_one_stream_all_apply_exactly_once(db: &TestDb) {
    let handler = Arc::new(CommandHandler::<Tally>::new(db.store.clone()));
    handler
        .execute(envelope("t5", TallyCommand::Open { limit: 1_000 }))
        .await
        .unwrap();
    // Two replicas, four tasks each, all adding to the same stream.
    let replicas = [
        handler.clone(),
        Arc::new(CommandHandler::<Tally>::new(db.store.clone())),
    ];
    let mut tasks = Vec::new();
    for task in 0..8 {
        let replica = replicas[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut applied = 0;
            for _ in 0..5 {
                match replica
                    .execute(envelope("t5", TallyCommand::Add { amount: 1 }))
                    .await
                {
                    Ok(_) => applied += 1,
                    Err(CommandError::Conflict { .. }) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
            applied
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += task.await.unwrap();
    }
    let cold = CommandHandler::<Tally>::new(db.store.clone());
    let (tally, version) = cold.load_aggregate("t5").await.unwrap();
    assert_eq!(
        tally.total, applied,
        "every acknowledged command applied once, no others"
    );
    assert_eq!(version, 1 + applied as u64);
    assert!(applied > 0, "some commands must get through");
}

async fn reads_in_place_between_commands_see_whole_commands_in_order(db: &TestDb) {
    let handler = Arc::new(CommandHandler::<Tally>::new(db.store.clone()));
    handler
        .execute(envelope("t6", TallyCommand::Open { limit: 1_000 }))
        .await
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let handler = handler.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    handler
                        .execute(envelope("t6", TallyCommand::Add { amount: 1 }))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..20 {
                    seen.push(
                        handler
                            .inspect("t6", |tally, version| (tally.total, version))
                            .await
                            .unwrap(),
                    );
                    tokio::task::yield_now().await;
                }
                seen
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for reader in readers {
        let seen = reader.await.unwrap();
        for (total, version) in &seen {
            assert_eq!(
                *version,
                1 + *total as u64,
                "a read between two commands: {seen:?}"
            );
        }
        assert!(
            seen.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "reads never go back in time: {seen:?}"
        );
    }
    let other_replica = CommandHandler::<Tally>::new(db.store.clone());
    other_replica
        .execute(envelope("t6", TallyCommand::Add { amount: 5 }))
        .await
        .unwrap();
    assert_eq!(
        handler
            .inspect("t6", |tally, version| (tally.total, version))
            .await
            .unwrap(),
        (45, 42),
        "a read catches up with another replica's append"
    );
}

trait IntoPair {
    fn into_pair(self) -> (i64, Option<i64>, u64);
}

impl IntoPair for (Tally, u64) {
    fn into_pair(self) -> (i64, Option<i64>, u64) {
        (self.0.total, self.0.limit, self.1)
    }
}

async fn a_command_on_an_existing_aggregate_only_finds_no_stream_and_writes_nothing(db: &TestDb) {
    let here = CommandHandler::<Tally>::new(db.store.clone());
    let there = CommandHandler::<Tally>::new(db.store.clone());
    // `Open` would be accepted on an empty stream; on an existing-only command it is not run.
    let absent = here
        .execute_existing(envelope("t7", TallyCommand::Open { limit: 3 }))
        .await
        .unwrap();
    assert_eq!(absent, None);
    assert!(db
        .store
        .read_stream("tally-t7", 1, 10)
        .await
        .unwrap()
        .is_empty());

    // Another replica creates it: the empty state seen here was not kept, so here finds it.
    there
        .execute(envelope("t7", TallyCommand::Open { limit: 3 }))
        .await
        .unwrap();
    let added = here
        .execute_existing(envelope("t7", TallyCommand::Add { amount: 2 }))
        .await
        .unwrap()
        .expect("the stream exists now");
    assert_eq!((added.version, added.events_appended), (2, 1));
    let error = here
        .execute_existing(envelope("t7", TallyCommand::Add { amount: 2 }))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::Rejected(TallyError::OverLimit { .. })),
        "{error:?}"
    );
}

async fn a_command_then_a_read_sees_the_state_it_left(db: &TestDb) {
    let here = CommandHandler::<Tally>::new(db.store.clone());
    let there = CommandHandler::<Tally>::new(db.store.clone());
    let (opened, read) = here
        .execute_then(
            envelope("t8", TallyCommand::Open { limit: 50 }),
            |tally, version| (tally.total, tally.limit, version),
        )
        .await
        .unwrap();
    assert_eq!(read, (0, Some(50), opened.version));

    // Another replica moves the stream on; this one's cached state is stale, its command
    // conflicts, reloads, and the read after it sees both.
    there
        .execute(envelope("t8", TallyCommand::Add { amount: 5 }))
        .await
        .unwrap();
    let (added, read) = here
        .execute_then(
            envelope("t8", TallyCommand::Add { amount: 7 }),
            |tally, version| (tally.total, version),
        )
        .await
        .unwrap();
    assert_eq!((added.version, read), (3, (12, 3)));

    // A retry of that command from a cold replica is a replay; the read is still of the state
    // at (at least) the original outcome.
    let add = envelope("t8", TallyCommand::Add { amount: 1 });
    here.execute(add.clone()).await.unwrap();
    let cold = CommandHandler::<Tally>::new(db.store.clone());
    let (replayed, read) = cold
        .execute_then(add, |tally, version| (tally.total, version))
        .await
        .unwrap();
    assert!(replayed.replayed);
    assert_eq!(read, (13, 4));
}

async fn a_refusal_of_a_minted_command_id_is_answered_without_the_command_log(db: &TestDb) {
    let handler = CommandHandler::<Tally>::new(db.store.clone());
    let open = envelope("t9", TallyCommand::Open { limit: 1 });
    handler.execute(open.clone()).await.unwrap();
    // An id that can come again is looked up: the repeat is the original outcome.
    assert!(handler.execute(open.clone()).await.unwrap().replayed);
    // A minted id cannot have run before, so the refusal stands as it is (were the id reused
    // against that promise, the log would not be consulted).
    let minted = CommandEnvelope {
        fresh_id: true,
        ..open
    };
    let error = handler.execute(minted).await.unwrap_err();
    assert!(
        matches!(error, CommandError::Rejected(TallyError::AlreadyOpen)),
        "{error:?}"
    );
    let fresh = CommandEnvelope {
        fresh_id: true,
        ..envelope("t9", TallyCommand::Add { amount: 5 })
    };
    assert!(matches!(
        handler.execute(fresh).await.unwrap_err(),
        CommandError::Rejected(TallyError::OverLimit { .. })
    ));
}

async fn a_refusal_on_a_stale_cache_is_decided_again_on_what_another_replica_appended(db: &TestDb) {
    let replica_a = CommandHandler::<Tally>::new(db.store.clone());
    let replica_b = CommandHandler::<Tally>::new(db.store.clone());
    replica_a
        .execute(envelope("t9", TallyCommand::Open { limit: 10 }))
        .await
        .unwrap();
    replica_b
        .execute(envelope("t9", TallyCommand::Add { amount: 6 }))
        .await
        .unwrap();
    // replica_b now caches total 6 under limit 10; replica_a raises the limit to 20.
    replica_a
        .execute(envelope("t9", TallyCommand::Limit { limit: 20 }))
        .await
        .unwrap();
    // On its cached state replica_b would refuse 6 more (12 > 10); the store says 20.
    let outcome = replica_b
        .execute(envelope("t9", TallyCommand::Add { amount: 6 }))
        .await
        .unwrap();
    assert_eq!((outcome.version, outcome.events_appended), (4, 1));
    // A decision of nothing is made again too: replica_a still caches limit 20 (version 3);
    // replica_b sets 15, so setting 20 through replica_a is a change, not a no-op.
    replica_b
        .execute(envelope("t9", TallyCommand::Limit { limit: 15 }))
        .await
        .unwrap();
    let outcome = replica_a
        .execute(envelope("t9", TallyCommand::Limit { limit: 20 }))
        .await
        .unwrap();
    assert_eq!((outcome.version, outcome.events_appended), (6, 1));
    // A refusal that still stands after the read is returned as before.
    let error = replica_b
        .execute(envelope("t9", TallyCommand::Add { amount: 9 }))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::Rejected(TallyError::OverLimit { .. })),
        "{error:?}"
    );
    let cold = CommandHandler::<Tally>::new(db.store.clone());
    assert_eq!(
        cold.load_aggregate("t9").await.unwrap().into_pair(),
        (12, Some(20), 6)
    );
}

/// On a cache miss the first attempt decides on the empty state without reading the stream.
/// A stream another replica created is found out either way: by the append expecting no
/// stream (refused), or by the read that confirms a refusal made on the unread state.
async fn a_stream_not_cached_is_taken_as_new_until_its_append_or_refusal_says_otherwise(
    db: &TestDb,
) {
    let replica_a = CommandHandler::<Tally>::new(db.store.clone());
    let replica_b = CommandHandler::<Tally>::new(db.store.clone());
    replica_a
        .execute(envelope("t-new", TallyCommand::Open { limit: 10 }))
        .await
        .unwrap();
    // b has nothing cached: its Open decides an event on the empty state, whose append is
    // refused; decided again on the stream as it is, it is refused by the domain.
    let error = replica_b
        .execute(envelope("t-new", TallyCommand::Open { limit: 5 }))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::Rejected(TallyError::AlreadyOpen)),
        "{error:?}"
    );
    // A fresh handler's Add is refused on the empty state (not open), and that refusal is
    // confirmed by reading the stream, which is open: decided again, it adds.
    let replica_c = CommandHandler::<Tally>::new(db.store.clone());
    let outcome = replica_c
        .execute(envelope("t-new", TallyCommand::Add { amount: 3 }))
        .await
        .unwrap();
    assert_eq!(outcome.version, 2);
    let events = db.store.read_stream("tally-t-new", 1, 10).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Opened", "Added"]);
}

/// `inspect_settled` answers a fact from the cached state as it is, even behind the stream
/// (it never reads the tail for a fact the state already has), and from the stream when the
/// cached state does not have it yet.
async fn a_settled_fact_is_read_from_the_cache_and_an_unsettled_one_from_the_stream(db: &TestDb) {
    let replica_a = CommandHandler::<Tally>::new(db.store.clone());
    let replica_b = CommandHandler::<Tally>::new(db.store.clone());
    replica_a
        .execute(envelope("t-settled", TallyCommand::Open { limit: 10 }))
        .await
        .unwrap();
    replica_b
        .execute(envelope("t-settled", TallyCommand::Add { amount: 6 }))
        .await
        .unwrap();
    let limit = replica_a
        .inspect_settled("t-settled", |tally, version| {
            tally.limit.map(|limit| (limit, version))
        })
        .await
        .unwrap();
    assert_eq!(
        limit,
        Some((10, 1)),
        "from a's cached state, without a read"
    );
    let added = replica_a
        .inspect_settled("t-settled", |tally, version| {
            (tally.total > 0).then_some((tally.total, version))
        })
        .await
        .unwrap();
    assert_eq!(
        added,
        Some((6, 2)),
        "not in the cached state: read from the stream"
    );
    let cold = CommandHandler::<Tally>::new(db.store.clone());
    let missing = cold
        .inspect_settled("t-absent", |_, version| (version > 0).then_some(version))
        .await
        .unwrap();
    assert_eq!(missing, None);
}

/// Adds `amount` to tally `id` under a fresh id, appended with whatever waits with it; the
/// answer, and the total and version its read saw.
async fn add_together(
    handler: Arc<CommandHandler<Tally>>,
    id: &'static str,
    amount: i64,
) -> Result<(app::command::CommandOutcome, (i64, u64)), CommandError<TallyError>> {
    let mut add = envelope(id, TallyCommand::Add { amount });
    add.fresh_id = true;
    handler
        .execute_together(add, |tally, version| (tally.total, version))
        .await
}

async fn commands_waiting_together_are_decided_in_order_and_share_appends(db: &TestDb) {
    let handler = Arc::new(CommandHandler::<Tally>::new(db.store.clone()));
    handler
        .execute(envelope("t12", TallyCommand::Open { limit: 40 }))
        .await
        .unwrap();
    // One replica first: the adds queue behind whichever holds the turn. Then two replicas
    // on the same stream, so that shared appends also meet conflicts and run again alone.
    let other = Arc::new(CommandHandler::<Tally>::new(db.store.clone()));
    let mut answers = Vec::new();
    for replicas in [vec![handler.clone()], vec![handler.clone(), other]] {
        let tasks: Vec<_> = (0..24)
            .map(|task| {
                tokio::spawn(add_together(
                    replicas[task % replicas.len()].clone(),
                    "t12",
                    1,
                ))
            })
            .collect();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
    }
    let mut versions = Vec::new();
    let (mut refused, mut conflicts) = (0, 0);
    for answer in &answers {
        match answer {
            Ok((outcome, (total, seen))) => {
                assert_eq!(outcome.events_appended, 1);
                assert!(
                    outcome.version <= *seen,
                    "the read sees the command's own write"
                );
                assert!(*total >= outcome.version as i64 - 1);
                versions.push(outcome.version);
            }
            Err(CommandError::Rejected(TallyError::OverLimit { .. })) => refused += 1,
            Err(CommandError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    versions.sort_unstable();
    let applied = versions.len() as u64;
    assert_eq!(
        versions,
        (2..=1 + applied).collect::<Vec<_>>(),
        "each added command has a version of its own, none skipped"
    );
    assert_eq!(applied + refused + conflicts, 48);
    assert_eq!(
        applied,
        40.min(48 - conflicts),
        "the limit refuses only what passes it"
    );

    let cold = CommandHandler::<Tally>::new(db.store.clone());
    let (tally, version) = cold.load_aggregate("t12").await.unwrap();
    assert_eq!(
        tally.total, applied as i64,
        "each acknowledged add applied once"
    );
    assert_eq!(version, 1 + applied);
    let events = db.store.read_stream("tally-t12", 1, 1_000).await.unwrap();
    // The events of one append share its recorded_at (and, on PostgreSQL, a transaction id).
    let appends: std::collections::BTreeSet<_> = events
        .iter()
        .map(|event| (event.transaction_id, event.recorded_at))
        .collect();
    assert!(
        appends.len() < events.len(),
        "commands waiting together share appends: {} appends for {} events",
        appends.len(),
        events.len()
    );
    for event in &events {
        let command_id = event.command_id.expect("every event has its command");
        assert_eq!(
            event.metadata["command_id"].as_str(),
            Some(command_id.to_string().as_str()),
            "the event's metadata names its command"
        );
        let record = db.store.find_command(command_id).await.unwrap().unwrap();
        assert_eq!(
            (
                record.first_version,
                record.last_version,
                record.first_position
            ),
            (event.version, event.version, event.position),
            "each command is recorded with its own event"
        );
    }
    for (outcome, _) in answers.iter().flatten() {
        let event = &events[outcome.version as usize - 1];
        assert!(
            (outcome.first_position.unwrap()..=outcome.last_position.unwrap())
                .contains(&event.position),
            "a command's events lie among its append's positions"
        );
    }
}
