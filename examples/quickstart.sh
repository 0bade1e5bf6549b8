#!/usr/bin/env bash
# Set up clsp (if needed) and run the main job on the embedded default model, offline:
# embed six example clips, index them, find voices by description, classify them zero-shot
# and compare two of them.
set -euo pipefail
cd "$(dirname "$0")/.."
examples/setup_env.sh
export HF_HUB_OFFLINE=1 PATH="$PWD/.venv/bin:$PATH"
D=examples/data
OUT=${OUT:-build/quickstart}
mkdir -p "$OUT"

echo "== embed: speech -> style embeddings (unit vectors in the joint space)" >&2
clsp embed $D/clips.jsonl -o "$OUT/clips.emb.jsonl" -q
head -c 300 "$OUT/clips.emb.jsonl"; echo " ..."

echo "== search: index the clips, then query by description" >&2
clsp search build "$OUT/clips.emb.jsonl" -o "$OUT/clips.idx" -q
clsp search query "$OUT/clips.idx" --text "an angry, loud female voice" -k 3 -q

echo "== classify: zero-shot gender and emotion, scored against the labels" >&2
clsp classify $D/clips.jsonl --pack gender --label-key gender -q | cut -c1-200
clsp classify $D/clips.jsonl --pack emodb --label-key emotion -q | cut -c1-200

echo "== similarity: two clips, and a clip against a caption" >&2
clsp similarity $D/03a01Wa.flac $D/13a01Wb.flac -q
clsp similarity $D/09a01Nb.flac "a calm young woman speaking at a normal pace" -q
