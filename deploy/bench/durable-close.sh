#!/usr/bin/env bash
# durable-close.sh: what a durable close (#21) costs. On one local cluster
# (1 master, 3 chunkservers, 3 replicas, data in a temp dir on disk so the
# replicas' syncs are real), in the same run:
#   - `dfs put` of PUT_MIB from /dev/shm: A = --no-sync, B = durable (default);
#   - a sequential write through the mount, `dd bs=1M count=DD_MIB` from
#     /dev/shm with a plain close (no conv=fsync): A = a mount with
#     -o nosync_close, B = a default mount;
#   - SMALL_FILES files of 4 KiB written through the mount (open, write,
#     close each, one process), where a close's sync is a larger share.
# A and B alternate within each of ROUNDS rounds (A,B,A,B...), so load from
# others on the machine falls on both; prints every time and the medians.
#
#   cargo build --workspace --bins && deploy/bench/durable-close.sh
#
# Env: BIN_DIR (target/debug), ROUNDS (3), PUT_MIB (256), DD_MIB (1024),
# SMALL_FILES (300).
# Needs /dev/fuse (and root or fusermount3) for the mount half.
set -euo pipefail

BIN_DIR=$(cd "${BIN_DIR:-target/debug}" && pwd)
ROUNDS=${ROUNDS:-3}
PUT_MIB=${PUT_MIB:-256}
DD_MIB=${DD_MIB:-1024}
SMALL_FILES=${SMALL_FILES:-300}
WORK=$(mktemp -d -t dfs-durable-close.XXXXXX)
SHM=$(mktemp -d -p /dev/shm dfs-durable-close.XXXXXX)
pids=()
mounts=()
log() { echo "[$(date +%T)] $*" >&2; }

cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT

# Starts a daemon on a free port; prints its URL (from its first stdout line).
start() {
  local name=$1 out=$WORK/$1-$RANDOM.out
  shift
  DFS_LOG=warn "$BIN_DIR/$name" "$@" >"$out" 2>>"$WORK/daemons.log" &
  pids+=($!)
  for _ in $(seq 300); do
    if grep -q "listening on " "$out" 2>/dev/null; then
      sed -n 's/.*listening on //p' "$out" | head -1
      return
    fi
    sleep 0.1
  done
  echo "$name did not start; see $WORK/daemons.log" >&2
  exit 1
}

master=$(start dfs-master --listen 127.0.0.1:0 --data-dir "$WORK/master")
for i in 0 1 2; do
  start dfs-chunkserver --listen 127.0.0.1:0 --master "$master" --data-dir "$WORK/cs$i" >/dev/null
done
for _ in $(seq 300); do
  (($(curl -fs "$master/v1/chunkservers" | grep -o '"state":"live"' | wc -l) >= 3)) && break
  sleep 0.1
done
log "cluster at $master, data in $WORK"

dd if=/dev/urandom of="$SHM/put" bs=1M count="$PUT_MIB" status=none
dd if=/dev/urandom of="$SHM/dd" bs=1M count="$DD_MIB" status=none

# Seconds taken by a command, to the millisecond.
timed() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null
  t1=$(date +%s%N)
  echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}

# Mounts the cluster at $WORK/NAME with OPTIONS (returns once mounted).
mount_at() {
  local dir=$WORK/$1
  shift
  mkdir -p "$dir"
  mounts+=("$dir")
  "$BIN_DIR/dfs-mount" --master "$master" "$dir" "$@"
}

declare -A times
for r in $(seq "$ROUNDS"); do
  for mode in A B; do
    flag=(); [[ $mode == A ]] && flag=(--no-sync)
    t=$(timed "$BIN_DIR/dfs" --master "$master" put "${flag[@]}" "$SHM/put" "/put-$mode-$r")
    times[put-$mode]+="$t "
    "$BIN_DIR/dfs" --master "$master" rm "/put-$mode-$r" >/dev/null # keeps the disk from filling
    log "round $r put $mode: ${t}s ($(echo "scale=0; $PUT_MIB / $t" | bc) MiB/s)"
  done
done

if [[ -c /dev/fuse ]]; then
  mount_at mnt-A -o nosync_close
  mount_at mnt-B
  lazy=$WORK/mnt-A durable=$WORK/mnt-B
  for r in $(seq "$ROUNDS"); do
    for mode in A B; do
      dir=$lazy; [[ $mode == B ]] && dir=$durable
      t=$(timed dd if="$SHM/dd" of="$dir/dd-$mode-$r" bs=1M count="$DD_MIB" status=none)
      times[dd-$mode]+="$t "
      rm -f "$dir/dd-$mode-$r"
      log "round $r dd $mode: ${t}s ($(echo "scale=0; $DD_MIB / $t" | bc) MiB/s)"
    done
  done
  small='import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
for i in range(n):
    with open(f"{d}/f{i}", "wb") as f:
        f.write(os.urandom(4096))'
  for r in $(seq "$ROUNDS"); do
    for mode in A B; do
      dir=$lazy; [[ $mode == B ]] && dir=$durable
      # The master counts 64 MiB per new chunk as used until the next
      # heartbeats: a burst of ~900 small files per node would find no room.
      sleep 4
      t=$(timed python3 -c "$small" "$dir/small-$mode-$r" "$SMALL_FILES")
      times[small-$mode]+="$t "
      log "round $r small files $mode: ${t}s ($(echo "scale=0; $SMALL_FILES / $t" | bc) files/s)"
    done
  done
fi

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| figure (3 replicas, medians of $ROUNDS, A/B interleaved) | A: opt-out s | B: durable s | B/A | all A | all B |"
echo "|---|---|---|---|---|---|"
for what in put dd small; do
  [[ -n ${times[$what-A]:-} ]] || continue
  a=$(echo "${times[$what-A]}" | median)
  b=$(echo "${times[$what-B]}" | median)
  size=$PUT_MIB; name="\`dfs put\` of $PUT_MIB MiB (--no-sync vs default)"
  [[ $what == dd ]] && size=$DD_MIB && name="dd of $DD_MIB MiB into the mount, plain close (-o nosync_close vs default)"
  unit=MiB/s
  [[ $what == small ]] && size=$SMALL_FILES unit=files/s && name="$SMALL_FILES files of 4 KiB into the mount (-o nosync_close vs default)"
  echo "| $name | $a ($(echo "scale=0; $size / $a" | bc) $unit) | $b ($(echo "scale=0; $size / $b" | bc) $unit) | $(echo "scale=2; $b / $a" | bc) | ${times[$what-A]}| ${times[$what-B]}|"
done
