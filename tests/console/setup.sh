#!/usr/bin/env bash
# Installs what the browser tests (tests/console.rs) need, from the project's own files:
# Debian's `chromium` package (a headless Chromium at /usr/bin/chromium; no browser download
# by any crate or npm package). About a minute and 350 MB the first time; instant after.
#
# Usage: tests/console/setup.sh            (prints the browser's path)
# Safe when several test processes run it at once: the install happens under an flock.
set -euo pipefail

browser="${NACRE_CHROMIUM:-/usr/bin/chromium}"
lock="/tmp/nacre-console-setup.lock"

die() {
  echo "tests/console/setup.sh: $*" >&2
  exit 1
}

if [ ! -x "$browser" ]; then
  exec 9>"$lock"
  flock -w 900 9 || die "another install held the lock for 15 minutes"
  if [ ! -x "$browser" ]; then
    command -v apt-get >/dev/null 2>&1 || die "$browser is missing and this is not a Debian system: install Chromium and set NACRE_CHROMIUM"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 || die "installing chromium needs root (or sudo)"
      sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends chromium >&2
  fi
fi
[ -x "$browser" ] || die "$browser is still missing after the install"
echo "$browser"
