"""Cost and effect of the Zipformer's padding masks, same model, same inputs, same run.

    python benchmarks/padding.py --seconds 1,28            # the released size, random weights
    python benchmarks/padding.py --seconds 1,28 --tiny     # the tests' tiny configuration

Times one padded batch through the speech tower as shipped (masked) and with the published
model's unmasked front end and downsampling (padding leaks), alternating, and prints the
largest |batched - alone| (max abs) over the valid output frames and over the frame means
(the pooled features the heads see) of every clip, for both.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch


@contextlib.contextmanager
def unmasked():
    """The published model's behaviour: padding enters the ConvNeXt and the downsampling groups."""
    from clsp.models.subsampling import ConvNeXt
    from clsp.models.zipformer_blocks import SimpleDownsample

    ds, cn = SimpleDownsample.forward, ConvNeXt.forward
    SimpleDownsample.forward = lambda self, x, lengths=None: ds(self, x, None)
    ConvNeXt.forward = lambda self, x, padding=None: cn(self, x, None)
    try:
        yield
    finally:
        SimpleDownsample.forward, ConvNeXt.forward = ds, cn


def diffs(enc, batch, lens, items) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    out, out_lens = enc(batch, lens)
    seconds = time.perf_counter() - t0
    frame, pooled = 0.0, 0.0
    for i, x in enumerate(items):
        alone, alone_lens = enc(x.unsqueeze(0), lens[i : i + 1])
        n = int(alone_lens[0])
        frame = max(frame, (out[i, :n] - alone[0, :n]).abs().max().item())
        pooled = max(pooled, (out[i, :n].mean(0) - alone[0, :n].mean(0)).abs().max().item())
    return seconds, frame, pooled


def main() -> None:
    from clsp.features import PAD_VALUE
    from clsp.models.zipformer import ZipformerConfig, ZipformerSpeechEncoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", default="1,28", help="clip durations, comma-separated")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny configuration instead of the released size")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.tiny:
        from tests.test_zipformer import TINY

        enc = ZipformerSpeechEncoder(ZipformerConfig(**TINY)).eval()
    else:
        enc = ZipformerSpeechEncoder().eval()
    gen = torch.Generator().manual_seed(1)
    frames = [int(float(s) * 100) for s in args.seconds.split(",")]
    items = [torch.randn(n, 128, generator=gen) * 3 - 8 for n in frames]
    lens = torch.tensor(frames)
    batch = torch.full((len(items), max(frames), 128), PAD_VALUE)
    for i, x in enumerate(items):
        batch[i, : len(x)] = x
    print(f"# {platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{'tiny' if args.tiny else 'released'} config, clips {args.seconds} s")
    print("| variant | batch time s | max abs diff, frames | max abs diff, frame mean |")
    print("|---|---|---|---|")
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, ctx in (("masked", contextlib.nullcontext), ("unmasked (published)", unmasked)):
                with ctx():
                    seconds, frame, pooled = diffs(enc, batch, lens, items)
                print(f"| {name} | {seconds:.2f} | {frame:.2e} | {pooled:.2e} |", flush=True)


if __name__ == "__main__":
    main()
