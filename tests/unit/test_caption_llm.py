"""Model caption backend: the real transformers generation path with a tiny random Qwen2-Audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from clsp.caption.llm import AudioLMCaptioner, ModelCaptionConfig, SamplingConfig
from clsp.caption.pipeline import caption_model_batch
from clsp.caption.prompt import build_prompt
from clsp.errors import ConfigError, ModelError
from tests.conftest import invoke

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'audio' %}Audio {{ loop.index }}: "
    "<|audio_bos|><|AUDIO|><|audio_eos|>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_audio_lm(path) -> str:
    """Save a random-weight Qwen2-Audio with a locally trained byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (PreTrainedTokenizerFast, Qwen2AudioConfig, Qwen2AudioForConditionalGeneration,
                              Qwen2AudioProcessor, WhisperFeatureExtractor)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([build_prompt("global"), build_prompt("finegrained")] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=32, chunk_length=2),
                                    tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    config = Qwen2AudioConfig(
        audio_config=dict(d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                          num_mel_bins=32, max_source_positions=100),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    torch.manual_seed(0)
    Qwen2AudioForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_audio_lm(tmp_path_factory.mktemp("tiny-audio-lm"))


def _waves():
    rng = np.random.default_rng(0)
    return [rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.1, 24000).astype(np.float32)]


def test_generation_samples_per_clip_and_is_seeded(tiny_lm):
    cfg = ModelCaptionConfig(model=tiny_lm, device="cpu", sampling=SamplingConfig(num_samples=3, max_new_tokens=6, seed=5))
    captioner = AudioLMCaptioner(cfg)
    out = captioner.caption_batch(_waves(), [{}, {"gender": "female"}], ["a", "b"])
    assert len(out) == 2 and all(len(o["global"]) == 3 and len(o["finegrained"]) == 3 for o in out)
    assert all(isinstance(c, str) for o in out for c in o["global"])
    again = captioner.caption_batch(_waves(), [{}, {"gender": "female"}], ["a", "b"])
    assert again == out
    greedy = AudioLMCaptioner(ModelCaptionConfig(model=tiny_lm, device="cpu", kinds=("global",),
                                                 sampling=SamplingConfig(temperature=0, max_new_tokens=8)))
    res = greedy.caption_batch(_waves()[:1], [{}], ["a"])
    assert list(res[0]) == ["global"] and len(res[0]["global"]) == 1
    assert greedy.provenance()["model_type"] == "qwen2_audio"


def test_pipeline_filters_random_model_output(tiny_lm, tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _waves()[0], 16000)
    captioner = AudioLMCaptioner(ModelCaptionConfig(model=tiny_lm, device="cpu",
                                                    sampling=SamplingConfig(num_samples=2, max_new_tokens=6)))
    [res] = caption_model_batch([{"id": "a", "audio": str(path)}], captioner)
    # six random tokens cannot reach the FCaps length bounds: every candidate is rejected with a reason
    assert res.type == "CaptionRejectedError" and "too short" in str(res)


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError):
        SamplingConfig(top_p=0)
    with pytest.raises(ConfigError):
        ModelCaptionConfig(model="x", kinds=("summary",))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError):
        AudioLMCaptioner(ModelCaptionConfig(model=str(tmp_path), device="cpu"))


def test_cli_model_backend_runs_end_to_end(tiny_lm, tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _waves()[1], 16000)
    proc = invoke("caption", "--backend", "model", "--model", tiny_lm, "--max-new-tokens", "4", "--device", "cpu", "-",
                  stdin=json.dumps({"id": "a", "audio": str(path)}) + "\n", text=True)
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stdout.splitlines()
    assert json.loads(line)["error"]["type"] == "CaptionRejectedError"


def test_select_captions_keeps_passing_candidates_best_first():
    import torch

    from clsp.caption.pipeline import select_captions

    class Ranker:
        def encode_audio(self, waveforms, lengths):
            return torch.tensor([[1.0, 0.0]])

        def encode_text(self, texts):
            return torch.nn.functional.normalize(torch.tensor([[float(len(t)), 50.0] for t in texts]), dim=-1)

    good = ["A woman speaks in a bright, high-pitched voice at a brisk pace.",
            "A woman speaks in a bright, high-pitched voice at a brisk pace, growing louder."]
    long = "A woman with a bright voice begins briskly, then slows and softens, and ends with a gentle fall. " * 2
    out = select_captions({"id": "x"}, {"global": good + ["A woman speaks without pausing at all today."],
                                        "finegrained": [long]},
                          wave=torch.zeros(1600), ranker=Ranker(), keep={"global": 1})
    assert out["global_captions"] == [good[1]]
    assert out["finegrained_captions"] == [long.strip()]
    assert [r["reason"].split(" (")[0] for r in out["rejected"]] == ["states an absence or negation"]


def test_a_model_argument_that_names_no_model_is_a_usage_error(tmp_path):
    """--model naming no folder here and no hub id (a missing path, a bare word), or a folder
    without config.json: exit 2, as every command treats an argument that names no model."""
    sf.write(tmp_path / "a.wav", _waves()[1], 16000)
    (tmp_path / "empty").mkdir()
    for model, says in ((str(tmp_path / "missing"), "no such model"), ("nosuch", "no such model"),
                        (str(tmp_path / "empty"), "a folder without config.json")):
        proc = invoke("caption", str(tmp_path / "a.wav"), "--backend", "model", "--model", model, "--device", "cpu",
                      text=True, env={"HF_HUB_OFFLINE": "1"})
        assert proc.returncode == 2 and says in proc.stderr and not proc.stdout, (model, proc.stderr)


def test_sampling_options_given_to_the_acoustic_backend_are_refused_even_at_their_defaults(tmp_path):
    sf.write(tmp_path / "a.wav", _waves()[1], 16000)
    for option in (("--temperature", "0.6"), ("--top-k", "20"), ("--batch-size", "8"), ("--top-p", "0.95")):
        proc = invoke("caption", str(tmp_path / "a.wav"), *option, text=True)
        assert proc.returncode == 2 and f"{option[0]} {option[1]}: this option belongs to --backend model" in proc.stderr
    proc = invoke("caption", str(tmp_path / "a.wav"), "--device", "cpu", "-q", text=True)  # what it does anyway
    assert proc.returncode in (0, 3) and len(proc.stdout.splitlines()) == 1  # a caption or the clip's error record


def test_acoustic_options_given_to_the_model_backend_are_refused(tmp_path):
    sf.write(tmp_path / "a.wav", _waves()[1], 16000)
    for option in (("--bins", str(tmp_path / "none.json")), ("--loudness-reference", "recording")):
        proc = invoke("caption", str(tmp_path / "a.wav"), "--backend", "model", "--model", str(tmp_path), *option,
                      text=True)
        assert proc.returncode == 2 and "belongs to the acoustic backend" in proc.stderr, (option, proc.stderr)


def test_the_library_refuses_options_a_backend_does_not_take():
    from clsp.caption.backends import build_caption_backend

    for name, options, named in (("model", {"model": "x", "bins": "b.json"}, "bins"),
                                 ("model", {"model": "x", "loudness_reference": "recording"}, "loudness_reference"),
                                 ("model", {"model": "x", "foo": 1}, "foo"),
                                 ("acoustic", {"temperature": 0.1}, "temperature")):
        with pytest.raises(ConfigError, match=f"caption backend '{name}' takes no option {named}"):
            build_caption_backend(name, **options)
    assert build_caption_backend("acoustic", seed=3, log=print) is not None  # its own options and a progress hook
