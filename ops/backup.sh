#!/usr/bin/env bash
# Backs up a revledger database to one file, safely while the service runs.
#
#   ops/backup.sh [--database-url URL | URL] BACKUP_FILE      (URL defaults to $REVLEDGER_DATABASE_URL)
#
# PostgreSQL: `pg_dump -Fc` (custom format, compressed; one consistent snapshot, so the events,
#   the checkpoints and the read models in it agree). Restore with ops/restore.sh.
# SQLite: the online backup API (`sqlite3 SRC ".backup DEST"`): a consistent copy while
#   `revledger serve` keeps writing in WAL mode; never `cp` a live database file.
#
# The backup is written next to BACKUP_FILE under a temporary name, checked (pg_restore --list /
# PRAGMA integrity_check), then renamed into place: a failed run never leaves a half-written file
# under the final name. Exits non-zero on any failure.
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USAGE="usage: $(basename "$0") [--database-url URL | URL] BACKUP_FILE"
parse_args "$USAGE" "$@"
ENGINE=$(engine_of "$DATABASE_URL")

mkdir -p "$(dirname "$FILE")"
TMP="$FILE.partial.$$"
trap 'rm -f "$TMP"' EXIT
started=$(date +%s)

case $ENGINE in
  sqlite)
    need sqlite3 "apt-get install sqlite3"
    SRC=$(sqlite_path "$DATABASE_URL")
    # sqlite3 would silently create an empty database for a wrong path.
    [ -f "$SRC" ] || die "no SQLite database at $SRC"
    log "backing up SQLite $SRC ($(sqlite_summary "$SRC")) with the online backup API"
    # .timeout: wait for the writer's lock instead of failing with SQLITE_BUSY.
    case $TMP in *\'*|*\"*) die "the backup path must not contain quotes: $FILE" ;; esac
    sqlite3 -bail "$SRC" ".timeout 30000" ".backup '$TMP'"
    check=$(sqlite3 -bail -readonly "$TMP" "PRAGMA integrity_check")
    [ "$check" = ok ] || die "the backup fails PRAGMA integrity_check: $check"
    summary=$(sqlite_summary "$TMP")
    ;;
  postgres)
    need pg_dump "apt-get install postgresql-client, at least the server's major version"
    need pg_restore "apt-get install postgresql-client"
    need psql "apt-get install postgresql-client"
    log "backing up PostgreSQL $(redact "$DATABASE_URL") with pg_dump -Fc"
    summary=$(psql_q -d "$DATABASE_URL" -c \
      "SELECT count(*) || ' events, head position ' || coalesce(max(position), 0) FROM events")
    pg_dump --format=custom --no-password --file="$TMP" --dbname="$DATABASE_URL"
    contents=$(pg_restore --list "$TMP")
    entries=$(grep -c ' TABLE DATA ' <<<"$contents" || true)
    grep -q ' TABLE DATA public events ' <<<"$contents" ||
      die "the dump has no data for the events table"
    summary="$summary (at the start of the dump), $entries tables of data"
    ;;
esac

mv -f "$TMP" "$FILE"
trap - EXIT
bytes=$(wc -c <"$FILE" | tr -d ' ')
log "wrote $FILE: $bytes bytes, $summary, in $(( $(date +%s) - started )) s"
