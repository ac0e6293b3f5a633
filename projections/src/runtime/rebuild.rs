//! Rebuilding read models without downtime: fold aside, then swap in one transaction.
//!
//! A [`Rebuild`] never touches the live tables while it folds. It folds the log into scratch
//! SQLite files of its own (no journal, no syncing: a crash throws them away), in one pass
//! with large batches, while the service keeps serving and updating the current read models.
//! Each batch is read once (the next one is read while it is folded) and folded by every
//! part at once: the read models are split into as many parts as there are cores, balanced
//! by how long each one's fold takes, and each part folds its members into a file of its own
//! on a task of its own (one SQLite file has one writer, so one file's fold runs on one core).
//! At the end of the log it swaps the result in:
//! - **PostgreSQL**: each table is first copied in bulk (`COPY ... FROM STDIN`) into a staging
//!   table `<table>__rebuild`, whose keys and indexes are built after the rows are in (one
//!   sort each, not one B-tree insert per row). Then one transaction locks the live tables,
//!   puts each staging table in its place (a rename), drops the old one, gives the indexes
//!   their names back, replaces the read models' checkpoints and set-aside events with the
//!   fold's, and applies the events that arrived meanwhile. Readers wait for that transaction
//!   (milliseconds to a few hundred) and then see the whole new model; none sees a part.
//! - **SQLite**: each table is first copied from the attached scratch file into a staging
//!   table made from the live one's definition (with its keys), [`SQLITE_CHUNK_ROWS`] rows per
//!   transaction, so appends go on between chunks. Then one transaction drops each live table,
//!   renames its staging table into place, builds the secondary indexes again (SQLite cannot
//!   rename an index, so this is what appends wait for, with the events that arrived
//!   meanwhile) and does the rest as above. Readers are WAL readers: they see the old model
//!   until the commit, the new one after.
//!
//! Either way the live read models' worker may be running: its batch either commits before the
//! swap (and the swap then applies what it had not), or finds its checkpoint moved and rolls
//! back (its compare-and-set, [`save_checkpoints`]). A changed projection deploys the same
//! way: run the new binary's `revledger rebuild NAME` beside the old service.

use std::path::PathBuf;
use std::sync::Arc;

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use adapters::store::{Checkpoint, EventStore, RecordedEvent};

use super::*;
use crate::deferred_indexes::{quoted, secondary_indexes};

mod staging;
use staging::*;

/// Events per transaction while a [`Rebuild`] folds: nothing waits on its commits, which go
/// to its own scratch file.
pub const REBUILD_BATCH_SIZE: usize = 5_000;

/// Rows per transaction when a table is copied into a staging table of a live SQLite
/// database: how long appends wait for the writer at most, once per chunk.
pub const SQLITE_CHUNK_ROWS: i64 = 50_000;

/// Rows per `COPY` (and per read of the scratch file) when a table is copied to PostgreSQL:
/// bounds the memory a copy holds, whatever the table's size.
pub const COPY_CHUNK_ROWS: i64 = 20_000;

/// The suffix of a staging table on PostgreSQL, and of its indexes until the swap.
const STAGED: &str = "__rebuild";
const STAGED_INDEX: &str = "__rb";

/// The schema the scratch file is attached as on SQLite.
const ATTACHED: &str = "rebuild";

/// Events the swap applies itself at most (in batches of the fold's size) before it leaves
/// the rest to the live worker: under a flood of appends it never chases the head for long
/// while holding the tables.
const MAX_SWAP_BATCHES: usize = 20;

/// How often a swap that PostgreSQL chose as a deadlock's victim (against the live worker,
/// which takes the same tables in its own order) is tried again.
const SWAP_ATTEMPTS: usize = 5;

/// Rebuilds read models that share one database: folds them from position zero into a
/// scratch file in one pass over the log (each batch read once, read ahead while the one
/// before is folded, and applied to each read model), then swaps the result in (see the
/// module). The result is the same as resetting each one and letting its [`Projector`] catch
/// up; the live ones are left as they were until the swap.
pub struct Rebuild {
    store: Arc<dyn EventStore>,
    live: SqlDb,
    /// The read models split into parts, each folded into its own scratch file on its own
    /// thread ([`Rebuild::start_in_parts`]).
    parts: Vec<Part>,
    batch_size: usize,
    /// Held until the rebuild has swapped or is dropped: no second one runs on the same
    /// database meanwhile.
    exclusive: Option<adapters::leadership::Exclusive>,
    after: Checkpoint,
    applied: i64,
    /// The next batch, read while the last one was applied, and where it was read from.
    ahead: Option<(Checkpoint, ReadAhead)>,
    /// How long the swap took, once it is done: on PostgreSQL its staging (readers unaffected)
    /// and its transaction (readers wait for it); on SQLite its transaction (appends wait).
    swapped: Option<SwapTimes>,
}

/// Some of a rebuild's read models, folded together into one scratch file.
struct Part {
    group: ProjectorGroup,
    scratch: ScratchFile,
}

impl Part {
    fn owns(&self, table: &str) -> bool {
        self.group
            .projections
            .iter()
            .any(|p| p.tables().contains(&table))
    }

    fn names(&self) -> Vec<&'static str> {
        self.group.projections.iter().map(|p| p.name()).collect()
    }
}

/// How long a [`Rebuild`]'s swap took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SwapTimes {
    /// Copying the fold into staging tables (PostgreSQL; nobody waits for it).
    pub staging: std::time::Duration,
    /// The one transaction that puts the fold in place (the wait it imposes).
    pub transaction: std::time::Duration,
}

type ReadAhead = tokio::task::JoinHandle<Result<Vec<RecordedEvent>, adapters::store::StoreError>>;

/// The scratch file of a rebuild, deleted when it is dropped.
struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    fn new() -> ScratchFile {
        let name = format!("revledger-rebuild-{}.db", uuid::Uuid::new_v4());
        ScratchFile {
            path: std::env::temp_dir().join(name),
        }
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%error, path = %self.path.display(), "cannot remove a rebuild's scratch file");
            }
        }
    }
}

impl Rebuild {
    /// Creates the scratch files, one per part, as many parts as the machine has cores (at
    /// most one per read model), and clears what an earlier rebuild that stopped may have left
    /// (staging tables). The live read models are not touched.
    pub async fn start(
        store: Arc<dyn EventStore>,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Rebuild, ProjectionError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Rebuild::start_in_parts(store, projections, cores).await
    }

    /// [`Rebuild::start`] with the read models split into `parts` (at least one, at most one
    /// per read model). Each part folds its members into a scratch file of its own, on a task
    /// of its own: one SQLite file has one writer, so a fold in one file runs on one core.
    pub async fn start_in_parts(
        store: Arc<dyn EventStore>,
        projections: Vec<Arc<dyn Projection>>,
        parts: usize,
    ) -> Result<Rebuild, ProjectionError> {
        let live = store.sql();
        // Two rebuilds at once would stage into the same tables (and the second would drop
        // the first's): the second is refused.
        let Some(exclusive) = adapters::leadership::try_exclusive(&live, "rebuild").await? else {
            return Err(ProjectionError::AlreadyRunning("rebuild"));
        };
        let tables: Vec<&str> = projections
            .iter()
            .flat_map(|p| p.tables())
            .copied()
            .collect();
        drop_staged(&live, &tables).await?;
        let mut folding = Vec::new();
        for members in partition(&projections, parts) {
            let scratch = ScratchFile::new();
            let db = SqlDb::scratch_file(&scratch.path).await?;
            // The fold looks nothing up through a secondary index (`crate::deferred_indexes`),
            // and the rows leave the file by a scan: each would only cost every insert a write.
            let mut tx = db.begin_derived().await?;
            for index in secondary_indexes(&mut tx, &tables).await? {
                tx.execute(&format!("DROP INDEX {}", quoted(&index.name)), &[])
                    .await?;
            }
            tx.commit().await?;
            let group = ProjectorGroup::new(store.clone(), members)
                .with_db(db)
                .with_batch_size(REBUILD_BATCH_SIZE);
            folding.push(Part { group, scratch });
        }
        Ok(Rebuild {
            store,
            live,
            parts: folding,
            batch_size: REBUILD_BATCH_SIZE,
            exclusive: Some(exclusive),
            after: Checkpoint::START,
            applied: 0,
            ahead: None,
            swapped: None,
        })
    }

    /// Folds the next batch into the scratch files (each part on its own task); returns how
    /// many events it read. At the end of the log it swaps the result in and returns 0 (as
    /// every later call does).
    pub async fn step(&mut self) -> Result<usize, ProjectionError> {
        if self.swapped.is_some() {
            return Ok(0);
        }
        let standing = self.standing().await?;
        let Some(from) = earliest(standing.iter().flatten().map(|(c, _)| c)) else {
            self.swap().await?;
            return Ok(0);
        };
        let batch = match self.ahead.take() {
            // The task is never aborted: it fails only by panicking, as the read would.
            Some((at, reading)) if at == from => joined(reading).await?,
            _ => self.store.read_all(from, self.batch_size).await?,
        };
        let Some(last) = batch.last() else {
            self.swap().await?;
            return Ok(0);
        };
        let after = Checkpoint::after(last);
        let store = self.store.clone();
        let size = self.batch_size;
        self.ahead = Some((
            after,
            tokio::spawn(async move { store.read_all(after, size).await }),
        ));
        let batch = Arc::new(batch);
        let folds: Vec<_> = self
            .parts
            .iter()
            .zip(standing)
            .map(|(part, checkpoints)| {
                let (group, batch) = (part.group.clone(), batch.clone());
                tokio::spawn(async move { group.apply_read(&batch, &checkpoints).await })
            })
            .collect();
        // Every part's fold ends before this step does, whichever fails.
        let mut folded = Ok(None);
        for fold in folds {
            let result = joined(fold).await;
            if folded.is_ok() {
                folded = result;
            }
        }
        folded?;
        self.after = after;
        self.applied += batch.len() as i64;
        Ok(batch.len())
    }

    /// Folds to the end of the log and swaps; returns the events applied (to each read model).
    pub async fn run(mut self) -> Result<u64, ProjectionError> {
        while self.step().await? > 0 {}
        Ok(self.applied as u64)
    }

    /// Where the fold stands (and, after the swap, where the swapped-in read models stood).
    pub fn checkpoint(&self) -> Checkpoint {
        self.after
    }

    pub fn events_applied(&self) -> i64 {
        self.applied
    }

    /// How long the swap took, once it is done.
    pub fn swap_times(&self) -> Option<SwapTimes> {
        self.swapped
    }

    /// How many parts fold side by side.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Each part's members' checkpoints in the fold, part by part.
    async fn standing(&self) -> Result<Vec<Vec<(Checkpoint, i64)>>, ProjectionError> {
        let mut standing = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            standing.push(part.group.checkpoints().await?);
        }
        Ok(standing)
    }

    /// Every read model rebuilt, part by part: the order of [`Self::standing`] flattened.
    fn members(&self) -> impl Iterator<Item = &Arc<dyn Projection>> {
        self.parts.iter().flat_map(|part| &part.group.projections)
    }

    fn tables(&self) -> Vec<&'static str> {
        self.members().flat_map(|p| p.tables()).copied().collect()
    }

    /// The part whose scratch file holds `table`.
    fn part_of(&self, table: &str) -> Result<&Part, ProjectionError> {
        self.parts
            .iter()
            .find(|part| part.owns(table))
            .ok_or_else(|| ProjectionError::Inconsistent(format!("no read model owns {table}")))
    }

    /// Puts the folded read models in place of the live ones (see the module).
    async fn swap(&mut self) -> Result<(), ProjectionError> {
        let tables = self.tables();
        // In the order of `Self::members`.
        let checkpoints: Vec<_> = self.standing().await?.into_iter().flatten().collect();
        let mut times = SwapTimes::default();
        if self.live.engine() == "postgres" {
            let started = std::time::Instant::now();
            // Each part's tables on a connection of their own: each copy and index build is
            // one backend, one core.
            let staging: Vec<_> = self
                .parts
                .iter()
                .map(|part| {
                    let (scratch, live) = (part.group.db.clone(), self.live.clone());
                    let owned: Vec<&'static str> =
                        tables.iter().copied().filter(|t| part.owns(t)).collect();
                    tokio::spawn(async move {
                        let mut renames = Vec::new();
                        for table in owned {
                            renames.extend(stage(&scratch, &live, table).await?);
                        }
                        Ok::<_, ProjectionError>(renames)
                    })
                })
                .collect();
            let mut renames = Vec::new();
            for staged in staging {
                renames.extend(joined(staged).await?);
            }
            times.staging = started.elapsed();
            let started = std::time::Instant::now();
            let mut attempt = 1;
            loop {
                let mut tx = self.live.begin_derived().await?;
                let swapped = self
                    .swap_postgres(&mut tx, &tables, &renames, &checkpoints)
                    .await;
                match finish(tx, swapped).await {
                    Err(ProjectionError::Store(error))
                        if error.is_deadlock() && attempt < SWAP_ATTEMPTS =>
                    {
                        tracing::info!(attempt, "the rebuild's swap met the live worker; again");
                        attempt += 1;
                    }
                    result => break result?,
                }
            }
            times.transaction = started.elapsed();
        } else {
            let started = std::time::Instant::now();
            for table in &tables {
                self.stage_sqlite(table).await?;
            }
            times.staging = started.elapsed();
            let started = std::time::Instant::now();
            let mut tx = self.live.begin_derived().await?;
            let swapped = self.swap_sqlite(&mut tx, &tables, &checkpoints).await;
            finish(tx, swapped).await?;
            times.transaction = started.elapsed();
        }
        tracing::info!(
            parts = self.parts.len(),
            staging_ms = times.staging.as_millis() as u64,
            transaction_ms = times.transaction.as_millis() as u64,
            "rebuild swapped in"
        );
        self.swapped = Some(times);
        self.exclusive = None;
        Ok(())
    }

    async fn swap_postgres(
        &self,
        tx: &mut SqlTx,
        tables: &[&str],
        renames: &[(String, String)],
        checkpoints: &[(Checkpoint, i64)],
    ) -> Result<(), ProjectionError> {
        tx.execute(
            &format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", tables.join(", ")),
            &[],
        )
        .await?;
        for table in tables {
            let retired = format!("{table}__retired");
            tx.execute(&format!("ALTER TABLE {table} RENAME TO {retired}"), &[])
                .await?;
            tx.execute(
                &format!("ALTER TABLE {table}{STAGED} RENAME TO {table}"),
                &[],
            )
            .await?;
            tx.execute(&format!("DROP TABLE {retired}"), &[]).await?;
        }
        for (staged, name) in renames {
            tx.execute(
                &format!("ALTER INDEX {} RENAME TO {}", quoted(staged), quoted(name)),
                &[],
            )
            .await?;
        }
        self.finish_swap(tx, checkpoints).await
    }

    async fn swap_sqlite(
        &self,
        tx: &mut SqlTx,
        tables: &[&str],
        checkpoints: &[(Checkpoint, i64)],
    ) -> Result<(), ProjectionError> {
        // The staged tables came with their keys; every index made by `CREATE INDEX` (unique
        // ones too) goes with the table it replaces and is built again over the new rows
        // (SQLite cannot rename an index).
        let (filter, params) = member_of("tbl_name", tables);
        let indexes: Vec<String> = tx
            .fetch_all(
                &format!(
                    "SELECT sql FROM main.sqlite_master WHERE type = 'index' \
                     AND sql IS NOT NULL AND {filter} ORDER BY name"
                ),
                &params,
            )
            .await?
            .iter()
            .map(|row| row.text(0))
            .collect::<Result<_, _>>()?;
        for table in tables {
            tx.execute(&format!("DROP TABLE main.{table}"), &[]).await?;
            tx.execute(
                &format!("ALTER TABLE main.{table}{STAGED} RENAME TO {table}"),
                &[],
            )
            .await?;
        }
        for definition in &indexes {
            tx.execute(definition, &[]).await?;
        }
        self.finish_swap(tx, checkpoints).await
    }

    /// The end of a swap on either engine, once the tables are in place: the models' snapshots
    /// go, their checkpoints and set-aside events become the fold's, the kept rows the fold
    /// made are added, and the events since the fold are applied.
    async fn finish_swap(
        &self,
        tx: &mut SqlTx,
        checkpoints: &[(Checkpoint, i64)],
    ) -> Result<(), ProjectionError> {
        let names: Vec<&str> = self.members().map(|p| p.name()).collect();
        // Snapshots of the models' earlier code must not outlive them.
        crate::snapshots::discard(tx, &names).await?;
        for (table, column) in [
            ("projection_checkpoints", "name"),
            ("quarantined_events", "projection"),
        ] {
            let (filter, params) = member_of(column, &names);
            tx.execute(&format!("DELETE FROM {table} WHERE {filter}"), &params)
                .await?;
            // PostgreSQL copies by its own column list; SQLite names the live table's columns.
            let columns = match self.live.engine() {
                "postgres" => None,
                _ => Some(sqlite_columns(tx, table).await?.join(", ")),
            };
            for part in &self.parts {
                let (filter, params) = member_of(column, &part.names());
                if let Some(columns) = &columns {
                    let rows = part
                        .group
                        .db
                        .fetch_all(
                            &format!("SELECT {columns} FROM {table} WHERE {filter}"),
                            &params,
                        )
                        .await?;
                    insert_rows(tx, &format!("INSERT INTO main.{table} ({columns})"), &rows)
                        .await?;
                } else {
                    copy_to_postgres(&part.group.db, table, &filter, &params, tx, table).await?;
                }
            }
        }
        self.carry_kept_rows(tx).await?;
        self.apply_since_fold(tx, checkpoints).await
    }

    /// Copies `table` from the scratch file into a staging table of the live SQLite database
    /// made from the live table's definition (so with its keys), [`SQLITE_CHUNK_ROWS`] rows per
    /// transaction: the writer is held for one chunk at a time, and appends go on between.
    async fn stage_sqlite(&self, table: &str) -> Result<(), ProjectionError> {
        let staged = format!("{table}{STAGED}");
        let mut tx = self.live.begin_derived().await?;
        let made = async {
            let definition = tx
                .fetch_optional(
                    "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?",
                    &[table.into()],
                )
                .await?
                .ok_or_else(|| ProjectionError::Inconsistent(format!("no table {table}")))?
                .text(0)?;
            tx.execute(&format!("DROP TABLE IF EXISTS main.{staged}"), &[])
                .await?;
            tx.execute(&renamed_table(&definition, table, &staged)?, &[])
                .await?;
            sqlite_columns(&mut tx, table).await
        }
        .await;
        let columns = finish(tx, made).await?.join(", ");
        let mut after = i64::MIN;
        loop {
            let mut tx = self
                .live
                .begin_derived_attached(&self.part_of(table)?.scratch.path, ATTACHED)
                .await?;
            let copied = async {
                let last = tx
                    .fetch_optional(
                        &format!(
                            "SELECT max(rowid) FROM (SELECT rowid FROM {ATTACHED}.{table} \
                             WHERE rowid > ? ORDER BY rowid LIMIT {SQLITE_CHUNK_ROWS})"
                        ),
                        &[after.into()],
                    )
                    .await?
                    .map(|row| row.opt_i64(0))
                    .transpose()?
                    .flatten();
                if let Some(last) = last {
                    tx.execute(
                        &format!(
                            "INSERT INTO main.{staged} ({columns}) SELECT {columns} \
                             FROM {ATTACHED}.{table} WHERE rowid > ? AND rowid <= ? ORDER BY rowid"
                        ),
                        &[after.into(), last.into()],
                    )
                    .await?;
                }
                Ok::<_, ProjectionError>(last)
            }
            .await;
            match finish(tx, copied).await? {
                Some(last) => after = last,
                None => return Ok(()),
            }
        }
    }

    /// Adds to each kept table ([`Projection::kept_tables`]) the rows the fold made that it
    /// lacks (the live read model may have been behind), leaving every row it has as it is.
    async fn carry_kept_rows(&self, tx: &mut SqlTx) -> Result<(), ProjectionError> {
        for part in &self.parts {
            for projection in &part.group.projections {
                for table in projection.kept_tables() {
                    let rows = part
                        .group
                        .db
                        .fetch_all(&format!("SELECT * FROM {table} ORDER BY rowid"), &[])
                        .await?;
                    let insert = format!("INSERT INTO {table}");
                    insert_rows(tx, &insert, &rows).await?;
                }
            }
        }
        Ok(())
    }

    /// Applies, inside the swap, the events committed after the fold's end to the read models
    /// just swapped in, moving their checkpoints (at most [`MAX_SWAP_BATCHES`] batches; the
    /// live worker carries on from there).
    async fn apply_since_fold(
        &self,
        tx: &mut SqlTx,
        checkpoints: &[(Checkpoint, i64)],
    ) -> Result<(), ProjectionError> {
        let mut standing = checkpoints.to_vec();
        for _ in 0..MAX_SWAP_BATCHES {
            let Some(from) = earliest(standing.iter().map(|(c, _)| c)) else {
                return Ok(());
            };
            let batch = self.store.read_all(from, self.batch_size).await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            let next = Checkpoint::after(last);
            let members = self.members().zip(standing.iter_mut());
            apply_to_members(tx, members, &batch, next).await?;
            if batch.len() < self.batch_size {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// What a spawned task returned. None is ever aborted, so one fails only by panicking, and the
/// panic goes on here.
async fn joined<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Commits `tx` when `result` is fine, else rolls it back and returns the error.
async fn finish<T>(tx: SqlTx, result: Result<T, ProjectionError>) -> Result<T, ProjectionError> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// `rows` inserted by `insert` (`INSERT INTO table [(columns)]`, the rows' columns in order),
/// one statement each, leaving a row whose key is there already as it is.
async fn insert_rows(
    tx: &mut SqlTx,
    insert: &str,
    rows: &[adapters::sql::SqlRow],
) -> Result<(), ProjectionError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let marks = vec!["?"; first.len()].join(", ");
    let insert = format!("{insert} VALUES ({marks}) ON CONFLICT DO NOTHING");
    for row in rows {
        tx.write(&insert, &row.values()?).await?;
    }
    Ok(())
}

/// The read models split into at most `parts` parts (none empty) whose folds take about as
/// long: the costliest first, each into the part with the least so far ([`fold_weight`]).
fn partition(projections: &[Arc<dyn Projection>], parts: usize) -> Vec<Vec<Arc<dyn Projection>>> {
    let parts = parts.clamp(1, projections.len().max(1));
    let mut order: Vec<&Arc<dyn Projection>> = projections.iter().collect();
    order.sort_by_key(|p| std::cmp::Reverse(fold_weight(p.name())));
    let mut split: Vec<(u32, Vec<Arc<dyn Projection>>)> = vec![(0, Vec::new()); parts];
    for projection in order {
        if let Some(lightest) = split.iter_mut().min_by_key(|(weight, _)| *weight) {
            lightest.0 += fold_weight(projection.name());
            lightest.1.push(projection.clone());
        }
    }
    split
        .into_iter()
        .map(|(_, members)| members)
        .filter(|members| !members.is_empty())
        .collect()
}

/// How long folding a read model takes, relative to the others: each rebuilt alone
/// (`revledger rebuild NAME`) on the replay bench's 100,516 events, SQLite, its fixed cost
/// (reading the log, the swap) taken off (bench/README.md, "Rebuild in parts"). A read model
/// not measured counts as a middling one.
fn fold_weight(name: &str) -> u32 {
    match name {
        "audit_log" => 16,
        "ledger" => 14,
        "funnel" => 7,
        "reconciliation" | "partner_statements" => 6,
        "crm_board" => 5,
        "revenue" => 3,
        "zatca" => 2,
        _ => 6,
    }
}

/// `column IN (?, ...)` over `names`, and its parameters.
fn member_of(column: &str, names: &[&str]) -> (String, Vec<SqlValue>) {
    let (marks, params) = adapters::sql::in_list(names.iter().copied());
    (format!("{column} IN ({marks})"), params)
}
