#!/usr/bin/env bash
# mount-vs-moosefs.sh: the standard file-system benchmark (fs-bench.sh) on a
# dfs FUSE mount (3 replicas, a local cluster from local-cluster.sh) and on a
# local MooseFS with 3 copies (moosefs-up.sh), one after the other, RUNS
# times, then the medians (summarize.py).
#
#   BENCH_DIR=/path/to/bench deploy/bench/mount-vs-moosefs.sh
#
# BENCH_DIR holds fs-bench.sh, moosefs-up.sh and summarize.py. Env: RUNS (3),
# BIN_DIR (target/debug), OUT (a new temp dir), MFS_DIR (MooseFS's r3/ dir,
# default /mnt/mfs/r3). Needs root (drop_caches, mounts) and fio.
set -euo pipefail

BENCH_DIR=${BENCH_DIR:?set BENCH_DIR to the folder with fs-bench.sh, moosefs-up.sh and summarize.py}
RUNS=${RUNS:-3}
BIN_DIR=${BIN_DIR:-target/debug}
OUT=${OUT:-$(mktemp -d -t dfs-vs-mfs.XXXXXX)}
MFS=${MFS_DIR:-/mnt/mfs/r3}
WORK=$(mktemp -d -t dfs-bench-cluster.XXXXXX)
log() { echo "[$(date +%T)] $*" >&2; }

bash "$BENCH_DIR/moosefs-up.sh" >&2

log "starting a local dfs cluster with its mount in $WORK"
DFS_LOCAL_DIR=$WORK BIN_DIR=$BIN_DIR bash deploy/local-cluster.sh >"$WORK/cluster.log" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do
  grep -q " $WORK/mnt " /proc/self/mountinfo && break
  sleep 0.1
done
grep -q " $WORK/mnt " /proc/self/mountinfo || { cat "$WORK/cluster.log" >&2; exit 1; }

for i in $(seq "$RUNS"); do
  log "run $i of $RUNS: dfs"
  RESULTS_DIR=$OUT/dfs-$i bash "$BENCH_DIR/fs-bench.sh" "$WORK/mnt" dfs
  log "run $i of $RUNS: MooseFS"
  RESULTS_DIR=$OUT/moosefs-$i bash "$BENCH_DIR/fs-bench.sh" "$MFS" moosefs
done
python3 "$BENCH_DIR/summarize.py" "$OUT"
log "raw results in $OUT"
