#!/usr/bin/env bash
# Materialises one checkout per instance of swebench_dev.jsonl at its base_commit:
#   OUT/<instance_id>/...   (git archive of the mirror at base_commit)
# Mirrors are bare clones under MIRRORS/<owner>+<name>/repo (e.g. made with
# `git clone --mirror https://github.com/psf/requests MIRRORS/psf+requests/repo`).
# Usage: bench/retrieval/checkouts.sh DATA.jsonl MIRRORS OUT
set -euo pipefail
data=${1:?jsonl}; mirrors=${2:?mirror dir}; out=${3:?output dir}
mkdir -p "$out"
python3 - "$data" <<'PY' | while read -r id repo commit; do
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r["instance_id"], r["repo"], r["base_commit"])
PY
  dest="$out/$id"
  [ -d "$dest" ] && continue
  git_dir="$mirrors/${repo/\//+}/repo"
  mkdir -p "$dest"
  if ! git --git-dir="$git_dir" archive "$commit" | tar -x -C "$dest"; then
    echo "missing $repo@$commit" >&2
    rmdir "$dest" 2>/dev/null || true
  fi
done
echo "checkouts in $out: $(ls "$out" | wc -l)"
