"""``clsp plot``: figures of a training run or of an embedding file (PNG or SVG)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import QuietOpt

main = typer.Typer(
    name="plot",
    help="Figures (PNG or SVG, by the file extension): training curves of a run, a 2-D map of embeddings.\n\n"
    "Example: clsp plot run exp/run1 -o curves.png; clsp plot map clips.emb.jsonl --color-by emotion -o map.png",
    no_args_is_help=True,
)

FigureOpt = Annotated[str, typer.Option("--output", "-o", help="Figure file: .png or .svg.")]


@main.command("run")
@command(records=False)
def run(
    run_dir: Annotated[str, typer.Argument(help="Training run folder (with metrics.jsonl) or a metrics.jsonl file.")],
    output: FigureOpt = "curves.png",
    quiet: QuietOpt = False,
):
    """Training curves of a run: loss, validation R@1 (both directions) and learning rates by step."""
    from clsp.plots import read_metrics, save_figure, training_figure
    from clsp_cli.console import log, set_quiet, warn
    from clsp_cli.figures import check_outputs

    set_quiet(quiet)
    check_outputs(output, None)
    records = read_metrics(run_dir, on_warning=warn)  # values that are no numbers: named, left out
    if not records:
        warn(f"{run_dir}: no metric records yet; no figure written")
        return 0
    save_figure(training_figure(records, title=f"training run {run_dir}", on_note=warn), output)
    log(f"plot: {len(records)} metric record{'s' if len(records) != 1 else ''} of {run_dir} -> {output}")
    return 0


@main.command("map")
@command(records=False)
def embedding_map(
    input: Annotated[str, typer.Argument(help="Embedding records from 'clsp embed' (or a .npy matrix); '-' is stdin.")] = "-",
    color_by: Annotated[Optional[str], typer.Option("--color-by", "-c", help="Record field that colours the points (e.g. emotion, speaker).")] = None,
    npy: Annotated[Optional[str], typer.Option("--npy", help="Matrix the records' 'row' fields point into (from 'clsp embed --npy').")] = None,
    output: FigureOpt = "map.png",
    quiet: QuietOpt = False,
):
    """A 2-D map (PCA) of embeddings, one point per record, coloured by a field.

    Records that carry no usable embedding are reported on stderr and left out (exit 3).
    """
    from clsp.index.records import EmbeddingReader, load_matrix
    from clsp.plots import map_figure, pca_2d, save_figure
    from clsp_cli.console import log, set_quiet, warn
    from clsp_cli.figures import check_outputs

    set_quiet(quiet)
    check_outputs(output, None)
    from clsp_cli.inputs import MissingMatrix, skip_notice

    from clsp.index.records import record_modality

    reader = EmbeddingReader(load_matrix(npy) if npy else None)
    vectors, labels, skipped, fields, kinds = [], [], 0, [], []
    with MissingMatrix(input) as no_matrix:  # a forgotten --npy: one warning, not one per record
        on_skip = skip_notice(no_matrix=no_matrix)
        for item, vec in reader.read(input):
            if vec is None:
                skipped += 1
                on_skip(item.id, item.error)
                continue
            vectors.append(vec)
            kinds.append(record_modality(item.record or {}))
            labels.append(item.record.get(color_by) if color_by else "all")
            fields = fields or sorted(k for k in item.record if k not in ("embedding", "provenance")
                                      and not str(k).startswith("_"))
    if not vectors and not skipped:  # an empty input: nothing to draw, as every command treats one
        warn(f"{input}: no records; no figure written")
        return 0
    if color_by and vectors and all(label is None for label in labels):
        from clsp.errors import ConfigError

        raise ConfigError(f"--color-by {color_by}: no record of {input} has this field "
                          f"(fields: {', '.join(fields) or 'none'})")
    if color_by and any(label is None for label in labels):
        warn(f"{sum(label is None for label in labels)} of {len(labels)} records have no {color_by!r}: shown as <missing>")
    coords, variance = pca_2d(vectors)
    model = (reader.provenance or {}).get("model", "unknown model")
    title = f"{len(vectors)} embeddings of {input} ({model}), PCA"
    mixed = len(set(kinds) - {None}) > 1
    if mixed:
        speech, captions = kinds.count("audio"), kinds.count("text")
        warn(f"{speech} speech and {captions} caption embeddings on one map (the joint space): speech drawn as "
             "circles, captions as triangles")
    save_figure(map_figure(coords, labels, color_by or "records", variance, title, kinds=kinds if mixed else None),
                output)
    log(f"plot: {len(vectors)} embeddings -> {output}" + (f"; {skipped} records skipped" if skipped else ""))
    return 3 if skipped else 0
