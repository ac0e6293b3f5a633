#!/usr/bin/env bash
# Restores a revledger database from a file written by ops/backup.sh. Stop the service first.
#
#   ops/restore.sh [--database-url URL | URL] BACKUP_FILE     (URL defaults to $REVLEDGER_DATABASE_URL)
#
# PostgreSQL: restores into the database the URL names, creating it when it does not exist
#   (through the `postgres` maintenance database of the same server), with
#   `pg_restore --clean --if-exists --single-transaction --exit-on-error`: revledger's tables are
#   dropped and recreated from the archive in one transaction, all or nothing. DROP is not
#   UPDATE/DELETE/TRUNCATE, so the append-only triggers do not fire; they are dropped with their
#   tables and recreated after the data is loaded. Extra options for pg_restore (for example
#   --no-owner when the original role does not exist here) go in $PG_RESTORE_OPTIONS.
#   The events' transaction ids (xid8) are restored as they were: on another cluster whose
#   transaction counter is behind them the log would be invisible to readers, so this script
#   checks that and fails (RUNBOOK.md, "Restore").
# SQLite: refuses while a process holds the database open; the backup is checked (PRAGMA
#   integrity_check) and copied next to the target; the database it replaces is kept, with its
#   -wal, as PATH.before-restore-<timestamp>; its -shm (and any stale -wal) removed; the copy
#   renamed into place.
#
# Then the erasure log is applied again (`revledger erase --reapply`; the binary is $REVLEDGER_BIN
# or `revledger` on the PATH), so people erased after the backup was taken stay erased. Then:
# `revledger verify` (chains and seals) and `revledger rebuild` (read models). Exits non-zero on
# any failure.
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USAGE="usage: $(basename "$0") [--database-url URL | URL] BACKUP_FILE"
parse_args "$USAGE" "$@"
ENGINE=$(engine_of "$DATABASE_URL")
[ -f "$FILE" ] || die "no backup file at $FILE"
started=$(date +%s)

case $ENGINE in
  sqlite)
    need sqlite3 "apt-get install sqlite3"
    TARGET=$(sqlite_path "$DATABASE_URL")
    check=$(sqlite3 -bail -readonly "$FILE" "PRAGMA integrity_check") ||
      die "$FILE is not a SQLite database"
    [ "$check" = ok ] || die "$FILE fails PRAGMA integrity_check: $check"
    summary=$(sqlite_summary "$FILE")
    [ "$summary" != "no events table" ] || die "$FILE holds no revledger events table"
    # The service must be stopped: a running one keeps its connections to the old file (and
    # would write its WAL over the restored one). Linux: look for processes holding it open.
    abs=$(realpath -m -- "$TARGET")
    holders=$(find /proc/[0-9]*/fd -maxdepth 1 \( -lname "$abs" -o -lname "$abs-wal" \) 2>/dev/null |
      cut -d/ -f3 | sort -u | tr '\n' ' ' || true)
    [ -z "$holders" ] || die "$TARGET is open in process(es) $holders: stop revledger first"
    mkdir -p "$(dirname "$TARGET")"
    TMP="$TARGET.restoring.$$"
    trap 'rm -f "$TMP"' EXIT
    cp -- "$FILE" "$TMP"
    if [ -e "$TARGET" ]; then
      # Kept with its -wal (committed transactions not yet checkpointed live there, e.g. after
      # a kill), so the replaced database stays complete and openable.
      kept="$TARGET.before-restore-$(date -u +%Y%m%dT%H%M%S.%NZ)"
      mv -- "$TARGET" "$kept"
      [ ! -e "$TARGET-wal" ] || mv -- "$TARGET-wal" "$kept-wal"
      log "kept the database it replaces as $kept"
    fi
    rm -f -- "$TARGET-wal" "$TARGET-shm" "$TARGET-journal"
    mv -- "$TMP" "$TARGET"
    trap - EXIT
    log "restored SQLite $TARGET from $FILE: $(sqlite_summary "$TARGET")"
    ;;
  postgres)
    need pg_restore "apt-get install postgresql-client, at least the dump's major version"
    need psql "apt-get install postgresql-client"
    split_postgres_url "$DATABASE_URL"
    pg_restore --list "$FILE" >/dev/null || die "$FILE is not a pg_dump custom-format archive"
    MAINTENANCE_URL="$PG_BASE/postgres$PG_QUERY"
    exists=$(psql_q -d "$MAINTENANCE_URL" -v db="$PG_DB" \
      <<<"SELECT count(*) FROM pg_database WHERE datname = :'db'")
    if [ "$exists" = 0 ]; then
      log "creating database $PG_DB"
      psql_q -d "$MAINTENANCE_URL" -v db="$PG_DB" <<<'CREATE DATABASE :"db"'
    else
      others=$(psql_q -d "$MAINTENANCE_URL" -v db="$PG_DB" \
        <<<"SELECT count(*) FROM pg_stat_activity WHERE datname = :'db' AND pid <> pg_backend_pid()")
      [ "$others" = 0 ] || log "warning: $others other sessions are connected to $PG_DB (stop revledger); pg_restore gives up after lock_timeout"
    fi
    log "restoring $FILE into $(redact "$DATABASE_URL") with pg_restore --clean --if-exists --single-transaction"
    # shellcheck disable=SC2086 # PG_RESTORE_OPTIONS is a list of options
    PGOPTIONS="${PGOPTIONS:-} -c lock_timeout=30s" pg_restore --no-password --clean --if-exists \
      --single-transaction --exit-on-error ${PG_RESTORE_OPTIONS:-} --dbname="$DATABASE_URL" "$FILE"
    summary=$(psql_q -d "$DATABASE_URL" -c \
      "SELECT count(*) || ' events, head position ' || coalesce(max(position), 0) FROM events")
    # Readers see only events below pg_snapshot_xmin: the cluster's next transaction id must be
    # above every restored one, or the restored log is invisible to verify and the projections.
    read -r highest next < <(psql_q -F ' ' -d "$DATABASE_URL" -c \
      "SELECT coalesce(max(transaction_id)::text, '0'), pg_snapshot_xmax(pg_current_snapshot())::text FROM events")
    if [ "$highest" -ge "$next" ]; then
      die "restored ($summary), but this cluster's next transaction id $next is not above the restored events' highest $highest: readers would not see them. Advance the cluster's transaction counter past $highest before starting revledger (RUNBOOK.md, \"Restore onto a new PostgreSQL cluster\")"
    fi
    log "restored PostgreSQL database $PG_DB from $FILE: $summary"
    ;;
esac

# Erasures (PDPL) are logged apart from the database (REVLEDGER_ERASURE_LOG, or the default
# beside an embedded database): those made after this backup was taken are applied again now,
# so that a restore never brings an erased person back.
REVLEDGER=${REVLEDGER_BIN:-$(command -v revledger || true)}
[ -n "$REVLEDGER" ] ||
  die "restored, but no revledger binary to apply the erasure log again (set REVLEDGER_BIN): run 'revledger erase --reapply' before the service starts, or erased people come back"
"$REVLEDGER" erase --reapply --database-url "$DATABASE_URL" >/dev/null ||
  die "restored, but applying the erasure log again failed: run 'revledger erase --reapply' before the service starts"
log "erasure log applied again"

log "done in $(( $(date +%s) - started )) s; now run: revledger verify, then revledger rebuild"
