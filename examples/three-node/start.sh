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
ready=""
for _ in $(seq 1 100); do
  if curl -sf http://127.0.0.1:8848/nacos/v1/console/health/readiness >/dev/null; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "cluster not ready after 20 s; see the logs in $here/data" >&2; exit 1; }
# The first administrator, once: a password of this cluster's own (no default exists), and
# the bootstrap token node 8848 wrote to its data dir.
password_file="$here/data/admin.password"
if [ ! -f "$password_file" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$password_file")
  for _ in $(seq 1 50); do
    "$bin" user bootstrap --server 127.0.0.1:8848 --data-dir "$here/data/node-8848" \
      --password-file "$password_file" 2>/dev/null && break
    sleep 0.2
  done
fi
token="$(curl -s -X POST http://127.0.0.1:8848/nacos/v1/auth/login \
  --data-urlencode username=nacos --data-urlencode "password=$(cat "$password_file")" |
  sed -n 's/.*"accessToken":"\([^"]*\)".*/\1/p')"
curl -s -H "Authorization: Bearer $token" http://127.0.0.1:8848/nacre/v1/state; echo
echo "administrator: nacos, password in data/admin.password. For the nacre commands:"
echo "  export NACRE_USERNAME=nacos NACRE_PASSWORD=\"\$(cat $password_file)\""
echo "and for curl: -H \"Authorization: Bearer $token\" (valid 5 h; POST /nacos/v1/auth/login for another)"

