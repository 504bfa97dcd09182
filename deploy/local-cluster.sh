#!/usr/bin/env bash
# Runs a local dfs cluster in the foreground with all data under one
# directory (default .dfs-local/ in the checkout): one master on
# 127.0.0.1:9870 and three chunkservers on 127.0.0.1:9866-9868, and, when
# /dev/fuse is there, a FUSE mount of it at $ROOT/mnt (DFS_MOUNT=0: none).
# The master makes the cluster key ($ROOT/master/cluster.key, or the file
# DFS_CLUSTER_KEY_FILE names) on its first start; the chunkservers are
# given the same file. Ctrl-C stops everything cleanly. Expects the
# binaries in $BIN_DIR.
set -euo pipefail

ROOT=${DFS_LOCAL_DIR:-.dfs-local}
BIN_DIR=${BIN_DIR:-target/debug}
MASTER=${DFS_LISTEN:-127.0.0.1:9870}
CS_PORTS=(9866 9867 9868)
KEY=${DFS_CLUSTER_KEY_FILE:-$ROOT/master/cluster.key}
mkdir -p "$ROOT"

pids=()
mount_pid=
stop() {
  trap - INT TERM
  echo "stopping..." >&2
  # The mount first: it commits open files while the cluster is still up.
  if [[ -n $mount_pid ]]; then kill -TERM "$mount_pid" 2>/dev/null || true; wait "$mount_pid" || true; fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait
}
trap stop INT TERM

url="http://$MASTER"
"$BIN_DIR/dfs-master" --listen "$MASTER" --data-dir "$ROOT/master" --cluster-key-file "$KEY" &
pids+=($!)
for _ in $(seq 100); do
  curl -fs "$url/v1/cluster" >/dev/null 2>&1 && break
  sleep 0.1
done
for i in 0 1 2; do
  "$BIN_DIR/dfs-chunkserver" --listen "127.0.0.1:${CS_PORTS[$i]}" --master "$url" --data-dir "$ROOT/cs$i" --cluster-key-file "$KEY" &
  pids+=($!)
done
for _ in $(seq 100); do
  live=$(curl -fs "$url/v1/chunkservers" 2>/dev/null | grep -o '"state":"live"' | wc -l || true)
  ((live >= 3)) && break
  sleep 0.1
done
bin=$(cd "$BIN_DIR" && pwd)
mount_msg="  mount:      none (no /dev/fuse, or DFS_MOUNT=0)"
if [[ ${DFS_MOUNT:-1} != 0 && -c /dev/fuse ]]; then
  mnt=$ROOT/mnt
  mkdir -p "$mnt"
  "$BIN_DIR/dfs-mount" --foreground --master "$url" "$mnt" 2>"$ROOT/mount.log" &
  mount_pid=$!
  for _ in $(seq 100); do
    grep -q " $(cd "$mnt" && pwd) " /proc/self/mountinfo && break
    sleep 0.1
  done
  if grep -q " $(cd "$mnt" && pwd) " /proc/self/mountinfo; then
    mount_msg="  mount:      $(cd "$mnt" && pwd)   (ls, cp, git... work there; log in $ROOT/mount.log)"
  else
    mount_msg="  mount:      failed, see $ROOT/mount.log"
  fi
fi
cat <<MSG

dfs is running: 1 master, ${live:-0} live chunkservers (data in $ROOT/, Ctrl-C to stop)
  dashboard:  $url/
  API:        $url/v1/   (see README.md)
  shell:      export PATH=$bin:\$PATH DFS_MASTER=$url
              dfs mkdir -p /demo && dfs put README.md /demo/ && dfs ls -R /
              dfs admin report
$mount_msg

MSG
wait
