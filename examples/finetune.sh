#!/usr/bin/env bash
# Fine-tune the default model on captioned clips, then embed with the new checkpoint.
# The "own data" here is the six example clips with captions (examples/data/captions.jsonl);
# use your manifest instead, and more steps (finetune.yaml: 500).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OUT=${OUT:-build/finetune}
STEPS=${STEPS:-20}
mkdir -p "$OUT"

echo "== the manifest: one JSON line per clip, audio relative to the manifest, captions" >&2
head -n 1 examples/data/captions.jsonl

echo "== fine-tune: examples/configs/finetune.yaml starts from the default model (init_from: default)" >&2
clsp train examples/configs/finetune.yaml data.train=examples/data/captions.jsonl \
    --output-dir "$OUT/my-voices" --max-steps "$STEPS" -q

echo "== embed with the new checkpoint (a checkpoint is a model directory)" >&2
MODEL="$OUT/my-voices/checkpoints/step-$(printf %08d "$STEPS")/model"
clsp embed examples/data/clips.jsonl --model "$MODEL" -o "$OUT/clips.emb.jsonl" -q
head -n 1 "$OUT/clips.emb.jsonl" | python3 -c 'import json, sys; print(json.dumps(json.loads(sys.stdin.read())["provenance"]))'
