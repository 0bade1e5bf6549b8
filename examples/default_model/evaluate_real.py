"""Evaluate CLSP models on real speech never used for training, side by side.

Per model (the first is the baseline), on the same clips:

* zero-shot gender and emotion (WA/UA) with the expected calibration error (ECE) of the
  zero-shot probabilities, on EmoDB held-out speakers (7 emotions) and on TESS (2 female
  speakers) + SAVEE (4 male speakers), English, in the 6 emotions the three share;
* 8 kHz copies of the EmoDB held-out clips (resampled down to 8 kHz and back): cosine of
  each copy's embedding to its original's; where sox is installed, the same for copies sent
  through the GSM 06.10 telephone codec (8 kHz) and through mp3 at 16 kbit/s;
* recording conditions, on every set: cosine of each clip to a copy with 0.6 s of digital
  silence before and after, 20 dB quieter, with a DC offset of 0.05, with white noise at
  -50 dBFS, in a room-like noise floor (white noise at -60 dBFS under the speech and for 1 s
  before and after it, as a recording that starts and stops around the speech has), with a
  1.5 s pause inserted at its middle (a hesitation), and the
  zero-shot gender WA of each kind of copy (``RECORDING_COPIES``);
* audio-audio cosine distributions of same-voice pairs (same speaker, other clip),
  same-style pairs (same emotion, other speaker) and unrelated pairs (other speaker,
  other emotion): mean and quantiles, over all clips and within each set;
* a clip's own caption among 10 (R@1, speech -> text and text -> speech), with captions
  written from each clip's labels (speaker gender, emotion, TESS's older speaker's age) in
  wordings unlike the training captions': a stand-in for human-written style captions, which
  these sets do not have; beside it, on the same draws, what a model that hears gender
  alone and one that hears every labelled attribute would score (captions of clips with the
  same labels say the same, so even the second stays well below 100 %);
* the answers of the built-in ``pitch``, ``loudness``, ``speaking-rate``,
  ``voice-quality`` and ``age`` prompt packs over all real clips (share per class).

TESS and SAVEE are read in place from folders of the original files (evaluation only):
TESS as ``<dir>/**/{OAF,YAF}_<word>_<emotion>.wav``, SAVEE as ``<dir>/{DC,JE,JK,KL}_<code><nn>.wav``.

    python evaluate_real.py --models default build/default_model/exp/model \
        --emodb build/default_model/emodb/test.jsonl --tess /tmp/tess --savee /tmp/savee --out real.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import GENDER_PROMPTS, embed_clips, embed_texts, embed_waves, prompts_from  # noqa: E402
from jsonl import read_jsonl  # noqa: E402
from prepare_emodb import EMOTION_PHRASES  # noqa: E402

TESS_EMOTIONS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                 "neutral": "neutral", "sad": "sadness", "ps": "surprise"}
SAVEE_EMOTIONS = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral",
                  "sa": "sadness", "su": "surprise"}
SHARED_EMOTIONS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness")
PACKS = ("pitch", "loudness", "speaking-rate", "voice-quality", "age")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def tess_rows(root: Path, per_class: int, seed: int) -> list[dict]:
    """TESS clips (female), at most per_class per (speaker, emotion), drawn with a seed."""
    groups: dict[tuple, list[dict]] = {}
    for path in sorted(root.rglob("*.wav")):
        m = re.fullmatch(r"(OAF|YAF)_(\w+?)_(angry|disgust|fear|happy|neutral|sad|ps)", path.stem, re.I)
        if m:
            spk, emo = m.group(1).upper(), TESS_EMOTIONS[m.group(3).lower()]
            groups.setdefault((spk, emo), []).append(
                {"id": f"tess-{path.stem}", "audio": str(path), "speaker": f"tess-{spk}", "gender": "female",
                 "emotion": emo})
    rng = random.Random(seed)
    return [r for key in sorted(groups) for r in rng.sample(groups[key], min(per_class, len(groups[key])))]


def savee_rows(root: Path) -> list[dict]:
    """All SAVEE clips (male)."""
    rows = []
    for path in sorted(root.glob("*.wav")):
        m = re.fullmatch(r"(DC|JE|JK|KL)_(sa|su|a|d|f|h|n)\d+", path.stem)
        if m:
            rows.append({"id": f"savee-{path.stem}", "audio": str(path), "speaker": f"savee-{m.group(1)}",
                         "gender": "male", "emotion": SAVEE_EMOTIONS[m.group(2)]})
    return rows


# caption wordings for label_caption: who speaks, and how (none of them a training caption's)
CAPTION_WHO = {"female": ["A woman", "A female speaker", "A lady"], "male": ["A man", "A male speaker", "A guy"]}
CAPTION_OLDER = ["An older woman", "An elderly woman", "A woman"]  # TESS's 64-year-old speaker
CAPTION_HOW = {"anger": ["angrily", "in an angry voice", "furiously"],
               "boredom": ["in a bored voice", "sounding bored"],
               "disgust": ["with disgust", "in a disgusted tone"],
               "fear": ["fearfully", "in a frightened, anxious voice"],
               "happiness": ["happily", "cheerfully, sounding happy"],
               "neutral": ["in a calm, neutral tone", "plainly, without emotion"],
               "sadness": ["sadly", "in a sad, low voice"],
               "surprise": ["in a surprised voice", "sounding surprised"]}


def label_caption(row: dict, rng: random.Random) -> str:
    """A short style caption from a row's ``gender`` and ``emotion``, e.g. "A guy speaks angrily."."""
    who = rng.choice(CAPTION_OLDER if row["speaker"] == "tess-OAF" else CAPTION_WHO[row["gender"]])
    return f"{who} speaks {rng.choice(CAPTION_HOW[row['emotion']])}."


def r_at_1_among(audio: np.ndarray, text: np.ndarray, k: int = 10, draws: int = 2000, seed: int = 0) -> dict:
    """Own-caption R@1 among ``k``: in each of ``draws`` random groups of ``k`` clips, is the
    first clip's own caption the best-scoring of the group's captions (speech -> text), and
    the first caption's own clip the best-scoring clip (text -> speech)? Ties (identical
    captions) count as 1 / (clips tied). ``audio``, ``text``: (N, D) unit rows, row i the
    pair; returns percentages and the chance level 100 / k."""
    rng = random.Random(seed)

    def hit(scores: np.ndarray) -> float:
        best = scores.max()
        return 0.0 if scores[0] < best else 1.0 / float((scores == best).sum())

    s2t = t2s = 0.0
    for _ in range(draws):
        idx = rng.sample(range(len(audio)), k)
        sim = audio[idx] @ text[idx].T
        s2t += hit(sim[0])
        t2s += hit(sim[:, 0])
    return {"k": k, "draws": draws, "s2t": 100 * s2t / draws, "t2s": 100 * t2s / draws, "chance": 100 / k}


def caption_labels(row: dict) -> tuple:
    """What a ``label_caption`` caption says about its clip: (gender, emotion, older)."""
    return row["gender"], row["emotion"], row["speaker"] == "tess-OAF"


def label_baselines(labels: list[tuple], k: int = 10, draws: int = 2000, seed: int = 0) -> dict:
    """``r_at_1_among`` of two models that know only the labels, on the same draws: one that
    hears gender perfectly and nothing else (a caption scores 1 when its gender is the clip's),
    and one that hears every labelled attribute perfectly (scores: attributes shared), whose
    R@1 stays below 100 % because clips with the same labels get captions that say the same."""
    def onehot(keys: list[tuple]) -> np.ndarray:
        kinds = sorted(set(keys), key=str)
        return np.eye(len(kinds))[[kinds.index(key) for key in keys]]

    onehot = {"gender": onehot([lab[:1] for lab in labels]), "all": onehot(list(labels))}
    return {name: r_at_1_among(v, v, k, draws, seed) for name, v in onehot.items()}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: sum over equal-width confidence bins of (bin share) * |accuracy - mean confidence|.

    ``confidence``: (N,) probability of the predicted class; ``correct``: (N,) 0/1.
    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, eq. 3."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(ece)


def zero_shot_calibrated(model, audio: np.ndarray, labels: list[str], classes: dict[str, list[str]]) -> dict:
    """Zero-shot WA/UA, ECE, and the median confidence of wrong answers."""
    from clsp.metrics.classification import classification_report
    from clsp.prompts.schema import PromptClass, PromptSet
    from clsp.zeroshot import ZeroShotClassifier

    prompt_set = PromptSet(attribute="x", classes=tuple(PromptClass(n, tuple(p)) for n, p in classes.items()))
    out = ZeroShotClassifier.from_model(model, prompt_set).classify(audio)
    pred = [r["label"] for r in out]
    conf = np.array([r["scores"][r["label"]] for r in out])
    correct = np.array([p == y for p, y in zip(pred, labels)], dtype=float)
    rep = classification_report(labels, pred, labels=list(classes), n_boot=0)
    wrong = conf[correct == 0]
    return {"n": rep["n"], "wa": rep["wa"], "ua": rep["ua"], "per_class_recall": rep["per_class_recall"],
            "ece": expected_calibration_error(conf, correct),
            "wrong_median_confidence": float(np.median(wrong)) if len(wrong) else None}


def eight_khz_cosines(model, rows: list[dict], orig: np.ndarray | None = None) -> dict:
    """Cosine of each clip's embedding to that of its copy resampled to 8 kHz and back."""
    import torchaudio.functional as AF

    return copy_cosines(model, rows, lambda r, w: AF.resample(AF.resample(w, 16000, 8000), 8000, 16000)[: len(w)],
                        orig)


# channels a clip is sent through with sox (encode options, intermediate suffix): real codecs,
# unlike the plain 8 kHz resampling above, and not the ones the training copies use
SOX_CHANNELS = {"gsm": (["-r", "8000"], "gsm"),  # GSM 06.10 full-rate, 8 kHz, 13 kbit/s
                "mp3_16k": (["-r", "16000", "-C", "16"], "mp3")}  # mp3 at 16 kbit/s


def sox_copy(path: str, channel: str) -> torch.Tensor:
    """``path`` encoded by sox through one of ``SOX_CHANNELS`` and decoded back to 16 kHz mono:
    an mp3 by clsp's own reader (gapless: sample-aligned with the original, as a user gets it;
    sox's decoder would prepend the encoder delay), GSM by sox."""
    import subprocess
    import tempfile

    from clsp.audio import load_audio

    opts, suffix = SOX_CHANNELS[channel]
    with tempfile.TemporaryDirectory() as tmp:
        mid, back = Path(tmp) / f"mid.{suffix}", Path(tmp) / "back.wav"
        subprocess.run(["sox", path, "-c", "1", *opts, str(mid)], check=True, capture_output=True)
        if suffix == "mp3":
            return load_audio(mid)
        subprocess.run(["sox", str(mid), "-b", "16", "-r", "16000", str(back)], check=True, capture_output=True)
        return load_audio(back)


def _noise(w: torch.Tensor, dbfs: float = -50.0) -> torch.Tensor:
    """White noise at ``dbfs`` RMS, the same for a clip each time (seeded by its length)."""
    gen = torch.Generator().manual_seed(len(w))
    return w + 10 ** (dbfs / 20) * torch.randn(len(w), generator=gen)


def _room(w: torch.Tensor, dbfs: float = -60.0, seconds: float = 1.0) -> torch.Tensor:
    """``w`` with ``seconds`` of silence before and after, then white noise at ``dbfs`` RMS over
    all of it: a noise floor under the speech and around it."""
    pad = int(16000 * seconds)
    return _noise(torch.nn.functional.pad(w, (pad, pad)), dbfs)


# how one recording differs from another of the same speech, as a copy of each clip
RECORDING_COPIES = {
    "padded": ("0.6 s of digital silence before and after", lambda w: torch.nn.functional.pad(w, (9600, 9600))),
    "quieter": ("20 dB quieter", lambda w: w * 0.1),
    "dc": ("a DC offset of 0.05", lambda w: w + 0.05),
    "noise": ("white noise at -50 dBFS added", _noise),
    "room": ("a -60 dBFS noise floor under it and for 1 s before and after", _room),
    "pause": ("a 1.5 s pause of digital silence inserted at its middle sample",
              lambda w: torch.cat([w[: w.numel() // 2], torch.zeros(24000), w[w.numel() // 2 :]])),
}


def copy_cosines(model, rows: list[dict], make_copy, orig: np.ndarray | None = None) -> dict:
    """Cosine of each clip's embedding to that of ``make_copy(row, wave)`` (a 16 kHz copy of it),
    and the zero-shot gender of the copies (``gender``, as ``zero_shot_calibrated``).
    ``orig``: the clips' own embeddings where already computed."""
    from clsp.audio import load_audio

    orig = embed_clips(model, rows) if orig is None else orig
    copies = embed_waves(model, (make_copy(r, load_audio(r["audio"])) for r in rows))
    cos = np.sum(orig * copies, axis=1) / (np.linalg.norm(orig, axis=1) * np.linalg.norm(copies, axis=1))
    return {"n": len(rows), "mean": float(cos.mean()), "min": float(cos.min()),
            "p10": float(np.quantile(cos, 0.1)),
            "gender": zero_shot_calibrated(model, copies, [r["gender"] for r in rows], GENDER_PROMPTS)}


def pair_distributions(audio: np.ndarray, rows: list[dict], max_pairs: int = 20000, seed: int = 0) -> dict:
    """Cosine quantiles for same-voice, same-style and unrelated pairs (see module docstring);
    a kind with no pair gets ``pairs: 0`` and null values."""
    x = audio / np.linalg.norm(audio, axis=1, keepdims=True)
    spk = np.array([r["speaker"] for r in rows])
    emo = np.array([r["emotion"] for r in rows])
    i, j = np.triu_indices(len(rows), k=1)
    kinds = {"same_voice": spk[i] == spk[j],
             "same_style": (emo[i] == emo[j]) & (spk[i] != spk[j]),
             "unrelated": (emo[i] != emo[j]) & (spk[i] != spk[j])}
    rng = np.random.default_rng(seed)
    out = {}
    for name, sel in kinds.items():
        idx = np.flatnonzero(sel)
        if len(idx) == 0:  # e.g. one speaker only: no pair of that kind
            out[name] = {"pairs": 0, "mean": None, **{f"q{int(q * 100):02d}": None for q in QUANTILES}}
            continue
        idx = rng.choice(idx, min(max_pairs, len(idx)), replace=False)
        cos = np.sum(x[i[idx]] * x[j[idx]], axis=1)
        out[name] = {"pairs": int(len(idx)), "mean": float(cos.mean()),
                     **{f"q{int(q * 100):02d}": float(np.quantile(cos, q)) for q in QUANTILES}}
    return out


def pack_answers(model, audio: np.ndarray) -> dict:
    """Per built-in pack: share of clips given each class, and the share of the commonest answer."""
    from clsp.prompts import load_pack
    from clsp.zeroshot import ZeroShotClassifier

    out = {}
    for name in PACKS:
        prompt_set = load_pack(name).get()
        labels = [r["label"] for r in ZeroShotClassifier.from_model(model, prompt_set).classify(audio)]
        shares = {c: labels.count(c) / len(labels) for c in prompt_set.output_classes}
        out[name] = {"shares": shares, "top_share": max(shares.values())}
    return out


def evaluate_model(model, sets: dict[str, list[dict]]) -> dict:
    """All real-speech numbers of one model (see module docstring)."""
    res: dict = {"model": model.provenance()}
    embedded = {name: embed_clips(model, rows) for name, rows in sets.items()}
    emodb_emotion = prompts_from(EMOTION_PHRASES, ["{who} speaks German in {}.", "{who} speaks with {}."])
    english_emotion = prompts_from({k: EMOTION_PHRASES[k] for k in SHARED_EMOTIONS}, ["{who} speaks with {}."])
    for name, rows in sets.items():
        audio = embedded[name]
        r = {"clips": len(rows), "speakers": sorted({x["speaker"] for x in rows}),
             "zeroshot_gender": zero_shot_calibrated(model, audio, [x["gender"] for x in rows], GENDER_PROMPTS)}
        emotions = emodb_emotion if name == "emodb" else english_emotion
        keep = [k for k, x in enumerate(rows) if x["emotion"] in emotions]
        r["zeroshot_emotion"] = zero_shot_calibrated(model, audio[keep], [rows[k]["emotion"] for k in keep], emotions)
        rng = random.Random(0)
        keep = [k for k, x in enumerate(rows) if x["emotion"] in CAPTION_HOW]
        captions = embed_texts(model, [label_caption(rows[k], rng) for k in keep])
        r["caption_r1_among_10"] = r_at_1_among(audio[keep], captions) if len(keep) >= 10 else None
        if r["caption_r1_among_10"] is not None:
            r["caption_r1_among_10"]["baselines"] = label_baselines([caption_labels(rows[k]) for k in keep])
        r["recording_copies"] = {kind: copy_cosines(model, rows, lambda row, w, f=fn: f(w), audio)
                                 for kind, (_, fn) in RECORDING_COPIES.items()}
        r["pairs"] = pair_distributions(audio, rows)  # within one set: voices and styles of one corpus
        res[name] = r
    if "emodb" in sets:
        res["emodb"]["eight_khz_cosine"] = eight_khz_cosines(model, sets["emodb"], embedded["emodb"])
        import shutil

        if shutil.which("sox"):
            for channel in SOX_CHANNELS:
                res["emodb"][f"{channel}_cosine"] = copy_cosines(model, sets["emodb"],
                                                                 lambda r, w, c=channel: sox_copy(r["audio"], c),
                                                                 embedded["emodb"])
    all_rows = [r for rows in sets.values() for r in rows]
    all_audio = np.concatenate(list(embedded.values()))
    res["pairs"] = pair_distributions(all_audio, all_rows)
    res["packs"] = pack_answers(model, all_audio)
    return res


def markdown_table(results: list[dict]) -> str:
    """Models side by side as a Markdown table (one column per model)."""
    heads = [r.get("name", f"model {k}") for k, r in enumerate(results)]
    lines = ["| set | measure | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(results)]

    def row(set_name: str, label: str, fn) -> None:
        vals = []
        for r in results:
            try:
                vals.append(fn(r))
            except (KeyError, TypeError):
                vals.append("-")
        lines.append(f"| {set_name} | {label} | " + " | ".join(vals) + " |")

    for s in ("emodb", "tess_savee"):
        for task in ("gender", "emotion"):
            row(s, f"zero-shot {task} WA / UA %",
                lambda r: f"{100 * r[s][f'zeroshot_{task}']['wa']:.1f} / {100 * r[s][f'zeroshot_{task}']['ua']:.1f}")
            row(s, f"zero-shot {task} ECE / median p of wrong answers",
                lambda r: f"{r[s][f'zeroshot_{task}']['ece']:.3f} / {r[s][f'zeroshot_{task}']['wrong_median_confidence']:.2f}")
    for s in ("emodb", "tess_savee"):
        row(s, "own caption (written from labels) R@1 among 10, s2t / t2s % (gender alone; all labels)",
            lambda r: (lambda c: f"{c['s2t']:.1f} / {c['t2s']:.1f} ({c['baselines']['gender']['s2t']:.1f}; "
                                 f"{c['baselines']['all']['s2t']:.1f})")(r[s]["caption_r1_among_10"]))
    row("emodb", "8 kHz copy cosine mean / p10 / min",
        lambda r: " / ".join(f"{r['emodb']['eight_khz_cosine'][k]:.3f}" for k in ("mean", "p10", "min")))
    for channel, label in (("gsm", "GSM 06.10 (8 kHz)"), ("mp3_16k", "mp3 16 kbit/s")):
        row("emodb", f"{label} copy cosine mean / p10 / min",
            lambda r, c=channel: " / ".join(f"{r['emodb'][f'{c}_cosine'][k]:.3f}" for k in ("mean", "p10", "min")))
    for s in ("emodb", "tess_savee"):
        for kind, (label, _) in RECORDING_COPIES.items():
            row(s, f"copy with {label}: cosine mean / p10 / min",
                lambda r, k=kind: " / ".join(f"{r[s]['recording_copies'][k][q]:.3f}" for q in ("mean", "p10", "min")))
            row(s, f"copy with {label}: zero-shot gender WA / UA %",
                lambda r, k=kind: (lambda g: f"{100 * g['wa']:.1f} / {100 * g['ua']:.1f}")(r[s]["recording_copies"][k]["gender"]))
    for where, get in (("all", lambda r: r["pairs"]), ("emodb", lambda r: r["emodb"]["pairs"]),
                       ("tess_savee", lambda r: r["tess_savee"]["pairs"])):
        for kind in ("same_voice", "same_style", "unrelated"):
            row(where, f"{kind.replace('_', '-')} cosine mean (q05, q50, q95)",
                lambda r, k=kind, g=get: f"{g(r)[k]['mean']:.3f} ({g(r)[k]['q05']:.2f}, "
                                         f"{g(r)[k]['q50']:.2f}, {g(r)[k]['q95']:.2f})")
    for pack in PACKS:
        row("all", f"`{pack}` answers %",
            lambda r: ", ".join(f"{c} {100 * v:.0f}" for c, v in r["packs"][pack]["shares"].items()))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["default"], help="model dirs or names; the first is the baseline")
    ap.add_argument("--emodb", type=Path, help="EmoDB held-out manifest (prepare_emodb.py split's test.jsonl)")
    ap.add_argument("--tess", type=Path, help="folder of TESS wav files")
    ap.add_argument("--savee", type=Path, help="folder of SAVEE wav files")
    ap.add_argument("--tess-per-class", type=int, default=10, help="clips per TESS speaker and emotion")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--markdown", type=Path, help="read this results JSON and print it as a Markdown table")
    args = ap.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(args.markdown.read_text())["models"]))
        return
    import clsp

    sets: dict[str, list[dict]] = {}
    if args.emodb:
        sets["emodb"] = read_jsonl(args.emodb)
    english = (tess_rows(args.tess, args.tess_per_class, args.seed) if args.tess else []) + (
        savee_rows(args.savee) if args.savee else [])
    if english:
        sets["tess_savee"] = english
    if not sets:
        sys.exit("give at least one of --emodb, --tess, --savee")
    results = []
    for name in args.models:
        t0 = time.perf_counter()
        torch.manual_seed(0)
        res = evaluate_model(clsp.load_model(name), sets)
        res["name"], res["seconds"] = name, round(time.perf_counter() - t0, 1)
        results.append(res)
        print(f"{name}: done in {res['seconds']} s", file=sys.stderr)
    report = {"sets": {k: len(v) for k, v in sets.items()}, "models": results}
    print(markdown_table(results), file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
