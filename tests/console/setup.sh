#!/usr/bin/env bash
# Installs what the browser tests (tests/console.rs) need, from the project's own files:
# Debian's `chromium` package (headless Chromium at /usr/bin/chromium) or its `firefox-esr`
# package (headless Firefox at /usr/bin/firefox-esr). No browser is downloaded by any crate or
# npm package. About a minute and 350 MB each the first time; instant after.
#
# Usage: tests/console/setup.sh [chromium|firefox]   (default chromium; prints the browser's path)
# Safe when several test processes run it at once: the install happens under an flock.
set -euo pipefail

die() {
  echo "tests/console/setup.sh: $*" >&2
  exit 1
}

case "${1:-chromium}" in
  chromium) browser="${NACRE_CHROMIUM:-/usr/bin/chromium}"; package=chromium; override=NACRE_CHROMIUM ;;
  firefox) browser="${NACRE_FIREFOX:-/usr/bin/firefox-esr}"; package=firefox-esr; override=NACRE_FIREFOX ;;
  *) die "unknown browser $1 (chromium or firefox)" ;;
esac
lock="/tmp/nacre-console-setup.lock"

if [ ! -x "$browser" ]; then
  exec 9>"$lock"
  flock -w 900 9 || die "another install held the lock for 15 minutes"
  if [ ! -x "$browser" ]; then
    command -v apt-get >/dev/null 2>&1 || die "$browser is missing and this is not a Debian system: install $package and set $override"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 || die "installing $package needs root (or sudo)"
      sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends "$package" >&2
  fi
fi
[ -x "$browser" ] || die "$browser is still missing after the install"
echo "$browser"
