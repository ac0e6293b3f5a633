//! The commands that read the whole log: `verify` (every chain, the audit trail, the
//! journal's balances), `rebuild` (read models folded again and swapped in) and `events`
//! (the log as NDJSON).

use std::io::Write;
use std::process::ExitCode;

use adapters::store::{self, Checkpoint, MAX_READ_BATCH};

/// Checks the per-stream chains, then the audit trail's running hash and seals, then (with
/// `ledger`) the journal's kept balances against its lines.
pub(crate) async fn verify(
    store: std::sync::Arc<dyn store::EventStore>,
    ledger: bool,
) -> anyhow::Result<ExitCode> {
    let report = store::verify(store.as_ref()).await?;
    if let Some(broken) = &report.first_break {
        println!(
            "BROKEN: stream {} version {} position {}: {}",
            broken.stream_id, broken.version, broken.position, broken.reason
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "intact: {} events in {} streams verified",
        report.events_checked, report.streams_checked
    );
    let chains = app::zatca::audit::verify_chains(store.as_ref()).await?;
    if let Some(broken) = &chains.first_break {
        println!(
            "BROKEN: ZATCA chain {} at position {}: {}",
            broken.stream_id, broken.position, broken.reason
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "ZATCA chains intact: {} documents in {} chains linked by their PIH, {} Phase 2 hashes recomputed, {} stamped or cleared XMLs checked",
        chains.documents, chains.chains, chains.recomputed, chains.xml_checked
    );
    if !store.is_migrated().await? {
        println!("audit trail not checked: the database has not been migrated by this version");
        return Ok(ExitCode::SUCCESS);
    }
    let seals = projections::audit_log::verify_seals(store.as_ref(), &store.sql()).await;
    match seals {
        Ok(seals) => match seals.first_break {
            None => {
                println!(
                    "audit trail intact: {} events against the running hash, {} seals",
                    seals.events_checked, seals.seals_checked
                );
                if ledger {
                    verify_ledger(&store.sql()).await
                } else {
                    Ok(ExitCode::SUCCESS)
                }
            }
            Some(broken) => {
                let position = broken
                    .position
                    .map_or("the end of the log".to_owned(), |p| format!("position {p}"));
                println!(
                    "BROKEN: audit sequence {} at {position}: {}",
                    broken.seq, broken.reason
                );
                Ok(ExitCode::FAILURE)
            }
        },
        Err(error) => Err(error.into()),
    }
}

/// The journal's kept balances derived again from its lines: each that differs, or how many
/// were checked.
async fn verify_ledger(db: &adapters::sql::SqlDb) -> anyhow::Result<ExitCode> {
    let differences = projections::ledger::balances::verify(db).await?;
    if differences.is_empty() {
        let counters = projections::ledger::balances::read_counters(db).await?;
        if counters.unbalanced_entries > 0 {
            println!(
                "BROKEN: ledger: {} journal entries do not balance",
                counters.unbalanced_entries
            );
            return Ok(ExitCode::FAILURE);
        }
        println!(
            "ledger balances intact: {} entries, debits {} = credits {} halalas, every account and day equal to its lines",
            counters.entries, counters.debit_halalas, counters.credit_halalas
        );
        return Ok(ExitCode::SUCCESS);
    }
    for difference in &differences {
        println!(
            "BROKEN: ledger {} {}: the lines give {:?} (debit, credit, lines), the table keeps {:?}",
            difference.table, difference.key, difference.from_lines, difference.kept
        );
    }
    Ok(ExitCode::FAILURE)
}

/// Empties and refolds the named read models (all when none is named), with a progress bar.
pub(crate) async fn rebuild(
    store: std::sync::Arc<dyn store::EventStore>,
    names: &[String],
) -> anyhow::Result<()> {
    let selected = if names.is_empty() {
        projections::read_models()
    } else {
        names
            .iter()
            .map(|name| projections::read_model(name))
            .collect::<Result<_, _>>()?
    };
    let head = store.head_position().await?;
    let names: Vec<&'static str> = selected.iter().map(|p| p.name()).collect();
    let bar = indicatif::ProgressBar::new(u64::try_from(head).unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} positions {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(if names.len() == 1 {
        names[0]
    } else {
        "read models"
    });
    let started = std::time::Instant::now();
    // One pass over the log for all of them: each batch is read once and applied to each.
    let mut rebuild = projections::Rebuild::start(store, selected).await?;
    while rebuild.step().await? > 0 {
        bar.set_position(u64::try_from(rebuild.checkpoint().position).unwrap_or(0));
    }
    bar.finish_and_clear();
    let events = rebuild.events_applied();
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    for name in names {
        println!("rebuilt {name}: {events} events in {seconds:.2} s ({rate:.0} events/s)");
    }
    if let Some(swap) = rebuild.swap_times() {
        println!(
            "folded in {} parts; swapped in: staging {:.2} s, one transaction of {:.3} s",
            rebuild.parts(),
            swap.staging.as_secs_f64(),
            swap.transaction.as_secs_f64()
        );
    }
    Ok(())
}

/// Prints committed events in checkpoint order (position order on SQLite) to stdout, batch by
/// batch, skipping those at or below `after`.
pub(crate) async fn print_events(
    store: &dyn store::EventStore,
    after: i64,
    limit: u64,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    // Position order is commit order only on SQLite; elsewhere start from the beginning.
    let mut checkpoint = match store.engine() {
        "sqlite" => Checkpoint {
            transaction_id: 0,
            position: after,
        },
        _ => Checkpoint::START,
    };
    while printed < limit {
        let batch = store.read_committed(checkpoint, MAX_READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        checkpoint = Checkpoint::after(last);
        for event in batch.iter().filter(|event| event.position > after) {
            if printed == limit {
                break;
            }
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
            printed += 1;
        }
    }
    out.flush()?;
    Ok(())
}
