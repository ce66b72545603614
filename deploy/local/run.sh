#!/usr/bin/env bash
# make run: start PostgreSQL (from the machine's packages), a JetStream server and the four
# chatwire processes with interleaved, prefixed logs. Ctrl-C stops everything.
# `run.sh migrate` only starts Postgres if needed and applies the migrations.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
LOCAL=$ROOT/.local
BIN=$LOCAL/bin
PGPORT=${PGPORT:-55432}
mkdir -p "$LOCAL" "$BIN"

say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[run]\033[0m %s\n' "$*" >&2; exit 1; }

# --- PostgreSQL ------------------------------------------------------------------------------
pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}
PGBIN=$(pg_bindir || true)
if [ -z "$PGBIN" ]; then
  say "PostgreSQL server binaries not found; installing the Debian 'postgresql' package"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  PGBIN=$(pg_bindir) || die "postgresql installed but initdb not found"
fi

# initdb and postgres refuse to run as root: run them as the postgres user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
PGDATA=$LOCAL/pg
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  say "initialising PostgreSQL in $PGDATA"
  mkdir -p "$PGDATA"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PGDATA" && chmod 700 "$PGDATA"
  as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >"$LOCAL/initdb.log" 2>&1 \
    || die "initdb failed; see $LOCAL/initdb.log"
fi
[ "$(id -u)" -eq 0 ] && chown postgres: "$LOCAL" 2>/dev/null || true
chmod 755 "$LOCAL"
PG_STARTED=0
if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  say "starting PostgreSQL on 127.0.0.1:$PGPORT"
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/postgres.log" -w -t 60 \
    -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1" start >/dev/null \
    || die "PostgreSQL did not start; see $PGDATA/postgres.log (is port $PGPORT taken? set PGPORT)"
  PG_STARTED=1
fi
as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='chatwire'" | grep -q 1 \
  || as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres chatwire

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:$PGPORT/chatwire?sslmode=disable}
export LOG_FORMAT=${LOG_FORMAT:-text}
export LOG_LEVEL=${LOG_LEVEL:-info}

say "building binaries into $BIN"
go build -o "$BIN/" ./cmd/...
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2

if [ "${1:-}" = "migrate" ]; then
  "$BIN/ingestor" migrate
  [ "$PG_STARTED" = 1 ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" stop -m fast >/dev/null
  exit 0
fi

# --- everything else, stopped together on exit -----------------------------------------------
PIDS=()
cleanup() {
  trap '' INT TERM   # a second Ctrl-C must not cut the clean-up short
  trap - EXIT
  say "stopping"
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$PG_STARTED" = 1 ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" stop -m fast >/dev/null 2>&1 || true
  fi
  say "stopped"
}
trap cleanup INT TERM EXIT

# start NAME CMD...: run CMD in the background with its output prefixed by NAME.
start() {
  local name=$1; shift
  "$@" > >(sed -u "s/^/[$(printf '%-8s' "$name")] /") 2>&1 &
  PIDS+=($!)
}

mkdir -p "$LOCAL/nats"
if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  die "something already listens on 127.0.0.1:4222; stop it (or an earlier 'make run') first"
fi
say "starting NATS JetStream on 127.0.0.1:4222 (store $LOCAL/nats, sync_interval always)"
start nats "$BIN/nats-server" -c deploy/nats/local.conf
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done

say "applying migrations"
"$BIN/ingestor" migrate

[ -s "$LOCAL/jwt_secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$LOCAL/jwt_secret"
export JWT_SECRET=${JWT_SECRET:-$(cat "$LOCAL/jwt_secret")}
export ALLOWED_ORIGINS=${ALLOWED_ORIGINS:-http://localhost:3000,http://127.0.0.1:3000}

HTTP_ADDR=:8080 start gateway "$BIN/gateway"
HTTP_ADDR=:8082 start ingestor "$BIN/ingestor"
HTTP_ADDR=:8081 start notifier "$BIN/notifier"
HTTP_ADDR=:8083 start sender "$BIN/sender"

for port in 8080 8081 8082 8083; do
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
cat <<MSG

$(say "chatwire is up")
  gateway   http://127.0.0.1:8080   POST /webhooks/interakt  POST /webhooks/netcore
  notifier  http://127.0.0.1:8081   GET /ws (WebSocket)  /api (agent REST API, docs/api.md)
  ingestor  http://127.0.0.1:8082   health and metrics only
  sender    http://127.0.0.1:8083   health and metrics only
  each      /healthz  /readyz  /metrics
  postgres  $DATABASE_URL
  nats      nats://127.0.0.1:4222 (monitoring http://127.0.0.1:8222)
  agent token:  JWT_SECRET=\$(cat .local/jwt_secret) .local/bin/notifier token --sub agent-1 --teams support
Ctrl-C stops everything.

MSG
wait -n "${PIDS[@]}" || true
say "a process exited; stopping the rest"
