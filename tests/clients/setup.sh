#!/usr/bin/env bash
# Installs what the real-client tests (tests/clients.rs) need, from the project's own files:
#   python: a venv in tests/clients/.venv with the pinned tests/clients/requirements.txt
#           (nacos-sdk-python 2.0.11 and its dependencies; about a minute from scratch)
#   node:   tests/clients/node_modules by `npm ci` from the committed package-lock.json
#           (nacos 2.6.3; a few seconds)
#
# Usage: tests/clients/setup.sh [python|node|all]   (default: all)
#
# Idempotent and fast when already installed: each install ends by writing a stamp (a hash of
# its requirements or lockfile and the interpreter version) and is skipped while the stamp
# matches. Safe when several test processes run it at once: installs happen under an flock.
# An interrupted install leaves no stamp and is redone from scratch next time.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
what="${1:-all}"
venv="$here/.venv"
python_stamp="$venv/.nacre-setup-stamp"
node_stamp="$here/node_modules/.nacre-setup-stamp"
# Longest a process waits for another one's install (a cold pip install is about a minute).
lock_wait_seconds=900
# The interpreter the venv is made from (override: NACRE_CLIENTS_PYTHON=/path/to/python3).
python="${NACRE_CLIENTS_PYTHON:-python3}"

die() {
  echo "tests/clients/setup.sh: $*" >&2
  exit 1
}

python_key() {
  command -v "$python" >/dev/null 2>&1 ||
    die "$python not found: the Python client tests need Python 3 with venv (Debian: apt-get install python3 python3-venv)"
  # Contents only (not paths), so the same checkout under another path keeps its install.
  {
    "$python" --version 2>&1
    cat "$here/requirements.txt"
  } | sha256sum | cut -d' ' -f1
}

# A fresh machine may lack Node.js: install Debian's (the Debian registry is reachable) when
# this runs as root, so the test command alone sets everything up.
ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: node/npm missing; installing Debian's nodejs and npm"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2 ||
      die "apt-get install nodejs npm failed"
  fi
}

node_key() {
  ensure_node
  command -v node >/dev/null 2>&1 ||
    die "node not found: the Node.js client tests need Node.js >= 16 and npm (Debian: apt-get install nodejs npm)"
  command -v npm >/dev/null 2>&1 ||
    die "npm not found: the Node.js client tests need npm (Debian: apt-get install npm)"
  {
    node --version
    cat "$here/package.json" "$here/package-lock.json"
  } | sha256sum | cut -d' ' -f1
}

stamp_matches() { # stamp-file key
  [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}

install_python() {
  local key
  key="$(python_key)"
  stamp_matches "$python_stamp" "$key" && return 0
  echo "setup: creating $venv (nacos-sdk-python from requirements.txt)"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    die "'$python -m venv' failed: python3-venv not installed? (Debian: apt-get install python3-venv)"
  fi
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
    -r "$here/requirements.txt"; then
    rm -rf "$venv"
    die "pip install -r tests/clients/requirements.txt failed (is the PyPI registry reachable?)"
  fi
  "$venv/bin/python" -c 'import nacos; nacos.NacosClient' ||
    die "nacos-sdk-python installed but 'nacos.NacosClient' cannot be imported"
  echo "$key" >"$python_stamp.tmp" && mv "$python_stamp.tmp" "$python_stamp"
}

install_node() {
  local key major
  key="$(node_key)"
  stamp_matches "$node_stamp" "$key" && return 0
  major="$(node --version | sed 's/^v\([0-9]*\).*/\1/')"
  [ "$major" -ge 16 ] || die "Node.js $(node --version) is too old: the client test scripts need >= 16"
  echo "setup: npm ci in $here (nacos from package-lock.json)"
  # npm ci removes node_modules first, so a stale or partial tree never survives.
  (cd "$here" && npm ci --no-audit --no-fund) ||
    die "npm ci in tests/clients failed (is the npm registry reachable?)"
  (cd "$here" && node -e 'require("nacos").NacosConfigClient; require("nacos").NacosNamingClient') ||
    die "npm package nacos installed but cannot be loaded"
  echo "$key" >"$node_stamp.tmp" && mv "$node_stamp.tmp" "$node_stamp"
}

case "$what" in
  python | node | all) ;;
  *) die "usage: setup.sh [python|node|all]" ;;
esac

locked() { # part install-function
  local lock="$here/.setup-$1.lock"
  command -v flock >/dev/null 2>&1 || die "flock not found (Debian: apt-get install util-linux)"
  (
    flock -w "$lock_wait_seconds" 9 || die "gave up after ${lock_wait_seconds}s waiting for another setup.sh ($lock)"
    # Checked again under the lock: another process may have just installed it.
    "$2"
  ) 9>"$lock"
}

# Fast path without the lock: a stamp is only ever written (renamed into place) last.
if [ "$what" != node ]; then
  key="$(python_key)"
  stamp_matches "$python_stamp" "$key" || locked python install_python
fi
if [ "$what" != python ]; then
  { command -v node && command -v npm; } >/dev/null 2>&1 || locked node ensure_node
  key="$(node_key)"
  stamp_matches "$node_stamp" "$key" || locked node install_node
fi
