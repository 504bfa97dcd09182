#!/usr/bin/env bash
# Runs a local dfs cluster in the foreground with all data under one
# directory (default .dfs-local/ in the checkout): one master on
# 127.0.0.1:9870 and three chunkservers on 127.0.0.1:9866-9868.
# Ctrl-C stops everything cleanly. Expects the binaries in $BIN_DIR.
set -euo pipefail

ROOT=${DFS_LOCAL_DIR:-.dfs-local}
BIN_DIR=${BIN_DIR:-target/debug}
MASTER=${DFS_LISTEN:-127.0.0.1:9870}
CS_PORTS=(9866 9867 9868)
mkdir -p "$ROOT"

pids=()
stop() {
  trap - INT TERM
  echo "stopping..." >&2
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait
}
trap stop INT TERM

url="http://$MASTER"
"$BIN_DIR/dfs-master" --listen "$MASTER" --data-dir "$ROOT/master" &
pids+=($!)
for _ in $(seq 100); do
  curl -fs "$url/v1/cluster" >/dev/null 2>&1 && break
  sleep 0.1
done
for i in 0 1 2; do
  "$BIN_DIR/dfs-chunkserver" --listen "127.0.0.1:${CS_PORTS[$i]}" --master "$url" --data-dir "$ROOT/cs$i" &
  pids+=($!)
done
for _ in $(seq 100); do
  live=$(curl -fs "$url/v1/chunkservers" 2>/dev/null | grep -o '"state":"live"' | wc -l)
  ((live >= 3)) && break
  sleep 0.1
done
bin=$(cd "$BIN_DIR" && pwd)
cat <<MSG

dfs is running: 1 master, ${live:-0} live chunkservers (data in $ROOT/, Ctrl-C to stop)
  dashboard:  $url/
  API:        $url/v1/   (see README.md)
  shell:      export PATH=$bin:\$PATH DFS_MASTER=$url
              dfs mkdir -p /demo && dfs put README.md /demo/ && dfs ls -R /
              dfs admin report

MSG
wait
