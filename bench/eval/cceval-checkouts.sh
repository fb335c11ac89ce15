#!/usr/bin/env bash
# Materialises one checkout per repository of a CrossCodeEval file at its commit:
#   OUT/<metadata.repository>/...   e.g. OUT/turboderp-exllama-a544085/
# metadata.repository is "<owner>-<name>-<sha7>"; mirrors are bare clones under
# MIRRORS/<owner>+<name>/repo (e.g. `git clone --mirror https://github.com/turboderp/exllama
# MIRRORS/turboderp+exllama/repo`). Owner and name may both hold dashes, so the mirror is
# found by matching "<owner>-<name>" against every MIRRORS/<owner>+<name>.
# Usage: bench/eval/cceval-checkouts.sh DATA.jsonl MIRRORS OUT
set -euo pipefail
data=${1:?jsonl}; mirrors=${2:?mirror dir}; out=${3:?output dir}
mkdir -p "$out"
missing=0
for repo in $(python3 -c '
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)["metadata"]["repository"]
    if r not in seen:
        seen.add(r); print(r)
' "$data"); do
  dest="$out/$repo"
  [ -d "$dest" ] && continue
  name=${repo%-*}; commit=${repo##*-}
  git_dir=""
  for m in "$mirrors"/*+*/repo; do
    d=$(basename "$(dirname "$m")")
    if [ "${d/+/-}" = "$name" ]; then git_dir=$m; break; fi
  done
  if [ -z "$git_dir" ]; then
    echo "no mirror for $repo under $mirrors" >&2; missing=$((missing + 1)); continue
  fi
  mkdir -p "$dest"
  if ! git --git-dir="$git_dir" archive "$commit" | tar -x -C "$dest"; then
    echo "missing $repo: commit $commit not in $git_dir" >&2
    rm -rf "$dest"; missing=$((missing + 1))
  fi
done
echo "checkouts in $out: $(ls "$out" | wc -l) ($missing missing)"
