//! What a snapshot keeps of each table ([`Projection::snapshot_keeps`]), as SQL: the rows the
//! taker trims away after each snapshot, and the rows an as-of copy and a full replay must
//! agree on.

use adapters::sql::{SqlDb, SqlValue};
use adapters::sqlite_conn::Param;
use adapters::store::StoreError;

use super::sqlite_of;
use crate::{Projection, ProjectionError, SnapshotKeep};

/// Deletes from `scratch` the rows of `projection`'s tables that a snapshot does not keep.
pub(super) async fn trim(
    scratch: &SqlDb,
    projection: &dyn Projection,
) -> Result<(), ProjectionError> {
    let connection = sqlite_of(scratch)?;
    let mut connection = connection.lock().await;
    for table in projection.tables() {
        if projection.snapshot_keeps(table) == SnapshotKeep::Every {
            continue;
        }
        let kept = kept(projection, table);
        connection
            .execute(
                &format!("DELETE FROM {table} WHERE NOT ({})", kept.condition),
                &kept.params(),
            )
            .map_err(StoreError::from)?;
    }
    Ok(())
}

/// The rows of `table` that a snapshot of `projection` keeps, as they are in `db` (an as-of
/// scratch database), ordered by all their columns: what an as-of copy loaded from a snapshot
/// and a full replay must agree on, table for table.
pub async fn kept_rows(
    db: &SqlDb,
    projection: &dyn Projection,
    table: &str,
) -> Result<Vec<Vec<SqlValue>>, ProjectionError> {
    let kept = kept(projection, table);
    crate::runtime::dump_table_where(db, table, &kept.condition, &kept.values()).await
}

/// Which rows of a table a snapshot keeps: a condition on them, for a `WHERE`, and its
/// parameters. Table and column names in it are the read model's own (static, from code).
pub(super) struct Kept {
    pub(super) condition: String,
    pub(super) params: Vec<KeptParam>,
}

pub(super) enum KeptParam {
    Int(i64),
    Text(&'static str),
}

impl Kept {
    /// The parameters as the SQLite connection binds them.
    pub(super) fn params(&self) -> Vec<Param<'_>> {
        self.params
            .iter()
            .map(|param| match param {
                KeptParam::Int(value) => Param::Int(*value),
                KeptParam::Text(text) => Param::Text(text),
            })
            .collect()
    }

    /// The parameters as values, for a query through [`SqlDb`].
    fn values(&self) -> Vec<SqlValue> {
        self.params
            .iter()
            .map(|param| match param {
                KeptParam::Int(value) => (*value).into(),
                KeptParam::Text(text) => (*text).into(),
            })
            .collect()
    }
}

/// The rows of `table` a snapshot of `projection` keeps ([`Projection::snapshot_keeps`]).
/// A [`SnapshotKeep::NamedBy`] rule follows one step: when the table it names is itself kept
/// by name, every row of that one counts (keeping more than needed, never less).
pub(super) fn kept(projection: &dyn Projection, table: &str) -> Kept {
    match projection.snapshot_keeps(table) {
        SnapshotKeep::NamedBy {
            column,
            table: naming,
        } => {
            let inner = match projection.snapshot_keeps(naming) {
                SnapshotKeep::NamedBy { .. } => kept_by_rule(naming, SnapshotKeep::Every),
                rule => kept_by_rule(naming, rule),
            };
            Kept {
                condition: format!(
                    "{column} IN (SELECT {column} FROM {naming} WHERE {})",
                    inner.condition
                ),
                params: inner.params,
            }
        }
        rule => kept_by_rule(table, rule),
    }
}

/// The condition of a rule other than [`SnapshotKeep::NamedBy`] (which counts as every row).
fn kept_by_rule(table: &str, rule: SnapshotKeep) -> Kept {
    match rule {
        SnapshotKeep::Newest { per, by, rows } => {
            let partition = if per.is_empty() {
                String::new()
            } else {
                format!("PARTITION BY {} ", per.join(", "))
            };
            let order: Vec<String> = by.iter().map(|column| format!("{column} DESC")).collect();
            Kept {
                condition: format!(
                    "rowid IN (SELECT kept_rowid FROM (SELECT rowid AS kept_rowid, \
                     ROW_NUMBER() OVER ({partition}ORDER BY {}) AS newest FROM {table}) \
                     WHERE newest <= ?)",
                    order.join(", ")
                ),
                params: vec![KeptParam::Int(rows)],
            }
        }
        SnapshotKeep::Every | SnapshotKeep::NamedBy { .. } => Kept {
            condition: "1 = 1".into(),
            params: Vec::new(),
        },
    }
}
