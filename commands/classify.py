"""``clsp classify``: zero-shot labels for speech from a prompt pack, with WA/UA evaluation."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import (AudioRootOpt, DeviceOpt, InputsArg, ModelOpt, NBootOpt, OnError, OnErrorOpt, OutputOpt,
                              QuietOpt, ReportOpt)


@command
def main(
    input: InputsArg = None,
    pack: Annotated[str, typer.Option("--pack", "-p", help="Built-in prompt pack name (see --list-packs) or a JSON/YAML pack file.")] = "emotion",
    attribute: Annotated[Optional[str], typer.Option("--attribute", "-a", help="Attribute of a multi-attribute pack (e.g. ravdess: emotion, gender).")] = None,
    model: ModelOpt = "default",
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="Softmax temperature for 'scores'; default: the model's learned logit scale.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Also write the k best classes as 'top_k'.")] = 0,
    label_key: Annotated[Optional[str], typer.Option("--label-key", help="Field holding the gold label: report WA, UA, per-class recall, confusion and 95% CIs.")] = None,
    report: ReportOpt = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="With --label-key: write the confusion matrix figure (.png or .svg).")] = None,
    html: Annotated[Optional[str], typer.Option("--html", help="With --label-key: write a listening page of the misclassified clips.")] = None,
    html_embed: Annotated[bool, typer.Option("--html-embed", help="Embed the audio in the --html page (base64) so it can be shared alone.")] = False,
    npy: Annotated[Optional[str], typer.Option("--npy", help="Matrix for embedding records that carry a 'row' (from 'clsp embed --npy').")] = None,
    output: OutputOpt = "-",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Most clips per batch.")] = 32,
    n_boot: NBootOpt = 1000,
    list_packs: Annotated[bool, typer.Option("--list-packs", help="List the built-in prompt packs on stdout and exit.")] = False,
    device: DeviceOpt = "auto",
    audio_root: AudioRootOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Classify speech zero-shot against the classes of a prompt pack.

    Inputs hold audio (manifests, files, folders, globs) or embedding records from 'clsp embed'.
    One output per input: the record plus 'label' and 'scores' (class -> probability).

    Example: clsp classify clips.jsonl --pack ravdess --attribute gender --label-key gender
    """
    return _run(**locals())


def _run(input, pack, attribute, model, temperature, top_k, label_key, report, plot, html, html_embed, npy, output,
         batch_size, n_boot, list_packs, device, audio_root, on_error, quiet) -> int:
    from clsp.prompts import builtin_pack_names, load_pack
    from clsp_cli.console import Throughput, log, set_quiet, warn
    from clsp_cli.output import RecordSink

    set_quiet(quiet)
    if list_packs:
        return _print_packs(builtin_pack_names(), load_pack)
    if top_k < 0 or batch_size < 1 or n_boot < 0:
        from clsp.errors import ConfigError

        raise ConfigError("--top-k and --n-boot must be >= 0 and --batch-size >= 1")
    from clsp_cli.figures import check_outputs, classify_outputs

    check_outputs(plot, html, label_key, "--label-key")
    prompt_set = load_pack(pack).get(attribute)  # refuse a bad pack before loading the model
    from clsp_cli.inputs import input_items

    items = input_items(input, "any", audio_root)  # refuse bad inputs before loading the model

    from clsp.models import load_model
    from clsp.zeroshot import ZeroShotClassifier

    net = load_model(model)
    prov = net.provenance()
    clf = ZeroShotClassifier.from_model(net, prompt_set, temperature)
    log(f"classify: pack {pack!r}, attribute {prompt_set.attribute!r}, classes {', '.join(prompt_set.output_classes)}; "
        f"softmax scale {clf.scale:.3g}")
    sink = RecordSink(output, on_error=on_error.value)
    gold: list[str] = []
    pred: list[str] = []
    unknown_gold: dict[str, int] = {}
    misses: list[dict] = []
    fields: set[str] = set()  # of the classified records, to tell a --label-key that none has
    from clsp_cli.inputs import MissingMatrix

    no_matrix = MissingMatrix(" ".join(input or ["-"]))
    with Throughput("classify", "clips") as progress:
        for item, emb, err in _embeddings(items, net, prov, npy, batch_size, device):
            if err is not None:
                no_matrix.check(item, npy)
                sink.write_error(item.id, err)
                progress.update(failed=1)
                continue
            from clsp.errors import ClspError
            from clsp.records import public_fields

            try:
                result = clf.classify(emb, top_k=top_k or None)[0]
            except ClspError as exc:
                sink.write_error(item.id, exc)
                progress.update(failed=1)
                continue
            rec = {k: v for k, v in public_fields(item.record).items() if k not in ("embedding", "provenance")}
            sink.write({**rec, **result})
            progress.update()
            if label_key is not None:
                fields.update(rec)
                counted = len(gold)
                _collect(item.record, label_key, prompt_set, result["label"], gold, pred, unknown_gold)
                if html and len(gold) > counted and gold[-1] != pred[-1]:
                    misses.append({**rec, "gold": gold[-1], **result})
    no_matrix.warn()
    if label_key is not None and fields and label_key not in fields:
        from clsp.errors import ConfigError

        raise ConfigError(f"--label-key {label_key!r}: no record has this field (their fields: "
                          f"{', '.join(sorted(fields)[:12])}{', ...' if len(fields) > 12 else ''})")
    if unknown_gold:
        warn("gold labels not in the pack were left out of the metrics: "
             + ", ".join(f"{k!r} x{v}" for k, v in sorted(unknown_gold.items())))
    if label_key is not None:
        summary = _evaluate(gold, pred, prompt_set, pack, prov, label_key, n_boot, unknown_gold)
        if not quiet:
            _render(summary)
        sink.write_summary(summary, report)
        classify_outputs(summary, misses, plot, html, html_embed)
    sink.commit()
    return sink.exit_code


def _print_packs(names, load_pack) -> int:
    import sys

    for name in names:
        p = load_pack(name)
        for attr, s in p.attributes.items():
            sys.stdout.write(f"{name}\t{attr}\t{', '.join(s.output_classes)}\n")
    return 0


def _collect(record, label_key, prompt_set, label, gold, pred, unknown_gold) -> None:
    value = record.get(label_key)
    canonical = None if value is None else prompt_set.canonical_label(value)
    if canonical is None:
        key = "<missing>" if value is None else str(value)
        unknown_gold[key] = unknown_gold.get(key, 0) + 1
        return
    gold.append(canonical)
    pred.append(label)


def _embeddings(items, net, prov, npy, batch_size, device):
    """(item, embedding (1, D) or None, error or None) per input record, in order."""
    from itertools import islice

    from clsp.embed import AudioEmbedder, EmbedConfig
    from clsp.index.records import EmbeddingReader, load_matrix

    reader = EmbeddingReader(load_matrix(npy) if npy else None, provenance=prov)
    embedder = AudioEmbedder(net, EmbedConfig(batch_size=batch_size, device=device))
    while chunk := list(islice(items, 256)):
        audio = []
        for item in chunk:
            rec = item.record
            if item.ok and "embedding" not in rec and "row" not in rec and isinstance(rec.get("_path"), str):
                audio.append(item)  # the reader resolved the path (clsp.records.parse_line)
        embedded = {res.item.index: res for res in embedder.run(audio)}
        for item in chunk:
            if item.index in embedded:
                res = embedded[item.index]
                yield item, (None if res.error else res.embeddings[:1]), res.error
            else:
                yield (item, *_stored_embedding(item, reader))


def _stored_embedding(item, reader):
    """A precomputed (1, D) embedding from the record ('embedding' list or 'row' of --npy)."""
    from clsp.errors import ClspError

    try:
        return reader.vector(item)[None, :], None
    except ClspError as exc:
        return None, exc


def _evaluate(gold, pred, prompt_set, pack, prov, label_key, n_boot, unknown_gold) -> dict:
    from clsp.metrics.classification import classification_report

    metrics = classification_report(gold, pred, labels=prompt_set.output_classes, n_boot=n_boot)
    return {"task": "classify", "pack": pack, "attribute": prompt_set.attribute, "label_key": label_key,
            "model": prov, "skipped_gold": dict(unknown_gold), **metrics}


def _fmt(value, ci=None) -> str:
    text = "n/a" if value is None else f"{100 * value:.1f}"
    return text + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci and ci[0] is not None else "")


def _render(summary: dict) -> None:
    from rich.table import Table

    from clsp_cli.console import console

    console.print(f"{summary['attribute']}: n={summary['n']}  WA {_fmt(summary['wa'], summary.get('wa_ci'))}  "
                  f"UA {_fmt(summary['ua'], summary.get('ua_ci'))}  (%, 95% bootstrap CI)", markup=False)
    labels, matrix = summary["confusion"]["labels"], summary["confusion"]["matrix"]
    # show only classes that occur as gold or prediction; the summary keeps the full matrix
    shown = [i for i, _ in enumerate(labels) if sum(matrix[i]) or sum(row[i] for row in matrix)]
    table = Table(title="confusion (rows: gold, columns: predicted)", title_justify="left")
    table.add_column("gold \\ pred")
    for i in shown:
        table.add_column(labels[i], justify="right")
    table.add_column("recall %", justify="right")
    for i in shown:
        recall = summary["per_class_recall"].get(labels[i])
        table.add_row(labels[i], *[str(matrix[i][j]) for j in shown], "-" if recall is None else _fmt(recall))
    console.print(table)
