# The two commands of the README:
#   make run    build and run a local dfs (installs missing Debian packages first);
#               make run TLS=1 runs it over TLS
#   make test   build everything and run the whole test suite (and a 2-minute soak),
#               after make lint
#   make lint   cargo fmt --check, and clippy with every warning an error
#   make soak   a mixed workload under seeded faults (DFS_SOAK_SECS, default 1800;
#               DFS_FAULT_SEED=N replays a schedule); see docs/RELIABILITY.md
#   make fuzz   every request decoder fuzzed for longer than the suite does
#               (DFS_FUZZ_CASES per target, default 200000; DFS_FUZZ_SEED=N
#               replays a run); see tests/tests/fuzz/main.rs
#   make sim    the deterministic cluster simulator on more seeds than the suite
#               runs (SEEDS=N, default 100000; FIRST=N starts there; a failing
#               seed replays with DFS_SIM_SEED=N); see tests/src/sim/mod.rs
#   make sim-scale  the chunk engine alone at 1,000 chunkservers and 10M chunks
#               (a few minutes, ~3 GiB); see docs/BENCHMARKS.md
#   make posix-diff  the mount against a local disk on a long random sequence
#               of operations (DIFF_OPS=N, default 50000; DFS_TEST_SEED=N
#               replays one); see tests/tests/mount_differential.rs
SHELL := /bin/bash
CARGO ?= cargo
# Link Debian's RocksDB instead of compiling it (see docs/ARCHITECTURE.md).
export ROCKSDB_LIB_DIR ?= /usr/lib/$(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run test lint deps build bench soak fuzz sim sim-scale posix-diff

deps:
	@bash deploy/install-deps.sh

build: deps
	$(CARGO) build --workspace --bins

# make run TLS=1: the same cluster over TLS (certificates made for you).
# make run MASTERS=3: three masters as a Raft group instead of one.
run: build
	DFS_TLS=$(or $(TLS),$(DFS_TLS),0) DFS_MASTERS=$(or $(MASTERS),$(DFS_MASTERS),1) BIN_DIR=$(TARGET_DIR)/debug bash deploy/local-cluster.sh

# Style as the tools check it, before any test: rustfmt (rustfmt.toml; `cargo
# fmt` fixes what it reports) and clippy on every crate and target (which lints
# in Cargo.toml's [workspace.lints], settings in clippy.toml).
lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Binaries first: the end-to-end tests start them as real processes.
# Then the soak for 2 minutes (it is #[ignore]d, so plain `cargo test` skips it).
test: deps lint
	$(CARGO) build --workspace --bins --tests
	$(CARGO) test --workspace --no-fail-fast
	DFS_SOAK_SECS=120 $(CARGO) test -p dfs-tests --test soak -- --ignored --nocapture

# The long soak: 30 minutes unless DFS_SOAK_SECS says otherwise.
soak: build
	DFS_SOAK_SECS=$${DFS_SOAK_SECS:-1800} $(CARGO) test -p dfs-tests --test soak -- --ignored --nocapture

# The fuzz target with many more cases than `make test` runs (a few minutes).
fuzz: build
	DFS_FUZZ_CASES=$${DFS_FUZZ_CASES:-200000} $(CARGO) test -p dfs-tests --test fuzz -- --nocapture

# No processes: the engine and a simulated cluster in one test binary.
sim: deps
	DFS_SIM_SEEDS=$${SEEDS:-100000} DFS_SIM_FIRST=$${FIRST:-0} $(CARGO) test -p dfs-tests --test sim seeds_hold_every_invariant -- --nocapture

sim-scale: deps
	$(CARGO) test -p dfs-tests --test sim scale -- --ignored --nocapture

posix-diff: build
	DFS_DIFF_OPS=$${DIFF_OPS:-50000} $(CARGO) test -p dfs-tests --test mount_differential -- --nocapture

bench: build
	$(TARGET_DIR)/debug/dfs-meta-bench --runs 3
	$(TARGET_DIR)/debug/dfs-data-bench --runs 3
	$(TARGET_DIR)/debug/dfs-shell-bench --runs 3
	$(TARGET_DIR)/debug/dfs-tls-bench --runs 3
	$(TARGET_DIR)/debug/dfs-mount-meta-bench --runs 3
	$(TARGET_DIR)/debug/dfs-webhdfs-bench --runs 3
