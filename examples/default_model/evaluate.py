"""Evaluate a CLSP model on the held-out parts of the default model's training data.

* Synthetic corpus, held-out voices: speech-text retrieval (R@1/5/10) in pools of 200 clips
  with global and with fine-grained captions (mean over disjoint pools), and zero-shot
  gender, pitch, rate, loudness, intonation range and whisper classification; and a linear probe per
  attribute (accent too) on the audio embeddings: what the speech side carries, apart
  from how well the text side matches it.
* EmoDB, held-out speakers: zero-shot gender and 7-way emotion (WA and UA).

    python evaluate.py --model clsp/default_model --synthetic build/default_model/synthetic/test.jsonl \
        --emodb build/default_model/emodb/test.jsonl --out results.json

Prints a table on stderr and writes all numbers as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_styles as st  # noqa: E402
from jsonl import read_jsonl  # noqa: E402
from prepare_emodb import EMOTION_PHRASES  # noqa: E402

POOL = 200


def embed_clips(model, rows: list[dict], batch_size: int = 16) -> np.ndarray:
    """Unit-norm audio embeddings of the rows' audio files, in row order."""
    from clsp.audio import load_audio

    waves = (load_audio(r["audio"], r.get("start"), r.get("end")) for r in rows)
    return embed_waves(model, waves, batch_size)


def embed_waves(model, waves, batch_size: int = 16) -> np.ndarray:
    """Unit-norm audio embeddings ``(N, D)`` of 16 kHz waveforms ``(S_i,)`` (any iterable), in
    order, ``batch_size`` at a time (a clip's embedding does not depend on its batch)."""
    out, batch = [], []
    with torch.no_grad():
        for w in itertools.chain(waves, [None]):  # None: the end, flush the last batch
            if w is not None:
                batch.append(w)
            if batch and (w is None or len(batch) == batch_size):
                lens = torch.tensor([len(x) for x in batch])
                padded = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True)
                out.append(model.encode_audio(padded, lens).numpy())
                batch = []
    return np.concatenate(out) if out else np.zeros((0, model.config.joint_dim), dtype=np.float32)


def embed_texts(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model.encode_text(texts[i:i + batch_size]).numpy()
                               for i in range(0, len(texts), batch_size)])


def retrieval(model, rows: list[dict], audio: np.ndarray, key: str, seed: int) -> dict:
    """Mean R@1/5/10 (both directions) over disjoint random pools of POOL clips, with
    the best t2s R@1 a model could reach: given what the captions say (clips whose
    captions say the same thing tie), and given that and no accent at all."""
    kind = "global" if key == "global_captions" else "fine"
    from clsp.metrics.retrieval import speech_text_retrieval

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    pools = [order[i:i + POOL] for i in range(0, len(order) - POOL + 1, POOL)] or [order]
    per_pool, ceilings, deaf = [], [], []
    for pool in pools:
        texts = [rows[i][key][0] for i in pool]
        scores = speech_text_retrieval(audio[pool], embed_texts(model, texts), n_boot=0)
        per_pool.append(scores)
        for accent, out in ((True, ceilings), (False, deaf)):
            keys = [st.described_key(rows[i], kind, accent) for i in pool]
            out.append(np.mean([1.0 / keys.count(k) for k in keys]))
    out = {m: float(np.mean([p[m] for p in per_pool])) for m in per_pool[0] if "@" in m}
    out["pools"] = len(pools)
    out["t2s_R@1_ceiling"] = float(np.mean(ceilings))
    out["t2s_R@1_ceiling_without_accent"] = float(np.mean(deaf))
    return out


def zero_shot(model, audio: np.ndarray, labels: list[str], classes: dict[str, list[str]]) -> dict:
    """Zero-shot accuracy (WA) and UA of labels against prompt-ensemble classes."""
    from clsp.metrics.classification import classification_report
    from clsp.prompts.schema import PromptClass, PromptSet
    from clsp.zeroshot import ZeroShotClassifier

    prompt_set = PromptSet(attribute="x", classes=tuple(PromptClass(n, tuple(p)) for n, p in classes.items()))
    clf = ZeroShotClassifier.from_model(model, prompt_set)
    pred = [r["label"] for r in clf.classify(audio)]
    rep = classification_report(labels, pred, labels=list(classes), n_boot=0)
    return {"n": rep["n"], "wa": rep["wa"], "ua": rep["ua"], "per_class_recall": rep["per_class_recall"]}


def prompts_from(phrases: dict[str, list[str]], templates: list[str]) -> dict[str, list[str]]:
    """Class -> prompts: every template filled with every phrasing of the class.

    Templates may hold a {who} slot, filled with both a man and a woman, so that the
    class embedding averages the speaker's gender out (prompt ensembling)."""
    out = {}
    for cls, phrasings in phrases.items():
        out[cls] = [st.capitalize(t.format(p, who=who)) for t in templates for p in phrasings for who in ("A man", "A woman")]
        out[cls] = list(dict.fromkeys(out[cls]))
    return out


def synthetic_tasks() -> dict[str, dict[str, list[str]]]:
    """Prompt classes per attribute, in the captions' own vocabulary."""
    voiced = [p for ps in st.RANGE_PHRASE.values() for p in ps]
    return {
        "gender": prompts_from({"male": st.GENDER_NOUN["male"], "female": st.GENDER_NOUN["female"]},
                               ["{} speaks.", "The voice of {}."]),
        "pitch": prompts_from(st.PITCH_ADJ, ["{who} speaks in a {} voice.", "A {} voice."]),
        "rate": prompts_from(st.RATE_ADV, ["{who} speaks {}."]),
        "loudness": prompts_from(st.LOUD_ADV, ["{who} speaks {}."]),
        "intonation": prompts_from(st.RANGE_PHRASE, ["{who} speaks {}."]),
        "whisper": {"whisper": prompts_from({"w": st.WHISPER_PHRASE}, ["{who} {}."])["w"],
                    "voiced": prompts_from({"v": voiced}, ["{who} speaks {}."])["v"]},
    }


def linear_probe(x: np.ndarray, labels: list[str], folds: int = 2) -> float:
    """Cross-validated accuracy of an L2-regularised logistic regression on ``x``: how much
    of an attribute the audio embedding carries, whatever the text side makes of it."""
    classes = sorted(set(labels))
    y = torch.tensor([classes.index(v) for v in labels])
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    xt = torch.tensor(x, dtype=torch.float64)
    correct = 0
    for k in range(folds):
        test = order[k::folds]
        train = order[torch.arange(len(order)) % folds != k]
        mu, sd = xt[train].mean(0), xt[train].std(0) + 1e-6
        xn = (xt - mu) / sd
        w = torch.zeros(x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
        b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xn[train] @ w + b, y[train]) + 1e-3 * (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            correct += int(((xn[test] @ w + b).argmax(1) == y[test]).sum())
    return correct / len(y)


def evaluate_synthetic(model, path: Path, seed: int) -> dict:
    rows = read_jsonl(path)
    audio = embed_clips(model, rows)
    out = {"clips": len(rows), "voices": sorted({r["voice"] for r in rows}),
           "retrieval_global": retrieval(model, rows, audio, "global_captions", seed),
           "retrieval_finegrained": retrieval(model, rows, audio, "finegrained_captions", seed)}
    single = [i for i, r in enumerate(rows) if len(r["segments"]) == 1]
    tasks = synthetic_tasks()
    seg = lambda i, k: rows[i]["segments"][0][k]  # noqa: E731
    selections = {
        "gender": (list(range(len(rows))), lambda i: rows[i]["gender"]),
        "pitch": ([i for i in single if not seg(i, "whisper")], lambda i: seg(i, "pitch")),
        "rate": (single, lambda i: seg(i, "rate")),
        "loudness": (single, lambda i: seg(i, "loudness")),
        "intonation": ([i for i in single if not seg(i, "whisper")], lambda i: seg(i, "range")),
        "whisper": (single, lambda i: "whisper" if seg(i, "whisper") else "voiced"),
    }
    for name, (idx, label) in selections.items():
        out[f"zeroshot_{name}"] = zero_shot(model, audio[idx], [label(i) for i in idx], tasks[name])
    selections["accent"] = (single, lambda i: rows[i]["accent"])
    out["probe"] = {name: linear_probe(audio[idx], [label(i) for i in idx]) for name, (idx, label) in selections.items()}
    return out


# Zero-shot gender prompts for real speech.
GENDER_PROMPTS = prompts_from({"male": ["a man", "a male speaker"], "female": ["a woman", "a female speaker"]},
                              ["{} speaks.", "The voice of {}."])


def evaluate_emodb(model, path: Path) -> dict:
    rows = read_jsonl(path)
    audio = embed_clips(model, rows)
    emotion = prompts_from(EMOTION_PHRASES, ["{who} speaks German in {}.", "{who} speaks with {}."])
    return {"clips": len(rows), "speakers": sorted({r["speaker"] for r in rows}),
            "zeroshot_gender": zero_shot(model, audio, [r["gender"] for r in rows], GENDER_PROMPTS),
            "zeroshot_emotion": zero_shot(model, audio, [r["emotion"] for r in rows], emotion)}


def print_table(res: dict) -> None:
    lines = []
    syn = res.get("synthetic")
    if syn:
        for kind in ("global", "finegrained"):
            r = syn[f"retrieval_{kind}"]
            lines.append(f"synthetic {kind:11s} retrieval (pool {POOL}, {r['pools']} pools): "
                         f"t2s R@1 {r['t2s_R@1']:.1%} R@5 {r['t2s_R@5']:.1%} R@10 {r['t2s_R@10']:.1%} | "
                         f"s2t R@1 {r['s2t_R@1']:.1%} R@5 {r['s2t_R@5']:.1%} R@10 {r['s2t_R@10']:.1%} "
                         f"| ceiling R@1 {r['t2s_R@1_ceiling']:.1%}, without accent "
                         f"{r.get('t2s_R@1_ceiling_without_accent', float('nan')):.1%}")
        for name in ("gender", "pitch", "rate", "loudness", "intonation", "whisper"):
            if f"zeroshot_{name}" not in syn:
                continue
            z = syn[f"zeroshot_{name}"]
            lines.append(f"synthetic zero-shot {name:8s}: WA {z['wa']:.1%} UA {z['ua']:.1%} (n={z['n']})")
        if "probe" in syn:
            lines.append("synthetic linear probe (2-fold): " + ", ".join(f"{k} {v:.1%}" for k, v in syn["probe"].items()))
    emo = res.get("emodb")
    if emo:
        for name in ("gender", "emotion"):
            z = emo[f"zeroshot_{name}"]
            lines.append(f"emodb zero-shot {name:8s}: WA {z['wa']:.1%} UA {z['ua']:.1%} (n={z['n']})")
    print("\n".join(lines), file=sys.stderr)


def markdown_table(res: dict) -> str:
    """The results as a Markdown table (for the model card and benchmark notes)."""
    rows = ["| test set | task | metric | value |", "|---|---|---|---|"]
    syn, emo = res.get("synthetic"), res.get("emodb")
    if syn:
        for kind in ("global", "finegrained"):
            r = syn[f"retrieval_{kind}"]
            for d, name in (("t2s", "text to speech"), ("s2t", "speech to text")):
                vals = " / ".join(f"{100 * r[f'{d}_R@{k}']:.1f}" for k in (1, 5, 10))
                rows.append(f"| synthetic, held-out voices | {kind} retrieval, {name} (pool {POOL}) | R@1 / R@5 / R@10 % | {vals} |")
            rows.append(f"| synthetic, held-out voices | {kind} retrieval | ceiling of t2s R@1 (captions that say the same tie) % "
                        f"| {100 * r['t2s_R@1_ceiling']:.1f} |")
            if "t2s_R@1_ceiling_without_accent" in r:
                rows.append(f"| synthetic, held-out voices | {kind} retrieval | the same ceiling for a model deaf to accent % "
                            f"| {100 * r['t2s_R@1_ceiling_without_accent']:.1f} |")
        for name in ("gender", "pitch", "rate", "loudness", "intonation", "whisper"):
            if f"zeroshot_{name}" not in syn:
                continue
            z = syn[f"zeroshot_{name}"]
            rows.append(f"| synthetic, held-out voices | zero-shot {name} ({len(z['per_class_recall'])} classes, n={z['n']}) "
                        f"| WA / UA % | {100 * z['wa']:.1f} / {100 * z['ua']:.1f} |")
        for name, acc in syn.get("probe", {}).items():
            rows.append(f"| synthetic, held-out voices | linear probe on audio embeddings: {name} (2-fold) | accuracy % | {100 * acc:.1f} |")
    if emo:
        for name in ("gender", "emotion"):
            z = emo[f"zeroshot_{name}"]
            rows.append(f"| EmoDB, held-out speakers | zero-shot {name} ({len(z['per_class_recall'])} classes, n={z['n']}) "
                        f"| WA / UA % | {100 * z['wa']:.1f} / {100 * z['ua']:.1f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--synthetic", type=Path)
    ap.add_argument("--emodb", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", type=Path, help="read this results JSON and print it as a Markdown table")
    args = ap.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(args.markdown.read_text())))
        return
    import clsp

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = clsp.load_model(args.model)
    res: dict = {"model": model.provenance()}
    if args.synthetic:
        res["synthetic"] = evaluate_synthetic(model, args.synthetic, args.seed)
    if args.emodb:
        res["emodb"] = evaluate_emodb(model, args.emodb)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(res)
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
