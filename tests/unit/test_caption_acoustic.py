"""Acoustic caption backend on espeak-ng speech with known settings and on EmoDB clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clsp.caption.acoustic import AcousticConfig, measure
from clsp.caption.backend import AcousticCaptioner
from clsp.caption.bins import load_bins
from clsp.caption.loudness import LoudnessReference, integrated_loudness
from clsp.caption.praat import pitch_track
from clsp.errors import AudioError, ConfigError
from tests.helpers.assets import REPO
from tests.helpers.synth import SENTENCES, make_speech, requires_espeak

EMODB = REPO.parent / "shared" / "data" / "emodb"
LOW, HIGH = {"very low", "low"}, {"high", "very high"}
SLOW, FAST = {"very slow", "slow"}, {"fast", "very fast"}
SOFT, LOUD = {"very soft", "soft"}, {"loud", "very loud"}

# (espeak settings, attribute, accepted labels); each row is checked for its attribute plus
# gender and voicing, which every clip also must get right.
GRID = (
    [({"voice": v, "pitch": p}, "pitch", want)
     for v in ("en+m3", "en+f3") for p, want in ((15, LOW), (50, {"medium"}), (90, HIGH))]
    + [({"rate": r}, "rate", want) for r, want in ((90, SLOW), (160, {"moderate"}), (300, FAST))]
    + [({"voice": "en+f3", "rate": r}, "rate", want) for r, want in ((90, SLOW), (300, FAST))]
    + [({"amplitude": a}, "loudness", want) for a, want in ((15, SOFT), (100, {"moderate"}), (200, LOUD))]
    + [({"voice": v, "whisper": True}, "voicing", {"whispered"}) for v in ("en+m3", "en+f3")]
)


@pytest.mark.slow
@requires_espeak
def test_espeak_grid_lands_in_expected_bins(tmp_path):
    captioner = AcousticCaptioner.from_bins_file(loudness=LoudnessReference("absolute"))
    checks = []
    for i, (settings, attribute, want) in enumerate(GRID):
        for k, text in enumerate(SENTENCES[i % 2 : i % 2 + 1]):
            wav = make_speech(tmp_path / f"{i}-{k}.wav", text=text, **settings)
            wave, _ = sf.read(wav)
            labels = captioner.caption_waveform(wave, rec_id=f"{i}-{k}")["attributes"]
            checks.append((settings, attribute, labels[attribute] in want))
            if not settings.get("whisper"):
                gender = "female" if "+f" in settings.get("voice", "en+m3") else "male"
                checks.append((settings, "gender", labels["gender"] == gender))
                checks.append((settings, "voicing", labels["voicing"] == "voiced"))
    accuracy = np.mean([ok for _, _, ok in checks])
    misses = [(s, a) for s, a, ok in checks if not ok]
    assert accuracy >= 0.9, f"accuracy {accuracy:.3f}, misses {misses}"


def test_pitch_tracker_recovers_a_harmonic_tone():
    sr = 16000
    t = np.arange(sr) / sr
    for f0 in (90.0, 150.0, 240.0):
        wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        track = pitch_track(wave, sr, np.arange(100) * 0.01 + 0.016)
        voiced = track[track > 0]
        assert len(voiced) > 80
        assert abs(np.median(voiced) - f0) / f0 < 0.01


def test_noise_is_unvoiced_and_silence_is_an_error():
    rng = np.random.default_rng(0)
    m = measure(rng.normal(0, 0.1, 16000) * (1 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(16000) / 16000)))
    assert m.overall["voiced_ratio"] < 0.1
    with pytest.raises(AudioError, match="no speech"):
        measure(np.zeros(16000))
    with pytest.raises(AudioError):
        measure(np.full(100, np.nan))


def test_pauses_and_segments_follow_the_signal():
    sr = 16000
    t = np.arange(sr // 2) / sr
    burst = 0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    gap = np.zeros(int(0.4 * sr))
    wave = np.concatenate([burst, gap, burst, gap, burst])
    m = measure(wave, AcousticConfig(min_segment_s=0.5))
    assert m.overall["pause_count"] == 2
    assert abs(m.overall["pause_total_s"] - 0.8) < 0.1
    assert len(m.segments) == 3
    assert m.segments[0]["end_s"] == pytest.approx(m.segments[1]["start_s"])
    # The cuts fall in the two pauses (0.5-0.9 s and 1.4-1.8 s).
    assert 0.5 <= m.segments[1]["start_s"] <= 0.9 and 1.4 <= m.segments[2]["start_s"] <= 1.8
    # With the default of at least 1 s of speech per segment, the 2.3 s utterance (1.5 s of it
    # speech) is one part; three bursts more make it three.
    assert len(measure(wave).segments) == 1
    assert len(measure(np.concatenate([wave, gap, wave])).segments) == 3


def test_short_sentences_get_fewer_segments():
    sr = 16000
    t = np.arange(int(1.6 * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    assert len(measure(wave).segments) == 1
    long = np.tile(wave, 3)
    assert len(measure(long).segments) == 3


def test_given_metadata_wins_and_is_not_marked_inferred(tmp_path):
    wave = _voiced(1.0, f0=120.0, gain=0.2)
    cap = AcousticCaptioner.from_bins_file()
    given = cap.caption_waveform(wave, {"gender": "F", "emotion": "sadness", "accent": "Scottish"}, rec_id="x")
    assert given["attributes"]["gender"] == "female"
    assert "gender" not in given["inferred"]
    text = given["global_captions"][0]
    assert "woman" in text or "female" in text
    assert "sad" in text and "Scottish accent" in text
    inferred = cap.caption_waveform(wave, {}, rec_id="x")
    assert "gender" in inferred["inferred"] and inferred["attributes"]["gender"] in {"male", "female"}


@pytest.mark.parametrize("given, words, unused", [
    ({"gender": "w"}, ("woman", "female"), {}),  # German 'weiblich'
    ({"gender": "nonbinary"}, ("speaker", "person"), {}),
    ({"emotion": "Wut"}, ("angry",), {}), ({"emotion": "ANG"}, ("angry",), {}), ({"emotion": "hap"}, ("happy",), {}),
    ({"emotion": "fru"}, ("frustrated",), {}), ({"age": "child", "gender": "m"}, ("boy",), {}),
    ({"age": 8, "gender": "F"}, ("girl",), {}), ({"age": "30s", "gender": "F"}, ("young adult woman",), {}),
    ({"emotion": "x", "accent": "x"}, (), {"emotion": "x", "accent": "x"}),
    ({"gender": 1}, (), {"gender": 1}), ({"age": "ancient"}, (), {"age": "ancient"}),
])
def test_given_codes_become_caption_words_and_unreadable_ones_are_left_out(given, words, unused):
    """Corpus codes (w, ANG, hap, Wut, 30s) read as words; a value that is no word clsp knows
    is never pasted into a caption ('in a wut tone', 'a child man') but reported."""
    wave = _voiced(1.0, f0=120.0, gain=0.2)
    out = AcousticCaptioner.from_bins_file().caption_waveform(wave, given, rec_id="x")
    text = out["global_captions"][0]
    assert not words or any(w in text for w in words), text
    assert out.get("unused_metadata", {}) == unused
    for value in unused.values():
        assert f" {value} " not in text and f" {value}," not in text, text
    if given.get("gender") == "nonbinary":
        assert out["attributes"]["gender"] is None and "gender" not in out["inferred"]
        assert not any(w in text for w in ("man ", "woman", "male", "female", " he ", " she "))


def test_captions_are_deterministic_and_seeded():
    wave = _voiced(1.5, f0=200.0, gain=0.2)
    a = AcousticCaptioner.from_bins_file(num_global=3, num_finegrained=2, seed=1)
    b = AcousticCaptioner.from_bins_file(num_global=3, num_finegrained=2, seed=1)
    out_a, out_b = a.caption_waveform(wave, rec_id="r"), b.caption_waveform(wave, rec_id="r")
    assert out_a["global_captions"] == out_b["global_captions"]
    assert len(set(out_a["global_captions"])) == len(out_a["global_captions"]) >= 2


def test_edited_bins_file_changes_labels(tmp_path):
    spec = json.loads(Path(load_bins().source).read_text())
    spec["loudness"]["edges"] = [-90.0, -80.0, -70.0, -60.0]
    path = tmp_path / "bins.json"
    path.write_text(json.dumps(spec))
    wave = _voiced(1.0, f0=120.0, gain=0.2)
    out = AcousticCaptioner.from_bins_file(path, loudness=LoudnessReference("absolute")).caption_waveform(wave)
    assert out["attributes"]["loudness"] == "very loud"
    spec["rate"]["edges"] = [3.0, 2.0, 4.0, 5.0]
    path.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="rate"):
        load_bins(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_bins(tmp_path / "missing.json")


@pytest.mark.slow
@pytest.mark.skipif(not (EMODB / "labels.jsonl").exists(), reason="EmoDB is not available")
def test_emodb_gender_from_audio_alone():
    rows = [json.loads(line) for line in (EMODB / "labels.jsonl").read_text().splitlines()]
    subset = rows[::6]
    cap = AcousticCaptioner.from_bins_file()
    hits = 0
    for row in subset:
        wave, _ = sf.read(EMODB / row["audio"])
        out = cap.caption_waveform(wave, {}, rec_id=row["id"])
        said = out["global_captions"][0].lower()
        stated = "female" if ("woman" in said or "female" in said) else "male" if (" man " in said or "male" in said) else None
        hits += stated == row["gender"]
    assert hits / len(subset) >= 0.85, f"{hits}/{len(subset)}"


def _voiced(seconds: float, f0: float = 140.0, gain: float = 0.3, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    # harmonics up to 7 kHz at 1/h: a wideband, pulse-like source
    return gain * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, int(7000 / f0))) \
        * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))


def test_integrated_loudness_follows_gain_and_bs1770_reference():
    # BS.1770: a full-scale 997 Hz sine on one channel reads -3.01 LUFS; gain moves it dB for dB.
    sr = 48000
    sine = np.sin(2 * np.pi * 997 * np.arange(3 * sr) / sr)
    assert integrated_loudness(sine, sr) == pytest.approx(-3.01, abs=0.1)
    assert integrated_loudness(0.1 * sine, sr) == pytest.approx(-23.01, abs=0.1)
    assert integrated_loudness(sine[: sr // 4], sr) is None  # shorter than one 0.4 s block


def test_loudness_words_follow_the_chosen_reference():
    cap = AcousticCaptioner.from_bins_file()
    quiet, loud = _voiced(2.0, gain=0.05), _voiced(2.0, gain=0.3)
    m_quiet, m_loud = cap.measure(quiet), cap.measure(loud)
    lufs = [m_quiet.overall["loudness_lufs"], m_loud.overall["loudness_lufs"]]
    assert lufs[1] - lufs[0] == pytest.approx(20 * np.log10(6), abs=0.5)

    def word(m, ref):
        from dataclasses import replace

        return replace(cap, loudness=ref).caption_measurements(m)["attributes"]["loudness"]

    # corpus: relative to the median of the two clips (7.8 dB from each): one soft, one loud word
    corpus = LoudnessReference("corpus", float(np.median(lufs)))
    assert word(m_quiet, corpus) in SOFT and word(m_loud, corpus) in LOUD
    # the same corpus recorded 20 dB quieter keeps its words
    quieter = LoudnessReference("corpus", float(np.median(lufs)) - 20.0)
    m_q2 = cap.measure(quiet / 10.0)
    assert word(m_q2, quieter) == word(m_quiet, corpus)
    # recording: gain-free vocal effort, the same word at either level
    rec = LoudnessReference("recording")
    assert word(m_quiet, rec) == word(m_loud, rec) is not None
    # absolute: the level meter's reading
    assert word(m_quiet, LoudnessReference("absolute")) != word(m_loud, LoudnessReference("absolute"))


@pytest.mark.parametrize("text,expected", [("corpus", ("corpus", None)), ("recording", ("recording", None)),
                                           ("absolute", ("absolute", None)), ("-23", ("corpus", -23.0))])
def test_loudness_reference_parsing(text, expected):
    ref = LoudnessReference.parse(text)
    assert (ref.mode, ref.lufs) == expected


@pytest.mark.parametrize("text", ["loudest", "nan", "20", ""])
def test_bad_loudness_reference_is_a_config_error(text):
    with pytest.raises(ConfigError):
        LoudnessReference.parse(text)


@requires_espeak
def test_voice_quality_words_follow_the_voice(tmp_path):
    cap = AcousticCaptioner.from_bins_file()
    cases = [("en+croak", False, "creaky"), ("en+m3", True, None), ("en+m3", False, None), ("en+f3", False, None),
             ("en+m1", False, None)]
    for voice, whisper, want in cases:
        for k, text in enumerate(SENTENCES[:2]):
            wave, _ = sf.read(make_speech(tmp_path / f"{voice}-{whisper}-{k}.wav", text=text, voice=voice,
                                          whisper=whisper))
            out = cap.caption_waveform(wave, rec_id=k)
            labels, caption = out["attributes"], out["global_captions"][0]
            assert labels["voice_quality"] == want, (voice, whisper, out["measurements"]["overall"])
            if whisper:
                assert labels["voicing"] == "whispered" and "whisper" in caption
            for word in ("creaky", "hoarse", "tense"):
                assert (word in caption) == (word == want), (voice, caption)


def test_formants_stay_inside_the_recording_band():
    # A voiced tone resampled from 8 kHz: nothing above 4 kHz, so no formant is reported there
    # and the formant-based cues agree with the wideband original.
    import torch
    import torchaudio

    wide = _voiced(2.0, f0=120.0)
    narrow = torchaudio.functional.resample(torchaudio.functional.resample(torch.tensor(wide), 16000, 8000),
                                            8000, 16000).numpy()
    cap = AcousticCaptioner.from_bins_file()
    m_wide, m_narrow = cap.measure(wide, source_rate=16000), cap.measure(narrow, source_rate=8000)
    assert m_narrow.overall["bandwidth_hz"] <= 4000.0
    assert m_narrow.overall["formant_ceiling_hz"] <= 4000.0
    assert m_wide.overall["formant_ceiling_hz"] == 5000.0  # a 120 Hz voice: the male ceiling
    known = [f for f in (m_narrow.overall["formants_hz"] or []) if f is not None]
    assert all(f < 0.85 * 4000.0 for f in known)
    assert m_narrow.overall["formants_hz"][3] is None
    # the same upsampled file, without knowing its source rate, is still seen as narrowband
    # (the resampler's transition band leaks a little above 4 kHz), the original as wideband
    assert cap.measure(narrow).overall["bandwidth_hz"] < 5000.0
    assert m_wide.overall["bandwidth_hz"] > 6500.0


def test_the_corpus_loudness_pass_reports_clips_as_they_are_measured(tmp_path):
    """With --loudness-reference corpus nothing is written until every clip is measured; the
    backend says how many are measured meanwhile (clsp caption's progress lines)."""
    from clsp.caption.backends import AcousticBackend
    from clsp.records import Item

    t = np.arange(16000) / 16000
    items = []
    for i, f0 in enumerate((120.0, 210.0, 160.0)):
        sf.write(tmp_path / f"v{i}.wav", _voiced(1.0, f0=f0, gain=0.2).astype("float32"), 16000)
        items.append(Item(i, f"v{i}", {"id": f"v{i}", "audio": str(tmp_path / f"v{i}.wav")}))
    items.append(Item(3, "gone", {"id": "gone", "audio": str(tmp_path / "gone.wav")}))
    seen: list[int] = []
    backend = AcousticBackend.from_options(on_measured=seen.append)
    results = backend.caption_items(iter(items))
    first = next(results)
    assert sum(seen) == 4 and first.ok  # every clip measured (the missing one too) before the first caption
    assert [r.ok for r in results] == [True, True, False]
    seen.clear()
    fixed = AcousticBackend.from_options(loudness_reference="-20", on_measured=seen.append)
    assert len(list(fixed.caption_items(iter(items)))) == 4 and seen == []  # streamed: records are the progress


def test_a_bins_file_is_read_as_configs_are(tmp_path):
    """A gzip copy or an audio file given as --bins gave a UnicodeDecodeError traceback."""
    import gzip

    from clsp.caption.bins import DEFAULT_BINS_PATH

    (tmp_path / "bins.json.gz").write_bytes(gzip.compress(DEFAULT_BINS_PATH.read_bytes()))
    bins = load_bins(tmp_path / "bins.json.gz")
    assert bins.spec == load_bins().spec and bins.checksum == load_bins().checksum
    sf.write(tmp_path / "clip.flac", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(ConfigError, match=r"clip.flac: cannot read bins file \(an audio file\)"):
        load_bins(tmp_path / "clip.flac")
    (tmp_path / "blob.json").write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match=r"blob.json: cannot read bins file \(not valid UTF-8"):
        load_bins(tmp_path / "blob.json")
    (tmp_path / "wide.json").write_bytes(DEFAULT_BINS_PATH.read_text().encode("utf-16"))
    with pytest.raises(ConfigError, match="UTF-16 text"):
        load_bins(tmp_path / "wide.json")
    with pytest.raises(ConfigError, match="cannot read bins file"):
        load_bins(tmp_path)


def test_a_steady_tone_or_noise_is_no_speech_while_a_swelling_one_is_captioned():
    """White noise was captioned as "a speaker whispers", a 200 Hz sine as "a man speaks"."""
    from clsp.caption.acoustic import measure
    from clsp.errors import AudioError

    t = np.arange(48000) / 16000
    noise = 0.3 * np.random.default_rng(0).standard_normal(len(t))
    for steady in (0.5 * np.sin(2 * np.pi * 200 * t), noise):
        with pytest.raises(AudioError, match="steady tone or noise"):
            measure(steady)
    swell = 1 + 0.5 * np.sin(2 * np.pi * 4 * t)
    assert measure(0.3 * np.sin(2 * np.pi * 200 * t) * swell).duration_s == pytest.approx(3.0)
    assert measure(noise * swell).duration_s == pytest.approx(3.0)  # noise moving as whispered syllables do
    # a clip shorter than steady_min_s of speech is not judged by its steadiness
    assert measure(0.5 * np.sin(2 * np.pi * 200 * t[:6400])).duration_s == pytest.approx(0.4)
