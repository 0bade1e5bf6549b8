#!/usr/bin/env bash
# Regenerate the README's example figures and listening-page screenshot from examples/data
# with the default model (and a tiny training run for the curves). Needs Chromium for the
# screenshot. Usage: docs/images/make.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
IMG=$PWD/docs/images
D=$PWD/examples/data
W=${1:-build/readme-images}
mkdir -p "$W"
cd "$W"

# the example clips with absolute paths, so index hits open from anywhere
python - "$D" <<'PY'
import itertools, json, sys
base = sys.argv[1]
recs = [json.loads(line) for line in open(f"{base}/clips.jsonl")]
with open("clips.jsonl", "w") as f:
    for r in recs:
        f.write(json.dumps({**r, "audio": f"{base}/{r['audio']}"}) + "\n")
with open("pairs.jsonl", "w") as f:  # rating: labels the two clips share (0-3), a stand-in for human ratings
    for n, (a, b) in enumerate(itertools.combinations(recs, 2)):
        shared = sum(a[k] == b[k] for k in ("speaker", "gender", "emotion"))
        kind = "same gender" if a["gender"] == b["gender"] else "other gender"
        f.write(json.dumps({"id": f"{a['id']}~{b['id']}", "a": f"{base}/{a['audio']}", "b": f"{base}/{b['audio']}",
                            "shared_labels": shared, "kind": kind}) + "\n")
with open("captions.jsonl", "w") as f:
    for r in recs:
        f.write(json.dumps({"id": f"cap-{r['id']}", "text": f"a {r['gender']} speaker, sounding {r['emotion']}",
                            "audio_id": r["id"]}) + "\n")
PY

clsp embed clips.jsonl -o clips.emb.jsonl -q
clsp embed captions.jsonl --modality text -o captions.emb.jsonl -q
clsp classify clips.jsonl --pack emodb --label-key emotion --plot "$IMG/confusion.png" --html miss.html -q > /dev/null
clsp similarity pairs.jsonl --human-key shared_labels --group-key kind --plot "$IMG/similarity.png" -q > /dev/null
clsp search eval --speech clips.emb.jsonl --captions captions.emb.jsonl --plot "$IMG/recall.png" -q > /dev/null
clsp plot map clips.emb.jsonl --color-by emotion -o "$IMG/map.png" -q
clsp search build clips.emb.jsonl -o clips.idx -q > /dev/null
clsp search query clips.idx --text "an angry, loud voice" -k 3 --html hits.html -q > /dev/null

python -m clsp.train.toy_corpus toy
clsp train "$OLDPWD/examples/configs/tiny.yaml" --output-dir tiny-run valid_every=10 -q
clsp plot run tiny-run -o "$IMG/curves.png" -q

if command -v chromium > /dev/null; then
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --mute-audio --virtual-time-budget=5000 \
    --window-size=900,700 --screenshot="$IMG/listening.png" "file://$PWD/hits.html" 2> /dev/null
fi
