"""Whitened start for the text head of a frozen (or pretrained) text tower.

Sentence encoders such as all-MiniLM-L6-v2 place captions that differ in one style word
("speaks slowly" / "speaks quickly") almost on top of each other: the caption features
share a large common component, and a few directions (the speaker's gender, the topic)
hold most of the variance. A randomly initialised head keeps that geometry, so at the
start of contrastive training the text embeddings barely differ in pace or loudness, the
speech tower gets almost no gradient to learn them, and neither side moves.

``whiten_text_head`` sets the first layer of the text projection to a shrunk PCA
whitening of the tower's pooled features over a sample of the training captions: centred,
rotated onto the principal directions and scaled by ``1 / sqrt(eigenvalue + shrink *
mean eigenvalue)``. Directions of small variance (single style words) then start with a
weight comparable to the dominant ones. It is only an initialisation: the layer trains
as usual. Rows beyond the feature width (a head wider than the tower) keep their random
initialisation, as do rows for directions the caption sample does not span.

With ``centre`` the bias of the head's last layer is then shifted so that the head's
outputs average to zero over the same sample. The ReLU between the layers leaves every
output with a large shared component (random captions sit at about 0.6 cosine of each
other, one style word apart at about 0.9); centred, random captions are near orthogonal
and a single word moves a caption much further, so the contrastive loss can reward
subtle attributes (accent, intonation) with larger gradients.

``paraphrase_text_head`` (``text_head_init: paraphrase``) goes further and trains the text
heads on the training captions alone before any audio is seen: two captions of the same
clip (its global and fine-grained captions and their rephrasings) are a positive pair, the
other clips' captions in the batch are negatives (symmetric InfoNCE). The heads learn to
ignore the wording and keep every attribute that tells clips apart, so a caption naming a
Scottish accent lands far from one naming an American accent even when they share every
other word. With a frozen sentence encoder, a whitened or random head does neither: on the
default model's held-out captions, a rephrasing of a caption found a caption saying the same
thing as its nearest neighbour 12 % of the time after whitening and 85 % after this start.
No labels are used, only which captions belong to which clip.
"""

from __future__ import annotations

import logging
import math
import random
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from clsp.errors import ConfigError
from clsp.losses import contrastive_loss, stage_one_owner
from clsp.train.data import iter_clips

log = logging.getLogger("clsp.train")


def sample_captions(manifest: str, max_captions: int, seed: int) -> list[str]:
    """A uniform sample (reservoir) of the manifest's global and fine-grained captions,
    duplicates kept so that frequent captions weigh more; the same on every rank."""
    captions = (c for clip in iter_clips(manifest) for c in clip["global_captions"] + clip["finegrained_captions"])
    return reservoir(captions, max_captions, seed)


def reservoir(items, size: int, seed: int) -> list:
    """A uniform random sample of ``size`` items (all when fewer) of an iterable, in one pass."""
    rng = random.Random(seed)
    sample: list = []
    for seen, item in enumerate(items, 1):
        if len(sample) < size:
            sample.append(item)
        else:
            j = rng.randrange(seen)
            if j < size:
                sample[j] = item
    return sample


@torch.no_grad()
def pooled_features(model, captions: list[str], batch_size: int = 256, cache=None) -> torch.Tensor:
    """Pooled text-tower outputs ``(N, D)`` (float64), each distinct caption encoded once
    (through the trainer's ``TextFeatureCache`` when given, which keeps them for training)."""
    distinct = list(dict.fromkeys(captions))
    tower = model.text_encoder
    was_training = tower.training
    tower.eval()
    try:
        encode = tower.encode if cache is None else (lambda texts: cache.features(model, texts, torch.device("cpu")))
        feats = torch.cat([encode(distinct[i:i + batch_size]).double().cpu()
                           for i in range(0, len(distinct), batch_size)])
    finally:
        tower.train(was_training)
    row = {c: i for i, c in enumerate(distinct)}
    return feats[torch.tensor([row[c] for c in captions])]


@contextmanager
def heads_set(model, training: bool, trainable: bool | None = None):
    """The text heads (projection and transform) in train or eval mode, and with
    ``trainable`` their parameters' ``requires_grad`` set; all restored on exit."""
    heads = (model.text_projection, model.text_transform)
    params = [p for h in heads for p in h.parameters()]
    modes, grads = [h.training for h in heads], [p.requires_grad for p in params]
    for h in heads:
        h.train(training)
    if trainable is not None:
        for p in params:
            p.requires_grad_(trainable)
    try:
        yield
    finally:
        for h, mode in zip(heads, modes):
            h.train(mode)
        for p, g in zip(params, grads):
            p.requires_grad_(g)


@torch.no_grad()
def whitening(feats: torch.Tensor, rows: int, shrink: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` with ``W x + b`` the shrunk PCA whitening of ``feats`` onto its top
    ``rows`` (at most) principal directions of non-zero variance."""
    mean = feats.mean(0)
    centred = feats - mean
    cov = centred.T @ centred / max(len(feats) - 1, 1)
    eigvals, eigvecs = torch.linalg.eigh(cov)
    eigvals, eigvecs = eigvals.flip(0).clamp(min=0.0), eigvecs.flip(1)
    # Directions the sample does not span (fewer distinct captions than dimensions) are
    # left out: their rows keep the random initialisation.
    k = min(rows, int((eigvals > 1e-6 * eigvals[0]).sum()))
    scale = (eigvals[:k] + shrink * eigvals.mean() + 1e-12).rsqrt()
    weight = eigvecs[:, :k].T * scale.unsqueeze(1)
    return weight, -weight @ mean


@torch.no_grad()
def whiten_text_head(model, manifest: str, max_captions: int = 10000, shrink: float = 0.1, seed: int = 0,
                     cache=None, centre: bool = False) -> int:
    """Initialise ``model.text_projection[0]`` as a whitening of the training captions'
    pooled features (and with ``centre`` zero the mean of the head's outputs over them);
    returns the number of captions used."""
    layer = model.text_projection[0]
    if not isinstance(layer, torch.nn.Linear):
        raise ConfigError("text_head_init=whiten needs a text projection that starts with a Linear layer")
    captions = sample_captions(manifest, max_captions, seed)
    if len(captions) < 2:
        raise ConfigError(f"text_head_init=whiten: {manifest} has fewer than two captions")
    feats = pooled_features(model, captions, cache=cache)
    weight, bias = whitening(feats, layer.out_features, shrink)
    k = weight.shape[0]
    layer.weight[:k] = weight.to(layer.weight.dtype)
    layer.bias[:k] = bias.to(layer.bias.dtype)
    if centre:
        last = [m for m in model.text_transform.modules() if isinstance(m, torch.nn.Linear)][-1]
        dtype = next(model.text_projection.parameters()).dtype
        with heads_set(model, training=False):  # no dropout while measuring the mean
            out = model.text_transform(model.text_projection(feats.to(dtype)))
        last.bias -= out.mean(0).to(last.bias.dtype)
    log.info("text head: whitened start from %d captions (%d distinct), %d of %d rows, shrink %g%s",
             len(captions), len(set(captions)), k, layer.out_features, shrink, ", outputs centred" if centre else "")
    return len(captions)


def sample_caption_groups(manifest: str, max_clips: int, seed: int) -> list[list[str]]:
    """A uniform sample (reservoir) of up to ``max_clips`` clips' distinct captions (global
    and fine-grained), keeping only clips with at least two; the same on every rank."""
    groups = (list(dict.fromkeys(clip["global_captions"] + clip["finegrained_captions"])) for clip in iter_clips(manifest))
    return reservoir((g for g in groups if len(g) >= 2), max_clips, seed)


def paraphrase_text_head(model, manifest: str, max_clips: int = 5000, steps: int = 500, batch_size: int = 256,
                         lr: float = 2e-3, temperature: float = 0.07, seed: int = 0, cache=None) -> float:
    """Train ``model.text_projection`` and ``model.text_transform`` on the manifest's
    captions alone: two captions of one clip are positives, the batch's other clips
    negatives. Returns the last step's loss."""
    groups = sample_caption_groups(manifest, max_clips, seed)
    if len(groups) < 2:
        raise ConfigError(f"text_head_init=paraphrase: {manifest} needs at least two clips with two or more "
                          "distinct captions (global or fine-grained)")
    distinct = list(dict.fromkeys(c for g in groups for c in g))
    row = {c: i for i, c in enumerate(distinct)}
    heads = torch.nn.Sequential(model.text_projection, model.text_transform)
    param = next(heads.parameters())
    feats = pooled_features(model, distinct, cache=cache).to(param.device, param.dtype)
    index = [torch.tensor([row[c] for c in g]) for g in groups]
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(groups))
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.01)
    owner = stage_one_owner(batch_size, param.device)
    log_scale = torch.tensor(math.log(1.0 / temperature), device=param.device)
    loss = torch.zeros(())
    # trained here even when the run keeps the heads frozen
    with heads_set(model, training=True, trainable=True), torch.enable_grad():
        for _ in range(steps):
            pairs = [index[i][torch.randperm(len(index[i]), generator=gen)[:2]] for i in rng.sample(range(len(groups)), batch_size)]
            pairs = torch.stack(pairs).to(param.device)
            a = F.normalize(heads(feats[pairs[:, 0]]), dim=-1)
            b = F.normalize(heads(feats[pairs[:, 1]]), dim=-1)
            loss = contrastive_loss(a, b, owner, log_scale)  # symmetric InfoNCE, b[i] is a[i]'s caption
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    loss = loss.detach()
    log.info("text head: paraphrase start from %d clips (%d distinct captions), %d steps, final loss %.3f",
             len(groups), len(distinct), steps, loss.item())
    return loss.item()
