#!/usr/bin/env bash
# API schema fuzzing: schemathesis (from PyPI) against GET /openapi.json of a real
# `revledger serve` on a fresh SQLite database and a free loopback port, as the admin.
#
# Passes when no request gets a 5xx and every answer's status, content type and body are what
# the document says. Exits with schemathesis's status. Bounded: SCHEMATHESIS_MAX_EXAMPLES cases
# per operation (default 25) and SCHEMATHESIS_MAX_TIME_SECS for the whole run (default 180:
# schemathesis keeps fuzzing until the budget is spent, so this is also how long it takes);
# SCHEMATHESIS_SEED replays a run (schemathesis prints the seed it used).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
MAX_TIME_SECS=${SCHEMATHESIS_MAX_TIME_SECS:-180}
# One worker: with several, schemathesis's threads trip a CPython 3.11 bug in ast.parse
# ("AST constructor recursion depth mismatch") and the run reports errors that are not ours.
WORKERS=${SCHEMATHESIS_WORKERS:-1}
# How long the server may take to answer /readyz after starting.
READY_WAIT_SECS=30

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "==> installing schemathesis from PyPI"
  python3 -m pip install --quiet schemathesis
fi
echo "==> $(schemathesis --version)"

cargo build --quiet --bin revledger
binary="${CARGO_TARGET_DIR:-target}/debug/revledger"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin_token="rl_schemathesis_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
base="http://127.0.0.1:${port}"

REVLEDGER_DATABASE_URL="sqlite://${work}/events.db" \
  REVLEDGER_LISTEN="127.0.0.1:${port}" \
  REVLEDGER_ADMIN_TOKEN="$admin_token" \
  REVLEDGER_WEBHOOKS="moyasar,calendly,partners" \
  REVLEDGER_MOYASAR_SECRET_TOKEN="schemathesis-moyasar-token" \
  REVLEDGER_CALENDLY_SIGNING_KEY="schemathesis-calendly-key" \
  REVLEDGER_PARTNER_WEBHOOK_SECRET="whsec_c2NoZW1hdGhlc2lzLXBhcnRuZXItc2VjcmV0" \
  "$binary" serve >"${work}/server.log" 2>&1 &
server=$!

stop_server() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap stop_server EXIT

for _ in $(seq 1 $((READY_WAIT_SECS * 10))); do
  curl -fsS "${base}/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "${work}/server.log"; echo "revledger serve exited"; exit 1; }
  sleep 0.1
done
curl -fsS "${base}/readyz" >/dev/null || { cat "${work}/server.log"; echo "not ready after ${READY_WAIT_SECS}s"; exit 1; }

seed_args=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed_args=(--seed "$SCHEMATHESIS_SEED")

echo "==> schemathesis run ${base}/openapi.json (${MAX_EXAMPLES} examples per operation, at most ${MAX_TIME_SECS}s)"
status=0
# From the scratch directory, so hypothesis's example database and reports stay out of the tree.
(
  cd "$work"
  schemathesis run "${base}/openapi.json" \
    --header "Authorization: Bearer ${admin_token}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME_SECS" \
    --workers "$WORKERS" \
    --request-timeout 10 \
    --no-color \
    "${seed_args[@]}"
) || status=$?

if [ "$status" -ne 0 ]; then
  echo "==> server errors logged (last 40)"
  grep -E 'ERROR|panicked' "${work}/server.log" | tail -n 40 || true
fi
exit "$status"
