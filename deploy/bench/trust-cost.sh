#!/usr/bin/env bash
# trust-cost.sh: what cluster trust (#19: signed internal requests, chunk
# tokens checked on every data request) costs, old build against new build in
# the same run. Two clusters side by side, one per build (1 master, 3
# chunkservers, 3 replicas, data in a temp dir on disk, loopback ports):
#   - `dfs put` of PUT_MIB from /dev/shm, and `dfs get` of it to /dev/shm;
#   - the mount's sequential write (`dd bs=1M` of DD_MIB from /dev/shm, plain
#     close) and sequential read (`dd` to /dev/null after drop_caches);
#   - master creates/s, with each build's own `dfs-meta-bench` (it starts a
#     master of its build next to it; 1 client and 32 clients).
# A (old) and B (new) alternate for each figure within a round, and which
# goes first alternates between rounds, so load from others falls on both.
# Prints every time, the load average per round, and the medians.
#
#   deploy/bench/trust-cost.sh OLD_BIN_DIR NEW_BIN_DIR
#
# The binaries are copied into the work dir first (a rebuild during the run
# changes nothing). A chunkserver gets `--cluster-key-file MASTER/cluster.key`
# when its build knows the flag. Env: ROUNDS (3), PUT_MIB (256), DD_MIB
# (1024), META_SINGLE (3000), META_CONCURRENT (20000), WORK_PARENT (TMPDIR or
# /tmp: the disk the replicas go to), SHM_PARENT (/dev/shm).
# Needs root (drop_caches, mounts) and /dev/fuse.
set -euo pipefail

[[ $# == 2 ]] || { echo "usage: $0 OLD_BIN_DIR NEW_BIN_DIR" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
PUT_MIB=${PUT_MIB:-256}
DD_MIB=${DD_MIB:-1024}
META_SINGLE=${META_SINGLE:-3000}
META_CONCURRENT=${META_CONCURRENT:-20000}
WORK=$(mktemp -d -p "${WORK_PARENT:-${TMPDIR:-/tmp}}" dfs-trust-cost.XXXXXX)
SHM=$(mktemp -d -p "${SHM_PARENT:-/dev/shm}" dfs-trust-cost.XXXXXX)
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

declare -A bin
for side in A B; do
  src=$1; [[ $side == B ]] && src=$2
  mkdir -p "$WORK/bin-$side"
  for b in dfs-master dfs-chunkserver dfs dfs-mount dfs-meta-bench; do
    cp "$src/$b" "$WORK/bin-$side/$b"
  done
  bin[$side]=$WORK/bin-$side
done
log "A (old): $1, B (new): $2, copied into $WORK"

# Starts a daemon on a free port and sets `url` to its URL (from its first
# stdout line). Not called in $(...): the pid must reach the cleanup's list.
start() {
  local side=$1 name=$2 out=$WORK/$1-$2-$RANDOM.out
  shift 2
  DFS_LOG=warn "${bin[$side]}/$name" "$@" >"$out" 2>>"$WORK/daemons-$side.log" &
  pids+=($!)
  for _ in $(seq 300); do
    if grep -q "listening on " "$out" 2>/dev/null; then
      url=$(sed -n 's/.*listening on //p' "$out" | head -1)
      return
    fi
    sleep 0.1
  done
  echo "$name ($side) did not start; see $WORK/daemons-$side.log" >&2
  exit 1
}

declare -A master
for side in A B; do
  start "$side" dfs-master --listen 127.0.0.1:0 --data-dir "$WORK/master-$side"
  m=$url
  master[$side]=$m
  key=()
  if "${bin[$side]}/dfs-chunkserver" --help | grep -q -- --cluster-key-file; then
    for _ in $(seq 100); do [[ -s $WORK/master-$side/cluster.key ]] && break; sleep 0.1; done
    key=(--cluster-key-file "$WORK/master-$side/cluster.key")
  fi
  for i in 0 1 2; do
    start "$side" dfs-chunkserver --listen 127.0.0.1:0 --master "$m" --data-dir "$WORK/cs-$side-$i" "${key[@]}"
  done
  for _ in $(seq 300); do
    (($(curl -fs "$m/v1/chunkservers" | grep -o '"state":"live"' | wc -l) >= 3)) && break
    sleep 0.1
  done
  (($(curl -fs "$m/v1/chunkservers" | grep -o '"state":"live"' | wc -l) >= 3)) \
    || { echo "cluster $side: fewer than 3 live chunkservers; see $WORK/daemons-$side.log" >&2; exit 1; }
  mkdir -p "$WORK/mnt-$side"
  mounts+=("$WORK/mnt-$side")
  "${bin[$side]}/dfs-mount" --master "$m" "$WORK/mnt-$side"
  log "cluster $side at $m, mounted at $WORK/mnt-$side"
done

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
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

declare -A times
note() { # figure side seconds size unit
  times[$1-$2]+="$3 "
  log "round $r $1 $2: ${3}s ($(echo "scale=0; $4 / $3" | bc) $5)"
}

# One figure, both sides in this round's order.
put() { local s=$1; note put "$s" "$(timed "${bin[$s]}/dfs" --master "${master[$s]}" put "$SHM/put" "/put-$r")" "$PUT_MIB" MiB/s; }
get() {
  local s=$1
  note get "$s" "$(timed "${bin[$s]}/dfs" --master "${master[$s]}" get "/put-$r" "$SHM/got-$s")" "$PUT_MIB" MiB/s
  cmp -s "$SHM/put" "$SHM/got-$s" || { echo "get $s: bytes differ" >&2; exit 1; }
  rm -f "$SHM/got-$s"
  "${bin[$s]}/dfs" --master "${master[$s]}" rm "/put-$r" >/dev/null # keeps the disk from filling
}
mwrite() { local s=$1; note mount-write "$s" "$(timed dd if="$SHM/dd" of="$WORK/mnt-$s/dd-$r" bs=1M status=none)" "$DD_MIB" MiB/s; }
mread() {
  local s=$1
  sync
  echo 3 >/proc/sys/vm/drop_caches
  note mount-read "$s" "$(timed dd if="$WORK/mnt-$s/dd-$r" of=/dev/null bs=1M status=none)" "$DD_MIB" MiB/s
  rm -f "$WORK/mnt-$s/dd-$r"
}
creates() {
  local s=$1 out
  out=$("${bin[$s]}/dfs-meta-bench" --runs 3 --files-single "$META_SINGLE" --files-concurrent "$META_CONCURRENT" --dir "$WORK" 2>/dev/null)
  # Rows: | clients | files per run | creates/s | stats/s |
  for c in 1 32; do
    local v
    v=$(echo "$out" | awk -F'|' -v c="$c" '$2+0 == c && $2 ~ /[0-9]/ {gsub(/ /, "", $4); print $4}')
    times[creates$c-$s]+="$v "
    log "round $r creates with $c client(s) $s: $v creates/s"
  done
}

for r in $(seq "$ROUNDS"); do
  order=(A B); ((r % 2 == 0)) && order=(B A)
  log "round $r (order ${order[*]}), load average $(loadavg)"
  loads+=("round $r start: $(loadavg)")
  for figure in put get mwrite mread creates; do
    for s in "${order[@]}"; do "$figure" "$s"; done
  done
  loads+=("round $r end: $(loadavg)")
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Per-round ratios num/den of two lists of the same rounds, 3 decimals.
ratios() { paste -d' ' <(echo "$1" | tr ' ' '\n' | grep -v '^$') <(echo "$2" | tr ' ' '\n' | grep -v '^$') | awk '{printf "%.3f ", $1 / $2}'; }
echo "load average (1, 5, 15 min):"
printf '  %s\n' "${loads[@]}"
echo "Ratios: time B/A for the data figures, rate A/B for creates (above 1: the new build is slower)."
echo "| figure (medians of $ROUNDS rounds) | A: old | B: new | ratio of medians | median of per-round ratios | per-round ratios | all A | all B |"
echo "|---|---|---|---|---|---|---|---|"
for what in put get mount-write mount-read; do
  a=$(echo "${times[$what-A]}" | median)
  b=$(echo "${times[$what-B]}" | median)
  per=$(ratios "${times[$what-B]}" "${times[$what-A]}")
  size=$PUT_MIB name="\`dfs $what\` of $PUT_MIB MiB"
  [[ $what == mount-* ]] && size=$DD_MIB name="${what/-/ } of $DD_MIB MiB (dd bs=1M)"
  echo "| $name | $a s ($(echo "scale=0; $size / $a" | bc) MiB/s) | $b s ($(echo "scale=0; $size / $b" | bc) MiB/s) | $(echo "scale=3; $b / $a" | bc) | $(echo "$per" | median) | $per| ${times[$what-A]}| ${times[$what-B]}|"
done
for c in 1 32; do
  a=$(echo "${times[creates$c-A]}" | median)
  b=$(echo "${times[creates$c-B]}" | median)
  per=$(ratios "${times[creates$c-A]}" "${times[creates$c-B]}")
  echo "| creates/s, $c client(s) | $a | $b | $(echo "scale=3; $a / $b" | bc) | $(echo "$per" | median) | $per| ${times[creates$c-A]}| ${times[creates$c-B]}|"
done
