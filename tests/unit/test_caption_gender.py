"""Caption gender from the speaker embedding: held-out EmoDB speakers, bandwidth stability,
and pitch words that never contradict the stated gender."""

from __future__ import annotations

import json

import pytest
import torch

from clsp.caption.bins import load_bins
from clsp.caption.gender import pitch_word, speaker_female_logit
from clsp.models.gender_head import read_head
from tests.helpers.assets import REPO

EMODB = REPO.parent / "shared" / "data" / "emodb"
HELD_OUT = {"emodb-03", "emodb-10", "emodb-09", "emodb-13"}  # examples/default_model/prepare_emodb.TEST_SPEAKERS


def test_pitch_words_are_relative_to_gender_and_never_contradict_it():
    bins = load_bins()
    assert pitch_word(bins, 210.0, "female") == "medium"
    assert pitch_word(bins, 120.0, "male") == "medium"
    assert pitch_word(bins, 120.0, "female") == "low"  # "very low" for a woman is softened
    assert pitch_word(bins, 320.0, "male") == "high"  # "very high" for a man is softened
    assert pitch_word(bins, 70.0, "male") == "very low" and pitch_word(bins, 320.0, "female") == "very high"
    assert pitch_word(bins, None, "female") is None


def test_gender_head_is_a_linear_layer_over_d_vectors():
    head = read_head()
    assert len(head["weights"]) == 256 * len(head["speakers"]) and isinstance(head["bias"], float)
    assert speaker_female_logit(torch.zeros(1000)) is None  # under 0.3 s: no speaker evidence


def _held_out_rows(per_speaker: int) -> list[dict]:
    rows = [json.loads(line) for line in (EMODB / "labels.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for spk in sorted(HELD_OUT):
        out += [r for r in rows if r["speaker"] == spk][:: 9][:per_speaker]
    return out


@pytest.mark.skipif(not (EMODB / "labels.jsonl").exists(), reason="EmoDB is not available")
def test_held_out_emodb_speakers_and_their_8khz_copies():
    import torchaudio

    from clsp.audio import load_audio

    rows = _held_out_rows(4)
    hits = agree = 0
    for r in rows:
        wave = load_audio(EMODB / r["audio"])
        narrow = torchaudio.functional.resample(torchaudio.functional.resample(wave, 16000, 8000), 8000, 16000)
        wide_female, narrow_female = speaker_female_logit(wave) > 0, speaker_female_logit(narrow) > 0
        hits += wide_female == (r["gender"] == "female")
        agree += wide_female == narrow_female
    assert hits >= len(rows) - 1, f"{hits}/{len(rows)}"
    assert agree >= len(rows) - 1, f"{agree}/{len(rows)}"


@pytest.mark.skipif(not (EMODB / "labels.jsonl").exists(), reason="EmoDB is not available")
def test_captions_state_the_speaker_embeddings_gender():
    import soundfile as sf

    from clsp.caption.backend import AcousticCaptioner

    cap = AcousticCaptioner.from_bins_file()
    for r in _held_out_rows(1):
        wave, _ = sf.read(EMODB / r["audio"], dtype="float32")
        out = cap.caption_waveform(wave, {}, rec_id=r["id"])
        assert out["attributes"]["gender"] == r["gender"] and "gender" in out["inferred"]
        assert out["attributes"]["gender"] == ("female" if speaker_female_logit(wave) > 0 else "male")


@pytest.mark.skipif(not (EMODB / "labels.jsonl").exists(), reason="EmoDB is not available")
def test_telephone_copy_reports_no_formants_above_its_band():
    import torchaudio

    from clsp.audio import load_audio
    from clsp.caption.acoustic import measure
    from clsp.caption.praat import bandwidth_hz

    wide = load_audio(EMODB / "audio/08b09Wc.flac")
    narrow = torchaudio.functional.resample(torchaudio.functional.resample(wide, 16000, 8000), 8000, 16000)
    assert bandwidth_hz(wide.double().numpy(), 16000) >= 6000
    assert bandwidth_hz(narrow.double().numpy(), 16000) <= 5000
    f_wide = measure(wide).overall["formants_hz"]
    f_narrow = measure(narrow, source_rate=8000).overall["formants_hz"]
    assert all(f is not None for f in f_wide) and len(f_wide) == 4
    assert f_narrow[3] is None and all(f is not None for f in f_narrow[:2])
    for i in range(3):
        assert f_narrow[i] is None or abs(f_narrow[i] - f_wide[i]) <= 0.15 * f_wide[i]


def test_clips_scored_together_get_their_own_answers(monkeypatch, tmp_path):
    import soundfile as sf

    from clsp.caption import gender
    from clsp.caption.backend import AcousticCaptioner
    from clsp.caption.pipeline import measure_record, measure_records
    from clsp.errors import ClspError
    from tests.unit.test_speaker import vibrato_clip

    waves = [vibrato_clip(s, f, 0.3) for s, f in ((2.4, 110), (0.2, 200), (3.3, 240), (1.1, 150))]
    alone = [speaker_female_logit(w) for w in waves]
    monkeypatch.setattr(gender, "SPEAKER_BATCH_SECONDS", 4.0)  # several encoder calls, uneven groups
    together = gender.speaker_female_logits(waves)
    assert alone[1] is None and together[1] is None  # under 0.3 s
    for a, t in ((a, t) for a, t in zip(alone, together) if a is not None):
        assert abs(a - t) < 1e-3 * max(1.0, abs(a))
    paths = []
    for i, w in enumerate(waves):
        sf.write(tmp_path / f"c{i}.wav", w, 16000)
        paths.append(str(tmp_path / f"c{i}.wav"))
    records = [{"id": "a", "audio": paths[0]}, {"id": "gone", "audio": str(tmp_path / "missing.wav")},
               {"id": "c", "audio": paths[2]}]
    cap = AcousticCaptioner.from_bins_file()
    out = measure_records(records, cap)
    assert isinstance(out[1], ClspError) and "missing.wav" in str(out[1])
    for got, rec in ((out[0], records[0]), (out[2], records[2])):
        one = measure_record(rec, cap)
        assert abs(got.overall["speaker_female_logit"] - one.overall["speaker_female_logit"]) < 1e-3
