#!/usr/bin/env bash
# The test run: start what the tests need, run pytest, stop what this run started.
#   PostgreSQL  for the PostgreSQL store           (scripts/postgres.sh)
#   Docker      engine and the reference image      (scripts/docker/build-images.sh)
#   Chromium    for the HTML report's browser check (scripts/chromium.sh)
# Where one cannot be had here, its tests skip with the reason; under CI=true they fail instead.
set -uo pipefail
cd "$(dirname "$0")/.."

postgres_url=$(scripts/postgres.sh start) || {
  echo "test.sh: PostgreSQL did not start; its tests will say so" >&2
  postgres_url=""
}
export SESSIONLAB_TEST_POSTGRES_URL="$postgres_url"

engine_was_running=false
docker info >/dev/null 2>&1 && engine_was_running=true
scripts/docker/build-images.sh || echo "test.sh: no Docker engine or image; container tests will say so" >&2

scripts/chromium.sh || echo "test.sh: no Chromium; the browser check will say so" >&2

stop_services() {
  if [ -n "$postgres_url" ]; then scripts/postgres.sh stop || true; fi
  if [ "$engine_was_running" = false ]; then scripts/docker/engine.sh stop || true; fi
}
trap stop_services EXIT

.venv/bin/pytest "$@"
