//! Putting a rebuild's fold beside the live tables: staging tables shaped like the live ones,
//! filled from the scratch file (PostgreSQL `COPY`; SQLite from the attached file), and the
//! names they and their indexes take until the swap.

use adapters::sql::{copy_text, SqlDb, SqlTx};

use super::*;

/// The staging tables a rebuild that stopped before its swap left, dropped.
pub(super) async fn drop_staged(live: &SqlDb, tables: &[&str]) -> Result<(), ProjectionError> {
    for table in tables {
        live.execute(&format!("DROP TABLE IF EXISTS {table}{STAGED}"), &[])
            .await?;
    }
    Ok(())
}

/// Copies `table` from the scratch file into a new staging table on PostgreSQL shaped like
/// the live one (columns, defaults, checks), then gives it the live table's keys and indexes
/// under temporary names; returns each temporary index name with the name it takes at the swap.
pub(super) async fn stage(
    scratch: &SqlDb,
    live: &SqlDb,
    table: &str,
) -> Result<Vec<(String, String)>, ProjectionError> {
    let staged = format!("{table}{STAGED}");
    let mut tx = live.begin_derived().await?;
    let made = async {
        tx.execute(
            &format!(
                "CREATE TABLE {staged} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
                 INCLUDING GENERATED)"
            ),
            &[],
        )
        .await?;
        copy_to_postgres(scratch, table, "true", &[], &mut tx, &staged).await?;
        let mut renames = Vec::new();
        let keys = tx
            .fetch_all(
                "SELECT c.conname::text, pg_get_constraintdef(c.oid) FROM pg_constraint AS c \
                 JOIN pg_class AS t ON t.oid = c.conrelid \
                 WHERE t.relname = ? AND t.relnamespace = current_schema()::regnamespace \
                 AND c.contype IN ('p', 'u', 'x') ORDER BY 1",
                &[table.into()],
            )
            .await?;
        for key in &keys {
            let (name, definition) = (key.text(0)?, key.text(1)?);
            let temporary = staged_index_name(&name)?;
            tx.execute(
                &format!(
                    "ALTER TABLE {staged} ADD CONSTRAINT {} {definition}",
                    quoted(&temporary)
                ),
                &[],
            )
            .await?;
            renames.push((temporary, name));
        }
        let indexes = tx
            .fetch_all(
                "SELECT i.relname::text, pg_get_indexdef(x.indexrelid) FROM pg_index AS x \
                 JOIN pg_class AS i ON i.oid = x.indexrelid \
                 JOIN pg_class AS t ON t.oid = x.indrelid \
                 WHERE t.relname = ? AND t.relnamespace = current_schema()::regnamespace \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid) \
                 ORDER BY 1",
                &[table.into()],
            )
            .await?;
        for index in &indexes {
            let (name, definition) = (index.text(0)?, index.text(1)?);
            let temporary = staged_index_name(&name)?;
            tx.execute(&restaged(&definition, &temporary, &staged)?, &[])
                .await?;
            renames.push((temporary, name));
        }
        tx.execute(&format!("ANALYZE {staged}"), &[]).await?;
        Ok::<_, ProjectionError>(renames)
    }
    .await;
    finish(tx, made).await
}

/// `definition` (a `CREATE TABLE` statement as `sqlite_master` keeps it) for a table named
/// `name` instead of `table`.
pub(super) fn renamed_table(
    definition: &str,
    table: &str,
    name: &str,
) -> Result<String, ProjectionError> {
    let unexpected =
        || ProjectionError::Inconsistent(format!("unexpected table definition: {definition}"));
    let rest = definition
        .strip_prefix("CREATE TABLE ")
        .ok_or_else(unexpected)?
        .trim_start();
    let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
    let quoted_table = format!("\"{table}\"");
    let rest = rest
        .strip_prefix(quoted_table.as_str())
        .or_else(|| rest.strip_prefix(table))
        .ok_or_else(unexpected)?;
    if !rest.starts_with([' ', '(', '\n', '\t']) {
        return Err(unexpected());
    }
    Ok(format!("CREATE TABLE {name}{rest}"))
}

/// The temporary name of a staged index (PostgreSQL names are at most 63 bytes).
pub(super) fn staged_index_name(name: &str) -> Result<String, ProjectionError> {
    let temporary = format!("{name}{STAGED_INDEX}");
    if temporary.len() > 63 {
        return Err(ProjectionError::Inconsistent(format!(
            "index {name} is too long a name to be staged as {temporary}"
        )));
    }
    Ok(temporary)
}

/// `definition` (as `pg_get_indexdef` gives it: `CREATE [UNIQUE] INDEX name ON table USING
/// ...`) for an index named `name` on `table` instead.
pub(super) fn restaged(
    definition: &str,
    name: &str,
    table: &str,
) -> Result<String, ProjectionError> {
    let create = if definition.starts_with("CREATE UNIQUE INDEX ") {
        "CREATE UNIQUE INDEX"
    } else if definition.starts_with("CREATE INDEX ") {
        "CREATE INDEX"
    } else {
        return Err(ProjectionError::Inconsistent(format!(
            "unexpected index definition: {definition}"
        )));
    };
    let using = definition.find(" USING ").ok_or_else(|| {
        ProjectionError::Inconsistent(format!("unexpected index definition: {definition}"))
    })?;
    Ok(format!(
        "{create} {} ON {table}{}",
        quoted(name),
        &definition[using..]
    ))
}

/// Copies the rows of `table` in the scratch file that match `filter` into `into` on
/// PostgreSQL, in chunks of [`COPY_CHUNK_ROWS`] (by rowid, so each chunk is an index range).
pub(super) async fn copy_to_postgres(
    scratch: &SqlDb,
    table: &str,
    filter: &str,
    params: &[SqlValue],
    tx: &mut SqlTx,
    into: &str,
) -> Result<u64, ProjectionError> {
    let columns = tx
        .fetch_all(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            &[into.into()],
        )
        .await?;
    let names: Vec<String> = columns
        .iter()
        .map(|row| row.text(0))
        .collect::<Result<_, _>>()?;
    let types: Vec<String> = columns
        .iter()
        .map(|row| row.text(1))
        .collect::<Result<_, _>>()?;
    let select = format!(
        "SELECT rowid, {} FROM {table} WHERE rowid > ? AND ({filter}) ORDER BY rowid LIMIT {COPY_CHUNK_ROWS}",
        names.join(", ")
    );
    let mut after = i64::MIN;
    let mut copied = 0;
    loop {
        let mut bound = vec![after.into()];
        bound.extend_from_slice(params);
        let rows = scratch.fetch_all(&select, &bound).await?;
        let Some(last) = rows.last() else {
            return Ok(copied);
        };
        after = last.i64(0)?;
        let mut data = Vec::with_capacity(rows.len() * 64);
        for row in &rows {
            for (i, pg_type) in types.iter().enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                copy_text(&mut data, &row.value(i + 1)?, pg_type);
            }
            data.push(b'\n');
        }
        copied += tx.copy_in(into, &names, &data).await?;
    }
}

/// The columns of `table` in the live SQLite database, in order.
pub(super) async fn sqlite_columns(
    tx: &mut SqlTx,
    table: &str,
) -> Result<Vec<String>, ProjectionError> {
    let rows = tx
        .fetch_all("SELECT name FROM pragma_table_info(?)", &[table.into()])
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.text(0))
        .collect::<Result<_, _>>()?)
}
