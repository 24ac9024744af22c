#!/usr/bin/env bash
# Installs what the real-client tests (tests/clients.rs) need, from the project's own files:
#   python: a venv in tests/clients/.venv with the pinned tests/clients/requirements.txt
#           (nacos-sdk-python 2.0.11 and its dependencies; about a minute from scratch)
#   node:   tests/clients/node_modules by `npm ci` from the committed package-lock.json
#           (nacos 2.6.3; a few seconds)
#   grpc:   a venv in tests/clients/.venv-grpc with the pinned tests/clients/requirements-grpc.txt
#           (the gRPC clients nacos-sdk-python 3.2.0 and nacos-sdk-rust-binding-py 0.8.0; Python >= 3.10).
#           A venv of its own: nacos-sdk-python 3.x ships only its gRPC package `v2`, not the HTTP
#           package `nacos` that the python part tests.
#
# Usage: tests/clients/setup.sh [python|node|grpc|all]   (default: all)
#
# Idempotent and fast when already installed: each install ends by writing a stamp (a hash of
# its requirements or lockfile and the interpreter version) and is skipped while the stamp
# matches. Safe when several test processes run it at once: installs happen under an flock.
# An interrupted install leaves no stamp and is redone from scratch next time.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
what="${1:-all}"
# Each venv's stamp is this file inside it.
venv_stamp=".nacre-setup-stamp"
node_stamp="$here/node_modules/.nacre-setup-stamp"
# Longest a process waits for another one's install (a cold pip install is about a minute).
lock_wait_seconds=900
# The interpreter the venv is made from (override: NACRE_CLIENTS_PYTHON=/path/to/python3).
python="${NACRE_CLIENTS_PYTHON:-python3}"

die() {
  echo "tests/clients/setup.sh: $*" >&2
  exit 1
}

python_key() { # requirements-file
  command -v "$python" >/dev/null 2>&1 ||
    die "$python not found: the Python client tests need Python 3 with venv (Debian: apt-get install python3 python3-venv)"
  # Contents only (not paths), so the same checkout under another path keeps its install.
  {
    "$python" --version 2>&1
    cat "$here/$1"
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

install_venv() { # venv requirements-file import-check
  local venv="$1" requirements="$2" import_check="$3" key
  key="$(python_key "$requirements")"
  stamp_matches "$venv/$venv_stamp" "$key" && return 0
  echo "setup: creating $venv (from $requirements)"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    die "'$python -m venv' failed: python3-venv not installed? (Debian: apt-get install python3-venv)"
  fi
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
    -r "$here/$requirements"; then
    rm -rf "$venv"
    die "pip install -r tests/clients/$requirements failed (is the PyPI registry reachable?)"
  fi
  "$venv/bin/python" -c "$import_check" ||
    die "tests/clients/$requirements installed but '$import_check' fails"
  echo "$key" >"$venv/$venv_stamp.tmp" && mv "$venv/$venv_stamp.tmp" "$venv/$venv_stamp"
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

# The venv parts: venv, requirements file, and an import that proves the install works.
python_part=("$here/.venv" requirements.txt 'import nacos; nacos.NacosClient')
grpc_part=("$here/.venv-grpc" requirements-grpc.txt
  'from v2.nacos import NacosNamingService, NacosConfigService; import nacos_sdk_rust_binding_py')

case "$what" in
  python | node | grpc | all) ;;
  *) die "usage: setup.sh [python|node|grpc|all]" ;;
esac

locked() { # part command...
  local lock="$here/.setup-$1.lock"
  command -v flock >/dev/null 2>&1 || die "flock not found (Debian: apt-get install util-linux)"
  (
    flock -w "$lock_wait_seconds" 9 || die "gave up after ${lock_wait_seconds}s waiting for another setup.sh ($lock)"
    # Checked again under the lock: another process may have just installed it.
    "${@:2}"
  ) 9>"$lock"
}

ensure_venv() { # part venv requirements-file import-check
  local key
  key="$(python_key "$3")"
  stamp_matches "$2/$venv_stamp" "$key" || locked "$1" install_venv "${@:2}"
}

# Fast path without the lock: a stamp is only ever written (renamed into place) last.
if [ "$what" = python ] || [ "$what" = all ]; then
  ensure_venv python "${python_part[@]}"
fi
if [ "$what" = grpc ] || [ "$what" = all ]; then
  ensure_venv grpc "${grpc_part[@]}"
fi
if [ "$what" = node ] || [ "$what" = all ]; then
  { command -v node && command -v npm; } >/dev/null 2>&1 || locked node ensure_node
  key="$(node_key)"
  stamp_matches "$node_stamp" "$key" || locked node install_node
fi
