# One entry point for building, running and testing Cairn (see README.md).
SHELL := /bin/bash
export CAIRN_CACHE_DIR ?= $(HOME)/.cache/cairn
# The cargo target dir lives outside the clone so a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR ?= $(CAIRN_CACHE_DIR)/cargo-target
# Incremental state is ~3 GB per profile and buys nothing on a fresh clone; `cargo` run by
# hand keeps its default.
export CARGO_INCREMENTAL ?= 0
export CAIRN_TEST_PYTHON ?= $(CAIRN_CACHE_DIR)/py/bin/python
# llama.cpp built for this machine's CPU (AVX-512 where it has it) and at -O3, except for the
# desktop bundle, which runs elsewhere (scripts/llama-build-env says why and what it measured).
export CAIRN_PORTABLE_BUILD ?= $(if $(filter bundle-desktop,$(MAKECMDGOALS)),1,0)
$(foreach kv,$(shell CAIRN_PORTABLE_BUILD=$(CAIRN_PORTABLE_BUILD) scripts/llama-build-env),$(eval export $(kv)))

.PHONY: setup setup-test run run-chat run-desktop build test test-rust test-lsp test-mcp test-desktop lint bench-mcp bench-models bench-desktop bundle-desktop fmt

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

build:
	cargo build --release -p cairn

# Cairn's main job on the embedded default model: chat over the current repository, in the
# desktop window where there is a display, else in the terminal.
run:
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(MAKE) --no-print-directory run-desktop; else $(MAKE) --no-print-directory run-chat; fi

run-chat:
	CAIRN_PROFILE=release scripts/setup.sh
	$(CARGO_TARGET_DIR)/release/cairn chat

# The desktop window (src-tauri, ui) on this repository. DESKTOP_PROFILE=debug builds faster.
DESKTOP_PROFILE ?= release
run-desktop:
	CAIRN_PROFILE=$(DESKTOP_PROFILE) CAIRN_DESKTOP=1 scripts/setup.sh
	cargo build $(if $(filter release,$(DESKTOP_PROFILE)),--release) -p cairn-desktop
	$(CARGO_TARGET_DIR)/$(DESKTOP_PROFILE)/cairn-desktop $(CURDIR)

# The whole test suite, as CI runs it.
test: setup-test lint test-rust test-lsp test-mcp test-desktop

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

# `cairn mcp` through the official MCP Python SDK (stdio and streamable HTTP), checked against
# the CLI on the same fixture repositories; bad input on the raw wire (tests/mcp, ~30 s).
test-mcp:
	cargo build -p cairn
	$(CAIRN_TEST_PYTHON) -m pytest tests/mcp -q

# The desktop window: the UI's unit tests (Vitest), then the app end to end in a real
# WebKitGTK window through tauri-driver + WebKitWebDriver on a virtual display (tests/desktop).
# CAIRN_UPDATE_DOCS=1 also refreshes the screenshots in docs/.
test-desktop:
	cd ui && npm test --silent && npm run build --silent
	cargo build -p cairn
	cargo build -p cairn-desktop
	xvfb-run -a -s "-screen 0 1280x860x24" dbus-run-session -- $(CAIRN_TEST_PYTHON) -m pytest tests/desktop -q

# Tool-call latency through MCP (stdio, the Python SDK) against the same engine calls in-process.
bench-mcp:
	bench/mcp/run

bench-models:
	bench/models/run

bench-desktop:
	bench/desktop/run

# The .deb (and the AppImage: BUNDLES=deb,appimage; its tools are downloaded from GitHub at
# build time), with `cairn` bundled as a Tauri sidecar; setup installs the Tauri CLI into
# $(CAIRN_CACHE_DIR)/tools. Output: $(CARGO_TARGET_DIR)/release/bundle/. See docs/desktop.md.
BUNDLES ?= deb
bundle-desktop:
	CAIRN_PROFILE=release CAIRN_DESKTOP=1 CAIRN_BUNDLE=1 scripts/setup.sh
	mkdir -p src-tauri/binaries
	cp $(CARGO_TARGET_DIR)/release/cairn src-tauri/binaries/cairn-$$(rustc -vV | sed -n 's/^host: //p')
	cd src-tauri && PATH="$(CAIRN_CACHE_DIR)/tools/bin:$$PATH" cargo tauri build --config tauri.bundle.conf.json --bundles $(BUNDLES)

fmt:
	cargo fmt --all
