#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the tests (reference/stack.md A4) and print its URL.
# Usage: eval "$(scripts/pg-start.sh)"   -> exports OVERSEER_TEST_PG_URL and PG_TEST_DIR
# Prints nothing (exit 0) when no PostgreSQL server binaries exist. Stop with scripts/pg-stop.sh.
set -euo pipefail
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "echo 'PostgreSQL server binaries not found: tests run on SQLite only' >&2"
  exit 0
fi
PORT=${OVERSEER_TEST_PG_PORT:-55432}
PGDIR=$(mktemp -d /tmp/overseer-pg.XXXXXX)
RUN=""
if [ "$(id -u)" = "0" ]; then chown postgres "$PGDIR"; RUN="runuser -u postgres --"; fi
$RUN "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
$RUN "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w start \
  -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null
echo "export OVERSEER_TEST_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:$PORT/postgres"
echo "export PG_TEST_DIR=$PGDIR"
