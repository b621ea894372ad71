#!/usr/bin/env bash
# Make a Docker engine answer on this machine, or stop the one this script started.
#
#   scripts/docker/engine.sh        install (if needed) and start the engine, wait until it answers
#   scripts/docker/engine.sh stop   stop the engine this script started, and nothing else
#
# CI starts on a fresh machine with no daemon and no container registry, so the engine comes from
# Debian's docker.io package and is started here by hand (there is no init system to do it).
# Networking stays on the host's loopback: no bridge, no firewall rules, no forwarding, so no
# container ever gets an address of its own; containers are run with --network host.
#
# Environment:
#   SESSIONLAB_STATE_DIR     where the daemon's log and pid file go (default: .sessionlab/docker)
#   SESSIONLAB_ENGINE_WAIT   seconds to wait for the engine to answer (default: 60)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${SESSIONLAB_STATE_DIR:-${REPO_ROOT}/.sessionlab/docker}"
WAIT_SECONDS="${SESSIONLAB_ENGINE_WAIT:-60}"
# Set in main, once STATE_DIR is made absolute.
PID_FILE=""
LOG_FILE=""

say() { printf 'engine: %s\n' "$*"; }
die() { printf 'engine: error: %s\n' "$*" >&2; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

# The pid in our pid file, if that process is still a dockerd (a stale file may name a reused pid).
our_daemon_pid() {
    local pid
    [[ -s "${PID_FILE}" ]] || return 1
    pid="$(<"${PID_FILE}")"
    [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/${pid}/comm" 2>/dev/null || true)" == "dockerd" ]] || return 1
    printf '%s\n' "${pid}"
}

install_engine() {
    [[ "$(id -u)" -eq 0 ]] || die "dockerd is not installed and installing it needs root"
    say "dockerd not found: installing Debian's docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Recommends (git, apparmor, xz-utils, ...) are not needed to run a daemon; skipping them
    # keeps the install short.
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    command -v dockerd >/dev/null || die "docker.io installed but dockerd is still not on PATH"
}

start_engine() {
    local pid deadline
    [[ "$(id -u)" -eq 0 ]] || die "starting dockerd needs root"
    command -v dockerd >/dev/null || install_engine
    command -v docker >/dev/null || die "the docker client is not on PATH"

    say "starting dockerd (log: ${LOG_FILE})"
    # 9>&-: the daemon must not inherit (and so hold forever) this script's lock.
    # setsid: the daemon must outlive the shell (or CI step) that started it, and must not get
    # that shell's terminal signals. Without job control the background child is not a process
    # group leader, so setsid execs dockerd in place and $! is dockerd's own pid.
    # --bridge=none/--iptables=false/--ip6tables=false: no docker0 bridge, no default network, no
    # firewall rules. --ip-forward=false: leave the host's forwarding sysctl as it is.
    setsid dockerd \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
        </dev/null >>"${LOG_FILE}" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "${pid}" >"${PID_FILE}"

    deadline=$((SECONDS + WAIT_SECONDS))
    until engine_answers; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            rm -f "${PID_FILE}"
            tail -n 20 "${LOG_FILE}" >&2 || true
            die "dockerd exited before answering (log above, full log: ${LOG_FILE})"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "${LOG_FILE}" >&2 || true
            die "dockerd (pid ${pid}) did not answer within ${WAIT_SECONDS}s; it is left running, stop it with: $0 stop"
        fi
        sleep 0.5
    done
    say "engine is up (dockerd pid ${pid}, server $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
}

stop_engine() {
    local pid deadline
    if ! pid="$(our_daemon_pid)"; then
        rm -f "${PID_FILE}"
        say "no daemon started by this script is running; nothing to stop"
        return 0
    fi
    # Stopping the daemon kills its containers; name them so a leak is visible, not silent.
    local running
    running="$(docker ps -q 2>/dev/null || true)"
    if [[ -n "${running}" ]]; then
        say "warning: containers still running, they stop with the daemon: $(tr '\n' ' ' <<<"${running}")"
    fi
    say "stopping dockerd (pid ${pid})"
    kill -TERM "${pid}"
    # dockerd stops its containers and its own containerd before exiting; give it time.
    deadline=$((SECONDS + 30))
    while kill -0 "${pid}" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            say "dockerd did not exit within 30s; killing it"
            kill -KILL "${pid}" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "${PID_FILE}"
    say "stopped"
}

main() {
    local action="${1:-start}" pid
    case "${action}" in
        start | stop) ;;
        -h | --help)
            sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"
            return 0
            ;;
        *) die "unknown argument '${action}' (expected: start, stop)" ;;
    esac

    mkdir -p "${STATE_DIR}"
    # Absolute, so the paths named in messages work from any directory.
    STATE_DIR="$(cd "${STATE_DIR}" && pwd)"
    PID_FILE="${STATE_DIR}/dockerd.pid"
    LOG_FILE="${STATE_DIR}/dockerd.log"
    # Two callers at once (a test run and a build, say) must not start two daemons.
    exec 9>"${STATE_DIR}/engine.lock"
    flock 9

    if [[ "${action}" == "stop" ]]; then
        stop_engine
        return 0
    fi
    if engine_answers; then
        say "engine already answers; nothing to do"
        return 0
    fi
    if pid="$(our_daemon_pid)"; then
        die "dockerd started earlier (pid ${pid}) is running but not answering; see ${LOG_FILE}, or run: $0 stop"
    fi
    start_engine
}

main "$@"
