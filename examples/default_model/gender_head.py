"""Fit the gender head (clsp.models.gender_head): logistic regression on speaker d-vectors.

Training voices: Flite (slt female; kal16, rms, awb male), espeak-ng (en+f1..f5 female,
en+m1..m7 male) and the MBROLA diphone voices driven by espeak-ng that are installed
(Debian contrib/non-free ``mbrola-us1`` ... ``mbrola-sw2``: recordings of real speakers, 8
female and 12 male; build-time only, skipped when absent) at several pitch settings, plus the EmoDB training speakers (the held-out
speakers of prepare_emodb.TEST_SPEAKERS are never used). Writes the head as JSON
(``clsp/models/weights/gender_head.json``, read by the captioner and by ``speaker_fusion``
towers with ``gender_head: true``) and prints accuracy on the held-out EmoDB speakers.

    python examples/default_model/gender_head.py --emodb /work/shared/data/emodb \
        --speakers ge2e voicefilter --out clsp/models/weights/gender_head.json
    python examples/default_model/gender_head.py --emodb /work/shared/data/emodb \
        --speakers ge2e --out clsp/models/weights/gender_head_ge2e.json
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_synthetic import make_sentences  # noqa: E402
from prepare_emodb import TEST_SPEAKERS  # noqa: E402

FLITE = {"slt": ("female", [170, 200, 235]), "kal16": ("male", [90, 110, 135]), "rms": ("male", [90, 110, 135]),
         "awb": ("male", [90, 110, 135])}
ESPEAK = {**{f"en+f{i}": "female" for i in range(1, 6)}, **{f"en+m{i}": "male" for i in range(1, 8)}}
# espeak-ng voice "mb-<name>" -> (Debian package's voice folder in /usr/share/mbrola, gender)
MBROLA = {"us1": "female", "us2": "male", "us3": "male", "en1": "male", "de1-en": "female", "de2-en": "male",
          "de3-en": "female", "de4-en": "male", "de5-en": "female", "de6-en": "male", "fr1-en": "male",
          "fr4-en": "female", "hu1-en": "female", "pl1-en": "female", "sw1-en": "male", "sw2-en": "female",
          "nl2-en": "male", "ro1-en": "male", "gr2-en": "male", "af1-en": "male"}
MBROLA_DIR = Path("/usr/share/mbrola")


def mbrola_voices() -> dict[str, str]:
    """The MBROLA voices of ``MBROLA`` whose Debian package is installed."""
    return {v: g for v, g in MBROLA.items() if (MBROLA_DIR / v.split("-")[0]).is_dir()}


def synth_clips(out: Path, per_voice: int, seed: int) -> list[tuple[Path, str]]:
    """Synthetic clips ``(path, gender)`` from Flite and espeak-ng, reproducible from ``seed``."""
    rng = random.Random(seed)
    clips = []
    for voice, (gender, means) in FLITE.items():
        for i, text in enumerate(make_sentences(rng, per_voice, short=False)):
            path = out / f"flite-{voice}-{i}.wav"
            subprocess.run(["flite", "-voice", voice, "--setf", f"int_f0_target_mean={means[i % len(means)]}",
                            "--setf", f"duration_stretch={rng.uniform(0.85, 1.25):.2f}", "-t", text, "-o", str(path)],
                           check=True, capture_output=True)
            clips.append((path, gender))
    for voice, gender in ESPEAK.items():
        for i, text in enumerate(make_sentences(rng, per_voice, short=False)):
            path = out / f"espeak-{voice.replace('+', '_')}-{i}.wav"
            pitch, speed = rng.randint(25, 75), rng.randint(130, 200)
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                           check=True, capture_output=True)
            clips.append((path, gender))
    for voice, gender in mbrola_voices().items():
        for i, text in enumerate(make_sentences(rng, per_voice, short=False)):
            path = out / f"mbrola-{voice}-{i}.wav"
            pitch, speed = rng.randint(20, 80), rng.randint(130, 190)
            subprocess.run(["espeak-ng", "-v", f"mb-{voice}", "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                           check=True, capture_output=True)
            clips.append((path, gender))
    return clips


def emodb_clips(emodb: Path, held_out: bool) -> list[tuple[Path, str, str]]:
    rows = [json.loads(line) for line in (emodb / "labels.jsonl").read_text().splitlines() if line.strip()]
    return [(emodb / r["audio"], r["gender"], r["speaker"]) for r in rows if (r["speaker"] in TEST_SPEAKERS) == held_out]


@torch.no_grad()
def d_vectors(paths: list[Path], speakers: list[str] = ("ge2e",), batch: int = 32) -> np.ndarray:
    """Concatenated d-vectors ``(N, 256 * len(speakers))`` of the named speaker encoders
    (clsp.models.fusion.SPEAKER_ENCODERS, default settings), clips batched."""
    from clsp.audio import load_audio
    from clsp.models.fusion import SPEAKER_ENCODERS
    from clsp.models.speech_input import SpeechInput

    encoders, speech = [SPEAKER_ENCODERS[s]().eval() for s in speakers], SpeechInput("waveform")
    out = []
    for i in range(0, len(paths), batch):
        x, lens = speech.collate([speech.prepare(load_audio(str(p))) for p in paths[i : i + batch]])
        out.append(np.concatenate([enc(x, lens).numpy() for enc in encoders], axis=1))
    return np.concatenate(out)


def fit_logistic(x: np.ndarray, y: np.ndarray, groups: list[str], l2: float = 1e-3, steps: int = 500) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (female = 1), each group (voice / speaker) weighted equally."""
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    counts = {g: groups.count(g) for g in set(groups)}
    wt = torch.tensor([1.0 / counts[g] for g in groups], dtype=torch.float64)
    wt = wt / wt.sum()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt, reduction="none") * wt).sum()
        loss = loss + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--emodb", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-voice", type=int, default=24)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--speakers", nargs="+", default=["ge2e", "voicefilter"], help="speaker encoders, concatenated")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the LSTM's small sequential steps gain nothing from threads
    with tempfile.TemporaryDirectory() as tmp:
        synth = synth_clips(Path(tmp), args.per_voice, args.seed)
        train = [(p, g, p.name.rsplit("-", 1)[0]) for p, g in synth] + emodb_clips(args.emodb, held_out=False)
        x = d_vectors([p for p, _, _ in train], args.speakers)
    y = np.array([g == "female" for _, g, _ in train], dtype=np.float64)
    w, b = fit_logistic(x, y, [s for _, _, s in train])
    test = emodb_clips(args.emodb, held_out=True)
    xt = d_vectors([p for p, _, _ in test], args.speakers)
    acc = float(np.mean((xt @ w + b > 0) == np.array([g == "female" for _, g, _ in test])))
    head = {"_doc": "Logistic regression on the concatenated d-vectors of `speakers` (clsp.models.fusion."
                    "SPEAKER_ENCODERS, default settings): p(female) = sigmoid(w . d + b). "
                    "Fitted by examples/default_model/gender_head.py on Flite, espeak-ng and MBROLA voices and "
                    "the EmoDB training speakers.",
            "speakers": args.speakers, "weights": [round(float(v), 6) for v in w], "bias": round(b, 6),
            "train_clips": len(train), "mbrola_voices": sorted(mbrola_voices()), "heldout_emodb_accuracy": round(acc, 4)}
    args.out.write_text(json.dumps(head, indent=1) + "\n")
    print(json.dumps({"train_clips": len(train), "synthetic": len(synth), "heldout_emodb_clips": len(test),
                      "heldout_emodb_accuracy": acc}))


if __name__ == "__main__":
    main()
