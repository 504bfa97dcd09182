#!/usr/bin/env bash
# Runs a local dfs cluster in the foreground with all data under one
# directory (default .dfs-local/ in the checkout): one master on
# 127.0.0.1:9870 and three chunkservers on 127.0.0.1:9866-9868, and, when
# /dev/fuse is there, a FUSE mount of it at $ROOT/mnt (DFS_MOUNT=0: none).
# The master makes the cluster key ($ROOT/master/cluster.key, or the file
# DFS_CLUSTER_KEY_FILE names) on its first start; the chunkservers are
# given the same file. Its first start also makes the first admin, named
# after you ($USER), with $ROOT/master/admin.credentials; that file is
# copied to ~/.config/dfs/credentials (unless one made by hand is there),
# where the shell finds it, and the mount logs in with it (mounted by root,
# it lets every local user in, each with their own permissions).
# DFS_AUTH=none runs without users (anyone is the superuser: throwaway
# clusters only). DFS_TLS=1 (make run TLS=1) runs it all over TLS: a
# cluster CA and a certificate per daemon are made in $ROOT/tls on the
# first such start (dfs admin certs), the CA is copied to
# ~/.config/dfs/ca.pem (unless one made by hand is there) for the shell,
# and the master is https://$DFS_LISTEN. DFS_MASTERS=3 (make run MASTERS=3)
# runs three masters as a Raft group instead, on the next ports
# (9870-9872; data in $ROOT/master, $ROOT/master2, $ROOT/master3), with a
# cluster key made up front (every master needs the same one); the shell,
# mount and chunkservers are given all three and follow the leader.
# Ctrl-C stops everything cleanly.
# Expects the binaries in $BIN_DIR.
set -euo pipefail

ROOT=${DFS_LOCAL_DIR:-.dfs-local}
BIN_DIR=${BIN_DIR:-target/debug}
MASTER=${DFS_LISTEN:-127.0.0.1:9870}
CS_PORTS=(9866 9867 9868)
KEY=${DFS_CLUSTER_KEY_FILE:-$ROOT/master/cluster.key}
CRED=$ROOT/master/admin.credentials
ADMIN=$(id -un 2>/dev/null || echo admin)
NMASTERS=${DFS_MASTERS:-1}
[[ $NMASTERS =~ ^[1-7]$ ]] || { echo "DFS_MASTERS must be 1 to 7, not $NMASTERS" >&2; exit 2; }
mkdir -p "$ROOT"
# Master i's data directory and listening address (the first is $MASTER).
master_dir() { if (($1 == 1)); then echo "$ROOT/master"; else echo "$ROOT/master$1"; fi; }
master_addr() { echo "${MASTER%:*}:$((${MASTER##*:} + $1 - 1))"; }

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

# TLS: the CA and each daemon's certificate, made once; tls_flags NAME
# puts NAME's flags in TLS_FLAGS (none without TLS).
TLS_DIR=$ROOT/tls
TLS_FLAGS=()
tls_flags() { TLS_FLAGS=(); }
url="http://$MASTER"
curl_tls=()
tls_msg="  TLS:        off (make run TLS=1 turns it on)"
if [[ ${DFS_TLS:-0} == 1 ]]; then
  [[ -e $TLS_DIR/ca.pem ]] || "$BIN_DIR/dfs" admin certs ca "$TLS_DIR" --cluster local
  hosts=127.0.0.1,localhost
  [[ ${MASTER%:*} == 127.0.0.1 || ${MASTER%:*} == localhost ]] || hosts="${MASTER%:*},$hosts"
  names=(cs0 cs1 cs2 master)
  for ((i = 2; i <= NMASTERS; i++)); do names+=("master$i"); done
  for name in "${names[@]}"; do
    [[ -e $TLS_DIR/$name.pem ]] || "$BIN_DIR/dfs" admin certs node "$TLS_DIR" "$name" --hosts "$hosts"
  done
  tls_flags() { TLS_FLAGS=(--tls-cert "$TLS_DIR/$1.pem" --tls-key "$TLS_DIR/$1.key" --tls-ca "$TLS_DIR/ca.pem"); }
  url="https://$MASTER"
  curl_tls=(--cacert "$TLS_DIR/ca.pem")
  tls_msg="  TLS:        on; the cluster CA is $TLS_DIR/ca.pem (--tls-ca, DFS_TLS_CA or ~/.config/dfs/ca.pem)"
  export DFS_TLS_CA=$TLS_DIR/ca.pem
  # The shell's default CA: this cluster's, unless one was put there by hand.
  home_ca=$HOME/.config/dfs/ca.pem
  if [[ ! -e $home_ca || -e $home_ca.local-cluster ]]; then
    mkdir -p "$(dirname "$home_ca")"
    cp "$TLS_DIR/ca.pem" "$home_ca.new" && mv "$home_ca.new" "$home_ca" && echo "$(cd "$ROOT" && pwd)" > "$home_ca.local-cluster"
  fi
fi
scheme=${url%%://*}
raft_flags=()
if ((NMASTERS > 1)); then
  # Several masters: the same cluster key for all, and the masters' own
  # Raft key, made before any starts.
  RAFT_KEY=$ROOT/raft.key
  for k in "$KEY" "$RAFT_KEY"; do
    [[ -e $k ]] && continue
    mkdir -p "$(dirname "$k")"
    (umask 077; "$BIN_DIR/dfs-master" keygen > "$k.new" && mv "$k.new" "$k")
  done
  peers=() urls=()
  for ((i = 1; i <= NMASTERS; i++)); do peers+=("$i=$scheme://$(master_addr "$i")"); urls+=("$scheme://$(master_addr "$i")"); done
  url=$(IFS=,; echo "${urls[*]}")
fi
first_url=$scheme://$MASTER
for ((i = 1; i <= NMASTERS; i++)); do
  if ((i == 1)); then tls_flags master; else tls_flags "master$i"; fi
  ((NMASTERS > 1)) && raft_flags=(--raft-id "$i" --raft-peers "$(IFS=,; echo "${peers[*]}")" --raft-key-file "$RAFT_KEY")
  "$BIN_DIR/dfs-master" --listen "$(master_addr "$i")" --data-dir "$(master_dir "$i")" --cluster-key-file "$KEY" \
    --admin-user "$ADMIN" --auth "${DFS_AUTH:-users}" ${TLS_FLAGS[@]+"${TLS_FLAGS[@]}"} ${raft_flags[@]+"${raft_flags[@]}"} &
  pids+=($!)
done
# The first leader makes the admin's credentials in its data directory.
for _ in $(seq 300); do
  for ((i = 1; i <= NMASTERS; i++)); do
    [[ -s $(master_dir "$i")/admin.credentials ]] && CRED=$(master_dir "$i")/admin.credentials
  done
  [[ -s $CRED ]] && curl -s ${curl_tls[@]+"${curl_tls[@]}"} -o /dev/null "$first_url/v1/auth/login" && break
  sleep 0.1
done
# The shell's default credentials: this cluster's admin, unless the file
# there was not made by this script.
mine="# made by dfs local-cluster"
home_cred=$HOME/.config/dfs/credentials
if [[ ! -e $home_cred ]] || head -n1 "$home_cred" | grep -q "^$mine"; then
  mkdir -p "$(dirname "$home_cred")"
  (umask 077; { echo "$mine ($(cd "$ROOT" && pwd))"; cat "$CRED"; } > "$home_cred.new" && mv "$home_cred.new" "$home_cred")
  cred_msg="  you are:    $ADMIN, the admin (~/.config/dfs/credentials; more users: dfs admin user add NAME)"
else
  cred_msg="  you are:    export DFS_CREDENTIALS=$CRED   (~/.config/dfs/credentials is someone else's)"
fi
for i in 0 1 2; do
  tls_flags "cs$i"
  "$BIN_DIR/dfs-chunkserver" --listen "127.0.0.1:${CS_PORTS[$i]}" --master "$url" --data-dir "$ROOT/cs$i" --cluster-key-file "$KEY" ${TLS_FLAGS[@]+"${TLS_FLAGS[@]}"} &
  pids+=($!)
done
for _ in $(seq 100); do
  live=$("$BIN_DIR/dfs" --master "$url" --credentials "$CRED" admin report --json 2>/dev/null | grep -o '"state":"live"' | wc -l || true)
  ((live >= 3)) && break
  sleep 0.1
done
bin=$(cd "$BIN_DIR" && pwd)
mount_msg="  mount:      none (no /dev/fuse, or DFS_MOUNT=0)"
if [[ ${DFS_MOUNT:-1} != 0 && -c /dev/fuse ]]; then
  mnt=$ROOT/mnt
  mkdir -p "$mnt"
  "$BIN_DIR/dfs-mount" --foreground --master "$url" --credentials "$CRED" "$mnt" 2>"$ROOT/mount.log" &
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

dfs is running: $NMASTERS master(s), ${live:-0} live chunkservers (data in $ROOT/, Ctrl-C to stop)
  dashboard:  $first_url/
  API:        $first_url/v1/   (see README.md)
$cred_msg
$tls_msg
  shell:      export PATH=$bin:\$PATH DFS_MASTER=$url
              dfs mkdir -p /demo && dfs put README.md /demo/ && dfs ls -R /
              dfs admin report
$mount_msg

MSG
wait
