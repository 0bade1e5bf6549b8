"""Prepare EmoDB for the default model: speaker split, augmentation, captions from labels.

    python prepare_emodb.py split --emodb ../shared/data/emodb --out build/default_model/emodb
        writes train_audio.jsonl (original + augmented training clips) and test.jsonl
        (held-out speakers, original audio only), ready for `clsp caption --backend acoustic`.
    python prepare_emodb.py captions --manifest X.jsonl [--acoustic Y.jsonl] --out Z.jsonl
        writes training records whose global captions are label descriptions (gender, age,
        emotion as a voice style) plus the acoustic backend's global captions of the same
        clip, and whose fine-grained captions are the acoustic backend's.

Augmentation (training speakers only, with sox): speed and pitch perturbation, gain,
additive noise at a random SNR, and reverberation; every setting is drawn from a seeded
generator and recorded in the manifest.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonl import read_jsonl, write_jsonl  # noqa: E402

TEST_SPEAKERS = {"emodb-03", "emodb-10", "emodb-09", "emodb-13"}  # 2 male, 2 female

# Each emotion as a description of how the voice sounds (several phrasings).
EMOTION_PHRASES = {
    "anger": ["an angry, tense voice", "a furious, forceful tone", "an irritated, harsh voice"],
    "boredom": ["a bored, listless voice", "a weary, uninterested tone", "a dull, bored drawl"],
    "disgust": ["a disgusted voice", "a tone of revulsion and distaste", "a disgusted, scornful tone"],
    "fear": ["a fearful, anxious voice", "a frightened, shaky tone", "a scared, nervous voice"],
    "happiness": ["a happy, cheerful voice", "a joyful, upbeat tone", "a bright, delighted voice"],
    "neutral": ["a calm, neutral voice", "a plain, even tone", "a composed, matter-of-fact voice"],
    "sadness": ["a sad, subdued voice", "a sorrowful, downcast tone", "a melancholy, low-spirited voice"],
}
GENDER_WORDS = {"male": ["a man", "a male speaker", "a young man"],
                "female": ["a woman", "a female speaker", "a young woman"]}
TEMPLATES = [
    "{who} speaks German in {emo}.",
    "{Who}, speaking in {emo}.",
    "In {emo}, {who} talks in German.",
    "{Who} in {age} speaks with {emo}.",
]


def age_phrase(age: int, gender: str) -> str:
    """A spoken description of an adult age."""
    return ("his " if gender == "male" else "her ") + ("twenties" if age < 30 else "thirties")


def label_caption(rng: random.Random, row: dict) -> str:
    """One caption from the clip's labels; describes the voice, never the words."""
    who = rng.choice(GENDER_WORDS[row["gender"]])
    text = rng.choice(TEMPLATES).format(who=who, Who=who[0].upper() + who[1:],
                                        emo=rng.choice(EMOTION_PHRASES[row["emotion"]]),
                                        age=age_phrase(int(row["age"]), row["gender"]))
    return text[0].upper() + text[1:]


def augment_args(rng: random.Random) -> tuple[list[str], dict]:
    """A random sox effect chain and its description."""
    effects: list[str] = []
    desc: dict = {}
    kind = rng.choice(["speed", "pitch", "none"])
    if kind == "speed":
        desc["speed"] = round(rng.uniform(0.88, 1.12), 3)
        effects += ["speed", str(desc["speed"])]
    elif kind == "pitch":
        desc["pitch_cents"] = rng.choice([-1, 1]) * rng.randint(100, 300)
        effects += ["pitch", str(desc["pitch_cents"])]
    if rng.random() < 0.4:
        desc["reverb"] = rng.randint(20, 70)
        effects += ["reverb", str(desc["reverb"]), "50", str(rng.randint(30, 100))]
    desc["gain_db"] = round(rng.uniform(-12, 8), 1)
    effects += ["gain", str(desc["gain_db"]), "rate", "16000", "channels", "1"]
    return effects, desc


def add_noise(path: Path, snr_db: float, seed: int) -> None:
    """Add white or brown-ish noise at snr_db to the file in place; clip to [-1, 1]."""
    x, sr = sf.read(path, dtype="float32")
    g = np.random.default_rng(seed)
    noise = g.standard_normal(len(x)).astype(np.float32)
    if g.random() < 0.5:
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
    p_sig = float(np.mean(x**2)) + 1e-12
    noise *= np.sqrt(p_sig / (float(np.mean(noise**2)) + 1e-12) / 10 ** (snr_db / 10))
    sf.write(path, np.clip(x + noise, -1, 1), sr, subtype="PCM_16")


def make_augmented(job: tuple[dict, Path, int, int]) -> dict:
    """Write one augmented copy of a clip and return its manifest row."""
    row, out_dir, k, seed = job
    rng = random.Random(seed)
    effects, desc = augment_args(rng)
    dst = out_dir / f"{row['id']}-aug{k}.flac"
    subprocess.run(["sox", row["audio"], "-b", "16", str(dst), *effects], check=True, capture_output=True)
    if rng.random() < 0.6:
        desc["snr_db"] = round(rng.uniform(8, 30), 1)
        add_noise(dst, desc["snr_db"], seed)
    return {**row, "id": f"{row['id']}-aug{k}", "audio": str(dst.resolve()), "augment": desc}


def split(args: argparse.Namespace) -> None:
    rows = read_jsonl(args.emodb / "labels.jsonl")
    for row in rows:
        row["audio"] = str((args.emodb / row["audio"]).resolve())
    train = [r for r in rows if r["speaker"] not in TEST_SPEAKERS]
    test = [r for r in rows if r["speaker"] in TEST_SPEAKERS]
    aug_dir = args.out / "augmented"
    aug_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(r, aug_dir, k, args.seed * 100003 + i * 101 + k)
            for i, r in enumerate(train) for k in range(args.copies)]
    with ThreadPoolExecutor(args.workers) as pool:
        augmented = list(pool.map(make_augmented, jobs))
    write_jsonl(args.out / "train_audio.jsonl", train + augmented)
    write_jsonl(args.out / "test.jsonl", test)
    print(f"emodb: {len(train)} train clips (+{len(augmented)} augmented), {len(test)} test clips "
          f"from speakers {sorted(TEST_SPEAKERS)}", file=sys.stderr)


def captions(args: argparse.Namespace) -> None:
    rows = read_jsonl(args.manifest)
    acoustic: dict[str, dict] = {}
    if args.acoustic:
        for rec in read_jsonl(args.acoustic):
            if "error" not in rec:
                acoustic[rec["id"]] = rec
    rng = random.Random(args.seed)
    out = []
    for row in rows:
        labels = sorted({label_caption(rng, row) for _ in range(args.label_captions)})
        measured = acoustic.get(row["id"], {})
        row["global_captions"] = labels + list(measured.get("global_captions", []))
        row["finegrained_captions"] = list(measured.get("finegrained_captions", [])) or labels
        row["caption"] = labels[0]
        out.append(row)
    write_jsonl(args.out, out)
    print(f"emodb captions: {len(out)} rows, {len(acoustic)} with acoustic captions", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("split")
    a.add_argument("--emodb", type=Path, required=True)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--copies", type=int, default=4)
    a.add_argument("--seed", type=int, default=7)
    a.add_argument("--workers", type=int, default=2)
    b = sub.add_parser("captions")
    b.add_argument("--manifest", type=Path, required=True)
    b.add_argument("--acoustic", type=Path)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--seed", type=int, default=11)
    b.add_argument("--label-captions", type=int, default=2, help="label-based phrasings per clip")
    args = ap.parse_args()
    split(args) if args.cmd == "split" else captions(args)


if __name__ == "__main__":
    main()
