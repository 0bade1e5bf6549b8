"""``clsp convert``: any supported checkpoint -> a clsp checkpoint directory."""

from __future__ import annotations

from typing import Annotated

import typer

from clsp_cli.errors import command
from clsp_cli.options import QuietOpt


@command
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
    model = load_model(source)
    out = save_model(model, destination)
    n = sum(p.numel() for p in model.parameters())
    log(f"wrote {out} ({n:,} parameters, provenance {model.provenance()})")
    return 0
