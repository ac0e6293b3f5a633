//! Process managers: durable reactions that turn one aggregate's events into another's commands.
//!
//! A process manager tails the global log from its own checkpoint like a projection, but its
//! effects are commands, appended in their own transactions. Exactly-once comes from
//! determinism rather than from one transaction: each command's id is derived from the process
//! name, the triggering event's id and the command's index, so reacting to the same event again
//! (after a crash before the checkpoint moved, or in a replay) appends nothing new: the store
//! answers with the original outcome. State a process manager keeps (parked payments, id maps)
//! is written with idempotent statements for the same reason.
//!
//! A command the domain refuses is not retried: it is recorded in `process_rejections` (with
//! the rule it broke) for finance to see, and the process manager moves on. A reaction that
//! cannot finish now (an outside service such as Moyasar's API is down) returns an error
//! instead: the runner retries the step later without moving the checkpoint.

pub mod commissions;
pub mod invoices;
pub mod leads;
pub mod moyasar_invoices;
pub mod payouts;
pub mod zatca;

pub use invoices::{InvoicesFromAllocations, PaymentsToInvoices, GATEWAY_REFUND_REASON};
pub use leads::{
    archive_cold_leads, run_follow_up_sweeps, LeadPaidOnInvoicePaid, PartnerActivations,
    FOLLOW_UP_SWEEP, FOLLOW_UP_SWEEP_LIMIT,
};

use std::sync::Arc;

use crate::command::{CommandEnvelope, CommandError, CommandHandler, CommandOutcome};
use crate::handlers::Handlers;
use adapters::clock::{now_micros, unix_micros};
use adapters::sql::SqlDb;
use adapters::store::{Checkpoint, EventMetadata, RecordedEvent};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use tokio::sync::watch;
use uuid::Uuid;

use projections::runtime::{
    earliest, events_after, load_checkpoints, save_checkpoints, tail, Move, RETRY_DELAY,
};
use projections::ProjectionError;

/// The namespace of process-manager command ids (uuid v5).
pub const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x8f1f_4a8e_53c1_4e6b_9c7e_5d0a_2b6e_11a7);

/// The shortest time between the starts of two process-manager steps under steady appends
/// (see [`crate::runtime::STEP_PACE`]); shorter than the read models' because a reaction
/// is waited on (a lead is paid only once its invoice's payment was seen).
pub const STEP_PACE: std::time::Duration = std::time::Duration::from_millis(5);

/// Events one process-manager step reacts to.
pub const BATCH_SIZE: usize = 200;

/// The command id a process manager uses for the `index`-th command caused by `cause`.
pub fn command_id(process: &str, cause: &str, index: u32) -> Uuid {
    Uuid::new_v5(
        &COMMAND_NAMESPACE,
        format!("{process}:{cause}:{index}").as_bytes(),
    )
}

/// Where a process manager issues commands from: handlers, its database, and who it is.
pub struct Context {
    pub handlers: Arc<Handlers>,
    pub db: SqlDb,
}

/// A reaction to events.
#[async_trait]
pub trait ProcessManager: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Reacts to one event. Must be idempotent: it may see the same event again.
    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError>;

    /// Reacts to consecutive events, in order, as [`Self::react`] to each would. A process
    /// manager that keeps state of its own overrides it to read that state once for the batch
    /// and write it once, rather than once per event. Must be idempotent too: after a failure
    /// the whole batch comes again.
    async fn react_batch(
        &self,
        context: &Context,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.react(context, event).await?;
        }
        Ok(())
    }

    /// Whether its reactions call a service outside this process (which can be slow or down
    /// for a while): such a process manager runs on its own, so it never holds back the
    /// others ([`ProcessRunner::group`]).
    fn calls_outside(&self) -> bool {
        false
    }
}

/// Sends one command on behalf of `process`, caused by `event`; a domain refusal is recorded,
/// not returned.
pub async fn send<A>(
    context: &Context,
    handler: &CommandHandler<A>,
    process: &'static str,
    event: &RecordedEvent,
    index: u32,
    aggregate_id: &str,
    command: A::Command,
) -> Result<Option<CommandOutcome>, ProjectionError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    let command_id = command_id(process, &event.event_id.to_string(), index);
    send_with_id(
        context,
        handler,
        process,
        event,
        command_id,
        aggregate_id,
        command,
    )
    .await
}

/// [`send`] with an explicit command id (for reactions not caused by one event, or caused
/// the same way from two places).
pub async fn send_with_id<A>(
    context: &Context,
    handler: &CommandHandler<A>,
    process: &'static str,
    event: &RecordedEvent,
    command_id: Uuid,
    aggregate_id: &str,
    command: A::Command,
) -> Result<Option<CommandOutcome>, ProjectionError>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    let correlation = event
        .metadata
        .get("correlation_id")
        .and_then(|v| v.as_str())
        .and_then(|v| Uuid::parse_str(v).ok())
        .or(event.command_id);
    let envelope = CommandEnvelope {
        aggregate_id: aggregate_id.to_owned(),
        command_id,
        command,
        metadata: EventMetadata {
            actor: Some(format!("process:{process}")),
            source: Some(format!("process:{process}")),
            causation_id: Some(event.event_id),
            correlation_id: correlation,
            ..Default::default()
        },
        inbox: None,
        fresh_id: false,
    };
    match handler.execute(envelope).await {
        Ok(outcome) => Ok(Some(outcome)),
        Err(CommandError::Rejected(rule)) => {
            let target = CommandHandler::<A>::stream_id(aggregate_id);
            tracing::info!(process, %target, reason = %rule, "process-manager command refused by the domain");
            record_rejection(
                context,
                process,
                event,
                command_id,
                &target,
                &rule.to_string(),
            )
            .await?;
            Ok(None)
        }
        Err(CommandError::Store(error)) => Err(error.into()),
        Err(other) => Err(ProjectionError::Command(other.to_string())),
    }
}

/// Records in `process_rejections` that the command `command_id`, caused by `event` and aimed
/// at `target_stream`, was refused for `reason` (by the domain, or by an outside service such
/// as Moyasar), so it is not retried. Recording it again keeps the first record.
pub async fn record_rejection(
    context: &Context,
    process: &'static str,
    event: &RecordedEvent,
    command_id: Uuid,
    target_stream: &str,
    reason: &str,
) -> Result<(), ProjectionError> {
    context
        .db
        .execute_derived(
            "INSERT INTO process_rejections (process, command_id, position, event_type, target_stream, \
             reason, recorded_at_us) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (process, command_id) DO NOTHING",
            &[
                process.into(),
                command_id.to_string().into(),
                event.position.into(),
                event.event_type.as_str().into(),
                target_stream.into(),
                reason.into(),
                unix_micros(now_micros()).into(),
            ],
        )
        .await?;
    Ok(())
}

/// Runs process managers: tails the log from their checkpoints, reacts, moves the checkpoints.
///
/// One runner can run several ([`ProcessRunner::group`]): the live service runs every process
/// manager that calls no outside service as one group, so each append costs one read of the
/// log and one checkpoint transaction for all of them instead of one each (each step of each
/// process manager was a checkpoint read, a log read and a checkpoint transaction, mostly for
/// events it ignores). Each keeps its own checkpoint, moved by compare-and-set; the group reads
/// from the earliest and gives each only the events after its own. Process managers are
/// independent (run apart, any interleaving of their reactions was possible), so the group
/// lets them react to a batch concurrently. A member whose reaction fails sits out for
/// [`RETRY_DELAY`] (its checkpoint stays), so it never holds the others back.
pub struct ProcessRunner {
    context: Arc<Context>,
    processes: Vec<Arc<dyn ProcessManager>>,
    /// Until when each member (by index) sits out after a failed reaction.
    resting: std::sync::Mutex<Vec<Option<std::time::Instant>>>,
    /// Test hook: stop a step (as a crash would) after reacting to this many events, before
    /// the checkpoint moves.
    crash_after: Option<usize>,
}

impl ProcessRunner {
    pub fn new(handlers: Arc<Handlers>, process: Arc<dyn ProcessManager>) -> ProcessRunner {
        ProcessRunner::group(handlers, vec![process])
    }

    /// One runner for several process managers.
    pub fn group(
        handlers: Arc<Handlers>,
        processes: Vec<Arc<dyn ProcessManager>>,
    ) -> ProcessRunner {
        let db = handlers.store.sql();
        ProcessRunner {
            context: Arc::new(Context { handlers, db }),
            resting: std::sync::Mutex::new(vec![None; processes.len()]),
            processes,
            crash_after: None,
        }
    }

    /// Makes the next steps fail after reacting to `events` events, before saving the
    /// checkpoint, as a process killed at that moment would (tests).
    pub fn crashing_after(mut self, events: usize) -> ProcessRunner {
        self.crash_after = Some(events);
        self
    }

    /// The checkpoint names of the process managers it runs, in order.
    pub fn checkpoint_names(&self) -> Vec<String> {
        self.processes
            .iter()
            .map(|process| checkpoint_name(process.name()))
            .collect()
    }

    /// Each member's checkpoint and events handled, in member order (one query); `names`
    /// are [`Self::checkpoint_names`].
    async fn checkpoints(
        &self,
        names: &[String],
    ) -> Result<Vec<(Checkpoint, i64)>, ProjectionError> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        load_checkpoints(&self.context.db, &names).await
    }

    /// Reacts to the next batch; returns how many events it read (0 when every member not
    /// sitting out is caught up). A member whose reaction fails keeps its checkpoint and sits
    /// out for [`RETRY_DELAY`]; the others' checkpoints move. The failure is returned when no
    /// member moved, and logged otherwise.
    pub async fn step(&self) -> Result<usize, ProjectionError> {
        let names = self.checkpoint_names();
        let checkpoints = self.checkpoints(&names).await?;
        let awake = self.awake();
        let awake_checkpoints = checkpoints.iter().zip(&awake).filter(|(_, awake)| **awake);
        let Some(from) = earliest(awake_checkpoints.map(|((checkpoint, _), _)| checkpoint)) else {
            return Ok(0);
        };
        let batch = self
            .context
            .handlers
            .store
            .read_all(from, BATCH_SIZE)
            .await?;
        let Some(last) = batch.last() else {
            return Ok(0);
        };
        let next = Checkpoint::after(last);
        // The members react concurrently (each to its own events in order): a step then takes
        // as long as its slowest member's commands, not the sum of everyone's.
        let reactions = self
            .processes
            .iter()
            .zip(&checkpoints)
            .zip(&awake)
            .zip(&names)
            .enumerate()
            .filter_map(
                |(member, (((process, (checkpoint, handled)), awake), name))| {
                    let events = events_after(&batch, checkpoint);
                    (*awake && !events.is_empty()).then_some(async move {
                        let outcome = self.react_all(process.as_ref(), events).await;
                        let moved = Move {
                            name,
                            from: *checkpoint,
                            events_applied: handled + events.len() as i64,
                        };
                        (member, outcome.map(|()| moved))
                    })
                },
            );
        let mut moves = Vec::with_capacity(self.processes.len());
        let mut failure = None;
        for (member, outcome) in futures_util::future::join_all(reactions).await {
            match outcome {
                Ok(moved) => moves.push(moved),
                Err(error @ ProjectionError::Injected(_)) => return Err(error),
                Err(error) => {
                    let process = self.processes[member].name();
                    tracing::warn!(process, %error, "process manager failed; it sits out, then retries");
                    self.rest(member);
                    failure.get_or_insert(error);
                }
            }
        }
        if !moves.is_empty() {
            let mut tx = self.context.db.begin_derived().await?;
            save_checkpoints(&mut tx, &moves, next).await?;
            tx.commit().await?;
        }
        match failure {
            Some(error) if moves.is_empty() => Err(error),
            _ => Ok(batch.len()),
        }
    }

    /// Which members take part in a step now (not sitting out after a failure).
    fn awake(&self) -> Vec<bool> {
        let now = std::time::Instant::now();
        let mut resting = self.resting.lock().unwrap_or_else(|e| e.into_inner());
        resting
            .iter_mut()
            .map(|until| {
                if until.is_some_and(|until| now >= until) {
                    *until = None;
                }
                until.is_none()
            })
            .collect()
    }

    fn rest(&self, member: usize) {
        let mut resting = self.resting.lock().unwrap_or_else(|e| e.into_inner());
        resting[member] = Some(std::time::Instant::now() + RETRY_DELAY);
    }

    async fn react_all(
        &self,
        process: &dyn ProcessManager,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        match self.crash_after {
            Some(crash) if crash < events.len() => {
                process.react_batch(&self.context, &events[..crash]).await?;
                Err(ProjectionError::Injected(
                    "process crashed before its checkpoint",
                ))
            }
            _ => process.react_batch(&self.context, events).await,
        }
    }

    /// Whether every event committed so far has been reacted to.
    pub async fn is_caught_up(&self) -> Result<bool, ProjectionError> {
        let checkpoints = self.checkpoints(&self.checkpoint_names()).await?;
        let Some(checkpoint) = earliest(checkpoints.iter().map(|(c, _)| c)) else {
            return Ok(true);
        };
        Ok(self
            .context
            .handlers
            .store
            .read_committed(checkpoint, 1)
            .await?
            .is_empty())
    }

    /// Steps until nothing is left.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let mut total = 0;
        loop {
            match self.step().await? {
                0 => return Ok(total),
                handled => total += handled as u64,
            }
        }
    }

    /// Tails the log until `shutdown` turns true, at most one step per [`STEP_PACE`].
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let name = self.checkpoint_names().join(", ");
        tail(
            self.context.handlers.store.as_ref(),
            shutdown,
            &name,
            STEP_PACE,
            || self.step(),
        )
        .await
    }
}

/// What a process manager's checkpoint name starts with, in the table it shares with the read
/// models'.
pub const CHECKPOINT_PREFIX: &str = "process:";

/// The checkpoint name of the process manager called `process`.
pub fn checkpoint_name(process: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{process}")
}

/// Where each process manager stands: its checkpoint, under the manager's own name (without
/// [`CHECKPOINT_PREFIX`]), in name order.
pub async fn checkpoints(
    db: &adapters::sql::SqlDb,
) -> Result<Vec<projections::runtime::NamedCheckpoint>, projections::ProjectionError> {
    let mut checkpoints =
        projections::runtime::checkpoints_with_prefix(db, CHECKPOINT_PREFIX).await?;
    for checkpoint in &mut checkpoints {
        checkpoint.name.replace_range(..CHECKPOINT_PREFIX.len(), "");
    }
    Ok(checkpoints)
}

/// Every process manager with the default program configuration.
pub fn process_managers() -> Vec<Arc<dyn ProcessManager>> {
    process_managers_with(&crate::process::commissions::ProgramConfig::default())
}

/// Every process manager, in the order they are run, without the ones that call outside
/// services.
pub fn process_managers_with(
    program: &crate::process::commissions::ProgramConfig,
) -> Vec<Arc<dyn ProcessManager>> {
    process_managers_configured(program, None)
}

/// Every process manager, in the order they are run; the Moyasar invoice creator
/// ([`crate::process::moyasar_invoices::MoyasarInvoices`]) only when a Moyasar API client is configured.
pub fn process_managers_configured(
    program: &crate::process::commissions::ProgramConfig,
    moyasar: Option<Arc<adapters::moyasar_api::MoyasarClient>>,
) -> Vec<Arc<dyn ProcessManager>> {
    let mut managers: Vec<Arc<dyn ProcessManager>> = vec![
        Arc::new(InvoicesFromAllocations),
        Arc::new(PaymentsToInvoices),
        Arc::new(LeadPaidOnInvoicePaid),
        Arc::new(PartnerActivations),
        Arc::new(crate::process::commissions::Commissions {
            config: program.clone(),
        }),
        Arc::new(crate::process::payouts::PayoutsToCommissions),
        Arc::new(crate::process::zatca::ZatcaSubmissions),
    ];
    if let Some(client) = moyasar {
        managers.push(Arc::new(
            crate::process::moyasar_invoices::MoyasarInvoices::new(client),
        ));
    }
    managers
}
