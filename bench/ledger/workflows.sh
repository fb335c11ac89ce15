#!/bin/sh
# Workflow benchmark: blame and check on a 1,000-commit history with squash-merges and
# cherry-picks, and the time the git hooks add to a commit beside a plain commit.
# Usage: bench/ledger/workflows.sh [--commits N] [--samples N] [--keep | --reuse DIR] [--hook-bin PATH]
# BENCH_DIR picks the disk (default: the system temp dir); CAIRN_BIN (a built `cairn`)
# adds a row for the binary's start-up.
set -eu
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p cairn-provenance --example workflow_bench -- "$@"
