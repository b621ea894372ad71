#!/usr/bin/env bash
# Debian's headless-capable Chromium, for the browser test of the HTML report.
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium.sh: /usr/bin/chromium is missing and installing it needs root" >&2
  exit 1
fi
echo "chromium.sh: installing Debian's chromium" >&2
apt-get update -qq >&2
# No recommends (desktop services a headless run never uses); one font named explicitly, since
# without any the page renders as empty boxes.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium fonts-dejavu-core >&2
/usr/bin/chromium --version
