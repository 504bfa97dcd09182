#!/usr/bin/env bash
# Installs the Debian packages dfs needs to build, test and run, saying what
# it installs; does nothing when they are all present.
#   build: libclang-dev (RocksDB's bindings are generated with bindgen),
#          librocksdb-dev (RocksDB itself, linked instead of compiled: see
#          docs/ARCHITECTURE.md), pkg-config, gcc/g++
#   tests: curl (API checks in scripts); for the FUSE mount tests fuse3
#          (/dev/fuse helpers: fusermount3), git, sqlite3, rsync, tar,
#          diffutils (cmp, diff) and util-linux (setpriv, umount); chromium
#          (headless, for the dashboard's browser test)
#          e2fsprogs (mkfs.ext4: the disk-error, power-cut and soak tests put
#          chunkservers on ext4 filesystems of their own, on loop devices)
#          python3 (system calls as another user in the mount's xattr test)
#          and libcap2-bin (setcap: capabilities a write must drop)
#          python3-venv and, in ~/.cache/dfs/pyvenv, the WebHDFS clients the
#          WebHDFS tests drive (HdfsCLI and fsspec, pinned in
#          tests/python/requirements.txt, from PyPI)
#   lint:  the rustfmt and clippy components of the Rust toolchain, added
#          with rustup when they are missing
set -euo pipefail

# Before the Debian packages, which return early when all are present. The
# Debian toolchain is too old for this workspace (see rust-version in
# Cargo.toml), so without rustup the toolchain's owner must add them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if ! command -v rustup >/dev/null; then
    echo "install-deps: cargo fmt and cargo clippy are missing, and there is no rustup to add them" >&2
    exit 1
  fi
  echo "install-deps: adding the Rust components rustfmt and clippy" >&2
  rustup component add rustfmt clippy
fi

PACKAGES=(libclang-dev librocksdb-dev pkg-config g++ curl fuse3 git sqlite3 rsync tar diffutils util-linux chromium e2fsprogs python3 python3-venv libcap2-bin)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The Python clients, after the packages (python3-venv) are in.
python_clients() {
  local dir=${DFS_PYVENV:-$HOME/.cache/dfs/pyvenv}
  local reqs
  reqs=$(dirname "$0")/../tests/python/requirements.txt
  if [[ -x $dir/bin/python ]] && cmp -s "$reqs" "$dir/requirements.txt"; then
    return 0
  fi
  echo "install-deps: installing the WebHDFS test clients in $dir" >&2
  rm -rf "$dir"
  /usr/bin/python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check -r "$reqs"
  cp "$reqs" "$dir/requirements.txt"
}

if ((${#missing[@]} == 0)); then
  python_clients
  exit 0
fi
SUDO=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "install-deps: installing Debian packages: ${missing[*]}" >&2
"${SUDO[@]}" apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
python_clients
echo "install-deps: done" >&2
