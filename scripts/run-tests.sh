#!/usr/bin/env bash
# Run the whole test suite: start a throwaway PostgreSQL when possible, run pytest in parallel on
# SQLite and PostgreSQL, stop PostgreSQL. pytest's exit 5 ("no tests collected") is a failure here:
# a suite that runs nothing must not pass silently.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${OVERSEER_TEST_PG_URL:-}" ]; then
  eval "$(bash scripts/pg-start.sh)"
  trap 'bash scripts/pg-stop.sh' EXIT
fi
if [ -n "${OVERSEER_TEST_PG_URL:-}" ]; then
  echo "PostgreSQL: $OVERSEER_TEST_PG_URL"
else
  echo "PostgreSQL: not available, SQLite only"
fi
.venv/bin/ruff check src tests benchmarks || exit 1
.venv/bin/mypy src || exit 1
.venv/bin/python -m pytest -q -n 2 --durations=10 "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
