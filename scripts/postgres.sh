#!/usr/bin/env bash
# A throwaway PostgreSQL server on a loopback port, for the tests of the PostgreSQL store.
#   scripts/postgres.sh start   install if missing, start, print the server's URL
#   scripts/postgres.sh url     print the URL if the server answers
#   scripts/postgres.sh stop    stop the server this script started
set -euo pipefail

port="${SESSIONLAB_PG_PORT:-55432}"
# Outside the work tree: the server runs as the postgres user, who may not reach into it.
state="${SESSIONLAB_PG_DIR:-/tmp/sessionlab-postgres}"
url="postgresql+asyncpg://postgres@127.0.0.1:${port}/postgres"

pg_bin() {
  local dir
  dir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && echo "$dir"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

ready() {
  local bin
  bin=$(pg_bin) || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"
}

start() {
  if ready; then
    echo "$url"
    return
  fi
  if ! pg_bin >/dev/null; then
    echo "postgres.sh: installing Debian's postgresql" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  local bin
  bin=$(pg_bin)
  mkdir -p "$state"
  [ "$(id -u)" -eq 0 ] && chown postgres "$state"
  if [ ! -f "$state/data/PG_VERSION" ]; then
    as_postgres "'$bin/initdb' -D '$state/data' -A trust -U postgres" >"$state/initdb.log" 2>&1
  fi
  # fsync off: the data is thrown away; durability is the store's concern, not this server's.
  as_postgres "'$bin/pg_ctl' -D '$state/data' -l '$state/server.log' -w -t 60 start \
    -o \"-p $port -k '$state' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\"" >&2
  echo "$url"
}

stop() {
  local bin
  bin=$(pg_bin) || return 0
  if [ -f "$state/data/postmaster.pid" ]; then
    as_postgres "'$bin/pg_ctl' -D '$state/data' -m fast -w stop" >&2
  fi
}

case "${1:-start}" in
  start) start ;;
  url) ready && echo "$url" ;;
  stop) stop ;;
  *) echo "usage: $0 [start|url|stop]" >&2; exit 2 ;;
esac
