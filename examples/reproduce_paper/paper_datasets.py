"""Readers for the evaluation sets of the CLSP paper, in the layouts its evaluation code reads.

Each reader returns records ``{"id", "audio", "start"?, "end"?, <labels>}`` for the clips
it finds, plus a list of problems (missing audio, unreadable label files) that the runner
reports instead of crashing.

- IEMOCAP: ``ROOT/Session{1..5}/dialog/EmoEvaluation/Ses*.txt`` label lines
  ``[start - end]<TAB>clip<TAB>emotion<TAB>[v, a, d]``; audio
  ``ROOT/Session{n}/dialog/wav/<clip without its last _part>.wav`` cut at start/end;
  emotions ang/hap/exc/neu/sad kept (exc is scored as hap).
- RAVDESS as distributed (Zenodo ``Audio_Speech_Actors_01-24.zip``):
  ``ROOT/[Audio_Speech_Actors_01-24/]Actor_NN/MM-VV-EE-II-SS-RR-AA.wav``, the labels in the
  name (modality 03 audio-only, vocal channel 01 speech; emotion 01 neutral, 02 calm,
  03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised; intensity 01 normal,
  02 strong; actor AA, even = female). Or the JSON-labelled copy of the paper's code:
  ``ROOT/fold_{0..3}/<name>.json`` with ``{"emotion": ...}`` next to ``<name>.wav``.
- CREMA-D as distributed (GitHub ``CheyneyComputerScience/CREMA-D``):
  ``ROOT/AudioWAV/AAAA_SSS_EEE_LL.wav`` (actor, sentence, emotion ANG/DIS/FEA/HAP/NEU/SAD,
  level LO/MD/HI/XX) with ``ROOT/VideoDemographics.csv``; every clip is read. Or the
  JSON-labelled copy: ``ROOT/test/<name>.json`` with ``{"label": "H"|...}`` next to
  ``<name>.wav``. The CSV (ActorID, Age, ...) gives the age, binned <20, 20-39, 40-59, 60+.
- ParaSpeechCaps test: Lhotse cut manifests (``.jsonl`` or ``.jsonl.gz``) whose first
  supervision's ``custom`` holds ``short_captions`` / ``long_captions`` (or the FCaps names
  ``global_captions`` / ``finegrained_captions``); global text = first short caption,
  fine-grained text = last (longest) long caption.
- Human ratings (not public): JSONL ``{"audio", "caption", "rating", "category"}``.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

IEMOCAP_EMOTIONS = ("ang", "hap", "exc", "neu", "sad")
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
                    "07": "disgust", "08": "surprised"}
CREMAD_EMOTIONS = {"ANG": "A", "DIS": "D", "FEA": "F", "HAP": "H", "NEU": "N", "SAD": "S"}
AGE_BINS = ((20, "under-20"), (40, "20-39"), (60, "40-59"), (10**9, "60-plus"))


def iemocap(root: str | Path) -> tuple[list[dict], list[str]]:
    root = Path(root)
    records, problems = [], []
    sessions = [root / f"Session{n}" for n in range(1, 6)]
    for session in sessions:
        if not session.is_dir():
            problems.append(f"IEMOCAP: {session} is missing")
            continue
        for label_file in sorted((session / "dialog" / "EmoEvaluation").glob("Ses*.txt")):
            for line in label_file.read_text(encoding="utf-8", errors="replace").splitlines():
                rec = _iemocap_line(line, session)
                if rec is None:
                    continue
                if not Path(rec["audio"]).is_file():
                    problems.append(f"IEMOCAP: {rec['audio']} is missing")
                    continue
                records.append(rec)
    return records, problems


def _iemocap_line(line: str, session: Path) -> dict | None:
    if not line.startswith("["):
        return None
    parts = line.strip().split("\t")
    if len(parts) < 3 or parts[2] not in IEMOCAP_EMOTIONS:
        return None
    times = parts[0].strip("[]").split()
    start, end = float(times[0]), float(times[2])
    clip = parts[1]
    wav = session / "dialog" / "wav" / f"{clip.rsplit('_', 1)[0]}.wav"
    return {"id": clip, "audio": str(wav), "start": start, "end": end, "emotion": parts[2]}


def ravdess(root: str | Path) -> tuple[list[dict], list[str]]:
    """RAVDESS speech clips with emotion and gender, from either layout (see the module doc)."""
    root = Path(root)
    if any((root / f"fold_{fold}").is_dir() for fold in range(4)):
        return _ravdess_folds(root)
    records, problems = [], []
    for wav in sorted(root.rglob("Actor_*/*.wav")):
        fields = wav.stem.split("-")
        if len(fields) != 7 or not all(f.isdigit() for f in fields):
            problems.append(f"RAVDESS: {wav.name} does not follow MM-VV-EE-II-SS-RR-AA.wav")
            continue
        modality, channel, emotion, intensity, statement, repetition, actor = fields
        if modality != "03" or channel != "01":
            continue  # video files and sung clips are not part of the speech protocol
        if emotion not in RAVDESS_EMOTIONS:
            problems.append(f"RAVDESS: {wav.name} has an unknown emotion code {emotion}")
            continue
        records.append({"id": wav.stem, "audio": str(wav), "emotion": RAVDESS_EMOTIONS[emotion],
                        "gender": "female" if int(actor) % 2 == 0 else "male", "actor": int(actor),
                        "intensity": "strong" if intensity == "02" else "normal", "statement": int(statement),
                        "repetition": int(repetition)})
    if not records:
        problems.append(f"RAVDESS: no fold_0..3 folders and no Actor_NN/03-01-*.wav speech clips under {root}")
    return records, problems


def _ravdess_folds(root: Path) -> tuple[list[dict], list[str]]:
    records, problems = [], []
    for fold in range(4):
        folder = root / f"fold_{fold}"
        if not folder.is_dir():
            problems.append(f"RAVDESS: {folder} is missing")
            continue
        for label_path in sorted(folder.glob("*.json")):
            wav = label_path.with_suffix(".wav")
            if not wav.is_file():
                problems.append(f"RAVDESS: {wav} is missing")
                continue
            actor = int(label_path.stem.rsplit("-", 1)[-1])
            emotion = json.loads(label_path.read_text())["emotion"]
            records.append({"id": f"fold_{fold}/{label_path.stem}", "audio": str(wav), "emotion": emotion,
                            "gender": "female" if actor % 2 == 0 else "male"})
    return records, problems


def age_bin(age: int) -> str:
    return next(name for limit, name in AGE_BINS if age < limit)


def _cremad_ages(root: Path, problems: list[str]) -> dict[str, int]:
    demographics = root / "VideoDemographics.csv"
    if not demographics.is_file():
        problems.append(f"CREMA-D: {demographics} is missing (no age labels)")
        return {}
    with open(demographics, newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh)
        next(rows, None)
        return {row[0].strip(): int(row[1]) for row in rows if len(row) > 1 and row[1].strip().isdigit()}


def cremad(root: str | Path) -> tuple[list[dict], list[str]]:
    """CREMA-D clips with emotion (H/S/A/F/D/N) and age bin, from either layout (see the module doc)."""
    root = Path(root)
    problems: list[str] = []
    ages = _cremad_ages(root, problems)
    official = not (root / "test").is_dir() and (root / "AudioWAV").is_dir()
    records = []
    for path in sorted((root / "AudioWAV").glob("*.wav") if official else (root / "test").glob("*.json")):
        wav = path if official else path.with_suffix(".wav")
        if official:
            fields = path.stem.split("_")
            if len(fields) != 4 or fields[2] not in CREMAD_EMOTIONS:
                problems.append(f"CREMA-D: {path.name} does not follow ActorID_Sentence_Emotion_Level.wav")
                continue
            label = CREMAD_EMOTIONS[fields[2]]
        elif not wav.is_file():
            problems.append(f"CREMA-D: {wav} is missing")
            continue
        else:
            label = json.loads(path.read_text())["label"]
        speaker = path.stem.split("_", 1)[0]
        rec = {"id": path.stem, "audio": str(wav), "emotion": label}
        if speaker in ages:
            rec["age"] = age_bin(ages[speaker])
        records.append(rec)
    if not records:
        problems.append(f"CREMA-D: no labelled clips under {root / ('AudioWAV' if official else 'test')}")
    return records, problems


def detect_layout(root: str | Path) -> str | None:
    """Which corpus a folder holds: 'iemocap', 'ravdess', 'cremad', 'paraspeechcaps' (cut manifests) or None."""
    root = Path(root)
    if root.is_file() and root.name.endswith((".jsonl", ".jsonl.gz")):
        return "paraspeechcaps"
    if any((root / f"Session{n}" / "dialog").is_dir() for n in range(1, 6)):
        return "iemocap"
    if any((root / f"fold_{fold}").is_dir() for fold in range(4)) or next(root.rglob("Actor_*/03-01-*.wav"), None):
        return "ravdess"
    if (root / "AudioWAV").is_dir() or ((root / "test").is_dir() and (root / "VideoDemographics.csv").is_file()):
        return "cremad"
    return None


def paraspeechcaps(manifests: list[str | Path]) -> tuple[list[dict], list[str]]:
    records, problems = [], []
    for manifest in manifests:
        path = Path(manifest)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rec = _cut_record(json.loads(line), path.parent)
                    (records.append(rec) if isinstance(rec, dict) else problems.append(rec))
    return records, problems


def _cut_record(cut: dict, base: Path) -> dict | str:
    source = Path(cut["recording"]["sources"][0]["source"])
    audio = source if source.is_absolute() else base / source
    custom = (cut.get("supervisions") or [{}])[0].get("custom") or {}
    short = custom.get("short_captions") or custom.get("global_captions")
    long = custom.get("long_captions") or custom.get("finegrained_captions")
    if not short or not long:
        return f"ParaSpeechCaps: cut {cut.get('id')} has no captions"
    if not audio.is_file():
        return f"ParaSpeechCaps: {audio} is missing"
    start = float(cut.get("start", 0.0))
    return {"id": cut["id"], "audio": str(audio), "start": start, "end": start + float(cut["duration"]),
            "global": short[0], "fine": long[-1]}


def human_ratings(path: str | Path) -> tuple[list[dict], list[str]]:
    path = Path(path)
    records, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        rec = json.loads(line)
        audio = Path(rec["audio"])
        audio = audio if audio.is_absolute() else path.parent / audio
        if not audio.is_file():
            problems.append(f"ratings line {n}: {audio} is missing")
            continue
        records.append({"id": rec.get("id", f"line-{n}"), "audio": str(audio), "caption": rec["caption"],
                        "rating": float(rec["rating"]), "category": str(rec.get("category", "all")).lower()})
    return records, problems
