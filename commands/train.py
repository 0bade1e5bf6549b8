"""``clsp train``: contrastive training (stage one InfoNCE, stage two multi-positive InfoNCE)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import Options, QuietOpt


@command(resumable=True, records=False)
def main(
    config: Annotated[Optional[str], typer.Argument(help="YAML or JSON training config (examples/configs/*.yaml); with --resume, default: the run's saved OUTPUT_DIR/config.json.", show_default=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Config overrides as key=value, e.g. optim.lr_heads=5e-4 data.train=train.jsonl.", show_default=False)] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="'latest' (newest checkpoint in the output dir, if any) or a checkpoint folder.")] = None,
    output_dir: Annotated[Optional[str], typer.Option("--output-dir", "-o", help="Where logs and checkpoints go (overrides output_dir).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="The trained model's name in its checkpoints and in what it embeds (overrides name; default: the output dir's name).")] = None,
    local_loss: Annotated[bool, typer.Option("--local-loss", help="Each rank computes only its rows of the loss (B x N logits); same gradient.")] = False,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps (overrides max_steps).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda (overrides device).")] = None,
    quiet: QuietOpt = False,
):
    """Train or fine-tune a CLSP model on speech with style captions.

    Manifests are JSONL or Lhotse cuts (.jsonl / .jsonl.gz) with an audio path and
    global_captions / finegrained_captions (or short_captions / long_captions). Metrics go
    to OUTPUT_DIR/metrics.jsonl, checkpoints to OUTPUT_DIR/checkpoints/step-N/model (a model
    directory usable with --model). Multi-GPU: launch with torchrun or srun. SIGTERM,
    SIGUSR1 or a first Ctrl-C writes a checkpoint and exits with 75 (a second Ctrl-C stops at
    once, exit 130); run again with --resume latest.

    The trained model is named after OUTPUT_DIR (or --name); a model trained from init_from
    records that model as its parent. --resume latest -o OUTPUT_DIR alone continues a run with
    its saved config. A run that fails before its first step removes what it wrote.

    Examples: fine-tune the default model on your captioned clips:
    clsp train examples/configs/finetune.yaml data.train=my_clips.jsonl -o exp/my-voices
    (it uses clips of 0.5 to 20 s, data.min_duration / data.max_duration, skipping and counting
    the others, batches of at most 120 s of audio, data.max_batch_seconds, and 500 steps);
    clsp train --resume latest -o exp/my-voices;
    torchrun --nproc_per_node 8 -m clsp_cli.app train examples/configs/stage2.yaml --resume latest
    """
    return _run(Options.of(locals()))


def _run(o: Options) -> int:
    import json
    import logging
    from pathlib import Path

    from clsp.distributed import env_dist_info
    from clsp.errors import ConfigError
    from clsp.train import EXIT_PREEMPTED, load_config, load_run_config, train
    from clsp.train.config import check_repeated_overrides
    from clsp_cli.console import log, set_quiet

    is_main = env_dist_info().is_main
    set_quiet(o.quiet or not is_main)
    config, extra = o.config, list(o.overrides or [])
    if config is not None and "=" in config and not Path(config).exists():  # `--resume latest -o DIR key=value`
        config, extra = None, [config, *extra]
    if o.output_dir is not None:
        extra.append(f"output_dir={json.dumps(o.output_dir)}")  # a YAML string, whatever the path looks like
    if o.name is not None:
        extra.append(f"name={json.dumps(o.name)}")
    if o.local_loss:
        extra.append("loss.local_loss=true")
    if o.max_steps is not None:
        extra.append(f"max_steps={o.max_steps}")
    if o.device is not None:
        extra.append(f"device={o.device}")
    check_repeated_overrides(extra)
    if config is None and o.resume is not None:
        if o.output_dir is None:
            raise ConfigError("--resume without a config file: give --output-dir, the folder of the run to resume")
        cfg = load_run_config(o.output_dir, extra, o.resume)
    else:
        cfg = load_config(config, extra)

    def show(record: dict) -> None:
        shown = {k: v for k, v in record.items() if k not in ("epoch",)}
        log(" ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))

    # the console shows clsp's log lines: a root handler a library installs (Lhotse's logging.info
    # calls logging.basicConfig) would print each one again, so they stop at the clsp logger
    library_logs = logging.getLogger("clsp")
    propagate, library_logs.propagate = library_logs.propagate, False
    try:
        result = train(cfg, resume=o.resume, on_log=show)
    finally:
        library_logs.propagate = propagate
    if result.status == "preempted":
        log(f"stopped at step {result.step}; checkpoint {result.checkpoint}; resume with --resume latest")
        return EXIT_PREEMPTED
    log(f"finished at step {result.step}; model in {result.checkpoint / 'model'}")
    return 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
