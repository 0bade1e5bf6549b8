"""Synthetic speech for tests: espeak-ng at set pitch, rate, amplitude, voice and whisper.

    from tests.helpers.synth import make_speech, requires_espeak
    wav = make_speech(tmp_path / "a.wav", "Hello there.", voice="en+f3", pitch=70)

Files are 16 kHz mono 16-bit WAV. Tests that use them should carry ``@requires_espeak``
(or call ``skip_without_espeak()``) so that they are skipped where espeak-ng is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

ESPEAK = shutil.which("espeak-ng")
SAMPLE_RATE = 16000

requires_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")

SENTENCES = (
    "The morning train left the station a few minutes later than usual today.",
    "She carried the heavy basket of apples all the way up the hill to the farm.",
    "Please remember to close the window before you leave the office tonight.",
    "A quiet river runs past the old mill and into the valley below the town.",
)


def skip_without_espeak() -> None:
    """Skip the calling test when espeak-ng is not installed."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed")


def espeak_voice(voice: str, whisper: bool) -> str:
    """The espeak-ng voice name: a whispered variant replaces any other variant."""
    base = voice.split("+")[0]
    if not whisper:
        return voice
    female = "+f" in voice or voice.endswith("female")
    return f"{base}+{'whisperf' if female else 'whisper'}"


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    import torch
    import torchaudio

    wave = torch.from_numpy(samples.astype(np.float32))
    return torchaudio.functional.resample(wave, rate, SAMPLE_RATE).numpy()


def make_speech(
    path: str | Path,
    text: str = SENTENCES[0],
    voice: str = "en+m3",
    pitch: int = 50,
    rate: int = 160,
    amplitude: int = 100,
    whisper: bool = False,
) -> Path:
    """Write espeak-ng speech as a 16 kHz mono WAV at ``path`` and return the path.

    ``pitch`` is espeak's 0-99 pitch setting, ``rate`` words per minute, ``amplitude`` its
    0-200 volume; ``whisper`` switches to the whispered variant of the voice.
    """
    import soundfile as sf

    skip_without_espeak()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        cmd = [ESPEAK, "-v", espeak_voice(voice, whisper), "-p", str(pitch), "-s", str(rate),
               "-a", str(amplitude), "-w", str(raw), text]
        subprocess.run(cmd, check=True, capture_output=True)
        samples, rate_hz = sf.read(raw, dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if rate_hz != SAMPLE_RATE:
        samples = _resample(samples, rate_hz)
    sf.write(path, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return path
