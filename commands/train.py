"""``clsp train``: contrastive training (stage one InfoNCE, stage two multi-positive InfoNCE)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import Options, QuietOpt


@command
def main(
    config: Annotated[Optional[str], typer.Argument(help="YAML or JSON training config (examples/configs/*.yaml).", show_default=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Config overrides as key=value, e.g. optim.lr_heads=5e-4 data.train=train.jsonl.", show_default=False)] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="'latest' (newest checkpoint in the output dir, if any) or a checkpoint folder.")] = None,
    output_dir: Annotated[Optional[str], typer.Option("--output-dir", "-o", help="Where logs and checkpoints go (overrides output_dir).")] = None,
    local_loss: Annotated[bool, typer.Option("--local-loss", help="Each rank computes only its rows of the loss (B x N logits); same gradient.")] = False,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps (overrides max_steps).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda (overrides device).")] = None,
    quiet: QuietOpt = False,
):
    """Train or fine-tune a CLSP model on speech with style captions.

    Manifests are JSONL or Lhotse cuts (.jsonl / .jsonl.gz) with an audio path and
    global_captions / finegrained_captions (or short_captions / long_captions). Metrics go
    to OUTPUT_DIR/metrics.jsonl, checkpoints to OUTPUT_DIR/checkpoints/step-N/model (a model
    directory usable with --model). Multi-GPU: launch with torchrun or srun. SIGTERM or
    SIGUSR1 writes a checkpoint and exits with 75; run again with --resume latest.

    Examples: clsp train examples/configs/tiny.yaml data.train=train.jsonl max_steps=200;
    torchrun --nproc_per_node 8 -m clsp_cli.app train examples/configs/stage2.yaml --resume latest
    """
    return _run(Options.of(locals()))


def _run(o: Options) -> int:
    import json

    from clsp.distributed import env_dist_info
    from clsp.train import EXIT_PREEMPTED, load_config, train
    from clsp_cli.console import log, set_quiet

    is_main = env_dist_info().is_main
    set_quiet(o.quiet or not is_main)
    extra = list(o.overrides or [])
    if o.output_dir is not None:
        extra.append(f"output_dir={json.dumps(o.output_dir)}")  # a YAML string, whatever the path looks like
    if o.local_loss:
        extra.append("loss.local_loss=true")
    if o.max_steps is not None:
        extra.append(f"max_steps={o.max_steps}")
    if o.device is not None:
        extra.append(f"device={o.device}")
    cfg = load_config(o.config, extra)

    def show(record: dict) -> None:
        shown = {k: v for k, v in record.items() if k not in ("epoch",)}
        log(" ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))

    result = train(cfg, resume=o.resume, on_log=show)
    if result.status == "preempted":
        log(f"stopped at step {result.step}; checkpoint {result.checkpoint}; resume with --resume latest")
        return EXIT_PREEMPTED
    log(f"finished at step {result.step}; model in {result.checkpoint / 'model'}")
    return 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
