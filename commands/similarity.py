"""``clsp similarity``: speaking-style similarity of speech-speech or speech-caption pairs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import AudioRootOpt, DeviceOpt, ModelOpt, NBootOpt, OnError, OnErrorOpt, OutputOpt, QuietOpt, ReportOpt


@command
def main(
    a: Annotated[Optional[str], typer.Argument(help="An audio file or a caption; alone: a pairs JSONL file ('-' is stdin).", show_default=False)] = None,
    b: Annotated[Optional[str], typer.Argument(help="An audio file or a caption to compare with A.", show_default=False)] = None,
    model: ModelOpt = "default",
    human_key: Annotated[Optional[str], typer.Option("--human-key", help="Field with a human rating: report Pearson, Spearman and Kendall correlations with 95% CIs.")] = None,
    group_key: Annotated[Optional[str], typer.Option("--group-key", help="With --human-key: also report correlations per value of this field (e.g. category).")] = None,
    below: Annotated[Optional[float], typer.Option("--below", help="Keep only pairs scoring below X.")] = None,
    above: Annotated[Optional[float], typer.Option("--above", help="Keep only pairs scoring above X.")] = None,
    report: ReportOpt = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="With --human-key: write a score-vs-rating scatter (.png or .svg).")] = None,
    output: OutputOpt = "-",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Pairs per batch.")] = 16,
    n_boot: NBootOpt = 1000,
    device: DeviceOpt = "auto",
    audio_root: AudioRootOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Score how alike two clips sound, or how well a caption describes a clip.

    The score is the cosine of the two CLSP embeddings, in [-1, 1] (higher: closer in
    speaking style). Each side is an audio path or free text; pairs files hold
    {"a": ..., "b": ...} records (or a_audio / a_text / b_audio / b_text fields).

    Examples: clsp similarity a.wav b.wav;  clsp similarity a.wav "a whispering young woman";
    clsp similarity pairs.jsonl --human-key rating
    """
    return _run(**locals())


def _run(a, b, model, human_key, group_key, below, above, report, plot, output, batch_size, n_boot, device, audio_root, on_error,
         quiet) -> int:
    from pathlib import Path

    from clsp.errors import ConfigError
    from clsp_cli.console import Throughput, log, set_quiet
    from clsp_cli.output import RecordSink

    set_quiet(quiet)
    if batch_size < 1 or n_boot < 0:
        raise ConfigError("--batch-size must be >= 1 and --n-boot >= 0")
    if group_key and not human_key:
        raise ConfigError("--group-key needs --human-key")
    from clsp_cli.figures import check_outputs, similarity_plot

    check_outputs(plot, None, human_key, "--human-key")
    import math

    if any(v is not None and not math.isfinite(v) for v in (below, above)):
        raise ConfigError("--below and --above must be finite numbers")
    if b is not None:
        records, base = [{"id": "pair", "a": a, "b": b}], Path.cwd()
    else:
        from clsp.records import base_dir_of
        from clsp.similarity import AUDIO_EXTENSIONS

        source = a or "-"
        if source.lower().endswith(AUDIO_EXTENSIONS):
            raise ConfigError(f"{source} is audio: give two sides (clsp similarity A B) or a pairs JSONL file")
        records, base = _pairs(source, audio_root), base_dir_of(source, audio_root)

    from clsp.models import load_model
    from clsp.similarity import ModelEncoders, keep_score, score_pairs

    net = load_model(model, with_text=not _audio_only(records, base))
    prov = net.provenance()
    sink = RecordSink(output, on_error=on_error.value)
    ratings: list[tuple[float, float, object]] = []
    kept = dropped = unrated = 0
    with Throughput("similarity", "pairs") as progress:
        for rec in score_pairs(records, ModelEncoders(net, batch_size, device), batch_size, base_dir=base):
            if "error" in rec:
                sink.write_error(rec["id"], _as_error(rec["error"]))
                progress.update(failed=1)
                continue
            progress.update()
            if human_key is not None and not _collect(rec, human_key, group_key, ratings):
                unrated += 1
            if not keep_score(rec["score"], below, above):
                dropped += 1
                continue
            kept += 1
            sink.write(rec)
            if b is not None:
                log(f"{rec['pair']} similarity {rec['score']:.4f} (cosine in [-1, 1]; higher = closer in speaking style)")
    if below is not None or above is not None:
        log(f"similarity: kept {kept} pairs, dropped {dropped} outside the score range")
    if human_key is not None:
        summary = _correlations(ratings, human_key, group_key, n_boot, prov)
        summary["unrated"] = unrated
        if unrated:
            log(f"similarity: {unrated} scored pairs have no numeric '{human_key}' and are not in the correlations")
        if not quiet:
            _render(summary)
        sink.write_summary(summary, report)
        similarity_plot(plot, ratings, summary)
    sink.commit()
    return sink.exit_code


def _pairs(source, audio_root=None):
    """Pair records from a JSONL file or stdin; unreadable lines become errors."""
    from clsp_cli.inputs import input_items

    for item in input_items([source], "pairs", audio_root):
        if not item.ok:
            item.error.record_id = item.id  # the reader's best id for the line (its 'id' field if readable)
            yield item.error
        else:
            rec = item.record
            if rec.get("id") == "null":
                rec["id"] = item.index
            yield rec


def _as_error(err: dict):
    """Rebuild a ClspError from an error record so the sink can apply --on-error."""
    from clsp import errors

    cls = getattr(errors, err.get("type", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.ClspError)):
        cls = errors.InputError
    return cls(err.get("message", ""))


def _collect(rec, human_key, group_key, ratings) -> bool:
    """Keep (score, rating, group) when the rating is a finite number (or numeric string)."""
    import math

    from clsp.similarity import record_field

    value = record_field(rec, human_key)
    if isinstance(value, bool):
        return False
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(value):
        return False
    ratings.append((rec["score"], value, record_field(rec, group_key) if group_key else None))
    return True


def _correlations(ratings, human_key, group_key, n_boot, prov) -> dict:
    from clsp.metrics.correlation import correlation_report

    summary = {"task": "similarity", "human_key": human_key, "model": prov,
               "overall": correlation_report([r[0] for r in ratings], [r[1] for r in ratings], n_boot=n_boot)}
    if group_key:
        groups = sorted({str(r[2]) for r in ratings})
        summary["group_key"] = group_key
        summary["groups"] = {
            g: correlation_report([r[0] for r in ratings if str(r[2]) == g], [r[1] for r in ratings if str(r[2]) == g],
                                  n_boot=n_boot)
            for g in groups
        }
    return summary


def _fmt(rep: dict, name: str) -> str:
    value, ci = rep.get(name), rep.get(f"{name}_ci")
    text = "n/a" if value is None else f"{value:.3f}"
    if name in rep.get("ci_undefined", {}):
        return text + " [no CI]"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else "")


def _render(summary: dict) -> None:
    from rich.table import Table

    from clsp_cli.console import console

    table = Table(title=f"score vs '{summary['human_key']}' (95% bootstrap CI)", title_justify="left")
    for col in ("pairs", "n", "Pearson r", "Spearman rho", "Kendall tau-b"):
        table.add_column(col)
    rows = [("all", summary["overall"])] + list(summary.get("groups", {}).items())
    for name, rep in rows:
        table.add_row(str(name), str(rep["n"]), _fmt(rep, "pearson"), _fmt(rep, "spearman"), _fmt(rep, "kendall"))
    console.print(table)
    if any("ci_undefined" in rep for _, rep in rows):
        console.print("no CI: too few items or distinct values for a bootstrap interval (see 'ci_undefined')",
                      markup=False)


def _audio_only(records, base) -> bool:
    """True for a one-off check of two audio files: the text tower need not load."""
    from clsp.errors import ClspError
    from clsp.similarity import resolve_side

    if not isinstance(records, list) or len(records) != 1:
        return False
    try:
        return all(resolve_side(records[0], s, base).kind == "audio" for s in ("a", "b"))
    except ClspError:
        return False
