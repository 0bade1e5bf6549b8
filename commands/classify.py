"""``clsp classify``: zero-shot labels for speech from a prompt pack, with WA/UA evaluation."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import (AudioRootOpt, DeviceOpt, InputsArg, ModelOpt, NBootOpt, OnError, OnErrorOpt, Options,
                              OutputOpt, QuietOpt, ReportOpt)


@command
def main(
    input: InputsArg = None,
    pack: Annotated[str, typer.Option("--pack", "-p", help="Built-in prompt pack name (see --list-packs) or a JSON/YAML pack file (a file named like a built-in pack: give it as ./NAME).")] = "emotion",
    attribute: Annotated[Optional[str], typer.Option("--attribute", "-a", help="Attribute of a multi-attribute pack (e.g. ravdess: emotion, gender); default: the one --label-key names.")] = None,
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
    return _run(Options.of(locals()))


def _run(o: Options) -> int:
    from clsp.prompts import builtin_pack_names, load_pack
    from clsp_cli.console import Throughput, is_quiet, log, set_quiet, warn
    from clsp_cli.output import RecordSink, write_results

    set_quiet(o.quiet)
    if o.list_packs:
        return _print_packs(builtin_pack_names(), load_pack)
    if o.top_k < 0 or o.batch_size < 1 or o.n_boot < 0:
        from clsp.errors import ConfigError

        raise ConfigError("--top-k and --n-boot must be >= 0 and --batch-size >= 1")
    from clsp_cli.figures import check_outputs, classify_outputs

    check_outputs(o.plot, o.html, o.label_key, "--label-key", o.report)
    pack = load_pack(o.pack)  # refuse a bad pack before loading the model
    attribute = o.attribute
    if attribute is None and len(pack.attributes) > 1 and o.label_key in pack.attributes:
        attribute = o.label_key  # --label-key emotion on the cremad pack scores its emotion attribute
    prompt_set = pack.get(attribute)
    from clsp_cli.inputs import MissingMatrix, input_items

    items = input_items(o.input, "any", o.audio_root)  # refuse bad inputs before loading the model

    from clsp.zeroshot_items import GoldTally, classify

    run = classify(o.model, items, pack=prompt_set, temperature=o.temperature, top_k=o.top_k, npy=o.npy,
                   batch_size=o.batch_size, device=o.device)
    log(f"classify: pack {o.pack!r}, attribute {prompt_set.attribute!r}, classes "
        f"{', '.join(prompt_set.output_classes)}; softmax scale {run.classifier.scale:.3g}")
    sink = RecordSink(o.output, on_error=o.on_error)
    tally = GoldTally(prompt_set, o.label_key) if o.label_key is not None else None
    misses: list[dict] = []
    no_matrix = MissingMatrix(" ".join(o.input or ["-"]))
    results = no_matrix.watch(run, o.npy)
    if tally is not None:
        results = _until_key_seen(results, tally)
    with Throughput("classify", "clips") as progress:
        for res in write_results(sink, results, progress):
            gold = tally.add(res.item.record, res.value.label) if tally is not None else None
            if o.html and gold is not None and gold != res.value.label:
                misses.append({**res.value.fields, "gold": gold, **res.value.to_dict()})
    no_matrix.warn()
    if tally is not None:
        tally.check_key()
    if tally is not None and tally.unknown:
        warn("gold labels not in the pack were left out of the metrics: "
             + ", ".join(f"{k!r} x{v}" for k, v in sorted(tally.unknown.items())))
    if tally is not None and progress.count:  # an empty input writes nothing, not a summary of nothing
        summary = tally.summary(o.pack, run.provenance, o.n_boot)
        summary["failed"] = progress.failed  # records that failed (error records): in no count above
        if not is_quiet():  # this command's -q, or clsp -q
            from clsp_cli.tables import classification_table

            classification_table(summary)
        sink.write_summary(summary, o.report)
    sink.commit()  # the records, then --report (all or nothing); a figure or page that fails loses none of them
    if tally is not None and progress.count:
        classify_outputs(summary, misses, o.plot, o.html, o.html_embed)
    return sink.exit_code


def _until_key_seen(results, tally):
    """The results, held back until one input record carries ``--label-key``: a key that no
    record has (a typo) is a usage error before any record is written, also to stdout."""
    from clsp.records import public_fields
    from clsp_cli.output import held_until

    def record(res):
        rec = getattr(res.item, "record", None)
        return rec if isinstance(rec, dict) else None

    def none_seen(held):
        for res in held:
            if res.ok and record(res) is not None:
                tally.fields.update(public_fields(record(res)))
        tally.check_key()  # a record counted, none with the key: ConfigError, nothing written

    def seen(res) -> bool:  # a record that failed but has the key shows it is no typo
        tally.key_seen = tally.key_seen or tally.label_key in (record(res) or {})
        return tally.key_seen

    return held_until(results, seen, none_seen)


def _print_packs(names, load_pack) -> int:
    import sys

    for name in names:
        p = load_pack(name)
        for attr, s in p.attributes.items():
            sys.stdout.write(f"{name}\t{attr}\t{', '.join(s.output_classes)}\n")
    return 0
