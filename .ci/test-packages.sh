#!/usr/bin/env bash
# Debian packages the tests need, listed once: .ci/run and `npm run test:all` both call this.
# As root it installs what is missing; otherwise it names what is missing and the command, and fails.
set -euo pipefail

missing=()
# redis-server: each store test starts its own instances on free ports. git: the sync tests.
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v git >/dev/null 2>&1 || missing+=(git)
# chromium: the status page test drives it headless through playwright-core.
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
# The install test (README: Install on two hosts): sudo, ip netns, nsenter/setpriv/unshare, and
# systemd-analyze for `verify` of the unit.
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need Debian packages that are missing: ${missing[*]}" >&2
  echo "Install them as root, then run the tests again:  apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "Installing the Debian packages the tests need: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
