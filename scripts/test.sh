#!/usr/bin/env bash
# The test run: start what the tests need (PostgreSQL, Docker), run pytest, stop what it started.
# Where a service cannot start here, its tests skip with the reason; under CI=true they fail.
set -uo pipefail
cd "$(dirname "$0")/.."

postgres_url=$(scripts/postgres.sh start) || {
  echo "test.sh: PostgreSQL did not start; its tests will say so" >&2
  postgres_url=""
}
export SESSIONLAB_TEST_POSTGRES_URL="$postgres_url"

stop_services() {
  [ -n "$postgres_url" ] && scripts/postgres.sh stop || true
}
trap stop_services EXIT

.venv/bin/pytest "$@"
