#!/bin/sh
# Ledger benchmark: appends/s with fsync, verify throughput, report over 1,000 commits / 100,000 records.
# Usage: bench/ledger/run.sh [--records N] [--commits N] [--appends N]
# BENCH_DIR picks the disk the ledger is written to (default: the system temp dir).
set -eu
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p cairn-provenance --example ledger_bench -- "$@"
