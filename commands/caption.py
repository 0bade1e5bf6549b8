"""``clsp caption``: speaking-style captions from audio (acoustic measurements or an audio LM)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import AudioRootOpt, DeviceOpt, DtypeOpt, InputsArg, OnError, OnErrorOpt, OutputOpt, QuietOpt


class Backend(str, Enum):
    acoustic = "acoustic"
    model = "model"


@command
def main(
    input: InputsArg = None,
    backend: Annotated[Backend, typer.Option("--backend", help="acoustic: offline measurements and bins (CPU); model: an audio language model.")] = Backend.acoustic,
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
    audio_root: AudioRootOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Write speaking-style captions (global and fine-grained) for audio clips.

    Manifest records may carry gender, age, emotion, accent and speaker; they are used when present.

    Example: clsp caption clips.jsonl > clips.captions.jsonl
    """
    return _run(**locals())


def _run(input, backend, model, bins, loudness_reference, num_global, num_finegrained, seed, temperature, top_p, top_k,
         num_samples, max_new_tokens, select_with, batch_size, device, dtype, output, as_cuts, audio_root, on_error,
         quiet) -> int:
    from clsp.errors import ClspError, ConfigError
    from clsp.records import public_fields
    from clsp_cli.inputs import input_items
    from clsp_cli.console import Throughput, set_quiet
    from clsp_cli.output import RecordSink

    set_quiet(quiet)
    if num_global < 0 or num_finegrained < 0 or num_global + num_finegrained == 0:
        raise ConfigError("--num-global and --num-finegrained must be >= 0, and not both 0")
    if backend is Backend.acoustic and (model or select_with):
        raise ConfigError("--model and --select-with belong to --backend model")
    if backend is Backend.model and not model:
        raise ConfigError("--backend model needs --model DIR_OR_HUB_ID")
    items = input_items(input, "audio", audio_root)
    sink = RecordSink(output, on_error=on_error.value)

    def write(item, rec) -> bool:
        """Write a caption record (as a cut with ``--as-cuts``); False when that fails."""
        if as_cuts:
            from clsp.cuts import captioned_cut

            try:
                rec = captioned_cut(item.record, rec)
            except ClspError as exc:
                sink.write_error(item.id, exc)
                return False
        sink.write(rec)
        return True

    with Throughput("caption") as progress:
        if backend is Backend.acoustic:
            _acoustic(items, sink, write, progress, bins, loudness_reference, num_global, num_finegrained, seed)
        else:
            _model(items, sink, write, progress, public_fields, model=model, seed=seed, temperature=temperature,
                   top_p=top_p, top_k=top_k, num_samples=num_samples, max_new_tokens=max_new_tokens,
                   select_with=select_with, batch_size=batch_size, device=device, dtype=dtype,
                   num_global=num_global, num_finegrained=num_finegrained)
    sink.commit()
    return sink.exit_code


def _acoustic(items, sink, write, progress, bins, loudness_reference, num_global, num_finegrained, seed) -> None:
    from dataclasses import replace

    from clsp.caption.backend import AcousticCaptioner
    from clsp.caption.loudness import LoudnessReference, corpus_reference
    from clsp.caption.pipeline import caption_acoustic, measure_record
    from clsp.errors import ClspError
    from clsp_cli.console import log

    reference = LoudnessReference.parse(loudness_reference)
    captioner = AcousticCaptioner.from_bins_file(bins, num_global=num_global, num_finegrained=num_finegrained,
                                                 seed=seed, loudness=reference)

    def measured(item):
        """The item's measurements, or the error that stops it."""
        if item.error is not None:
            return item.error
        try:
            return measure_record(item.record, captioner)
        except ClspError as exc:
            return exc

    pairs = ((item, measured(item)) for item in items)
    if reference.mode == "corpus" and reference.lufs is None:
        # Loudness words need the corpus median first: measure every clip, then write.
        pairs = list(pairs)
        lufs = corpus_reference([m.overall.get("loudness_lufs") for _, m in pairs if not isinstance(m, ClspError)])
        captioner = replace(captioner, loudness=LoudnessReference("corpus", lufs))
        if lufs is not None:
            log(f"caption: loudness words relative to the corpus median of {lufs:.1f} LUFS "
                f"(pass --loudness-reference {lufs:.1f} to caption more clips of this corpus alike)")
    for item, m in pairs:
        try:
            if isinstance(m, ClspError):
                raise m
            rec = caption_acoustic(item.record, captioner, measurements=m)
        except ClspError as exc:
            sink.write_error(item.id, exc)
            progress.update(failed=1)
            continue
        ok = write(item, rec)
        progress.update(audio_seconds=rec["measurements"]["duration_s"], failed=int(not ok))


def _model(items, sink, write, progress, public_fields, *, model, seed, temperature, top_p, top_k, num_samples,
           max_new_tokens, select_with, batch_size, device, dtype, num_global, num_finegrained) -> None:
    from clsp.caption.llm import AudioLMCaptioner, ModelCaptionConfig, SamplingConfig
    from clsp.caption.pipeline import batched, caption_model_batch

    kinds = tuple(k for k, n in (("global", num_global), ("finegrained", num_finegrained)) if n > 0)
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, top_k=top_k, num_samples=num_samples,
                              max_new_tokens=max_new_tokens, seed=seed)
    captioner = AudioLMCaptioner(ModelCaptionConfig(model=model, device=device, dtype=dtype,
                                                    batch_size=batch_size, kinds=kinds, sampling=sampling))
    ranker = None
    if select_with:
        from clsp.models import load_model

        ranker = load_model(select_with)
    keep = {"global": num_global, "finegrained": num_finegrained}
    for batch in batched(items, batch_size):
        good = [it for it in batch if it.error is None]
        results = iter(caption_model_batch([it.record for it in good], captioner, ranker, keep))
        for item in batch:
            res = item.error if item.error is not None else next(results)
            if isinstance(res, dict):
                progress.update(failed=int(not write(item, res)))
            else:
                sink.write_error(item.id, res)
                progress.update(failed=1)
