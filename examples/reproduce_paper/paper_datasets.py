"""Readers for the evaluation sets of the CLSP paper, in the layouts its evaluation code reads.

Each reader returns records ``{"id", "audio", "start"?, "end"?, <labels>}`` for the clips
it finds, plus a list of problems (missing audio, unreadable label files) that the runner
reports instead of crashing.

- IEMOCAP: ``ROOT/Session{1..5}/dialog/EmoEvaluation/Ses*.txt`` label lines
  ``[start - end]<TAB>clip<TAB>emotion<TAB>[v, a, d]``; audio
  ``ROOT/Session{n}/dialog/wav/<clip without its last _part>.wav`` cut at start/end;
  emotions ang/hap/exc/neu/sad kept (exc is scored as hap).
- RAVDESS (JSON-labelled copy): ``ROOT/fold_{0..3}/<name>.json`` with ``{"emotion": ...}``
  next to ``<name>.wav``; the actor is the last ``-`` field of the name (even: female).
- CREMA-D (JSON-labelled copy): ``ROOT/test/<name>.json`` with ``{"label": "H"|...}`` next
  to ``<name>.wav``; ``ROOT/VideoDemographics.csv`` (ActorID, Age, ...) gives the age,
  binned <20, 20-39, 40-59, 60+.
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
    root = Path(root)
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


def cremad(root: str | Path) -> tuple[list[dict], list[str]]:
    root = Path(root)
    problems: list[str] = []
    ages: dict[str, int] = {}
    demographics = root / "VideoDemographics.csv"
    if demographics.is_file():
        with open(demographics, newline="") as fh:
            rows = csv.reader(fh)
            next(rows, None)
            ages = {row[0].strip(): int(row[1]) for row in rows if len(row) > 1}
    else:
        problems.append(f"CREMA-D: {demographics} is missing (no age labels)")
    records = []
    for label_path in sorted((root / "test").glob("*.json")):
        wav = label_path.with_suffix(".wav")
        if not wav.is_file():
            problems.append(f"CREMA-D: {wav} is missing")
            continue
        speaker = label_path.stem.split("_", 1)[0]
        rec = {"id": label_path.stem, "audio": str(wav), "emotion": json.loads(label_path.read_text())["label"]}
        if speaker in ages:
            rec["age"] = age_bin(ages[speaker])
        records.append(rec)
    if not records:
        problems.append(f"CREMA-D: no labelled clips under {root / 'test'}")
    return records, problems


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
