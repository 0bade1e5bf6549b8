"""``clsp convert``: any supported checkpoint -> a clsp checkpoint directory."""

from __future__ import annotations

from typing import Annotated

import typer

from clsp_cli.errors import command
from clsp_cli.options import QuietOpt


@command(records=False)
def main(
    source: Annotated[str, typer.Argument(help="Model to read: clsp directory, released Hugging Face directory, authors' .pt file, hub id, or built-in name.")],
    destination: Annotated[str, typer.Argument(help="Directory to write (config.json + model.safetensors, and tokenizer/ for a text tower stored with the model; a packaged text tower such as the default model's is named, not copied), replaced atomically.")],
    quiet: QuietOpt = False,
):
    """Convert a checkpoint to clsp's own format (safetensors, no pickle).

    Example: clsp convert /path/to/epoch-45-avg-28.pt models/clsp-released
    """
    from clsp.models import load_model, save_model
    from clsp_cli.console import log, set_quiet

    set_quiet(quiet)
    _check_destination(source, destination)
    from clsp_cli.output_files import lock_folder

    lock = lock_folder(destination)  # one writer: a second run onto the folder stops at once
    model = load_model(source)
    out = _save(save_model, model, destination)
    lock.release()
    n = sum(p.numel() for p in model.parameters())
    log(f"wrote {out} ({n:,} parameters, provenance {model.provenance()})")
    return 0


def _save(save_model, model, destination: str):
    """``save_model``, whose failures (a full disk, a file-size limit, a folder that refuses
    writes) are one ``OutputError`` naming the destination and the system's reason, never the
    hidden temporary folder it writes first (removed again) nor a traceback."""
    from clsp.errors import ClspError, OutputError
    from clsp.train.checkpoint import os_reason

    try:
        return save_model(model, destination)
    except ClspError:
        raise
    except Exception as exc:  # OSError, safetensors' SafetensorError, the tokenizer's Exception
        raise OutputError(f"cannot write {destination}: {os_reason(exc)}") from None


def _check_destination(source: str, destination: str) -> None:
    """A usage error (before anything loads) for a destination that would replace the source or
    a folder holding it, that lies inside the source (a folder written into the model's own
    folder), inside a training checkpoint or a run's ``checkpoints/`` folder (train writes its
    own ``step-N`` folders there), or that is not a model folder
    (``clsp.models.checkpoint.check_replaceable``)."""
    import os
    from pathlib import Path

    from clsp.errors import ConfigError
    from clsp.models.checkpoint import check_replaceable

    out = Path(os.path.realpath(destination))
    src = Path(os.path.realpath(source))
    if Path(source).exists() and (src == out or out in src.parents):
        raise ConfigError(f"{destination}: would replace the model being converted ({source}) or a folder holding it; "
                          "give another destination")
    if Path(source).exists() and src in out.parents:  # written into the source's folder: no longer a model folder
        raise ConfigError(f"{destination}: inside the model being converted ({source}); writing there would add a "
                          "folder to that model's own folder; give a destination outside it")
    from clsp.train.checkpoint import COMPLETE, TRAINER_STATE, checkpoints_dir, list_checkpoints
    from clsp.train.config import RUN_CONFIG

    for folder in (out, *out.parents):  # a training checkpoint's model pairs with its optimizer state
        if (folder / TRAINER_STATE).exists() or (folder / COMPLETE).exists():
            raise ConfigError(f"{destination}: inside the training run checkpoint {folder}; replacing its model would "
                              "make a --resume train other weights than the ones saved with its optimizer state; give "
                              "a destination outside the run")
        run = folder.parent
        if folder == checkpoints_dir(run) and (list_checkpoints(run) or (run / RUN_CONFIG).is_file()
                                               or (run / "metrics.jsonl").is_file()):
            raise ConfigError(f"{destination}: inside the checkpoints folder {folder} of the training run {run}, where "
                              "training writes its own step-N checkpoints (a --resume would meet the model there); "
                              "give a destination outside the run")
    check_replaceable(out)
