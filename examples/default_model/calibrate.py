"""Fit the model's logit scale so that zero-shot probabilities mean what they say.

Zero-shot probabilities are ``softmax(exp(logit_scale) * cosine)`` over prompt classes
(clsp.zeroshot). The scale learned in contrastive training sharpens batches of hundreds
of captions, and over two or seven prompt classes it makes nearly every answer look
certain. This script chooses the scale that minimises the negative log-likelihood of the
true class (temperature scaling, Guo et al., ICML 2017) for zero-shot gender and emotion
on the original clips of EmoDB's training speakers only (held-out speakers never enter
the fit), and writes a copy of the model with that scale. Rankings and labels do not
change; only the probabilities do.

    python calibrate.py --model build/default_model/exp/model \
        --emodb build/default_model/emodb/train_audio.jsonl --out build/default_model/exp/calibrated
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import GENDER_PROMPTS, embed_clips, prompts_from  # noqa: E402
from jsonl import read_jsonl  # noqa: E402
from prepare_emodb import EMOTION_PHRASES  # noqa: E402

SCALES = np.geomspace(1.0, 100.0, 400)


def fit_scale(tasks: list[tuple[np.ndarray, np.ndarray]], scales: np.ndarray = SCALES) -> float:
    """The softmax scale among ``scales`` with the least mean NLL over all tasks' clips.

    ``tasks``: (cosines ``(N, C)``, true class index ``(N,)``) per task."""
    def nll(s: float) -> float:
        total, count = 0.0, 0
        for cos, y in tasks:
            z = s * cos
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            total += -logp[np.arange(len(y)), y].sum()
            count += len(y)
        return total / count

    return float(scales[int(np.argmin([nll(s) for s in scales]))])


def task_cosines(model, audio: np.ndarray, labels: list[str], classes: dict[str, list[str]]):
    """Cosines to each prompt class ``(N, C)`` and the index of each clip's true class."""
    from clsp.prompts.schema import PromptClass, PromptSet
    from clsp.zeroshot import ZeroShotClassifier

    prompt_set = PromptSet(attribute="x", classes=tuple(PromptClass(n, tuple(p)) for n, p in classes.items()))
    cos = ZeroShotClassifier.from_model(model, prompt_set).cosines(audio)
    names = list(classes)
    return cos, np.array([names.index(v) for v in labels])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--emodb", required=True, type=Path, help="EmoDB training manifest (augmented copies are skipped)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    import clsp
    from safetensors.torch import load_file, save_file

    rows = [r for r in read_jsonl(args.emodb) if "augment" not in r]
    model = clsp.load_model(str(args.model))
    audio = embed_clips(model, rows)
    emotion = prompts_from(EMOTION_PHRASES, ["{who} speaks German in {}.", "{who} speaks with {}."])
    tasks = [task_cosines(model, audio, [r["gender"] for r in rows], GENDER_PROMPTS),
             task_cosines(model, audio, [r["emotion"] for r in rows], emotion)]
    before = math.exp(float(model.logit_scale.detach()))
    scale = fit_scale(tasks)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.model / "config.json", args.out / "config.json")
    weights = load_file(str(args.model / "model.safetensors"))
    weights["logit_scale"] = weights["logit_scale"].new_tensor(math.log(scale))
    from safetensors import safe_open

    with safe_open(str(args.model / "model.safetensors"), "pt") as fh:
        metadata = fh.metadata()
    save_file(weights, str(args.out / "model.safetensors"), metadata=metadata)
    report = {"clips": len(rows), "scale_before": before, "scale_after": scale}
    (args.out / "calibration.json").write_text(json.dumps(report, indent=1))
    print(f"logit scale {before:.2f} -> {scale:.2f} (fit on {len(rows)} EmoDB training-speaker clips)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
