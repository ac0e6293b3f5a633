#!/usr/bin/env bash
# The benchmarks of issues 8, 26 and 27, back to back on this machine, with two references
# beside them: pgbench, and the cqrs-es peer (issue 26) when its directory is there. Every
# figure compared is a ratio taken in this one run. It reports; it does not gate: it exits 0
# whether or not a target is met.
#
#   bench/run.sh                         # pgbench, lifecycle (PostgreSQL and SQLite), peer, webhooks, replay, reads
#   REPLAY_EVENTS=1000000 bench/run.sh   # the replay at the issue's full size (default 100000)
#   READS_EVENTS=1000000 bench/run.sh    # the reads at issue 27's full size (default 100000)
#   ONLY_LIFECYCLE=1 bench/run.sh        # just pgbench, the lifecycle on both engines and the peer, and their ratios
#   ONLY_READS=1 bench/run.sh            # just the reads, on both engines
#   AS_OF_EVENTS=1000000 bench/run.sh    # the as-of reads at issue 24's full size (default 100000)
#   ONLY_AS_OF=1 bench/run.sh            # just the as-of reads from snapshots, on both engines
#   ONLY_HISTORY=1 bench/run.sh          # issue 24: the replay (rebuild) and the as-of reads, on both engines
#
# Settings (environment): PG_SERVER (default postgres://postgres@127.0.0.1:5432), LEADS (2000),
# CONCURRENCY (8), WEBHOOK_INVOICES (2000), REPLAY_EVENTS (100000), READS_EVENTS (100000),
# READS_QUERIES (50), AS_OF_EVENTS (100000), AS_OF_QUERIES (200), PEER_DIR (the cqrs-es peer's source, default ../shared/peers/cqrs_es_bench
# from the repository's root; a relative override is taken from the directory it is run in),
# CARGO_TARGET_DIR (default target; the peer builds into its peer/ subdirectory), KEEP=1 keeps
# the databases and files it creates. Only loopback servers are used.
set -euo pipefail

# PEER_DIR is resolved before moving to the repository's root, so a path given relative to the
# caller's directory still names what the caller meant.
if [ -n "${PEER_DIR:-}" ] && [ -d "$PEER_DIR" ]; then PEER_DIR=$(cd "$PEER_DIR" && pwd); fi
cd "$(dirname "$0")/.."
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
LEADS=${LEADS:-2000}
CONCURRENCY=${CONCURRENCY:-8}
WEBHOOK_INVOICES=${WEBHOOK_INVOICES:-2000}
REPLAY_EVENTS=${REPLAY_EVENTS:-100000}
READS_EVENTS=${READS_EVENTS:-100000}
READS_QUERIES=${READS_QUERIES:-50}
ONLY_LIFECYCLE=${ONLY_LIFECYCLE:-0}
ONLY_READS=${ONLY_READS:-0}
AS_OF_EVENTS=${AS_OF_EVENTS:-100000}
AS_OF_QUERIES=${AS_OF_QUERIES:-200}
ONLY_AS_OF=${ONLY_AS_OF:-0}
ONLY_HISTORY=${ONLY_HISTORY:-0}
KEEP=${KEEP:-0}
PEER_DIR=${PEER_DIR:-../shared/peers/cqrs_es_bench}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

case "$PG_SERVER" in
  postgres://*@127.0.0.1:*|postgres://*@localhost:*|postgres://127.0.0.1:*|postgres://localhost:*) ;;
  *) echo "run.sh: PG_SERVER must be a loopback server (127.0.0.1 or localhost), got $PG_SERVER" >&2; exit 2 ;;
esac

RUN_ID="$(date +%Y%m%d%H%M%S)_$$"
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/revledger-bench-${RUN_ID}-XXXX")"
DATABASES=()
BIN=$TARGET_DIR/release/revledger
PEER_BIN=$TARGET_DIR/peer/release/cqrs_es_bench
LOG="$WORK_DIR/stderr.log"

cleanup() {
  if [ "$KEEP" = 1 ]; then
    echo "kept: $WORK_DIR ${DATABASES[*]:-}"
    return
  fi
  for db in "${DATABASES[@]:-}"; do
    [ -n "$db" ] && psql "$PG_SERVER/postgres" -qAtc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK_DIR"
}
trap cleanup EXIT

# --- PostgreSQL up? -------------------------------------------------------------------------
if ! pg_isready -q -d "$PG_SERVER/postgres"; then
  echo "PostgreSQL is not answering at $PG_SERVER; trying to start the local cluster" >&2
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header | while read -r version cluster _; do
      pg_ctlcluster "$version" "$cluster" start || true
    done
  fi
  for _ in $(seq 1 30); do pg_isready -q -d "$PG_SERVER/postgres" && break; sleep 1; done
  pg_isready -q -d "$PG_SERVER/postgres" || { echo "run.sh: PostgreSQL is not up at $PG_SERVER" >&2; exit 1; }
fi

fresh_db() {
  local name="revledger_bench_${RUN_ID}_$1"
  psql "$PG_SERVER/postgres" -qAtc "CREATE DATABASE \"$name\"" >/dev/null
  echo "$name"
}

# json FIELD < line: one field of a JSON line (python3 is in every Debian image we run on).
json() { python3 -c 'import json,sys; v=json.load(sys.stdin); [v:=v[k] for k in sys.argv[1].split(".")]; print(v)' "$1"; }
# ratio A B: A/B to three places, or n/a when either is not a number (a reference that did not
# run) or B is zero.
RATIO_PY=$(cat <<'PY'
import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2])
    print(f"{a / b:.3f}" if b else "n/a")
except ValueError:
    print("n/a")
PY
)
ratio() { python3 -c "$RATIO_PY" "$1" "$2"; }
verdict() { python3 -c "import sys; print('met' if eval(sys.argv[1]) else 'NOT met')" "$1"; }
# target LABEL MEASURED RATIO VERDICT: one line of the targets table.
target() { printf '%-62s %-28s %-9s %s\n' "$1" "$2" "$3" "$4"; }
# reads_table ENGINE < line: each route's p99 against issue 27's target, met / NOT met.
READS_TABLE_PY=$(cat <<'PY'
import json, sys
engine, figures = sys.argv[1], json.load(sys.stdin)
target = figures["target_p99_ms"]
print("== reads on %s: %s events, catch-up %s events/s (%s s)" % (
    engine, figures["events"], figures["catch_up"]["events_per_sec"], figures["catch_up"]["seconds"]))
print("%-84s %6s %9s  %s" % ("route", "status", "p99 ms", "target %g ms" % target))
for route in figures["routes"]:
    met = 200 <= route["status"] < 300 and route["p99_ms"] <= target
    print("%-84s %6s %9s  %s" % (route["name"], route["status"], route["p99_ms"], "met" if met else "NOT met"))
for skipped in figures["skipped"]:
    print("%-84s %6s %9s  skipped: %s" % (skipped["route"], "-", "-", skipped["reason"]))
PY
)
reads_table() { python3 -c "$READS_TABLE_PY" "$1"; }

echo "== machine: $(nproc) cores, $(psql "$PG_SERVER/postgres" -qAtc 'SHOW server_version'), fsync=$(psql "$PG_SERVER/postgres" -qAtc 'SHOW fsync'), synchronous_commit=$(psql "$PG_SERVER/postgres" -qAtc 'SHOW synchronous_commit')"

echo "== building (release)"
cargo build --release --quiet

# --- reads (issue 27): every GET route and dashboard page on a caught-up store ----------------
run_reads() {
  READS_PG_DB=$(fresh_db reads)
  DATABASES+=("$READS_PG_DB")  # fresh_db runs in a subshell
  echo "== revledger bench reads --events $READS_EVENTS --queries $READS_QUERIES (PostgreSQL, then SQLite)"
  READS_PG=$($BIN bench reads --events "$READS_EVENTS" --queries "$READS_QUERIES" --database-url "$PG_SERVER/$READS_PG_DB" 2>>"$LOG")
  echo "$READS_PG"
  READS_SQLITE=$($BIN bench reads --events "$READS_EVENTS" --queries "$READS_QUERIES" --database-url "sqlite://$WORK_DIR/reads.db" 2>>"$LOG")
  echo "$READS_SQLITE"
}
print_reads() {
  echo
  echo "$READS_PG" | reads_table PostgreSQL
  echo
  echo "$READS_SQLITE" | reads_table SQLite
}
# --- as-of from snapshots (issue 24): snapshots taken, then random as-of reads ----------------
run_as_of() {
  AS_OF_PG_DB=$(fresh_db as_of)
  DATABASES+=("$AS_OF_PG_DB")  # fresh_db runs in a subshell
  echo "== revledger bench as-of --events $AS_OF_EVENTS --queries $AS_OF_QUERIES (PostgreSQL, then SQLite)"
  AS_OF_PG=$($BIN bench as-of --events "$AS_OF_EVENTS" --queries "$AS_OF_QUERIES" --compare-full --database-url "$PG_SERVER/$AS_OF_PG_DB" 2>>"$LOG")
  echo "$AS_OF_PG"
  AS_OF_SQLITE=$($BIN bench as-of --events "$AS_OF_EVENTS" --queries "$AS_OF_QUERIES" --compare-full --database-url "sqlite://$WORK_DIR/as_of.db" 2>>"$LOG")
  echo "$AS_OF_SQLITE"
}
# print_as_of: issue 24's targets, per engine and per read model.
print_as_of() {
  for engine in PostgreSQL SQLite; do
    if [ "$engine" = PostgreSQL ]; then line=$AS_OF_PG; else line=$AS_OF_SQLITE; fi
    P99_AS_OF=$(echo "$line" | json p99_ms)
    RATIO_AS_OF=$(echo "$line" | json storage.ratio)
    target "as-of p99 <= 200 ms, every read model ($engine, $AS_OF_EVENTS events)" "$P99_AS_OF ms" "$(ratio "$P99_AS_OF" 200)" "$(verdict "$P99_AS_OF <= 200")"
    echo "$line" | python3 -c '
import json, sys
figures = json.load(sys.stdin)
for name, model in figures["by_model"].items():
    print("   %-28s p50 %8.1f ms  p99 %8.1f ms  (full replay at the head: %s ms)" % (
        name, model["p50_ms"], model["p99_ms"], figures["full_replay_at_head_ms"].get(name, "n/a")))'
    target "snapshot storage <= 20% of the events table ($engine)" "$RATIO_AS_OF x" "$(ratio "$RATIO_AS_OF" 0.2)" "$(verdict "$RATIO_AS_OF <= 0.2")"
  done
}
# --- replay (issues 8, 24): generated in one process, rebuilt in another, so the peak RSS is
# the rebuild's ------------------------------------------------------------------------------
run_replay() {
  REPLAY_PG_DB=$(fresh_db replay)
  DATABASES+=("$REPLAY_PG_DB")  # fresh_db runs in a subshell
  echo "== revledger bench replay --events $REPLAY_EVENTS --generate-only, then --reuse (PostgreSQL)"
  $BIN bench replay --events "$REPLAY_EVENTS" --generate-only --database-url "$PG_SERVER/$REPLAY_PG_DB" 2>>"$LOG"
  REPLAY_PG=$($BIN bench replay --reuse --database-url "$PG_SERVER/$REPLAY_PG_DB" 2>>"$LOG")
  echo "$REPLAY_PG"
  echo "== revledger bench replay --events $REPLAY_EVENTS --generate-only, then --reuse (SQLite)"
  $BIN bench replay --events "$REPLAY_EVENTS" --generate-only --database-url "sqlite://$WORK_DIR/replay.db" 2>>"$LOG"
  REPLAY_SQLITE=$($BIN bench replay --reuse --database-url "sqlite://$WORK_DIR/replay.db" 2>>"$LOG")
  echo "$REPLAY_SQLITE"
}
# print_replay: the rebuild's targets, and how long its swap held readers (PostgreSQL) or
# appends (SQLite).
print_replay() {
  PG_EPS=$(echo "$REPLAY_PG" | json events_per_sec); PG_RSS=$(echo "$REPLAY_PG" | json peak_rss_mb)
  SQ_EPS=$(echo "$REPLAY_SQLITE" | json events_per_sec); SQ_RSS=$(echo "$REPLAY_SQLITE" | json peak_rss_mb)
  target "replay PostgreSQL >= 150000 events/s ($REPLAY_EVENTS events)" "$PG_EPS/s" "$(ratio "$PG_EPS" 150000)" "$(verdict "$PG_EPS >= 150000")"
  target "replay SQLite >= 300000 events/s ($REPLAY_EVENTS events)" "$SQ_EPS/s" "$(ratio "$SQ_EPS" 300000)" "$(verdict "$SQ_EPS >= 300000")"
  target "replay peak RSS < 200 MB (PostgreSQL / SQLite; issue 8, and 24 asks < 300 MB at 1M)" "$PG_RSS / $SQ_RSS MB" "$(ratio "$(python3 -c "import sys; print(max(map(float, sys.argv[1:])))" "$PG_RSS" "$SQ_RSS")" 200)" "$(verdict "$PG_RSS < 200 and $SQ_RSS < 200")"
  for line in "$REPLAY_PG" "$REPLAY_SQLITE"; do
    echo "$line" | python3 -c '
import json, sys
figures = json.load(sys.stdin)
parts = {p["name"]: p["seconds"] for p in figures["projections"]}
if "swap: transaction" in parts:
    print("   %-10s rebuild swap: staging %.3f s (nobody waits), one transaction %.3f s (%s wait)" % (
        figures["engine"], parts["swap: staging"], parts["swap: transaction"],
        "readers" if figures["engine"] == "postgres" else "appends"))'
  done
}
if [ "$ONLY_HISTORY" = 1 ]; then
  run_replay
  run_as_of
  target "target" "measured" "ratio" "verdict"
  print_replay
  print_as_of
  exit 0
fi
if [ "$ONLY_AS_OF" = 1 ]; then
  run_as_of
  target "target" "measured" "ratio" "verdict"
  print_as_of
  exit 0
fi
if [ "$ONLY_READS" = 1 ]; then
  run_reads
  print_reads
  exit 0
fi

# --- the cqrs-es peer (issue 26): built when its source is there -----------------------------
# The peer is another project's program: it is only built and run here, never part of the
# workspace. Its absence or a failed build leaves its figures n/a; the run goes on.
PEER_READY=0
if [ -f "$PEER_DIR/Cargo.toml" ]; then
  echo "== building the cqrs-es peer (release) from $PEER_DIR"
  if cargo build --release --quiet --manifest-path "$PEER_DIR/Cargo.toml" --target-dir "$TARGET_DIR/peer"; then
    PEER_READY=1
  else
    echo "== cqrs-es peer: the build failed; its figures are n/a"
  fi
else
  echo "== cqrs-es peer: not found at $PEER_DIR (set PEER_DIR); its figures are n/a"
fi

# --- pgbench: the machine's reference ---------------------------------------------------------
PGBENCH_DB=$(fresh_db pgbench)
DATABASES+=("$PGBENCH_DB")  # fresh_db runs in a subshell
psql "$PG_SERVER/$PGBENCH_DB" -qAt >/dev/null <<'SQL'
CREATE TABLE pgbench_events (
  position bigserial PRIMARY KEY,
  stream_id text NOT NULL,
  payload jsonb NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pgbench_events_stream ON pgbench_events (stream_id);
SQL
echo "== pgbench -n -c 8 -j 2 -T 10 -f bench/pg-insert.sql"
PGBENCH_OUT=$(pgbench -n -c 8 -j 2 -T 10 -f bench/pg-insert.sql "$PG_SERVER/$PGBENCH_DB" 2>&1)
echo "$PGBENCH_OUT" | grep -E '^(tps|latency average|number of transactions actually processed)'
PGBENCH_TPS=$(echo "$PGBENCH_OUT" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)

# --- lifecycle on PostgreSQL ------------------------------------------------------------------
LIFECYCLE_DB=$(fresh_db lifecycle)
DATABASES+=("$LIFECYCLE_DB")  # fresh_db runs in a subshell
echo "== revledger bench lifecycle --leads $LEADS --concurrency $CONCURRENCY --database-url $PG_SERVER/$LIFECYCLE_DB"
LIFECYCLE=$($BIN bench lifecycle --leads "$LEADS" --concurrency "$CONCURRENCY" --database-url "$PG_SERVER/$LIFECYCLE_DB" 2>>"$LOG")
echo "$LIFECYCLE"
CPS=$(echo "$LIFECYCLE" | json commands_per_sec)
P99=$(echo "$LIFECYCLE" | json p99_ms)
CATCH_UP=$(echo "$LIFECYCLE" | json catch_up_ms)
LIFECYCLE_RATIO=$(ratio "$CPS" "$PGBENCH_TPS")

# --- the cqrs-es peer with its view, on the same leads and concurrency ------------------------
PEER_CPS=n/a
PEER_P50=n/a
PEER_P99=n/a
if [ "$PEER_READY" = 1 ]; then
  PEER_DB=$(fresh_db peer)
  DATABASES+=("$PEER_DB")  # fresh_db runs in a subshell
  echo "== cqrs_es_bench $PG_SERVER/$PEER_DB $LEADS $CONCURRENCY --view"
  if PEER_OUT=$("$PEER_BIN" "$PG_SERVER/$PEER_DB" "$LEADS" "$CONCURRENCY" --view 2>>"$LOG"); then
    echo "$PEER_OUT"
    PEER_CPS=$(echo "$PEER_OUT" | json commands_per_sec)
    PEER_P50=$(echo "$PEER_OUT" | json p50_ms)
    PEER_P99=$(echo "$PEER_OUT" | json p99_ms)
  else
    # The log goes with the work directory at the end (unless KEEP=1): show why here.
    echo "== cqrs-es peer: the run failed; its figures are n/a. The end of its stderr:"
    tail -n 20 "$LOG" >&2
  fi
fi
PEER_RATIO=$(ratio "$CPS" "$PEER_CPS")

echo
echo "pgbench tps:                $PGBENCH_TPS"
echo "lifecycle commands/s:       $CPS"
echo "ratio (lifecycle/pgbench):  $LIFECYCLE_RATIO"
if [ "$PEER_CPS" = n/a ]; then
  echo "cqrs-es peer commands/s:    n/a (not run)"
else
  echo "cqrs-es peer commands/s:    $PEER_CPS (p50 $PEER_P50 ms, p99 $PEER_P99 ms, with its view)"
fi
echo "ratio (lifecycle/peer):     $PEER_RATIO"

# --- lifecycle on SQLite (the embedded default), every append durable -------------------------
echo "== revledger bench lifecycle --leads $LEADS --concurrency $CONCURRENCY --database-url sqlite://$WORK_DIR/lifecycle.db"
SQLITE_LIFECYCLE=$($BIN bench lifecycle --leads "$LEADS" --concurrency "$CONCURRENCY" --database-url "sqlite://$WORK_DIR/lifecycle.db" 2>>"$LOG")
echo "$SQLITE_LIFECYCLE"
SQLITE_CPS=$(echo "$SQLITE_LIFECYCLE" | json commands_per_sec)
SQLITE_P99=$(echo "$SQLITE_LIFECYCLE" | json p99_ms)

if [ "$ONLY_LIFECYCLE" != 1 ]; then
  WEBHOOKS_DB=$(fresh_db webhooks)
  DATABASES+=("$WEBHOOKS_DB")  # fresh_db runs in a subshell
  echo "== revledger bench webhooks --invoices $WEBHOOK_INVOICES --concurrency $CONCURRENCY --database-url $PG_SERVER/$WEBHOOKS_DB"
  WEBHOOKS=$($BIN bench webhooks --invoices "$WEBHOOK_INVOICES" --concurrency "$CONCURRENCY" --database-url "$PG_SERVER/$WEBHOOKS_DB" 2>>"$LOG")
  echo "$WEBHOOKS"
  UNIQUE_RPS=$(echo "$WEBHOOKS" | json requests_per_sec)
  REPEAT_RPS=$(echo "$WEBHOOKS" | json repeat_requests_per_sec)

  run_replay

  run_reads
  run_as_of
fi

echo
echo "== targets (issues 8 and 26), pgbench reference: $PGBENCH_TPS tps, cqrs-es peer: $PEER_CPS commands/s"
echo "   (ratio: a relative target's ratio to its reference; an absolute one's figure over its bound)"
target "target" "measured" "ratio" "verdict"
target "lifecycle >= 0.9 x pgbench tps (PostgreSQL; issues 8, 26)" "$CPS/s" "$LIFECYCLE_RATIO" "$(verdict "'$LIFECYCLE_RATIO' != 'n/a' and float('$LIFECYCLE_RATIO') >= 0.9")"
if [ "$PEER_RATIO" = n/a ]; then
  target "lifecycle >= 2 x cqrs-es peer with its view (issue 26)" "$CPS/s vs n/a" "n/a" "n/a (no peer figure)"
else
  target "lifecycle >= 2 x cqrs-es peer with its view (issue 26)" "$CPS/s vs $PEER_CPS/s" "$PEER_RATIO" "$(verdict "$PEER_RATIO >= 2")"
fi
target "caught up within 1000 ms of the last command (issue 8)" "$CATCH_UP ms" "$(ratio "$CATCH_UP" 1000)" "$(verdict "$CATCH_UP <= 1000")"
target "p99 command latency < 10 ms (PostgreSQL; issues 8, 26)" "$P99 ms" "$(ratio "$P99" 10)" "$(verdict "$P99 < 10")"
target "SQLite lifecycle >= 5000 commands/s, every append durable (issues 8, 26)" "$SQLITE_CPS/s (p99 $SQLITE_P99 ms)" "$(ratio "$SQLITE_CPS" 5000)" "$(verdict "$SQLITE_CPS >= 5000")"
if [ "$ONLY_LIFECYCLE" != 1 ]; then
  target "webhooks unique >= 0.8 x lifecycle commands/s" "$UNIQUE_RPS/s" "$(ratio "$UNIQUE_RPS" "$CPS")" "$(verdict "$UNIQUE_RPS >= 0.8 * $CPS")"
  target "webhooks repeats >= 5 x unique" "$REPEAT_RPS/s" "$(ratio "$REPEAT_RPS" "$UNIQUE_RPS")" "$(verdict "$REPEAT_RPS >= 5 * $UNIQUE_RPS")"
  print_replay
  print_reads
  print_as_of
fi
exit 0
