//! Secondary indexes set aside while tables are refilled, and the ones an older rebuild left.
//!
//! Refilling a table row by row costs each insert a B-tree search and a write per secondary
//! index (the audit log has four), where building the index once over the full table is one
//! sort. So a [`crate::Rebuild`] folds into a scratch file without them and builds them once
//! on the refilled tables ([`secondary_indexes`] finds them).
//!
//! Rebuilds before the one that swaps (issue 24) refilled the live tables in place and
//! recorded each index they dropped in `deferred_indexes`; one that stopped half way left
//! rows there. The read models' worker creates those indexes again when it starts
//! ([`restore`], run by [`crate::ProjectorGroup::run`]).
//!
//! Only indexes that reads alone need are set aside: made by `CREATE INDEX`, not unique. Keys,
//! `UNIQUE` constraints and unique indexes stay, because writes rely on them (`ON CONFLICT`,
//! lookups by key). A read model must therefore never look rows up through a secondary index
//! while it applies events, or its rebuild would scan.

use adapters::sql::{SqlDb, SqlTx, SqlValue};

use crate::ProjectionError;

/// One deferred index: its name, its table and the statement that creates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeferredIndex {
    pub name: String,
    pub table: String,
    pub definition: String,
}

/// The secondary indexes of `tables` as [`defer`] would set them aside, by name.
pub async fn secondary_indexes(
    tx: &mut SqlTx,
    tables: &[&str],
) -> Result<Vec<DeferredIndex>, ProjectionError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; tables.len()].join(", ");
    let sql = match tx {
        // `origin = 'c'`: made by CREATE INDEX (not a key or a UNIQUE constraint).
        SqlTx::Sqlite(_) => format!(
            "SELECT m.name, m.tbl_name, m.sql FROM sqlite_master AS m \
             JOIN pragma_index_list(m.tbl_name) AS l ON l.name = m.name \
             WHERE m.type = 'index' AND l.origin = 'c' AND l.\"unique\" = 0 \
             AND m.tbl_name IN ({marks}) ORDER BY m.name"
        ),
        SqlTx::Postgres(_) => format!(
            "SELECT i.relname::text, t.relname::text, pg_get_indexdef(x.indexrelid) \
             FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid \
             JOIN pg_class AS t ON t.oid = x.indrelid \
             WHERE t.relnamespace = current_schema()::regnamespace \
             AND NOT x.indisunique AND NOT x.indisprimary \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid) \
             AND t.relname::text IN ({marks}) ORDER BY 1"
        ),
    };
    let params: Vec<SqlValue> = tables.iter().map(|table| (*table).into()).collect();
    tx.fetch_all(&sql, &params)
        .await?
        .iter()
        .map(|row| {
            Ok(DeferredIndex {
                name: row.text(0)?,
                table: row.text(1)?,
                definition: row.text(2)?,
            })
        })
        .collect()
}

/// Creates every deferred index again, each in its own transaction with the removal of its
/// row; returns how many it created. The row is taken first (`DELETE … RETURNING`), so two
/// processes restoring at once create each index once: the second waits for the first's
/// commit and then finds no row.
pub async fn restore(db: &SqlDb) -> Result<usize, ProjectionError> {
    let names: Vec<String> = db
        .fetch_all("SELECT name FROM deferred_indexes ORDER BY name", &[])
        .await?
        .iter()
        .map(|row| row.text(0))
        .collect::<Result<_, _>>()?;
    let mut created = 0;
    for name in names {
        let mut tx = db.begin_derived().await?;
        let made = async {
            let taken = tx
                .fetch_optional(
                    "DELETE FROM deferred_indexes WHERE name = ? RETURNING definition",
                    &[name.as_str().into()],
                )
                .await?;
            let Some(row) = taken else {
                return Ok::<usize, adapters::store::StoreError>(0);
            };
            tx.execute(&row.text(0)?, &[]).await?;
            Ok(1)
        }
        .await;
        match made {
            Ok(made) => {
                tx.commit().await?;
                created += made;
            }
            Err(error) => {
                let _ = tx.rollback().await;
                return Err(error.into());
            }
        }
    }
    Ok(created)
}

/// `name` as an SQL identifier, quoted.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
