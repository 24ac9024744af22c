#!/usr/bin/env bash
# Stop the nodes started by start.sh (their data stays in data/ for a restart).
here="$(cd "$(dirname "$0")" && pwd)"
for pidfile in "$here"/data/*.pid; do
  [ -e "$pidfile" ] || continue
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
done
