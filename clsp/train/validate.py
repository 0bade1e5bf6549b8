"""Validation: speech<->text retrieval on a held-out manifest, global and fine-grained.

As in the paper's protocol, the global text of a clip is its first global caption and the
fine-grained text its last (longest kept) fine-grained caption; every clip is one query
with one positive. Metrics: R@1/5/10 and mAP@10 in both directions (``clsp.metrics.retrieval``).
"""

from __future__ import annotations

import numpy as np
import torch

from clsp.train.config import DataConfig
from clsp.train.data import BatchPlan, SkipCounter, make_loader


@torch.no_grad()
def embed_validation_set(model, manifest: str, cfg: DataConfig, device: torch.device,
                         autocast) -> tuple[np.ndarray, list[str | None], list[str | None]]:
    """Audio embeddings of up to ``valid_max_clips`` clips and their global / fine texts."""
    plan = BatchPlan(manifest, cfg, seed=0, epoch=0, shuffle=False, skips=SkipCounter(shown_per_reason=0))
    audio, global_texts, fine_texts = [], [], []
    for batch in make_loader(plan, num_workers=0, speech=model.speech_input):
        if not batch["clips"]:
            continue
        with autocast():
            emb = model.encode_fbank(batch["feats"].to(device), batch["feat_lens"].to(device))
        audio.append(emb.float().cpu())
        for clip in batch["clips"]:
            global_texts.append(clip["global_captions"][0] if clip["global_captions"] else None)
            fine_texts.append(clip["finegrained_captions"][-1] if clip["finegrained_captions"] else None)
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


def retrieval_metrics(audio: np.ndarray, text: np.ndarray) -> dict[str, float]:
    """``{"s2t_R@1": ..., "t2s_mAP@10": ...}`` (fractions) for paired rows of the two matrices."""
    from clsp.metrics.retrieval import speech_text_retrieval

    return {k: float(v) for k, v in speech_text_retrieval(audio, text, n_boot=0).items()}


def validate(model, manifest: str, cfg: DataConfig, device: torch.device, autocast) -> dict[str, float]:
    """Retrieval metrics ``valid/{global,finegrained}/...`` (sets lacking a caption kind are skipped)."""
    was_training = model.training
    model.eval()
    try:
        audio, global_texts, fine_texts = embed_validation_set(model, manifest, cfg, device, autocast)
        metrics: dict[str, float] = {"valid/clips": float(len(audio))}
        for kind, texts in (("global", global_texts), ("finegrained", fine_texts)):
            rows = [i for i, t in enumerate(texts) if t is not None]
            if len(rows) < 2:
                continue
            text = _encode_texts(model, [texts[i] for i in rows], autocast)
            for name, value in retrieval_metrics(audio[rows], text).items():
                metrics[f"valid/{kind}/{name}"] = value
        return metrics
    finally:
        model.train(was_training)
