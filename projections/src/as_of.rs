//! As-of reads with bounded cost: what a read model looked like at a past moment, without
//! letting those reads take the service from everyone else.
//!
//! Computing a read model as of a moment replays the log up to it into a scratch database
//! ([`crate::runtime::as_of`]); on a long history that is a second or more of work per request.
//! [`AsOfReads`] puts a bound around it:
//! - **No replay where none is needed.** A moment before the first event is the empty read
//!   model (one shared scratch database with the tables and no rows); a moment at or after the
//!   head of the log is the live read model, once its projector has applied the head.
//! - **At most `max_concurrent` replays at once**, each on one of that many dedicated threads
//!   running below normal priority (`nice` [`REPLAY_THREAD_NICE`]), so commands and live reads
//!   keep the runtime's threads and most of the CPU. A request beyond the bound is refused at
//!   once with [`AsOfError::Busy`] (HTTP 429) and a hint of when to come back, instead of
//!   queueing work that would all finish late.
//!
//! A caller that gives up (its connection closed, its request timed out) drops the result
//! channel, and its replay stops at the next batch: an abandoned request holds its slot for one
//! batch at most.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use adapters::sql::SqlDb;
use adapters::store::{EventStore, LogBounds};
use tokio::sync::{oneshot, OnceCell, Semaphore};

use crate::runtime::{as_of_until, AsOf, Projector};
use crate::ProjectionError;

/// Replays run at this `nice` value (0 is normal, 19 the lowest): when the CPU is contended,
/// the scheduler gives the request threads about ten times their share.
pub const REPLAY_THREAD_NICE: i32 = 10;

/// Replays at once when the configuration does not say: one per core of the machines this
/// runs on, less the core the commands need.
pub const DEFAULT_MAX_CONCURRENT: usize = 1;

/// The most a configuration may allow: each replay holds a thread and a scratch database.
pub const MAX_CONCURRENT_LIMIT: usize = 64;

/// How long an as-of at the head waits for the live projector to apply the head before the
/// moment is replayed instead. Projectors apply a batch in milliseconds; longer means a backlog.
pub const LIVE_CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// The shortest and longest `Retry-After` a refused request is given.
const MIN_RETRY_AFTER_SECS: u64 = 1;
const MAX_RETRY_AFTER_SECS: u64 = 60;

/// Why an as-of read was not answered.
#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    /// Every replay slot is taken; try again after about `retry_after_secs`.
    #[error("{max_concurrent} as-of replays are already running; retry in {retry_after_secs} s")]
    Busy {
        max_concurrent: usize,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

impl From<adapters::store::StoreError> for AsOfError {
    fn from(error: adapters::store::StoreError) -> Self {
        AsOfError::Projection(error.into())
    }
}

/// How an as-of read was answered (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOfAnswer {
    /// Before the first event: the empty read model.
    Empty,
    /// At or after the head: the live read model.
    Live,
    /// Replayed into a scratch database.
    Replayed,
    /// Refused: every slot was taken.
    Busy,
}

impl AsOfAnswer {
    const ALL: [AsOfAnswer; 4] = [
        AsOfAnswer::Empty,
        AsOfAnswer::Live,
        AsOfAnswer::Replayed,
        AsOfAnswer::Busy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AsOfAnswer::Empty => "empty",
            AsOfAnswer::Live => "live",
            AsOfAnswer::Replayed => "replayed",
            AsOfAnswer::Busy => "busy",
        }
    }
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The service's as-of reads: the shortcuts, the slots and the replay threads.
pub struct AsOfReads {
    store: Arc<dyn EventStore>,
    max_concurrent: usize,
    slots: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Job>>,
    empty: OnceCell<SqlDb>,
    /// How long recent replays took (an exponential average, in milliseconds), for the hint.
    recent_replay_ms: Arc<AtomicU64>,
    /// Reads answered so far, by [`AsOfAnswer`] (in the order of `AsOfAnswer::ALL`).
    answered: [AtomicU64; 4],
}

impl AsOfReads {
    /// Starts `max_concurrent` replay threads (clamped to 1..=[`MAX_CONCURRENT_LIMIT`]); they
    /// end when this value is dropped.
    pub fn new(store: Arc<dyn EventStore>, max_concurrent: usize) -> AsOfReads {
        let max_concurrent = max_concurrent.clamp(1, MAX_CONCURRENT_LIMIT);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..max_concurrent {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("as-of-{index}"))
                .spawn(move || replay_thread(&receiver));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start an as-of replay thread");
            }
        }
        AsOfReads {
            store,
            max_concurrent,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            jobs: Mutex::new(sender),
            empty: OnceCell::new(),
            recent_replay_ms: Arc::new(AtomicU64::new(0)),
            answered: Default::default(),
        }
    }

    /// How many reads were answered `answer` since this value was made.
    pub fn answered(&self, answer: AsOfAnswer) -> u64 {
        let index = AsOfAnswer::ALL.iter().position(|a| *a == answer);
        index.map_or(0, |i| self.answered[i].load(Ordering::Relaxed))
    }

    fn count(&self, answer: AsOfAnswer) {
        if let Some(i) = AsOfAnswer::ALL.iter().position(|a| *a == answer) {
            self.answered[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// The database to read `projector`'s read model from as of `moment`, and how it was made.
    pub async fn read_db(
        &self,
        projector: &Projector,
        moment: AsOf,
    ) -> Result<(SqlDb, AsOfAnswer), AsOfError> {
        let answered = self.answer(projector, moment).await;
        match &answered {
            Ok((_, answer)) => self.count(*answer),
            Err(AsOfError::Busy { .. }) => self.count(AsOfAnswer::Busy),
            Err(_) => {}
        }
        answered
    }

    async fn answer(
        &self,
        projector: &Projector,
        moment: AsOf,
    ) -> Result<(SqlDb, AsOfAnswer), AsOfError> {
        let bounds = self.store.log_bounds().await?;
        match bounds {
            None => return Ok((self.empty_db().await?, AsOfAnswer::Empty)),
            Some(bounds) if is_before(moment, &bounds) => {
                return Ok((self.empty_db().await?, AsOfAnswer::Empty))
            }
            Some(bounds) if is_at_or_after_head(moment, &bounds) => {
                if projector.wait_caught_up(LIVE_CATCH_UP_WAIT).await? {
                    return Ok((projector.db().clone(), AsOfAnswer::Live));
                }
            }
            Some(_) => {}
        }
        let db = self.replay(projector, moment).await?;
        Ok((db, AsOfAnswer::Replayed))
    }

    /// The shared empty read model: every table, no rows. Nobody writes to it.
    async fn empty_db(&self) -> Result<SqlDb, AsOfError> {
        let db = self
            .empty
            .get_or_try_init(|| async { SqlDb::scratch().await })
            .await?;
        Ok(db.clone())
    }

    /// Replays on a replay thread, or refuses at once when every slot is taken.
    async fn replay(&self, projector: &Projector, moment: AsOf) -> Result<SqlDb, AsOfError> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Err(AsOfError::Busy {
                max_concurrent: self.max_concurrent,
                retry_after_secs: self.retry_after_secs(),
            });
        };
        let (answer, answered) = oneshot::channel();
        let store = self.store.clone();
        let projection = projector.projection().clone();
        let recent = self.recent_replay_ms.clone();
        let job: Job = Box::pin(async move {
            let started = Instant::now();
            let wanted = answer;
            let result = as_of_until(store, projection, moment, || wanted.is_closed()).await;
            record_duration(&recent, started.elapsed());
            drop(slot);
            let _ = wanted.send(result);
        });
        let sent = self
            .jobs
            .lock()
            .map_err(|_| ProjectionError::External("the as-of replay threads stopped".into()))?
            .send(job);
        if sent.is_err() {
            return Err(
                ProjectionError::External("the as-of replay threads stopped".into()).into(),
            );
        }
        match answered.await {
            Ok(result) => Ok(result?),
            Err(_) => {
                Err(ProjectionError::External("an as-of replay thread stopped".into()).into())
            }
        }
    }

    /// About how long until a slot frees: the recent replays' average, within bounds.
    fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.recent_replay_ms.load(Ordering::Relaxed))
    }
}

/// Whole seconds covering `millis`, within [`MIN_RETRY_AFTER_SECS`]..=[`MAX_RETRY_AFTER_SECS`].
fn retry_after_secs(millis: u64) -> u64 {
    millis
        .div_ceil(1_000)
        .clamp(MIN_RETRY_AFTER_SECS, MAX_RETRY_AFTER_SECS)
}

fn is_before(moment: AsOf, bounds: &LogBounds) -> bool {
    match moment {
        AsOf::Position(position) => position < bounds.first_position,
        AsOf::Time(at) => at < bounds.first_recorded_at,
    }
}

fn is_at_or_after_head(moment: AsOf, bounds: &LogBounds) -> bool {
    match moment {
        AsOf::Position(position) => position >= bounds.last_position,
        AsOf::Time(at) => at >= bounds.last_recorded_at,
    }
}

/// Folds a replay's duration into the running average (new = (3 old + latest) / 4).
fn record_duration(recent: &AtomicU64, took: Duration) {
    let latest = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    let _ = recent.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        Some(if old == 0 {
            latest
        } else {
            (old.saturating_mul(3).saturating_add(latest)) / 4
        })
    });
}

/// One replay thread: lowers its own priority, then runs jobs one at a time on its own
/// single-threaded runtime until the sender is dropped.
fn replay_thread(jobs: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "an as-of replay thread cannot start its runtime");
            return;
        }
    };
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        runtime.block_on(job);
    }
}

/// Lowers the calling thread's scheduling priority. On Linux `setpriority(PRIO_PROCESS, 0)`
/// applies to the calling thread alone; raising `nice` needs no privilege. Where it fails, the
/// replays still run, at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, REPLAY_THREAD_NICE) };
        if result != 0 {
            tracing::debug!("could not lower the as-of replay thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_hint_follows_recent_replays_within_bounds() {
        let recent = AtomicU64::new(0);
        record_duration(&recent, Duration::from_millis(2_400));
        assert_eq!(recent.load(Ordering::Relaxed), 2_400);
        record_duration(&recent, Duration::from_millis(400));
        assert_eq!(recent.load(Ordering::Relaxed), 1_900);
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(1_900), 2);
        assert_eq!(retry_after_secs(10_000_000), 60);
    }
}
