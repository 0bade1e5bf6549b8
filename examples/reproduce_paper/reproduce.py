#!/usr/bin/env python3
"""Run the CLSP paper's evaluations with a clsp model and print them next to the paper's numbers.

    python examples/reproduce_paper/reproduce.py --model default \\
        --paraspeechcaps manifests/paraspeechcaps_cuts_test-*.jsonl.gz \\
        --iemocap IEMOCAP_full_release --ravdess ravdess --cremad cremad \\
        --ratings human_ratings.jsonl --out results.json

Every dataset is optional; the protocols follow the paper's evaluation code (see
``paper_datasets.py`` for the layouts and the README for details):
retrieval on the ParaSpeechCaps test clips (global = first short caption, fine-grained =
longest long caption; R@1/5/10 and mAP@10 = MRR@10, both directions), zero-shot
classification by argmax cosine over the built-in packs ``iemocap``, ``ravdess`` and
``cremad`` (WA, UA), and Pearson / Spearman / Kendall correlation of speech-caption
cosine with human ratings per category.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import paper_datasets  # noqa: E402

# Section 6.5 of the paper (CLSP rows); None = not published / not found.
PUBLISHED = {
    "retrieval": {"global_s2t_R@1": 45.6, "global_t2s_R@1": 40.3, "global_s2t_mAP@10": 58.7,
                  "fine_s2t_R@1": 68.1, "fine_t2s_R@1": 67.2},
    "classification": {"IEMOCAP emotion (4)": (57.2, 56.1), "RAVDESS emotion (8)": (46.8, None),
                       "RAVDESS gender (2)": (100.0, 100.0), "CREMA-D emotion (6)": (35.1, None),
                       "CREMA-D age (4)": (40.6, 44.5)},
    "correlation": {"intrinsic": (0.893, 0.858, 0.668), "situational": (0.903, 0.878, 0.694),
                    "fusion": (0.886, 0.858, 0.670)},
}
TASKS = (  # (table row, dataset, pack, attribute, label field)
    ("IEMOCAP emotion (4)", "iemocap", "iemocap", "emotion", "emotion"),
    ("RAVDESS emotion (8)", "ravdess", "ravdess", "emotion", "emotion"),
    ("RAVDESS gender (2)", "ravdess", "ravdess", "gender", "gender"),
    ("CREMA-D emotion (6)", "cremad", "cremad", "emotion", "emotion"),
    ("CREMA-D age (4)", "cremad", "cremad", "age", "age"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default", help="clsp model name, directory or checkpoint")
    p.add_argument("--paraspeechcaps", nargs="+", default=[], help="ParaSpeechCaps test cut manifest(s)")
    p.add_argument("--iemocap", help="IEMOCAP root (Session1..5)")
    p.add_argument("--ravdess", help="RAVDESS as distributed (Actor_NN/03-01-*.wav) or the JSON-labelled copy (fold_0..3)")
    p.add_argument("--cremad", help="CREMA-D as distributed (AudioWAV/, VideoDemographics.csv) or the JSON-labelled copy (test/)")
    p.add_argument("--data", nargs="+", default=[], metavar="ROOT",
                   help="dataset folders (or cut manifests) whose corpus is detected from their layout")
    p.add_argument("--write-manifests", metavar="DIR",
                   help="write one clsp JSONL manifest per dataset found (DIR/<corpus>.jsonl) and stop")
    p.add_argument("--ratings", help="human ratings JSONL {audio, caption, rating, category}")
    p.add_argument("--limit", type=int, default=0, help="use at most N clips per dataset (quick checks)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for 95%% CIs (0: none)")
    p.add_argument("--out", help="also write all results to this JSON file")
    return p.parse_args(argv)


class Embedder:
    """Audio and text embeddings with one model, as ``clsp embed`` computes them."""

    def __init__(self, model_name: str, batch_size: int, device: str):
        from clsp import load_model
        from clsp.embed import AudioEmbedder, EmbedConfig, TextEmbedder

        self.model = load_model(model_name)
        self.audio = AudioEmbedder(self.model, EmbedConfig(batch_size=batch_size, device=device))
        self.text = TextEmbedder(self.model, batch_size=batch_size, device=device)

    def embed_audio(self, records: list[dict]) -> tuple[list[dict], np.ndarray]:
        """Embeddings of the records that decode; failures are reported on stderr."""
        from clsp.records import Item

        items = [Item(index=i, id=str(r["id"]), record={**r, "_path": r["audio"]}) for i, r in enumerate(records)]
        kept, rows = [], []
        for res in self.audio.run(items):
            if res.error is not None:
                print(f"skipped {res.item.id}: {res.error}", file=sys.stderr)
                continue
            kept.append(records[res.item.index])
            rows.append(res.embeddings[0])
        return kept, np.stack(rows) if rows else np.zeros((0, self.model.provenance()["dim"]))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        from clsp.records import Item

        items = [Item(index=i, id=str(i), record={"text": t}) for i, t in enumerate(texts)]
        return np.stack([r.value for r in self.text.run(items)])


def retrieval_metrics(audio: np.ndarray, text: np.ndarray) -> dict[str, float | None]:
    """R@1/5/10 and mAP@10 (= MRR@10) in % for both directions; item i matches item i
    (``clsp.metrics.retrieval.speech_text_retrieval``). An R@k that no ranking of the pool
    could miss (a pool of at most k clips) is None, printed as "-"."""
    from clsp.metrics.retrieval import speech_text_retrieval

    out = speech_text_retrieval(audio, text, n_boot=0)
    return {k: None if out[k] is None else 100.0 * float(out[k])
            for k in (f"{d}_{m}" for d in ("s2t", "t2s") for m in ("R@1", "R@5", "R@10", "mAP@10"))}


def run_retrieval(emb: Embedder, records: list[dict]) -> dict:
    kept, audio = emb.embed_audio(records)
    result: dict = {"n": len(kept)}
    for caption in ("global", "fine"):
        metrics = retrieval_metrics(audio, emb.embed_text([r[caption] for r in kept]))
        result.update({f"{caption}_{k}": v for k, v in metrics.items()})
    return result


def run_classification(emb: Embedder, datasets: dict[str, list[dict]], n_boot: int) -> dict:
    from clsp.metrics.classification import classification_report
    from clsp.prompts import load_pack
    from clsp.zeroshot import ZeroShotClassifier

    results, cache = {}, {}
    for row, dataset, pack, attribute, field in TASKS:
        if dataset not in datasets:
            continue
        if dataset not in cache:
            cache[dataset] = emb.embed_audio(datasets[dataset])
        kept, audio = cache[dataset]
        prompt_set = load_pack(pack).get(attribute)
        clf = ZeroShotClassifier.from_model(emb.model, prompt_set)
        pairs = [(prompt_set.canonical_label(r[field]), p["label"])
                 for r, p in zip(kept, clf.classify(audio) if len(kept) else []) if field in r]
        pairs = [(g, p) for g, p in pairs if g is not None]
        if pairs:
            gold, pred = zip(*pairs)
            results[row] = classification_report(gold, pred, labels=prompt_set.output_classes, n_boot=n_boot)
    return results


def run_correlation(emb: Embedder, records: list[dict], n_boot: int) -> dict:
    from clsp.metrics.correlation import correlation_report

    kept, audio = emb.embed_audio(records)
    if not kept:
        return {}
    text = emb.embed_text([r["caption"] for r in kept])
    scores = np.sum(audio * text, axis=1) / np.linalg.norm(audio, axis=1) / np.linalg.norm(text, axis=1)
    groups = {"all": list(range(len(kept)))}
    for i, r in enumerate(kept):
        groups.setdefault(r["category"], []).append(i)
    return {g: correlation_report(scores[idx], [kept[i]["rating"] for i in idx], n_boot=n_boot)
            for g, idx in groups.items()}


def _cell(value, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def print_tables(results: dict) -> None:
    if "retrieval" in results:
        r = results["retrieval"]
        print(f"\nSpeech-text retrieval, ParaSpeechCaps test (n={r['n']}), %")
        print(f"{'metric':<22}{'ours':>8}{'paper':>8}")
        for key in ("global_s2t_R@1", "global_t2s_R@1", "global_s2t_mAP@10", "fine_s2t_R@1", "fine_t2s_R@1",
                    "global_s2t_R@5", "global_s2t_R@10", "fine_s2t_R@5", "fine_s2t_R@10"):
            print(f"{key:<22}{_cell(r[key]):>8}{_cell(PUBLISHED['retrieval'].get(key)):>8}")
    if "classification" in results:
        print("\nZero-shot classification, WA / UA % (ours with 95% CI; paper)")
        print(f"{'task':<22}{'n':>6}  {'WA ours':<22}{'UA ours':<22}{'WA paper':>9}{'UA paper':>9}")
        for row, rep in results["classification"].items():
            wa = f"{_cell(rep['wa'], 100)} {_ci(rep.get('wa_ci'), 100, 1)}"
            ua = f"{_cell(rep['ua'], 100)} {_ci(rep.get('ua_ci'), 100, 1)}"
            pw, pu = PUBLISHED["classification"][row]
            print(f"{row:<22}{rep['n']:>6}  {wa:<21} {ua:<21} {_cell(pw):>9}{_cell(pu):>9}")
    if "correlation" in results:
        print("\nHuman alignment, score vs rating: Pearson r / Spearman rho / Kendall tau (ours; paper)")
        for group, rep in results["correlation"].items():
            ours = " / ".join(_cell(rep[k], 1, 3) for k in ("pearson", "spearman", "kendall"))
            paper = " / ".join(_cell(v, 1, 3) for v in PUBLISHED["correlation"].get(group, (None,) * 3))
            print(f"{group:<14}n={rep['n']:<5}{ours:<26}{paper}")


def _ci(ci, scale: float, digits: int) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{ci[0] * scale:.{digits}f}, {ci[1] * scale:.{digits}f}]"


def _detected(args) -> tuple[dict[str, object], list[str]]:
    """The --data folders by the corpus their layout shows; problems for folders of no known layout."""
    found: dict[str, object] = {}
    problems = []
    for root in args.data:
        corpus = paper_datasets.detect_layout(root)
        if corpus is None:
            problems.append(f"{root}: no IEMOCAP, RAVDESS, CREMA-D or cut-manifest layout found")
        elif corpus == "paraspeechcaps":
            found.setdefault(corpus, []).append(root)  # type: ignore[union-attr]
        else:
            found[corpus] = root
    return found, problems


def load_datasets(args) -> tuple[dict[str, list[dict]], list[str]]:
    loaded = {}
    detected, problems = _detected(args)
    readers = (("paraspeechcaps", args.paraspeechcaps or detected.get("paraspeechcaps"), paper_datasets.paraspeechcaps),
               ("iemocap", args.iemocap or detected.get("iemocap"), paper_datasets.iemocap),
               ("ravdess", args.ravdess or detected.get("ravdess"), paper_datasets.ravdess),
               ("cremad", args.cremad or detected.get("cremad"), paper_datasets.cremad),
               ("ratings", args.ratings, paper_datasets.human_ratings))
    for name, source, reader in readers:
        if not source:
            continue
        records, issues = reader(source)
        problems += issues
        if records:
            loaded[name] = records[: args.limit] if args.limit else records
    return loaded, problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    datasets, problems = load_datasets(args)
    for p in problems[:20]:
        print(f"note: {p}", file=sys.stderr)
    if len(problems) > 20:
        print(f"note: ... and {len(problems) - 20} more", file=sys.stderr)
    if not datasets:
        print("no dataset found: give --data, --paraspeechcaps, --iemocap, --ravdess, --cremad or --ratings",
              file=sys.stderr)
        return 2
    if args.write_manifests:
        out = Path(args.write_manifests)
        out.mkdir(parents=True, exist_ok=True)
        for name, records in datasets.items():
            # absolute audio paths: clsp reads a manifest's relative paths against its own folder,
            # not against the folder this script ran in
            rows = [{**r, "audio": os.path.abspath(r["audio"])} for r in records]
            (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            print(f"{out / f'{name}.jsonl'}: {len(records)} clips", file=sys.stderr)
        return 0
    emb = Embedder(args.model, args.batch_size, args.device)
    results: dict = {"model": emb.model.provenance()}
    if "paraspeechcaps" in datasets:
        results["retrieval"] = run_retrieval(emb, datasets["paraspeechcaps"])
    if {"iemocap", "ravdess", "cremad"} & set(datasets):
        results["classification"] = run_classification(emb, datasets, args.n_boot)
    if "ratings" in datasets:
        results["correlation"] = run_correlation(emb, datasets["ratings"], args.n_boot)
    print(f"model: {results['model'].get('model')} (dim {results['model'].get('dim')})")
    print_tables(results)
    if args.out:
        Path(args.out).write_text(json.dumps({"ours": results, "paper": PUBLISHED}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
