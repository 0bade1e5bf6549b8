"""``clsp caption``: speaking-style captions from audio (acoustic measurements or an audio LM)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from clsp.caption.backends import caption_backend_names
from clsp_cli.errors import command
from clsp_cli.options import (AudioRootOpt, DeviceOpt, DtypeOpt, InputsArg, OnError, OnErrorOpt, Options, OutputOpt,
                              QuietOpt)


Backend = Enum("Backend", {name: name for name in caption_backend_names()}, type=str)  # the registered backends


@command(outputs=("output", "errors"))
def main(
    ctx: typer.Context,
    input: InputsArg = None,
    backend: Annotated[Backend, typer.Option("--backend", help="acoustic: offline measurements and bins (CPU); model: an audio language model.")] = Backend("acoustic"),
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Audio language model directory or hub id (model backend), e.g. Qwen/Qwen2-Audio-7B-Instruct.")] = None,
    bins: Annotated[Optional[str], typer.Option("--bins", help="Bin edges JSON (acoustic backend); default: the packaged default_bins.json.")] = None,
    loudness_reference: Annotated[str, typer.Option("--loudness-reference", help="Loudness words relative to: corpus (median BS.1770 loudness of the clips captioned together), a LUFS value (e.g. -23, the same for every shard of a corpus), recording (vocal effort only, gain-free) or absolute (LUFS bins). Acoustic backend.")] = "corpus",
    num_global: Annotated[int, typer.Option("--num-global", help="Global captions per clip (acoustic: distinct phrasings).")] = 1,
    num_finegrained: Annotated[int, typer.Option("--num-finegrained", help="Fine-grained captions per clip (acoustic: distinct phrasings).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed for phrasing choice and sampling.")] = 0,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature (model); 0 = greedy.")] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass (model).")] = 0.95,
    top_k: Annotated[int, typer.Option("--top-k", help="Top-k sampling (model); 0 = off.")] = 20,
    num_samples: Annotated[int, typer.Option("--num-samples", help="Sampled candidates per clip and kind (model).")] = 1,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest caption in tokens (model).")] = 512,
    select_with: Annotated[Optional[str], typer.Option("--select-with", help="CLSP model used to rank candidates by speech-caption similarity (model backend).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Clips per generation batch (model).")] = 8,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    output: OutputOpt = "-",
    as_cuts: Annotated[bool, typer.Option("--as-cuts", help="Write Lhotse cuts (the input's own, or MonoCuts made for plain records) with the captions in the first supervision's custom fields (FCaps layout: global_captions, finegrained_captions), ready for clsp train and Lhotse/icefall recipes.")] = False,
    errors: Annotated[Optional[str], typer.Option("--errors", help="Write error records to this file instead of among the captions (with --as-cuts the output is then cuts only, as Lhotse's CutSet.from_file reads it).")] = None,
    audio_root: AudioRootOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Write speaking-style captions (global and fine-grained) for audio clips.

    Manifest records may carry gender, age, emotion, accent and speaker; they are used when present.

    Example: clsp caption clips.jsonl > clips.captions.jsonl
    """
    return _run(Options.of(locals()))


def _run(o: Options) -> int:
    from clsp.caption.backends import caption_clips
    from clsp_cli.console import Throughput, log, set_quiet, warn
    from clsp_cli.inputs import input_items
    from clsp_cli.output import RecordSink, write_results

    set_quiet(o.quiet)
    _refuse_model_options(o)
    from clsp.caption.backends import backend_options

    taken = backend_options(o.backend)  # the other backend's options were refused above when given
    options = {k: v for k, v in vars(o).items() if k in taken}
    items = input_items(o.input, "audio", o.audio_root)
    captions = caption_clips(items, o.backend, as_cuts=o.as_cuts, log=log, **options,
                             on_measured=lambda n: progress.work(n))  # progress: bound below, called inside it
    sink = RecordSink(o.output, on_error=o.on_error)
    if o.errors is not None:
        sink.errors_to = RecordSink(o.errors)
    with Throughput("caption", work_done="measured") as progress:
        for _ in write_results(sink, captions, progress):
            pass
    sink.commit()  # the captions, then --errors: neither is published unless both can be
    if o.as_cuts and sink.failed and sink.errors_to is None:
        warn(f"{o.output if o.output != '-' else 'the output'} holds {sink.failed} error record(s) among the cuts, "
             "which Lhotse's CutSet.from_file does not read (clsp train skips them); write them apart with "
             "--errors FILE")
    return sink.exit_code


def _refuse_model_options(o: Options) -> None:
    """Options of the other backend are a usage error (they would be silently ignored): the
    acoustic backend samples nothing and runs on the CPU, so a sampling or batch option given
    there (on the command line, even at its default value), or a device or precision other than
    the CPU's float32; the model backend measures nothing, so ``--bins`` or
    ``--loudness-reference`` given there."""
    import inspect

    from clsp.caption.backends import backend_options, caption_backend_names
    from clsp.errors import ConfigError

    defaults = inspect.signature(main).parameters
    ctx = getattr(o, "ctx", None)
    mine = backend_options(o.backend)
    others = set().union(*(backend_options(b) for b in caption_backend_names() if b != o.backend)) - mine
    theirs = [name for name in defaults if name in others]  # another backend's options, in the command's order

    def set_by_user(name: str) -> bool:
        source = ctx.get_parameter_source(name) if ctx is not None else None
        if source is None:  # called outside a command line: what differs from the default was set
            return getattr(o, name) != defaults[name].default
        return getattr(source, "name", "") not in ("DEFAULT", "DEFAULT_MAP")  # typer's own click: compared by name

    if o.backend != "acoustic":
        given = [f"--{name.replace('_', '-')} {getattr(o, name)}" for name in theirs if set_by_user(name)]
        if given:
            raise ConfigError(f"{', '.join(given)}: {'these options belong' if len(given) > 1 else 'this option belongs'} "
                              f"to the acoustic backend; --backend {o.backend} writes captions from its model, "
                              "measuring nothing")
        return
    harmless = {"device": ("auto", "cpu"), "dtype": ("auto", "float32", "fp32")}  # what the acoustic backend does
    given = [f"--{name.replace('_', '-')} {getattr(o, name)}" for name in theirs
             if set_by_user(name) and getattr(o, name) not in harmless.get(name, ())]
    if given:
        raise ConfigError(f"{', '.join(given)}: {'these options belong' if len(given) > 1 else 'this option belongs'} "
                          "to --backend model; the acoustic backend samples nothing and measures on the CPU")
