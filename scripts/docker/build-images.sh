#!/usr/bin/env bash
# Build the images the container tests use, on this machine, with no container registry.
#
#   scripts/docker/build-images.sh [--rebuild]
#
# Steps, each skipped when its result is already there (--rebuild redoes all of them):
#   1. sessionlab-base:bookworm     a Debian root file system made by debootstrap from the mirror
#                                   this machine's apt already uses, imported with `docker import`
#   2. wheelhouse                   the project wheel and all its dependencies, built on the host
#                                   (PyPI is reachable from the host; nothing is fetched in a build)
#   3. sessionlab-reference:latest  scripts/docker/reference.Dockerfile on top of the base
#
# The reference image is rebuilt when the project's source changes: it carries a label with a
# hash of the files that go into the project wheel, and a stale image is never reused.
# The engine is started first (scripts/docker/engine.sh), so this one script is all a caller needs.
#
# Environment:
#   SESSIONLAB_STATE_DIR       work files, logs and the wheelhouse (default: .sessionlab/docker)
#   SESSIONLAB_DEBIAN_MIRROR   Debian mirror for debootstrap (default: from /etc/apt/sources*)
#   PYTHON                     host Python that builds the wheels (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
STATE_DIR="${SESSIONLAB_STATE_DIR:-${REPO_ROOT}/.sessionlab/docker}"
PYTHON="${PYTHON:-python3}"
DOCKERFILE="${SCRIPT_DIR}/reference.Dockerfile"
WHEELS_DIR="${STATE_DIR}/wheels"

SUITE="bookworm"
BASE_IMAGE="sessionlab-base:${SUITE}"
REFERENCE_IMAGE="sessionlab-reference:latest"
# Every image made here carries this label, so cleanup can find them all (see docs/docker.md).
IMAGE_LABEL="org.sessionlab.image=1"
SOURCE_LABEL_KEY="org.sessionlab.source"
DEFAULT_MIRROR="http://deb.debian.org/debian"

REBUILD=0
APT_UPDATED=0
# Work directories removed on exit, whatever happens.
CLEANUP_DIRS=()

say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Remove a work directory. A failed debootstrap can leave proc, sys or a bind of the host's /dev
# mounted inside its root file system: unmount those first (deepest first), and never let rm
# cross into a mount, or it would delete the host's files.
remove_tree() {
    local dir="$1" mnt
    [[ -d "${dir}" ]] || return 0
    while IFS= read -r mnt; do
        umount -l "${mnt}" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | awk -v d="${dir}" 'index($0, d "/") == 1' | sort -r)
    rm -rf --one-file-system "${dir}"
}

cleanup() {
    local dir
    for dir in "${CLEANUP_DIRS[@]+"${CLEANUP_DIRS[@]}"}"; do
        remove_tree "${dir}"
    done
}

# Make a work directory under the state dir and register it for cleanup; its path goes to the
# variable named by $2 (not to stdout: a $(...) subshell would lose the registration).
make_work_dir() {
    local -n out="$2"
    out="$(mktemp -d "${STATE_DIR}/$1.XXXXXX")"
    CLEANUP_DIRS+=("${out}")
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ((APT_UPDATED == 0)); then
        apt-get update -qq
        APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The first Debian mirror this machine's apt uses for the suite itself (not -security or
# -updates), from one-line sources.list files or deb822 .sources files.
debian_mirror() {
    if [[ -n "${SESSIONLAB_DEBIAN_MIRROR:-}" ]]; then
        printf '%s\n' "${SESSIONLAB_DEBIAN_MIRROR}"
        return 0
    fi
    local files=() mirror
    shopt -s nullglob
    files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    shopt -u nullglob
    mirror="$(
        for f in "${files[@]}"; do [[ -r "${f}" ]] && printf '%s\0' "${f}"; done |
            "${PYTHON}" -c '
import sys

suite = sys.argv[1]
usable = ("http://", "https://", "ftp://", "file:")


def one_line(text):
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        words = words[1:]
        if words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2 and words[1] == suite:
            yield words[0]


def deb822(text):
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1].isspace() and key:  # continuation line
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            yield from fields.get("uris", "").split()


for name in sys.stdin.read().split("\0"):
    if not name:
        continue
    with open(name, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for uri in (deb822 if name.endswith(".sources") else one_line)(text):
        if uri.startswith(usable):
            print(uri.rstrip("/"))
            sys.exit(0)
' "${SUITE}"
    )"
    if [[ -z "${mirror}" ]]; then
        say "no ${SUITE} mirror in the apt sources; using ${DEFAULT_MIRROR}" >&2
        mirror="${DEFAULT_MIRROR}"
    fi
    printf '%s\n' "${mirror}"
}

# Files that make up the project wheel, NUL-separated and relative to the repo: the top-level
# packaging files and the packages pyproject.toml includes. Tracked and untracked-but-not-ignored
# files count (a fresh clone has only tracked ones); caches and ignored files never do.
project_files() {
    "${PYTHON}" - "${REPO_ROOT}" <<'PY'
import fnmatch
import os
import subprocess
import sys
import tomllib

root = sys.argv[1]
with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    config = tomllib.load(f)
find = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
include = find.get("include") or ["*"]
top_level = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README*", "LICEN[CS]E*")

try:
    listing = subprocess.run(
        ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode()
    candidates = [p for p in listing.split("\0") if p]
except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
    candidates = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        candidates += [os.path.relpath(os.path.join(dirpath, n), root) for n in filenames]

for path in sorted(set(candidates)):
    parts = path.split("/")
    if "__pycache__" in parts or path.endswith((".pyc", ".pyo")):
        continue
    if not os.path.isfile(os.path.join(root, path)):  # deleted but still tracked
        continue
    if len(parts) == 1:
        keep = any(fnmatch.fnmatchcase(path, p) for p in top_level)
    else:
        keep = any(fnmatch.fnmatchcase(parts[0], p) for p in include)
    if keep:
        sys.stdout.write(path + "\0")
PY
}

# --- step 1: base image ------------------------------------------------------------------------
build_base() {
    if image_exists "${BASE_IMAGE}" && ((REBUILD == 0)); then
        say "${BASE_IMAGE} exists; skipping debootstrap"
        return 0
    fi
    command -v debootstrap >/dev/null || {
        say "installing debootstrap"
        apt_install debootstrap
    }
    local mirror rootfs log="${STATE_DIR}/debootstrap.log" start=${SECONDS}
    mirror="$(debian_mirror)"
    make_work_dir rootfs rootfs
    # mktemp makes the directory 0700, and it becomes the image's "/".
    chmod 0755 "${rootfs}"
    say "debootstrap ${SUITE} from ${mirror} (log: ${log})"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "${SUITE}" "${rootfs}" "${mirror}" >"${log}" 2>&1; then
        tail -n 20 "${log}" >&2 || true
        die "debootstrap failed (log above, full log: ${log})"
    fi
    say "debootstrap took $((SECONDS - start))s ($(du -sh --one-file-system "${rootfs}" | cut -f1))"

    start=${SECONDS}
    # PATH is set because an imported image has no environment at all, and images built on
    # top of it extend PATH.
    tar --numeric-owner -C "${rootfs}" -c . |
        docker import \
            --change "LABEL ${IMAGE_LABEL}" \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            - "${BASE_IMAGE}" >/dev/null
    remove_tree "${rootfs}"
    say "imported ${BASE_IMAGE} in $((SECONDS - start))s"
}

# --- step 2: wheelhouse ------------------------------------------------------------------------
check_python_matches_image() {
    local host image
    host="$("${PYTHON}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    image="$(docker run --rm --network host --entrypoint python3 "${BASE_IMAGE}" \
        -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [[ "${host}" == "${image}" ]] ||
        die "${PYTHON} is Python ${host} but ${BASE_IMAGE} has ${image}: wheels would not fit; set PYTHON=python${image}"
}

build_wheelhouse() {
    local source_hash="$1" stamp="${WHEELS_DIR}/.source-hash"
    if [[ -f "${stamp}" && "$(<"${stamp}")" == "${source_hash}" ]] && ((REBUILD == 0)); then
        say "wheelhouse is up to date; skipping"
        return 0
    fi
    check_python_matches_image
    local src wheels start=${SECONDS}
    # Build from a copy holding only the wheel's inputs: an in-tree build would leave build/
    # and egg-info in the checkout, and setuptools' build/ can carry deleted modules into a wheel.
    make_work_dir src src
    make_work_dir wheels wheels
    project_files | tar -C "${REPO_ROOT}" --null -T - -cf - | tar -C "${src}" -xf -
    say "building the wheelhouse with ${PYTHON} ($("${PYTHON}" -V 2>&1))"
    "${PYTHON}" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "${wheels}" "${src}"
    printf '%s\n' "${source_hash}" >"${wheels}/.source-hash"
    chmod 0755 "${wheels}"
    # Swap in the finished wheelhouse only now, so an interrupted build never leaves half of one.
    rm -rf "${WHEELS_DIR}"
    mv "${wheels}" "${WHEELS_DIR}"
    say "wheelhouse: $(find "${WHEELS_DIR}" -name '*.whl' | wc -l) wheels, $(du -sh "${WHEELS_DIR}" | cut -f1), in $((SECONDS - start))s"
}

# --- step 3: reference image -------------------------------------------------------------------
build_reference() {
    local source_hash="$1" current old_id start=${SECONDS} cache=()
    current="$(docker image inspect --format "{{index .Config.Labels \"${SOURCE_LABEL_KEY}\"}}" \
        "${REFERENCE_IMAGE}" 2>/dev/null || true)"
    if [[ "${current}" == "${source_hash}" ]] && ((REBUILD == 0)); then
        say "${REFERENCE_IMAGE} is up to date; skipping"
        return 0
    fi
    old_id="$(docker image inspect --format '{{.Id}}' "${REFERENCE_IMAGE}" 2>/dev/null || true)"
    ((REBUILD == 0)) || cache=(--no-cache)
    say "building ${REFERENCE_IMAGE}"
    # The classic builder: it ships with every engine and client this runs with (a recent
    # client without its buildx plugin refuses BuildKit). --network host: no bridge exists.
    DOCKER_BUILDKIT=0 docker build --quiet --network host --force-rm "${cache[@]+"${cache[@]}"}" \
        --label "${IMAGE_LABEL}" --label "${SOURCE_LABEL_KEY}=${source_hash}" \
        --file "${DOCKERFILE}" --tag "${REFERENCE_IMAGE}" "${WHEELS_DIR}" >/dev/null
    # The replaced image and the untagged install stage are ours and useless now.
    if [[ -n "${old_id}" && "${old_id}" != "$(docker image inspect --format '{{.Id}}' "${REFERENCE_IMAGE}")" ]]; then
        docker image rm "${old_id}" >/dev/null 2>&1 || true
    fi
    docker image prune --force --filter "label=${IMAGE_LABEL}" >/dev/null
    say "built ${REFERENCE_IMAGE} in $((SECONDS - start))s"
}

main() {
    case "${1:-}" in
        "") ;;
        --rebuild) REBUILD=1 ;;
        -h | --help)
            sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"
            return 0
            ;;
        *) die "unknown argument '$1' (expected: --rebuild)" ;;
    esac
    command -v "${PYTHON}" >/dev/null || die "${PYTHON} not found (set PYTHON)"

    "${SCRIPT_DIR}/engine.sh"
    mkdir -p "${STATE_DIR}"
    STATE_DIR="$(cd "${STATE_DIR}" && pwd)"
    WHEELS_DIR="${STATE_DIR}/wheels"
    # Two builds at once would debootstrap twice and race on the wheelhouse; the second waits
    # and then finds everything built.
    exec 9>"${STATE_DIR}/build.lock"
    flock 9
    trap cleanup EXIT

    local start=${SECONDS} source_hash
    build_base
    # What decides whether the reference image is current: the wheel's inputs, the Dockerfile
    # and the exact base image under it.
    source_hash="$(
        {
            project_files | (cd "${REPO_ROOT}" && xargs -0 -r sha256sum)
            sha256sum <"${DOCKERFILE}"
            docker image inspect --format '{{.Id}}' "${BASE_IMAGE}"
        } | sha256sum | cut -c1-16
    )"
    build_wheelhouse "${source_hash}"
    build_reference "${source_hash}"
    say "ready: $(docker image ls --filter "label=${IMAGE_LABEL}" --filter dangling=false \
        --format '{{.Repository}}:{{.Tag}} {{.Size}}' | tr '\n' ' ')(total $((SECONDS - start))s)"
}

main "$@"
