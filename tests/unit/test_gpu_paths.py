"""The GPU benchmark's code paths and GPU-only options, checked on CPU.

``benchmarks/gpu.py --smoke`` runs every measurement with a tiny Zipformer model; bf16
autocast must keep embeddings close to fp32; ``EmbedConfig.compile`` must change nothing
off CUDA (neither the numbers nor the model's parameter names).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clsp.embed import AudioEmbedder, EmbedConfig
from clsp.records import iter_items
from tests.helpers.assets import REPO

ROOT = REPO


def _gpu_bench():
    spec = importlib.util.spec_from_file_location("clsp_gpu_bench", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _gpu_bench()


@pytest.fixture(scope="module")
def tiny_zipformer_model(bench):
    args = bench.parse_args(["--smoke"])
    return bench.build(bench.Run(args), "all-MiniLM-L6-v2")


def test_smoke_mode_runs_every_section_and_says_gpu_numbers_need_a_gpu(bench, capsys):
    assert bench.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "SMOKE RUN on CPU" in out and "GPU numbers need a CUDA GPU" in out
    for row in ("one file at a time, fp32 (naive)", "length-sorted batches of 400 s, fp32 (naive)",
                "the same in bf16 autocast (naive)", "clsp embed, tuned, bf16", "torch.compile",
                "one caption at a time", "batch 8", "train step, bf16", "activation checkpointing"):
        assert row in out, row
    rates = [line.split("|")[2].strip() for line in out.splitlines() if line.startswith("| ") and "way of running" not in line]
    assert rates and all(float(r.replace(",", "")) > 0 for r in rates), rates  # every row measured
    assert "out of memory" not in out


def test_sections_run_only_what_is_asked_and_unknown_sections_are_refused(bench, capsys):
    assert bench.main(["--smoke", "--sections", "train"]) == 0
    out = capsys.readouterr().out
    assert "train step, bf16" in out
    assert "Audio embedding" not in out and "Text tower" not in out and "torch.compile" not in out
    with pytest.raises(SystemExit) as err:
        bench.parse_args(["--sections", "audio,trian"])
    assert err.value.code == 2
    assert "trian" in capsys.readouterr().err


def test_bf16_autocast_on_cpu_stays_within_cosine_099_of_fp32(tiny_zipformer_model, bench):
    model = tiny_zipformer_model.eval()
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 300, 128, generator=gen) * 2 - 6
    lens = torch.tensor([300, 220, 120])
    with torch.no_grad():
        ref = model.encode_fbank(feats, lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.encode_fbank(feats, lens)
    assert low.dtype == torch.float32 and ref.shape == low.shape
    cos = F.cosine_similarity(ref.double(), low.double(), dim=-1)
    assert cos.min() > 0.99, cos
    assert not torch.equal(ref, low)  # autocast really ran in bf16
    assert bench.min_cosine(ref.numpy(), low.numpy()) == pytest.approx(float(cos.min()))


def test_counted_flops_match_a_direct_matmul_count(bench):
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert bench.counted_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_compile_option_changes_nothing_on_cpu(tiny_zipformer_model, clips: Path):
    items = list(iter_items(clips / "clips.jsonl", "audio"))
    model = tiny_zipformer_model
    keys = list(model.state_dict())
    plain = [r.embeddings for r in AudioEmbedder(model, EmbedConfig(device="cpu", dtype="float32")).run(items)]
    compiled = [r.embeddings for r in AudioEmbedder(model, EmbedConfig(device="cpu", dtype="float32", compile=True)).run(items)]
    assert len(plain) == len(items)
    for p, c in zip(plain, compiled):
        np.testing.assert_array_equal(p, c)
    assert list(model.state_dict()) == keys
    cfg = EmbedConfig(compile=True)
    assert EmbedConfig.from_dict(cfg.to_dict()) == cfg and EmbedConfig().compile is False


def test_fbank_on_the_device_gives_the_workers_embeddings_and_is_chosen_on_a_gpu(tiny_zipformer_model, clips: Path):
    from clsp.embed import fbank_on_device
    from clsp.errors import ConfigError

    items = list(iter_items(clips / "clips.jsonl", "audio"))
    model = tiny_zipformer_model
    runs = {}
    for place in ("workers", "device"):
        embedder = AudioEmbedder(model, EmbedConfig(device="cpu", dtype="float32", fbank_on=place, batch_size=3))
        assert embedder.device_fbank == (place == "device")
        runs[place] = [r.embeddings for r in embedder.run(items)]
    assert len(runs["device"]) == len(items) and all(e is not None for e in runs["device"])
    for w, d in zip(runs["workers"], runs["device"]):
        np.testing.assert_allclose(d, w, atol=1e-5)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert not fbank_on_device(EmbedConfig(), cpu) and fbank_on_device(EmbedConfig(), gpu)
    assert not fbank_on_device(EmbedConfig(fbank_on="workers"), gpu) and fbank_on_device(EmbedConfig(fbank_on="device"), cpu)
    with pytest.raises(ConfigError, match="--fbank-on"):
        EmbedConfig(fbank_on="gpu").validate()


def test_text_rows_without_a_tokenizer_use_random_ids_and_report_mfu(bench, tiny_zipformer_model):
    args = bench.parse_args(["--smoke", "--peak-tflops", "1"])
    rows = bench.text_rows(bench.Run(args), tiny_zipformer_model, None)
    assert [r["way"] for r in rows] == ["one caption at a time, fp32 (naive)", "text tower, bf16, batch 8"]
    assert all(r["rate"] > 0 and 0 < r["mfu"] < 1 and "random ids" in r["note"] for r in rows)
    assert rows[1]["cos"] > 0.99


def test_train_row_measures_a_step_and_leaves_the_weights_as_they_were(bench, tiny_zipformer_model):
    model = tiny_zipformer_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    row = bench.train_row(bench.Run(bench.parse_args(["--smoke", "--peak-tflops", "1"])), model, 2.0, 1.0, False)
    assert row["rate"] > 0 and row["mfu"] > 0 and "TFLOP/step counted" in row["note"]
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
