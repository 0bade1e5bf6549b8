"""A record that picks a silent channel of a file is named with that channel in its error."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from clsp.embed import EmbedConfig, embed_items
from clsp.models import load_model
from clsp.records import iter_items


def test_a_silent_channel_is_named(tmp_path):
    t = np.arange(16000) / 16000
    voice = 0.3 * np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(str(tmp_path / "st.wav"), np.stack([voice, np.zeros_like(voice)], 1).astype(np.float32), 16000)
    lines = ['{"id": "left", "audio": "st.wav", "channel": 0}', '{"id": "right", "audio": "st.wav", "channel": 1}',
             '{"id": "both", "audio": "st.wav", "channel": [1]}']
    (tmp_path / "l.jsonl").write_text("\n".join(lines) + "\n")
    items = list(iter_items(str(tmp_path / "l.jsonl"), modality="audio"))
    out = list(embed_items(load_model("tiny-random"), items, "audio", EmbedConfig(workers=0)))
    assert out[0].error is None
    assert "st.wav (channel 1): silent" in str(out[1].error)
    assert "st.wav (channels 1): silent" in str(out[2].error)
