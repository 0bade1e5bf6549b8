"""Validation: speech<->text retrieval on a held-out manifest, global and fine-grained.

As in the paper's protocol, the global text of a clip is its first global caption and the
fine-grained text its last (longest kept) fine-grained caption; every clip is one query
with one positive. Metrics: R@1/5/10 and mAP@10 in both directions (``clsp.metrics.retrieval``).
Validation clips are embedded whole: the training duration window (``data.min_duration`` /
``data.max_duration``) does not apply to them. Clips that cannot be used, a set of fewer
than 2 clips and non-finite embeddings are reported as warnings naming the manifest.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import torch

from clsp.train.config import DataConfig
from clsp.train.data import BatchPlan, SkipCounter, audio_skip_kind, iter_clips, make_loader

log = logging.getLogger("clsp.train")


def validation_batching(cfg: DataConfig) -> DataConfig:
    """``cfg`` for reading a validation set: every duration, in manifest order, no grouping."""
    return dataclasses.replace(cfg, min_duration=0.0, max_duration=float("inf"), num_buckets=1,
                               shuffle_buffer=0, max_batch_size=0, group_key=None)


def check_validation_set(manifest: str) -> str | None:
    """Why the manifest ``data.valid`` names will measure nothing, or None: fewer than 2
    distinct clips validation can use (rows that are not records, rows without captions, by
    the training reader's rules ``clsp.train.data.iter_clips``, and rows whose audio file does
    not exist do not count; a clip listed twice counts once). Reads rows until 2 usable ones
    are found, so the run says it at set-up, not after ``valid_every`` steps.
    ``TruncatedInputError`` for a cut compressed manifest."""
    skips = SkipCounter(shown_per_reason=0)
    usable: set[str] = set()
    for clip in iter_clips(manifest, skips=skips):
        path = clip["path"]
        if isinstance(path, str) and "://" not in path and not os.path.exists(path):
            skips.skip(clip["id"], f"{clip['id']}: {path}: no such audio file", "missing audio")
            continue
        usable.add(clip["id"])
        if len(usable) >= 2:
            return None
    reasons = "; ".join(f"{n} {kind} (first: {skips.examples[kind]})" for kind, n in skips.counts.items())
    return (f"validation set {manifest} (data.valid): {len(usable)} usable clip(s)"
            + (f", {skips.total} row(s) skipped: {reasons}" if reasons else "")
            + "; retrieval needs at least 2, so validation will give no metrics (give a manifest of captioned "
            "clips, or data.valid= for none)")


@torch.no_grad()
def embed_validation_set(model, manifest: str, cfg: DataConfig, device: torch.device, autocast,
                         skips: SkipCounter | None = None) -> tuple[np.ndarray, list[str | None], list[str | None]]:
    """Audio embeddings (N, D) of up to ``valid_max_clips`` whole clips and their global /
    fine texts; rows that cannot be used are counted in ``skips`` by reason, and a clip
    listed again (its id seen before) counts once: copies of one clip would be scored as
    distinct queries, each with its copies as wrong answers."""
    skips = skips if skips is not None else SkipCounter(shown_per_reason=0)
    plan = BatchPlan(manifest, validation_batching(cfg), seed=0, epoch=0, shuffle=False, skips=skips)
    audio, global_texts, fine_texts = [], [], []
    seen: set[str] = set()
    for batch in make_loader(plan, num_workers=0, speech=model.speech_input):
        for clip_id, reason in batch["skipped"]:
            skips.skip(clip_id, reason, audio_skip_kind(reason))
        if not batch["clips"]:
            continue
        with autocast():
            emb = model.encode_fbank(batch["feats"].to(device), batch["feat_lens"].to(device))
        first = []
        for i, clip in enumerate(batch["clips"]):
            if clip["id"] in seen:
                skips.skip(clip["id"], f"{clip['id']}: listed again (counted once)", "repeated clip")
                continue
            seen.add(clip["id"])
            first.append(i)
            global_texts.append(clip["global_captions"][0] if clip["global_captions"] else None)
            fine_texts.append(clip["finegrained_captions"][-1] if clip["finegrained_captions"] else None)
        audio.append(emb.float().cpu()[first])
        if len(global_texts) >= cfg.valid_max_clips:
            break
    n = min(len(global_texts), cfg.valid_max_clips)
    matrix = torch.cat(audio).numpy()[:n] if audio else np.zeros((0, 1), dtype=np.float32)
    return matrix, global_texts[:n], fine_texts[:n]


@torch.no_grad()
def _encode_texts(model, texts: list[str], autocast, batch_size: int = 64) -> np.ndarray:
    out = []
    for i in range(0, len(texts), batch_size):
        with autocast():
            out.append(model.encode_text(texts[i : i + batch_size]).float().cpu())
    return torch.cat(out).numpy()


def retrieval_metrics(audio: np.ndarray, text: np.ndarray, texts: list[str] | None = None) -> dict[str, float]:
    """``{"s2t_R@1": ..., "t2s_mAP@10": ...}`` (fractions) for paired rows of the two matrices;
    rows whose caption ``texts`` are the same string share their captions (``caption_keys`` of
    ``clsp.metrics.retrieval.speech_text_retrieval``: templated captions repeat)."""
    from clsp.metrics.retrieval import speech_text_retrieval

    return {k: float(v) for k, v in speech_text_retrieval(audio, text, n_boot=0, nonfinite="miss",
                                                          caption_keys=texts).items()
            if v is not None}  # R@k of a set of at most k clips: any model scores 1, so it is left out


def validate(model, manifest: str, cfg: DataConfig, device: torch.device, autocast) -> dict[str, float]:
    """Retrieval metrics ``valid/{global,finegrained}/...`` plus ``valid/clips`` (clips
    embedded) and ``valid/skipped_clips``; a caption kind with fewer than 2 clips is left out
    (a set of fewer than 2 clips gives a warning and no retrieval metrics). Clips whose
    embedding is not finite count as misses (``valid/nonfinite_clips``)."""
    was_training = model.training
    model.eval()
    try:
        skips = SkipCounter(shown_per_reason=0)
        audio, global_texts, fine_texts = embed_validation_set(model, manifest, cfg, device, autocast, skips)
        metrics: dict[str, float] = {"valid/clips": float(len(audio)), "valid/skipped_clips": float(skips.total)}
        if skips.total:
            more = f"; and {skips.total - len(skips.named)} more" if skips.total > len(skips.named) else ""
            log.warning("validation set %s: %d clip(s) dropped (%s): %s%s", manifest, skips.total,
                        ", ".join(f"{n} {reason}" for reason, n in skips.counts.items()), "; ".join(skips.named), more)
        bad = int((~np.isfinite(audio).all(axis=1)).sum()) if len(audio) else 0
        if bad:
            metrics["valid/nonfinite_clips"] = float(bad)
            log.warning("validation set %s: %d of %d clip embeddings are not finite (counted as misses)", manifest, bad, len(audio))
        if len(audio) < 2:
            log.warning("validation set %s: %d usable clip(s); retrieval needs at least 2, so no validation metrics",
                        manifest, len(audio))
            return metrics
        for kind, texts in (("global", global_texts), ("finegrained", fine_texts)):
            rows = [i for i, t in enumerate(texts) if t is not None]
            if len(rows) < 2:
                continue
            text = _encode_texts(model, [texts[i] for i in rows], autocast)
            for name, value in retrieval_metrics(audio[rows], text, [texts[i] for i in rows]).items():
                metrics[f"valid/{kind}/{name}"] = value
        return metrics
    finally:
        model.train(was_training)
