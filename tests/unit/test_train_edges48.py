"""Edges of training runs: resuming from another folder or with the manifest's path written
otherwise, folders train did not write, audio gone mid-run, empty caption lists, log lines
shown once, pretty-printed JSON given to ``clsp plot run``, and why validation clips drop."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clsp.errors import InputError
from clsp.train import load_config
from clsp.train.loop import Trainer
from clsp.train.toy_corpus import write_toy_corpus
from tests.helpers.cli import invoke

TINY = ["init_from=tiny-random", "device=cpu", "data.num_workers=0", "data.min_duration=0.1", "data.max_duration=1",
        "data.max_batch_seconds=10", "valid_every=0", "tensorboard=false", "log_every=1", "seed=0",
        "optim.schedule=constant", "optim.warmup_steps=0"]


def _corpus(folder: Path) -> Path:
    return write_toy_corpus(folder, clips_per_style=1, min_seconds=0.3, max_seconds=0.5)


def test_resume_takes_the_same_manifest_however_its_path_is_written_and_from_another_folder(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "d")
    first = invoke("train", *TINY, "data.train=d/train.jsonl", "checkpoint_every=2", "max_steps=2", "-o", "exp", "-q",
                   cwd=tmp_path, text=True)
    assert first.returncode == 0, first.stderr
    for given, steps in ((f"data.train={manifest}", 3), ("data.train=./d/train.jsonl", 4)):
        same = invoke("train", *TINY, given, f"max_steps={steps}", "-o", "exp", "--resume", "latest", cwd=tmp_path,
                      text=True)
        assert same.returncode == 0 and "data.train" not in same.stderr and "output_dir" not in same.stderr, same.stderr
    sub = tmp_path / "sub"
    sub.mkdir()
    moved = invoke("train", *TINY, "data.train=../d/train.jsonl", "max_steps=5", "-o", "../exp", "--resume", "latest",
                   cwd=sub, text=True)
    assert moved.returncode == 0 and "data.train" not in moved.stderr and "output_dir" not in moved.stderr, moved.stderr
    saved = invoke("train", "--resume", "latest", "-o", "../exp", "max_steps=6", cwd=sub, text=True)  # the run's config
    assert saved.returncode == 0, saved.stderr
    assert [json.loads(line)["step"] for line in (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()] == [
        1, 2, 3, 4, 5, 6]

    other = manifest.with_name("fewer.jsonl")
    other.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))
    changed = invoke("train", *TINY, "data.train=../d/fewer.jsonl", "max_steps=7", "-o", "../exp", "--resume", "latest",
                     cwd=sub, text=True)
    assert changed.returncode == 2 and "cannot resume with a changed data.train" in changed.stderr, changed.stderr


def test_train_never_deletes_a_folder_it_did_not_write_and_convert_stays_out_of_a_run(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "d")
    out = tmp_path / "exp"
    args = ["train", *TINY, f"data.train={manifest}", "checkpoint_every=2", "-o", str(out)]
    assert invoke(*args, "max_steps=2").returncode == 0
    step2 = out / "checkpoints" / "step-00000002"

    refused = invoke("convert", step2 / "model", out / "checkpoints" / "step-00000004", text=True)
    assert refused.returncode == 2 and f"inside the checkpoints folder {out / 'checkpoints'}" in refused.stderr
    assert not (out / "checkpoints" / "step-00000004").exists()

    converted = out / "checkpoints" / "step-00000004"  # a model put there by hand: not train's to delete
    assert invoke("convert", step2 / "model", tmp_path / "conv").returncode == 0
    os.rename(tmp_path / "conv", converted)
    kept = invoke(*args, "max_steps=4", "--resume", "latest", text=True)
    assert kept.returncode == 2, kept.stderr
    assert f"{converted} exists and is not a checkpoint train wrote" in kept.stderr
    assert (converted / "model.safetensors").is_file() and not (converted / "COMPLETE").exists()

    from clsp.errors import CheckpointError
    from clsp.train import checkpoint as ckpt

    with pytest.raises(CheckpointError, match="is not a checkpoint train wrote"):  # and when the set-up did not see it
        ckpt.save_checkpoint(out, 4, None, {}, {}, 0, 0)
    assert (converted / "model.safetensors").is_file()

    os.rename(converted, tmp_path / "conv")
    cut = out / "checkpoints" / ".tmp-step-00000004"  # a write cut short by a kill: train's own, replaced
    cut.mkdir()
    (cut / "rank-00000.pt").write_bytes(b"")
    done = invoke(*args, "max_steps=4", "--resume", "latest", text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "checkpoints" / "step-00000004" / "COMPLETE").is_file() and not cut.exists()


def test_audio_gone_mid_run_names_the_step_and_the_checkpoint_to_resume_from(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "d")
    for every, want in (("2", "the last checkpoint, {out}/checkpoints/step-00000002 (step 2)"),
                        ("0", "no checkpoint was written")):
        out = tmp_path / f"exp{every}"
        trainer = Trainer(load_config(None, [*TINY, f"data.train={manifest}", f"checkpoint_every={every}",
                                             "max_steps=20", f"output_dir={out}"]))
        step = trainer._optimizer_step

        def losing_audio(batches, trainer=trainer, step=step):
            if trainer.step == 2:  # the third step: its audio is read, then the files go
                for wav in (manifest.parent / "wav").glob("*.wav"):
                    wav.rename(wav.with_suffix(".gone"))
            return step(batches)

        trainer._optimizer_step = losing_audio
        with pytest.raises(InputError) as err:
            trainer.run()
        for gone in (manifest.parent / "wav").glob("*.gone"):
            gone.rename(gone.with_suffix(".wav"))
        assert "no usable training batch" in str(err.value)
        assert "training stopped at step 3" in str(err.value)
        assert want.format(out=out) in str(err.value)
        assert "missing audio" in str(err.value)


def test_empty_caption_lists_fall_through_to_the_next_field(tmp_path: Path) -> None:
    from clsp.train.data import clip_from_record

    record = {"id": "c1", "_path": str(tmp_path / "c1.wav"), "duration": 1.0, "global_captions": [],
              "finegrained_captions": None, "short_captions": ["A calm man."], "long_captions": ["  ", "He speaks calmly."]}
    clip = clip_from_record(record)
    assert clip["global_captions"] == ["A calm man."] and clip["finegrained_captions"] == ["He speaks calmly."]
    with pytest.raises(InputError, match="no captions"):
        clip_from_record({**record, "short_captions": [], "long_captions": [" "]})


def test_log_lines_show_once_when_a_library_installed_a_root_handler(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "d")
    rows = manifest.read_text().splitlines()
    missing = json.loads(rows[0])
    missing.update(id="gone-clip", audio="wav/nowhere.wav")
    manifest.write_text("\n".join([*rows, json.dumps(missing)]) + "\n")
    # a library (Lhotse) calling logging.info installs a root handler through logging.basicConfig
    code = ("import logging, sys; logging.basicConfig(); from clsp_cli.app import main; "
            "sys.argv = ['clsp', *sys.argv[1:]]; main()")
    proc = subprocess.run([sys.executable, "-c", code, "--threads", "1", "train", *TINY, f"data.train={manifest}",
                           "max_steps=1", "checkpoint_every=0", "-o", str(tmp_path / "exp"), "-q"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("skipping manifest row gone-clip") == 1, proc.stderr
    assert "WARNING:clsp" not in proc.stderr


def test_plot_run_of_a_pretty_printed_json_file_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"max_steps": 3, "data": {"train": "t.jsonl"}}, indent=2))
    res = invoke("plot", "run", config, "-o", tmp_path / "x.png", text=True)
    assert res.returncode == 2, res.stderr
    assert "pretty-printed JSON (a lone '{' on line 1)" in res.stderr and "jq -c" in res.stderr
    assert not (tmp_path / "x.png").exists()


def test_validation_drops_name_each_clip_and_its_reason(tmp_path: Path, caplog) -> None:
    from clsp.audio import MIN_SECONDS
    from clsp.train.validate import validate

    manifest = _corpus(tmp_path / "d")
    trainer = Trainer(load_config(None, [*TINY, f"data.train={manifest}", f"output_dir={tmp_path / 'exp'}"]))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    sf.write(tmp_path / "d" / "short.wav", np.zeros(int(16000 * MIN_SECONDS / 2), dtype=np.float32), 16000)
    (tmp_path / "d" / "bad.wav").write_bytes(b"RIFF....WAVEfmt not audio at all" * 4)
    valid = tmp_path / "d" / "valid.jsonl"
    dropped = [{**rows[0], "id": "short-clip", "audio": "short.wav", "duration": MIN_SECONDS / 2},
               {**rows[1], "id": "gone-clip", "audio": "nowhere.wav", "duration": 0.4},
               {**rows[2], "id": "bad-clip", "audio": "bad.wav", "duration": 0.4}]
    valid.write_text("".join(json.dumps(r) + "\n" for r in [*dropped, rows[3], rows[4]]))
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        metrics = validate(trainer.model, str(valid), trainer.cfg.data, trainer.device, trainer.autocast)
    assert metrics["valid/clips"] == 2 and metrics["valid/skipped_clips"] == 3
    text = caplog.text
    assert f"validation set {valid}: 3 clip(s) dropped (" in text
    assert "1 too short audio" in text and "1 missing audio" in text and "1 undecodable audio" in text
    assert f"short-clip: {tmp_path / 'd' / 'short.wav'}: too short ({MIN_SECONDS / 2:.3f} s; at least {MIN_SECONDS} s" in text
    assert "gone-clip: " in text and "nowhere.wav: no such file" in text and "bad-clip: " in text


def test_validation_counts_a_repeated_caption_text_as_the_clips_own(tmp_path: Path) -> None:
    """Six clips, two caption texts: each clip's text is relevant in three of its six captions,
    so no ranking can miss R@5 (left out, as a metric that measures nothing), and R@1 is the
    share of clips whose own text scores first, as speech_text_retrieval gives it with the texts
    as caption keys; not the 0 that identical captions of other clips, tied with its own, forced."""
    from clsp.metrics.retrieval import speech_text_retrieval
    from clsp.train.validate import _encode_texts, embed_validation_set, validate
    from clsp.train.data import SkipCounter

    manifest = _corpus(tmp_path / "d")
    trainer = Trainer(load_config(None, [*TINY, f"data.train={manifest}", f"output_dir={tmp_path / 'exp'}"]))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][:6]
    texts = ["A calm voice." if i % 2 else "An angry shout." for i in range(6)]
    valid = tmp_path / "d" / "valid.jsonl"
    valid.write_text("".join(json.dumps({**r, "global_captions": [t]}) + "\n" for r, t in zip(rows, texts)))
    metrics = validate(trainer.model, str(valid), trainer.cfg.data, trainer.device, trainer.autocast)
    assert metrics["valid/clips"] == 6
    assert "valid/global/s2t_R@1" in metrics and "valid/global/s2t_R@5" not in metrics
    audio, got_texts, _ = embed_validation_set(trainer.model, str(valid), trainer.cfg.data, trainer.device,
                                               trainer.autocast, SkipCounter(shown_per_reason=0))
    want = speech_text_retrieval(audio, _encode_texts(trainer.model, got_texts, trainer.autocast), n_boot=0,
                                 caption_keys=got_texts)
    assert metrics["valid/global/s2t_R@1"] == pytest.approx(want["s2t_R@1"])
    assert metrics["valid/global/t2s_R@1"] == pytest.approx(want["t2s_R@1"])
