"""Contrastive losses of CLSP.

* Stage one: symmetric InfoNCE between N clips and their N captions.
* Stage two: multi-positive InfoNCE with two captions per clip. Speech->text uses soft
  targets (probability 1/2 on each of the clip's two captions); text->speech uses a hard
  target (the caption's own clip).

Both are one function, :func:`contrastive_loss`, driven by ``text_owner`` (the clip index
of every caption). Identical caption strings inside the (global) batch are *excluded*
from the negatives by default: templated captions repeat across clips, and pushing a clip
away from a caption that literally describes it is noise. A caption identical to one of
clip i's own captions is removed from clip i's softmax denominator (speech->text), and a
clip owning a caption identical to caption k is removed from caption k's denominator
(text->speech). Pass ``text_keys=None`` (or ``mask_duplicates=False`` upstream) to treat
them as ordinary negatives, as the original recipe did.

Distributed use: pass the *gathered* features (see :func:`clsp.distributed.gather_features`)
and, for the cheaper local variant, the row ranges this rank is responsible for; the
value returned is then this rank's share of the global loss, so the shares sum to it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from clsp.distributed import gather_features, gather_sizes, world

MAX_LOGIT_SCALE = math.log(100.0)
_MASKED = -1.0e9  # finite, so that 0 * log_softmax stays 0 with soft targets


def caption_keys(captions: Sequence[str]) -> torch.Tensor:
    """Stable 63-bit hashes of caption strings (int64), so duplicates are found across
    ranks by gathering a small tensor instead of the strings."""
    keys = [
        int.from_bytes(hashlib.blake2b(c.encode("utf-8"), digest_size=8).digest(), "little") >> 1
        for c in captions
    ]
    return torch.tensor(keys, dtype=torch.int64)


def positive_mask(text_owner: torch.Tensor, num_audio: int) -> torch.Tensor:
    """(num_audio, num_text) bool: caption k belongs to clip i."""
    clips = torch.arange(num_audio, device=text_owner.device)
    return clips[:, None] == text_owner[None, :]


def duplicate_mask(text_owner: torch.Tensor, text_keys: torch.Tensor, num_audio: int) -> torch.Tensor:
    """(num_audio, num_text) bool: caption k is not clip i's but repeats one of its captions."""
    pos = positive_mask(text_owner, num_audio)
    same = text_keys[:, None] == text_keys[None, :]
    dup = (pos.to(torch.float32) @ same.to(torch.float32)) > 0
    return dup & ~pos


def contrastive_loss(
    audio: torch.Tensor,
    text: torch.Tensor,
    text_owner: torch.Tensor,
    logit_scale: torch.Tensor,
    text_keys: torch.Tensor | None = None,
    audio_rows: slice | None = None,
    text_rows: slice | None = None,
) -> torch.Tensor:
    """Multi-positive symmetric InfoNCE (one caption per clip gives plain InfoNCE).

    audio (Na, D) and text (Nt, D) are unit-norm embeddings of the whole (gathered) batch;
    ``text_owner`` (Nt,) gives the clip index of each caption; ``logit_scale`` is the
    log of the inverse temperature. ``audio_rows`` / ``text_rows`` restrict the rows
    computed here (local-loss mode); the result is then normalised by the global counts
    so that summing over ranks gives the global loss.
    """
    num_audio, num_text = audio.shape[0], text.shape[0]
    audio_rows = audio_rows or slice(0, num_audio)
    text_rows = text_rows or slice(0, num_text)
    scale = logit_scale.float().exp()
    audio_f, text_f = audio.float(), text.float()

    pos = positive_mask(text_owner, num_audio)
    excluded = duplicate_mask(text_owner, text_keys, num_audio) if text_keys is not None else None

    logits_at = scale * audio_f[audio_rows] @ text_f.T
    target_at = pos[audio_rows].float()
    target_at = target_at / target_at.sum(dim=1, keepdim=True).clamp_min(1.0)
    logits_ta = scale * text_f[text_rows] @ audio_f.T
    target_ta = text_owner[text_rows]
    if excluded is not None:
        logits_at = logits_at.masked_fill(excluded[audio_rows], _MASKED)
        logits_ta = logits_ta.masked_fill(excluded.T[text_rows], _MASKED)

    loss_at = -(target_at * F.log_softmax(logits_at, dim=1)).sum() / num_audio
    loss_ta = F.cross_entropy(logits_ta, target_ta, reduction="sum") / num_text
    return 0.5 * (loss_at + loss_ta)


def stage_one_owner(num_audio: int, device: torch.device | None = None) -> torch.Tensor:
    """Caption owners for stage one: caption i belongs to clip i."""
    return torch.arange(num_audio, device=device)


def stage_two_owner(batch_sizes: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """Caption owners for stage two after gathering ranks' texts laid out
    ``[rank0: c1_1..c1_B, c2_1..c2_B | rank1: ... ]`` (global clip numbering)."""
    owners, offset = [], 0
    for size in batch_sizes:
        local = torch.arange(offset, offset + size, device=device)
        owners.append(torch.cat([local, local]))
        offset += size
    if not owners:
        return torch.zeros(0, dtype=torch.int64, device=device)
    return torch.cat(owners)


@torch.no_grad()
def clamp_logit_scale_(logit_scale: torch.Tensor, max_value: float = MAX_LOGIT_SCALE) -> None:
    """Keep the temperature in [0.01, 1]: ln-scale clamped to [0, ln 100], in place."""
    logit_scale.clamp_(0.0, max_value)


def gathered_contrastive_loss(
    audio: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    captions_per_clip: int = 1,
    text_keys: torch.Tensor | None = None,
    local_loss: bool = False,
) -> torch.Tensor:
    """Loss of the global batch from this rank's features (stage one: 1 caption per clip,
    stage two: 2, local layout ``[c1..., c2...]``).

    Global mode (default) returns the full global loss on every rank. ``local_loss``
    returns only this rank's rows of it (cheaper: B x N logits instead of N x N), and the
    gathered features route the other ranks' gradients back, so the sum over ranks is
    the global loss with its exact gradient. In both modes, ``loss * world_size`` under
    DDP's gradient averaging yields exactly the single-process gradient; in global mode
    the logit scale (whose gradient is already complete on every rank) is given a
    1/world_size gradient factor here so that the same rule holds for it.
    """
    rank, size = world()
    sizes = gather_sizes(audio.shape[0], audio.device)
    text_sizes = [s * captions_per_clip for s in sizes]
    all_audio = gather_features(audio, sizes, reduce_grads=local_loss)
    all_text = gather_features(text, text_sizes, reduce_grads=local_loss)
    keys = gather_features(text_keys, text_sizes) if text_keys is not None else None
    if captions_per_clip == 1:
        owner = stage_one_owner(sum(sizes), audio.device)
    elif captions_per_clip == 2:
        owner = stage_two_owner(sizes, audio.device)
    else:
        raise ValueError(f"captions_per_clip must be 1 or 2, not {captions_per_clip}")
    audio_rows = text_rows = None
    if local_loss and size > 1:
        start = sum(sizes[:rank])
        audio_rows = slice(start, start + sizes[rank])
        text_rows = slice(start * captions_per_clip, (start + sizes[rank]) * captions_per_clip)
    elif size > 1:
        logit_scale = logit_scale / size + (logit_scale - logit_scale / size).detach()
    return contrastive_loss(all_audio, all_text, owner, logit_scale, keys, audio_rows, text_rows)
