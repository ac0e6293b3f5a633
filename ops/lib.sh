# Shared by ops/backup.sh and ops/restore.sh (sourced, not run).
# shellcheck shell=bash

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (${2:-it is needed here})"
}

# parse_args USAGE "$@": sets DATABASE_URL and FILE from `[--database-url URL | URL] FILE`,
# the URL defaulting to $REVLEDGER_DATABASE_URL.
parse_args() {
  local usage=$1
  shift
  DATABASE_URL=${REVLEDGER_DATABASE_URL:-}
  FILE=
  local positional=()
  while [ $# -gt 0 ]; do
    case $1 in
      --database-url) [ $# -ge 2 ] || die "--database-url needs a value"; DATABASE_URL=$2; shift 2 ;;
      --database-url=*) DATABASE_URL=${1#*=}; shift ;;
      -h|--help) printf '%s\n' "$usage"; exit 0 ;;
      --) shift; positional+=("$@"); break ;;
      -*) die "unknown option $1"$'\n'"$usage" ;;
      *) positional+=("$1"); shift ;;
    esac
  done
  case ${#positional[@]} in
    1) FILE=${positional[0]} ;;
    2) DATABASE_URL=${positional[0]}; FILE=${positional[1]} ;;
    *) die "$usage" ;;
  esac
  [ -n "$DATABASE_URL" ] || die "no database: pass its URL or set REVLEDGER_DATABASE_URL"$'\n'"$usage"
  [ -n "$FILE" ] || die "$usage"
}

# The engine a URL names: sqlite or postgres.
engine_of() {
  case $1 in
    sqlite:*) echo sqlite ;;
    postgres://*|postgresql://*) echo postgres ;;
    *) die "unsupported database URL: use sqlite://PATH or postgres://USER@HOST:PORT/DB" ;;
  esac
}

# The file a sqlite:// URL names (sqlite://relative/path, sqlite:///absolute/path, sqlite:path),
# without any ?query.
sqlite_path() {
  local path=${1#sqlite:}
  path=${path#//}
  path=${path%%\?*}
  [ -n "$path" ] || die "the SQLite URL $1 names no file"
  [ "$path" != ":memory:" ] || die "an in-memory SQLite database cannot be backed up or restored"
  printf '%s\n' "$path"
}

# Splits a postgres:// URL into PG_BASE (scheme://user@host:port), PG_DB and PG_QUERY (?…).
split_postgres_url() {
  local re='^(postgres(ql)?://[^/?]*)/?([^?]*)(\?.*)?$'
  [[ $1 =~ $re ]] || die "cannot parse the PostgreSQL URL"
  PG_BASE=${BASH_REMATCH[1]}
  PG_DB=${BASH_REMATCH[3]}
  PG_QUERY=${BASH_REMATCH[4]}
  [ -n "$PG_DB" ] || die "the PostgreSQL URL names no database (postgres://USER@HOST:PORT/DB)"
}

# The URL with its password (if any) hidden, for messages.
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# Event count and head position of a SQLite file ("-" when there is no events table).
sqlite_summary() {
  sqlite3 -bail -readonly "$1" \
    "SELECT count(*) || ' events, head position ' || coalesce(max(position), 0) FROM events" 2>/dev/null ||
    echo "no events table"
}

psql_q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
