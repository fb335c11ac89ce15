# One entry point for building, running and testing Cairn (see README.md).
SHELL := /bin/bash
export CAIRN_CACHE_DIR ?= $(HOME)/.cache/cairn
# The cargo target dir lives outside the clone so a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR ?= $(CAIRN_CACHE_DIR)/cargo-target
export CAIRN_TEST_PYTHON ?= $(CAIRN_CACHE_DIR)/py/bin/python

.PHONY: setup setup-test run build test test-rust test-lsp lint bench-models fmt

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

build:
	cargo build --release -p cairn

# Cairn's main job on the embedded default model: chat over the current repository.
run:
	CAIRN_PROFILE=release scripts/setup.sh
	$(CARGO_TARGET_DIR)/release/cairn chat

# The whole test suite, as CI runs it.
test: setup-test lint test-rust test-lsp

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -q -- -D warnings

# Keyring tests need a store: the kernel keyring in a session of its own (keyctl).
test-rust:
	CAIRN_KEYRING=keyutils keyctl session cairn-test cargo test --workspace
	dbus-run-session -- bash -c 'echo -n cairn | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null && CAIRN_KEYRING=secret-service cargo test -p cairn-models --test keyring'

# `cairn lsp` through real clients: pytest-lsp with Neovim and VS Code capability profiles,
# raw JSON-RPC bad input, headless Neovim 0.11 with editors/nvim, a Node client (tests/lsp);
# and the VS Code extension must compile.
test-lsp:
	cargo build -p cairn
	editors/vscode/node_modules/.bin/tsc -p editors/vscode
	$(CAIRN_TEST_PYTHON) -m pytest tests/lsp -q

bench-models:
	bench/models/run

fmt:
	cargo fmt --all
