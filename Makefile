# The two commands of the README:
#   make run    build and run a local dfs (installs missing Debian packages first)
#   make test   build everything and run the whole test suite
SHELL := /bin/bash
CARGO ?= cargo
# Link Debian's RocksDB instead of compiling it (see docs/ARCHITECTURE.md).
export ROCKSDB_LIB_DIR ?= /usr/lib/$(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run test deps build bench

deps:
	@bash deploy/install-deps.sh

build: deps
	$(CARGO) build --workspace --bins

run: build
	BIN_DIR=$(TARGET_DIR)/debug bash deploy/local-cluster.sh

# Binaries first: the end-to-end tests start them as real processes.
test: deps
	$(CARGO) build --workspace --bins --tests
	$(CARGO) test --workspace --no-fail-fast

bench: build
	$(TARGET_DIR)/debug/dfs-meta-bench --runs 3
	$(TARGET_DIR)/debug/dfs-data-bench --runs 3
	$(TARGET_DIR)/debug/dfs-shell-bench --runs 3
