#!/usr/bin/env bash
# Start a three-node Nacre cluster on 127.0.0.1 (API ports 8848, 8858, 8868; Raft ports
# 7848, 7858, 7868), each node with its own data dir under examples/three-node/data.
# Stop it with ./stop.sh. The cluster forms itself once two of the three nodes are up.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cargo build --release --manifest-path "$root/Cargo.toml" -p nacre
bin="$root/target/release/nacre"
mkdir -p "$here/data"
# The members' shared secret: made once, kept with the data (a real cluster copies it to
# every machine and keeps it private).
secret="$here/data/cluster.secret"
[ -f "$secret" ] || "$bin" secret new "$secret"
for port in 8848 8858 8868; do
  "$bin" serve --bind 127.0.0.1 --port "$port" --cluster-conf "$here/cluster.conf" \
    --cluster-secret-file "$secret" --data-dir "$here/data/node-$port" >"$here/data/node-$port.log" 2>&1 &
  echo $! >"$here/data/node-$port.pid"
  echo "node on 127.0.0.1:$port (pid $!, log data/node-$port.log)"
done
for _ in $(seq 1 100); do
  if curl -sf http://127.0.0.1:8848/nacos/v1/console/health/readiness >/dev/null; then
    curl -s http://127.0.0.1:8848/nacre/v1/state; echo
    exit 0
  fi
  sleep 0.2
done
echo "cluster not ready after 20 s; see the logs in $here/data" >&2
exit 1
