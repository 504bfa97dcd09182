#!/usr/bin/env bash
# Runs a local dfs system in the foreground with its data under one directory
# (default .dfs-local/ in the checkout): for now the master on
# 127.0.0.1:9870 (DFS_LISTEN to change). Ctrl-C stops everything cleanly.
# Expects the binaries built (make run does that) in $BIN_DIR.
set -euo pipefail

ROOT=${DFS_LOCAL_DIR:-.dfs-local}
BIN_DIR=${BIN_DIR:-target/debug}
LISTEN=${DFS_LISTEN:-127.0.0.1:9870}
mkdir -p "$ROOT"

pids=()
stop() {
  trap - INT TERM
  echo "stopping..." >&2
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait
}
trap stop INT TERM

"$BIN_DIR/dfs-master" --listen "$LISTEN" --data-dir "$ROOT/master" &
pids+=($!)

url="http://$LISTEN"
for _ in $(seq 100); do
  curl -fs "$url/v1/cluster" >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<MSG

dfs is running (data in $ROOT/, Ctrl-C to stop)
  master API:  $url/v1/
  try:         curl -s -XPOST $url/v1/mkdir -H 'content-type: application/json' -d '{"path":"/hello"}'
               curl -s '$url/v1/list?path=/'

MSG
wait
