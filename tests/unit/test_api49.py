"""The Python API's input checks: encode_audio lengths given as a list, a numpy array or a
tensor (shape (B,), whole non-negative sample counts) and an empty batch; encode_text
refusing captions that are not strings or are empty, as encode_texts does; load_matrix
keeping the dtype it documents; the prompt-packs doc listing each pack's classes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from clsp.errors import AudioError, ConfigError, InputError
from clsp.models import load_model

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "clsp" / "default_model"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random").eval()


def _wave(seconds: float = 1.0, batch: int = 1) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch, int(seconds * 16000)) * 0.1


@pytest.mark.parametrize("kind", ["tiny", "default"])
def test_encode_audio_takes_lengths_as_a_list_a_numpy_array_or_a_tensor(kind, tiny):
    if kind == "default" and not (MODEL_DIR / "config.json").exists():
        pytest.skip("default model not installed")
    model = tiny if kind == "tiny" else load_model("default", with_text=False).eval()  # waveform input
    wave = _wave(1.0, 2)
    with torch.no_grad():
        ref = model.encode_audio(wave, torch.tensor([16000, 12000]))
        for lens in ([16000, 12000], (16000, 12000), np.array([16000, 12000]), np.array([16000, 12000], dtype=np.int32),
                     torch.tensor([16000, 12000], dtype=torch.int32), torch.tensor([16000.0, 12000.0])):
            torch.testing.assert_close(model.encode_audio(wave, lens), ref)


@pytest.mark.parametrize("lens, shape", [(torch.tensor([[16000]]), "(1, 1)"), (torch.tensor(16000), "()"),
                                         (np.array([[16000]]), "(1, 1)")])
def test_encode_audio_lengths_of_another_shape_are_a_config_error(tiny, lens, shape):
    with torch.no_grad(), pytest.raises(ConfigError, match=r"shape \(B,\) = \(1,\)") as err:
        tiny.encode_audio(_wave(), lens)
    assert f"got shape {shape}" in str(err.value)


def test_encode_audio_lengths_that_are_not_numbers_are_a_config_error(tiny):
    for lens in (["16000"], torch.tensor([True]), [None]):
        with torch.no_grad(), pytest.raises(ConfigError, match="lengths"):
            tiny.encode_audio(_wave(), lens)


def test_encode_audio_of_no_clips_is_an_empty_matrix(tiny):
    with torch.no_grad():
        out = tiny.encode_audio(torch.zeros(0, 16000), torch.zeros(0, dtype=torch.long))
        assert tuple(out.shape) == (0, tiny.config.joint_dim) and out.dtype == torch.float32
        assert tuple(tiny.encode_audio(torch.zeros(0, 0), []).shape) == (0, tiny.config.joint_dim)
        assert tuple(tiny.encode_text([]).shape) == tuple(out.shape)


def test_a_negative_length_is_a_config_error_naming_the_clip_and_value(tiny):
    with torch.no_grad():
        with pytest.raises(ConfigError, match=r"clip 1: length -5 is negative"):
            tiny.encode_audio(_wave(1.0, 2), torch.tensor([16000, -5]))
        # the other length errors are kept
        with pytest.raises(AudioError, match="clip 0: too short"):
            tiny.encode_audio(_wave(), [0])
        with pytest.raises(ConfigError, match="clip 0: length 16001 is more than the 16000 samples"):
            tiny.encode_audio(_wave(), [16001])
        with pytest.raises(ConfigError, match="1 lengths for 2 clips"):
            tiny.encode_audio(_wave(1.0, 2), [16000])


@pytest.mark.parametrize("bad", [15999.5, float("nan"), float("inf")])
def test_a_fractional_length_is_a_config_error_not_truncated(tiny, bad):
    with torch.no_grad(), pytest.raises(ConfigError, match=r"clip 0: length .* not a whole number"):
        tiny.encode_audio(_wave(), torch.tensor([bad], dtype=torch.float64))


@pytest.mark.parametrize("texts, index, what", [
    ([1, 2], 0, "must be a string, got int"),
    (["a calm voice", None], 1, "must be a string, got NoneType"),
    ([""], 0, "empty text"),
    (["a calm voice", "   "], 1, "empty text"),
])
def test_encode_text_checks_captions_as_encode_texts_does(tiny, texts, index, what):
    with torch.no_grad(), pytest.raises(InputError, match=f"text {index}") as ours:
        tiny.encode_text(texts)
    assert what in str(ours.value)
    with pytest.raises(InputError, match=f"text {index}") as theirs:
        tiny.encode_texts(texts)
    assert type(theirs.value) is type(ours.value)


def test_load_matrix_docstring_says_the_dtype_is_kept(tmp_path):
    from clsp.index.records import load_matrix

    doc = " ".join(load_matrix.__doc__.split())
    assert "A float32 (n, d) matrix" not in doc and "dtype" in doc
    for dtype in (np.float16, np.float32, np.float64):
        path = tmp_path / f"m_{np.dtype(dtype).name}.npy"
        np.save(path, np.eye(3, 4, dtype=dtype))
        mat = load_matrix(path)
        assert mat.dtype == dtype and mat.shape == (3, 4)


def test_prompt_packs_doc_lists_each_pack_as_its_json():
    doc = (REPO / "docs" / "prompt-packs.md").read_text()
    rows = dict(re.findall(r"^\| `([\w-]+)` \| [^|]+ \| ([^|]+) \|$", doc, flags=re.M))
    packs = sorted((REPO / "clsp" / "prompts" / "packs").glob("*.json"))
    assert sorted(rows) == sorted(p.stem for p in packs)
    for path in packs:
        pack = json.loads(path.read_text())
        attrs = list((pack.get("attributes") or {pack["attribute"]: pack}).values())
        notes = rows[path.stem]
        named = [c.strip() for c in re.split(r"[;(]", notes)[0].split(",")]
        if len(named) > 1:  # the row starts with the classes: exactly those of the pack, in order
            assert named == list(attrs[0]["classes"]), f"{path.stem}: the doc lists {named}"
        for spec in attrs:  # every attribute's classes named, or their number said
            classes = list(spec["classes"])
            count = len(classes) - len(spec.get("merge") or {})
            listed = all(re.search(rf"\b{re.escape(c)}\b", notes) for c in classes)
            assert listed or re.search(rf"\b{count} ", notes), f"{path.stem}: {notes!r} neither names {classes} nor says {count}"


def test_load_model_names_an_unusable_device_and_needs_a_name():
    import clsp
    from clsp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"device 'foo'"):
        clsp.load_model("tiny-random", device="foo")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device 'cuda'"):
            clsp.load_model("tiny-random", device="cuda")
    for device in ("mps", "meta"):
        with pytest.raises(ConfigError, match=f"device '{device}': clsp runs on the CPU or a CUDA GPU"):
            clsp.load_model("tiny-random", device=device)
    with pytest.raises(TypeError, match="model name, folder or checkpoint file is needed"):
        clsp.load_model(None)
    assert clsp.load_model("tiny-random", device="cpu").provenance()["model"] == "tiny-random"


def test_encode_texts_and_encode_text_take_a_generator_of_captions(tiny):
    captions = ["an angry man", "a calm woman"]
    listed = tiny.encode_texts(captions)
    assert tiny.encode_texts(c for c in captions).shape == listed.shape == (2, tiny.config.joint_dim)
    assert np.allclose(tiny.encode_texts(iter(captions)), listed, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(tiny.encode_text(c for c in captions), tiny.encode_text(captions), atol=1e-6)
    with pytest.raises(InputError, match="text 1: a caption must be a string, got int"):
        tiny.encode_texts(c for c in ["a man", 3])


def test_encode_audio_resamples_waveforms_of_another_rate(tiny):
    import clsp
    from clsp.audio import load_audio

    clip = Path(__file__).resolve().parents[2] / "examples" / "data" / "09a01Nb.flac"
    at16 = load_audio(clip)
    at44 = load_audio(clip, sample_rate=44100)
    with torch.no_grad():
        ref = tiny.encode_audio(at16[None], [at16.numel()])
        told = tiny.encode_audio(at44[None], [at44.numel()], sample_rate=44100)
        padded = torch.nn.functional.pad(at44, (0, 4410))[None]
        told_padded = tiny.encode_audio(padded, [at44.numel()], sample_rate=44100)
        untold = tiny.encode_audio(at44[None], [at44.numel()])
    assert float(ref @ told.T) > 0.995 and float(told @ told_padded.T) > 0.9999
    assert float(ref @ untold.T) < float(ref @ told.T)  # read as 16 kHz, it is another sound
    for bad in (0, -16000, 16000.5, True):
        with pytest.raises(ConfigError, match="sample_rate must be a positive whole number"):
            tiny.encode_audio(at16[None], [at16.numel()], sample_rate=bad)
    with pytest.raises(ConfigError, match="load_audio: sample_rate must be a positive whole number"):
        clsp.load_audio(clip, sample_rate=0)


@pytest.mark.parametrize(("given", "says"), [(b"RIFF....WAVE", "got bytes: audio held in memory is decoded with soundfile"),
                                             (3, "got int$"), (None, "got NoneType$")])
def test_load_audio_names_a_path_of_the_wrong_type(given, says):
    """load_audio(b"...") raised pathlib's "argument should be a str object or an os.PathLike
    object returning str", naming neither the function nor what to do with audio bytes."""
    from clsp.audio import load_audio

    with pytest.raises(TypeError, match=f"load_audio: path must be a file path .*{says}"):
        load_audio(given)
