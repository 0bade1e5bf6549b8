"""The paper-reproduction example runs end to end on a tiny fake dataset laid out like the real ones."""

from __future__ import annotations

import gzip
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.assets import REPO

EXAMPLE = REPO / "examples" / "reproduce_paper"


def tone(path: Path, freq: float, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"), 16000)
    return path


def make_iemocap(root: Path) -> None:
    s1 = root / "Session1" / "dialog"
    tone(s1 / "wav" / "Ses01F_impro01.wav", 200, seconds=4.0)
    lines = [
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]",
        "",
        "[0.5000 - 1.5000]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]",
        "C-E1:\tNeutral;\t()",
        "[1.6000 - 2.6000]\tSes01F_impro01_M001\texc\t[3.5000, 3.5000, 3.0000]",
        "[2.7000 - 3.8000]\tSes01F_impro01_F002\tang\t[1.5000, 4.0000, 4.0000]",
        "[3.0000 - 3.9000]\tSes01F_impro01_F003\txxx\t[2.0000, 2.0000, 2.0000]",
    ]
    (s1 / "EmoEvaluation").mkdir(parents=True)
    (s1 / "EmoEvaluation" / "Ses01F_impro01.txt").write_text("\n".join(lines) + "\n")


def make_ravdess(root: Path) -> None:
    for fold, name, emotion in ((0, "03-01-05-01-01-01-01", "angry"), (1, "03-01-03-02-01-01-02", "happy"),
                                (2, "03-01-06-01-02-01-12", "fearful")):
        tone(root / f"fold_{fold}" / f"{name}.wav", 150 + 40 * fold)
        (root / f"fold_{fold}" / f"{name}.json").write_text(json.dumps({"emotion": emotion}))
    (root / "fold_3").mkdir()


def make_cremad(root: Path) -> None:
    (root / "VideoDemographics.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
                                                 "1002,21,Female,Caucasian,Not Hispanic\n")
    for name, label, freq in (("1001_DFA_ANG_XX", "A", 130), ("1002_IEO_HAP_HI", "H", 250)):
        tone(root / "test" / f"{name}.wav", freq)
        (root / "test" / f"{name}.json").write_text(json.dumps({"label": label}))


def make_paraspeechcaps(root: Path) -> Path:
    cuts = []
    for i in range(4):
        wav = tone(root / "audio" / f"clip{i}.wav", 120 + 60 * i, seconds=2.0)
        cuts.append({"id": f"clip{i}", "start": 0.0, "duration": 2.0, "channel": 0, "type": "MonoCut",
                     "recording": {"id": f"clip{i}", "sources": [{"type": "file", "channels": [0], "source": str(wav)}],
                                   "sampling_rate": 16000, "num_samples": 32000, "duration": 2.0},
                     "supervisions": [{"id": f"clip{i}", "recording_id": f"clip{i}", "start": 0.0, "duration": 2.0,
                                       "custom": {"short_captions": [f"A speaker, style {i}."],
                                                  "long_captions": ["short one", f"A much longer caption about style {i}."]}}]})
    path = root / "paraspeechcaps_cuts_test-ears-selected.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(c) + "\n" for c in cuts)
    return path


def make_ratings(root: Path) -> Path:
    rows = [{"audio": f"audio/clip{i % 4}.wav", "caption": f"caption {i}", "rating": float(i % 5),
             "category": "Intrinsic" if i < 4 else "Situational"} for i in range(8)]
    path = root / "ratings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_reproduce_runs_on_fake_datasets(tmp_path):
    make_iemocap(tmp_path / "IEMOCAP")
    make_ravdess(tmp_path / "ravdess")
    make_cremad(tmp_path / "cremad")
    manifest = make_paraspeechcaps(tmp_path / "psc")
    ratings = make_ratings(tmp_path / "psc")
    out = tmp_path / "results.json"
    cmd = [sys.executable, str(EXAMPLE / "reproduce.py"), "--model", "tiny-random", "--n-boot", "20",
           "--paraspeechcaps", str(manifest), "--iemocap", str(tmp_path / "IEMOCAP"),
           "--ravdess", str(tmp_path / "ravdess"), "--cremad", str(tmp_path / "cremad"),
           "--ratings", str(ratings), "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    for text in ("Speech-text retrieval", "Zero-shot classification", "Human alignment", "45.6", "57.2", "0.893"):
        assert text in p.stdout
    assert "Session2" in p.stderr  # missing sessions are reported, not fatal
    assert "] " in p.stdout and not re.search(r"\][\d-]", p.stdout)  # a CI never runs into the next column
    res = json.loads(out.read_text())["ours"]
    assert res["retrieval"]["n"] == 4
    assert 0 <= res["retrieval"]["fine_s2t_R@1"] <= 100 and res["retrieval"]["global_t2s_R@10"] is None  # 4 clips: cannot miss
    cls = res["classification"]
    assert cls["IEMOCAP emotion (4)"]["n"] == 3  # neu, exc (scored as happy), ang; xxx left out
    assert cls["IEMOCAP emotion (4)"]["support"] == {"angry": 1, "happy": 1, "neutral": 1}
    assert cls["RAVDESS gender (2)"]["support"] == {"female": 2, "male": 1}
    assert cls["CREMA-D age (4)"]["support"] == {"20-39": 1, "40-59": 1}
    assert cls["CREMA-D emotion (6)"]["support"] == {"angry": 1, "happy": 1}
    assert set(res["correlation"]) == {"all", "intrinsic", "situational"}
    assert res["correlation"]["all"]["n"] == 8


def test_retrieval_metrics_hand_computed():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from reproduce import retrieval_metrics
    finally:
        sys.path.remove(str(EXAMPLE))
    audio = np.eye(3)
    # text 0 matches audio 0 best; text 1 is closest to audio 2; text 2 is closest to audio 1
    text = np.array([[1.0, 0, 0], [0, 0.5, 0.9], [0, 0.9, 0.5]])
    m = retrieval_metrics(audio, text)
    # s2t: row a0 -> t0 rank 0; a1: sims (0, .5, .9) -> rank 1; a2: (0, .9, .5) -> rank 1
    assert m["s2t_R@1"] == pytest.approx(100 / 3)
    assert m["s2t_R@5"] is None and m["t2s_R@10"] is None  # a pool of 3 clips cannot miss at 5 or 10
    assert m["s2t_mAP@10"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)
    # t2s: t1 sims over audio (0, .5, .9) -> rank 1; t2 (0, .9, .5) -> rank 1
    assert m["t2s_R@1"] == pytest.approx(100 / 3)


def make_ravdess_distributed(root: Path) -> None:
    """RAVDESS as unzipped from Zenodo: Audio_Speech_Actors_01-24/Actor_NN/03-01-EE-II-SS-RR-AA.wav."""
    base = root / "Audio_Speech_Actors_01-24"
    for name in ("03-01-05-02-01-01-01", "03-01-02-01-02-02-02", "03-01-08-01-01-01-24", "03-01-01-01-01-01-13"):
        tone(base / f"Actor_{name[-2:]}" / f"{name}.wav", 200)
    tone(base / "Actor_01" / "03-02-05-01-01-01-01.wav", 200)  # a sung clip: not speech
    (base / "Actor_01" / "notes.wav").write_bytes(b"")  # a stray file, reported


def make_cremad_distributed(root: Path) -> None:
    """CREMA-D as cloned: AudioWAV/AAAA_SSS_EEE_LL.wav and VideoDemographics.csv (with a BOM, as shipped)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "VideoDemographics.csv").write_text("\ufeffActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
                                                 "1091,19,Female,Asian,Not Hispanic\n")
    for name in ("1001_DFA_ANG_XX", "1001_IEO_SAD_LO", "1091_TIE_NEU_XX", "1091_WSI_FEA_HI"):
        tone(root / "AudioWAV" / f"{name}.wav", 220)


def test_official_layouts_are_read_and_detected(tmp_path):
    sys.path.insert(0, str(EXAMPLE))
    try:
        import paper_datasets as pd
    finally:
        sys.path.remove(str(EXAMPLE))
    make_ravdess_distributed(tmp_path / "RAVDESS")
    make_cremad_distributed(tmp_path / "CREMA-D")
    make_iemocap(tmp_path / "IEMOCAP")
    recs, problems = pd.ravdess(tmp_path / "RAVDESS")
    by_id = {r["id"]: r for r in recs}
    assert set(by_id) == {"03-01-05-02-01-01-01", "03-01-02-01-02-02-02", "03-01-08-01-01-01-24", "03-01-01-01-01-01-13"}
    assert (by_id["03-01-05-02-01-01-01"]["emotion"], by_id["03-01-05-02-01-01-01"]["gender"]) == ("angry", "male")
    assert by_id["03-01-05-02-01-01-01"]["intensity"] == "strong"
    assert (by_id["03-01-08-01-01-01-24"]["emotion"], by_id["03-01-08-01-01-01-24"]["gender"]) == ("surprised", "female")
    assert by_id["03-01-02-01-02-02-02"]["emotion"] == "calm" and by_id["03-01-01-01-01-01-13"]["emotion"] == "neutral"
    assert any("notes.wav" in p for p in problems)
    recs, problems = pd.cremad(tmp_path / "CREMA-D")
    got = {r["id"]: (r["emotion"], r.get("age")) for r in recs}
    assert got == {"1001_DFA_ANG_XX": ("A", "40-59"), "1001_IEO_SAD_LO": ("S", "40-59"),
                   "1091_TIE_NEU_XX": ("N", "under-20"), "1091_WSI_FEA_HI": ("F", "under-20")}
    assert [pd.detect_layout(tmp_path / d) for d in ("RAVDESS", "CREMA-D", "IEMOCAP")] == ["ravdess", "cremad", "iemocap"]
    (tmp_path / "empty").mkdir()
    assert pd.detect_layout(tmp_path / "empty") is None


@pytest.mark.slow
def test_reproduce_ravdess_protocol_on_the_distributed_layout(tmp_path):
    make_ravdess_distributed(tmp_path / "RAVDESS")
    make_cremad_distributed(tmp_path / "CREMA-D")
    out = tmp_path / "results.json"
    base = [sys.executable, str(EXAMPLE / "reproduce.py"), "--model", "tiny-random", "--n-boot", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(base + ["--ravdess", str(tmp_path / "RAVDESS"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    cls = json.loads(out.read_text())["ours"]["classification"]
    assert cls["RAVDESS emotion (8)"]["n"] == 4
    assert cls["RAVDESS gender (2)"]["support"] == {"female": 2, "male": 2}  # actors 02, 24 | 01, 13
    # one command from folders to clsp manifests, the corpus detected from each layout
    # (folders given relative to where it runs; the manifests' paths still open from their own folder)
    p = subprocess.run(base + ["--data", "RAVDESS", "CREMA-D", "--write-manifests", "manifests"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ravdess = [json.loads(x) for x in (tmp_path / "manifests" / "ravdess.jsonl").read_text().splitlines()]
    cremad = [json.loads(x) for x in (tmp_path / "manifests" / "cremad.jsonl").read_text().splitlines()]
    assert len(ravdess) == 4 and len(cremad) == 4
    assert all((tmp_path / "manifests" / r["audio"]).is_file() for r in ravdess + cremad)
