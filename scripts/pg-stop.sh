#!/usr/bin/env bash
# Stop the throwaway PostgreSQL started by scripts/pg-start.sh (PG_TEST_DIR) and remove its files.
set -u
[ -n "${PG_TEST_DIR:-}" ] && [ -d "$PG_TEST_DIR/data" ] || exit 0
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
RUN=""; [ "$(id -u)" = "0" ] && RUN="runuser -u postgres --"
$RUN "$PGBIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop >/dev/null 2>&1 || true
rm -rf "$PG_TEST_DIR"
