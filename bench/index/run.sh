#!/usr/bin/env bash
# Index benchmarks on a real corpus (default: the crate sources cargo downloaded),
# with ripgrep reading the same tree as the floor, in one run.
# Usage: bench/index/run.sh [CORPUS]
# The corpus is copied to a temp dir first: the edit-latency step writes to files.
set -euo pipefail
src=${1:-$HOME/.cargo/registry/src}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cairn/cargo-target}
work=$(mktemp -d /tmp/cairn-index-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/corpus"
corpus="$work/corpus"
echo "corpus: $src ($(du -sh "$corpus" | cut -f1) on disk, $(find "$corpus" -type f | wc -l) files)"
cargo build --release -q -p cairn-indexer --example index_bench
# Floor: ripgrep lists (same ignore rules) and cat reads every file; then a
# ripgrep search for a string that occurs nowhere. Warm cache for both.
(cd "$corpus" && rg --files | xargs -d '\n' cat > /dev/null)
t0=$(date +%s.%N)
(cd "$corpus" && rg --files | xargs -d '\n' cat | wc -c) > "$work/bytes"
t1=$(date +%s.%N)
(cd "$corpus" && rg -c 'zqxj_cairn_never_here' > /dev/null) || true
t2=$(date +%s.%N)
bytes=$(cat "$work/bytes")
python3 - "$bytes" "$t0" "$t1" "$t2" <<'PY'
import sys
b, t0, t1, t2 = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"floor: rg --files | xargs cat: {b/1e6:.0f} MB in {t1-t0:.2f} s = {b/1e6/(t1-t0):.0f} MB/s")
print(f"floor: rg rare string: {t2-t1:.2f} s = {b/1e6/(t2-t1):.0f} MB/s")
PY
# stderr (logs, a panic) and time's report share a file; show it if the bench fails.
if ! /usr/bin/time -v "$CARGO_TARGET_DIR/release/examples/index_bench" --corpus "$corpus" "${@:2}" 2> "$work/time"; then
    tail -40 "$work/time" >&2
    exit 1
fi
grep -E "Maximum resident|Elapsed" "$work/time"
