"""Generate the synthetic voice-style corpus with espeak-ng and Flite, reproducibly from a seed.

Each clip is one to three spoken sentences by one voice in one English accent; every
segment has its own rate, pitch, pitch range, loudness and possibly whisper. Voices are
espeak-ng variants (formant synthesis, any accent, whisper) and, with --flite-fraction,
Flite's voices of recorded speakers (slt, rms, awb, kal16; accent fixed by the voice,
no whisper). Captions (several global phrasings and fine-grained, time-ordered phrasings)
describe only the voice, from the generation settings and the measured pitch. Voices in
TEST_VOICES are used only for the test split; Flite voices only for training.

    python make_synthetic.py --out build/default_model/synthetic --num-train 6000 --num-test 800 \
        --flite-fraction 0.3
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_styles as st  # noqa: E402
from jsonl import read_jsonl, write_jsonl  # noqa: E402

SAMPLE_RATE = 16000
WHISPER_LINES = (
    "\nformant 0 100 0 100\nvoicing 18\nbreath 75 75 50 40 15 10\nbreathw 150 150 200 200 400 400\n"
)

SUBJECTS = ["the old sailor", "my neighbour", "a young teacher", "the baker", "our guide",
            "the tired driver", "a curious child", "the gardener", "her brother", "the new manager",
            "a quiet student", "the farmer", "his aunt", "the painter", "a busy nurse"]
VERBS = ["carried", "found", "painted", "opened", "sold", "repaired", "counted", "moved",
         "cleaned", "borrowed", "described", "forgot", "ordered", "wrapped", "measured"]
OBJECTS = ["a wooden box", "the green kettle", "seven apples", "an old map", "the heavy door",
           "two paper lanterns", "the silver key", "a basket of bread", "the broken clock",
           "three blue chairs", "a long letter", "the garden gate", "a bag of stones"]
PLACES = ["near the station", "behind the church", "by the river", "in the kitchen",
          "at the market", "on the hill", "inside the library", "under the bridge",
          "across the square", "beside the harbour"]
TIMES = ["this morning", "last winter", "before dinner", "on Sunday", "after the storm",
         "at midnight", "every Tuesday", "during the holidays", "yesterday afternoon"]


def make_sentences(rng: random.Random, n: int, short: bool) -> list[str]:
    """n distinct simple English sentences built from word lists (short: three phrases)."""
    seen: set[str] = set()
    while len(seen) < n:
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if not short:
            s += f" {rng.choice(PLACES + TIMES)}"
        seen.add(s[0].upper() + s[1:] + ".")
    return sorted(seen)


def prepare_espeak_data(root: Path) -> Path:
    """Copy espeak-ng's data folder and add a whispered twin '<v>_w' of every voice variant."""
    src = Path(subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True)
               .stdout.split("Data at:")[-1].strip())
    dst = root / "espeak-ng-data"
    if not dst.exists():
        shutil.copytree(src, dst)
    variants = dst / "voices" / "!v"
    for name in st.MALE_VOICES + st.FEMALE_VOICES:
        (variants / f"{name}_w").write_text((variants / name).read_text() + WHISPER_LINES)
    return root


def synth(data_root: str, accent: str, voice: str, seg: dict, text: str) -> np.ndarray:
    """Synthesize one segment with the voice's engine; returns float32 mono at 16 kHz."""
    if voice in st.FLITE_VOICES:
        return synth_flite(voice, seg, text)
    variant = f"{voice}_w" if seg["whisper"] else voice
    ssml = f'<speak><prosody range="{st.RANGE_SSML[seg["range"]]}">{text}</prosody></speak>'
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", f"--path={data_root}", "-m", "-v", f"{accent}+{variant}",
                        "-p", str(seg["espeak_pitch"]), "-s", str(seg["wpm"]), "-w", tmp.name, ssml],
                       check=True, capture_output=True)
        wave, sr = sf.read(tmp.name, dtype="float32")
    return to_16k(wave, sr)


def synth_flite(voice: str, seg: dict, text: str) -> np.ndarray:
    """Synthesize one segment with Flite at the segment's F0 mean/std (Hz) and duration stretch."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["flite", "-voice", st.FLITE_VOICES[voice]["voice"],
                        "--setf", f"int_f0_target_mean={seg['flite_f0_mean']}",
                        "--setf", f"int_f0_target_stddev={seg['flite_f0_std']}",
                        "--setf", f"duration_stretch={seg['flite_stretch']}", "-t", text, "-o", tmp.name],
                       check=True, capture_output=True)
        wave, sr = sf.read(tmp.name, dtype="float32")
    return to_16k(wave, sr)


def to_16k(wave: np.ndarray, sr: int) -> np.ndarray:
    """Polyphase resampling of a mono signal from sr to 16 kHz, float32."""
    g = np.gcd(SAMPLE_RATE, sr)
    return resample_poly(wave, SAMPLE_RATE // g, sr // g).astype(np.float32)


def median_f0(wave: np.ndarray) -> float:
    """Median F0 (Hz) over clearly voiced 40 ms frames by normalised autocorrelation; 0 if none."""
    frame, hop = 640, 160
    if len(wave) < frame:
        return 0.0
    idx = np.arange(0, len(wave) - frame, hop)[:, None] + np.arange(frame)[None, :]
    frames = wave[idx] - wave[idx].mean(axis=1, keepdims=True)
    energy = (frames**2).mean(axis=1)
    frames = frames[energy > 0.1 * energy.max()]
    spec = np.fft.rfft(frames, n=2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :frame]
    ac = ac / (ac[:, :1] + 1e-9)
    lo, hi = SAMPLE_RATE // 450, SAMPLE_RATE // 55
    lag = lo + ac[:, lo:hi].argmax(axis=1)
    peak = ac[np.arange(len(ac)), lag]
    voiced = lag[peak > 0.6]
    return float(np.median(SAMPLE_RATE / voiced)) if len(voiced) >= 3 else 0.0


def active_dbfs(wave: np.ndarray) -> float:
    """RMS level (dBFS) of the active part: 10 ms frames above -30 dB of the peak frame."""
    frames = wave[: len(wave) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(axis=1) + 1e-12)
    active = rms[rms > rms.max() * 10 ** (-30 / 20)]
    return float(10 * np.log10((active**2).mean()))


def set_level(wave: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale so the RMS of the active part (see active_dbfs) is dbfs."""
    return wave * 10 ** ((dbfs - active_dbfs(wave)) / 20)


def plan_segment(rng: random.Random, prev: dict | None, voice: str = "") -> dict:
    """Random settings for one segment; differs from prev in at least one described attribute.

    Flite voices get an F0 mean within the voice's plausible range, an F0 standard
    deviation for the intonation level and a duration stretch that puts the voice's pace
    in the same words-per-minute interval as an espeak-ng segment of that rate level."""
    flite = st.FLITE_VOICES.get(voice)
    while True:
        seg = {
            "rate": rng.choice(list(st.RATE_WPM)),
            "loudness": rng.choice(list(st.LOUDNESS_DBFS)),
            "range": rng.choice(list(st.RANGE_SSML)),
            "whisper": flite is None and rng.random() < 0.12,
            "espeak_pitch": rng.randint(5, 95),
        }
        seg["wpm"] = rng.randint(*st.RATE_WPM[seg["rate"]])
        seg["dbfs"] = round(rng.uniform(*st.LOUDNESS_DBFS[seg["loudness"]]), 2)
        if prev is not None:
            seg["range"] = prev["range"]
            if rng.random() < 0.5:
                seg["espeak_pitch"] = prev["espeak_pitch"]
        if flite:
            lo, hi = flite["f0_hz"]
            seg["flite_f0_mean"] = round(lo + (hi - lo) * seg["espeak_pitch"] / 100, 1)
            seg["flite_f0_std"] = round(rng.uniform(*st.RANGE_F0_STD_HZ[seg["range"]]), 1)
            seg["flite_stretch"] = round(flite["wpm"] / (seg["wpm"] * st.ESPEAK_WPM_FACTOR), 3)
        if prev is None:
            return seg
        if (seg["rate"], seg["loudness"], seg["whisper"]) != (prev["rate"], prev["loudness"], prev["whisper"]):
            return seg


def plan_clips(seed: int, num: int, voices: list[tuple[str, str]],
               sentences: tuple[list[str], list[str]], prefix: str) -> list[dict]:
    """Generation settings for num clips drawn over the given (voice, gender) pairs."""
    rng = random.Random(seed)
    clips = []
    for i in range(num):
        voice, gender = rng.choice(voices)
        accent_code = rng.choice(list(st.ACCENTS))
        n_seg = 1 if rng.random() < 0.65 else rng.choice([2, 2, 3])
        segs: list[dict] = []
        for _ in range(n_seg):
            seg = plan_segment(rng, segs[-1] if segs else None, voice)
            seg["text"] = rng.choice(sentences[n_seg > 1])
            segs.append(seg)
        flite = st.FLITE_VOICES.get(voice)
        accent = flite["accent"] if flite else st.ACCENTS[accent_code]
        clips.append({"id": f"{prefix}{i:05d}", "voice": voice, "gender": gender,
                      "engine": "flite" if flite else "espeak-ng",
                      "accent_code": None if flite else accent_code, "accent": accent,
                      "segments": segs, "noise_dbfs": round(rng.uniform(-75, -60), 1),
                      "seed": rng.randrange(2**31)})
    return clips


def render_clip(args: tuple[str, str, dict]) -> dict:
    """Synthesize, level and join the segments of one clip; write FLAC; measure pitch."""
    data_root, audio_dir, clip = args
    rng = np.random.default_rng(clip["seed"])
    pieces = []
    for seg in clip["segments"]:
        wave = synth(data_root, clip["accent_code"], clip["voice"], seg, seg["text"])
        seg["f0_hz"] = 0.0 if seg["whisper"] else round(median_f0(wave), 1)
        pieces.append(set_level(wave, seg["dbfs"]))
        pieces.append(np.zeros(int(SAMPLE_RATE * rng.uniform(0.1, 0.3)), dtype=np.float32))
    wave = np.concatenate(pieces[:-1])
    wave = wave + rng.standard_normal(len(wave)).astype(np.float32) * 10 ** (clip["noise_dbfs"] / 20)
    wave = np.clip(wave, -0.99, 0.99)
    path = Path(audio_dir) / f"{clip['id']}.flac"
    sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
    clip["audio"] = str(path.resolve())
    clip["duration"] = round(len(wave) / SAMPLE_RATE, 3)
    return clip


def pitch_thresholds(clips: list[dict]) -> dict[str, list[float]]:
    """Per-gender tercile boundaries of the measured segment F0 (voiced segments only)."""
    out = {}
    for gender in ("male", "female"):
        f0 = [s["f0_hz"] for c in clips if c["gender"] == gender for s in c["segments"] if s["f0_hz"] > 0]
        out[gender] = [float(np.percentile(f0, 100 / 3)), float(np.percentile(f0, 200 / 3))]
    return out


def style_key(clip: dict) -> str:
    """The described attributes of a clip; clips with equal keys get the same caption phrasings."""
    segs = [(g["rate"], g["loudness"], g["pitch"], g["range"], g["whisper"]) for g in clip["segments"]]
    return json.dumps([clip["gender"], clip["accent"], segs])


def add_captions(clips: list[dict], thresholds: dict, seed: int, n_global: int, n_fine: int) -> None:
    """Assign pitch levels from the thresholds and write caption lists.

    Phrasings are drawn from a generator seeded by the clip's style key, so clips that share
    every described attribute share their captions: the set of distinct captions (and so
    the cost of encoding them with the frozen text tower) stays small.
    """
    for clip in clips:
        lo, hi = thresholds[clip["gender"]]
        for seg in clip["segments"]:
            f0 = seg["f0_hz"]
            if seg["whisper"]:
                seg["pitch"] = "none"
            else:  # an unmeasurable F0 (rare) counts as medium
                seg["pitch"] = "low" if 0 < f0 < lo else "high" if f0 > hi else "medium"
        rng = random.Random(f"{seed}-{style_key(clip)}")
        clip["global_captions"] = sorted({st.global_caption(rng, clip) for _ in range(n_global)})
        clip["finegrained_captions"] = sorted({st.fine_caption(rng, clip) for _ in range(n_fine)})
        clip["caption"] = clip["global_captions"][0]


def recaption(out: Path, seed: int, n_global: int, n_fine: int) -> None:
    """Rewrite the captions of an already rendered corpus (no synthesis)."""
    meta = json.loads((out / "meta.json").read_text())
    for split in ("train", "test"):
        clips = read_jsonl(out / f"{split}.jsonl")
        add_captions(clips, meta["pitch_thresholds_hz"], seed + 3, n_global, n_fine)
        write_jsonl(out / f"{split}.jsonl", clips)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--num-train", type=int, default=6000)
    ap.add_argument("--num-test", type=int, default=800)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--global-captions", type=int, default=2, help="phrasings per style")
    ap.add_argument("--fine-captions", type=int, default=2, help="phrasings per style")
    ap.add_argument("--flite-fraction", type=float, default=0.0,
                    help="share of training clips spoken by Flite voices (needs flite)")
    ap.add_argument("--recaption", action="store_true", help="only rewrite captions of --out")
    args = ap.parse_args()
    if args.recaption:
        recaption(args.out, args.seed, args.global_captions, args.fine_captions)
        return
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is required: apt-get install espeak-ng")
    if args.flite_fraction > 0 and shutil.which("flite") is None:
        sys.exit("--flite-fraction needs flite: apt-get install flite")
    audio_dir = args.out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    data_root = str(prepare_espeak_data(args.out).resolve())
    rng = random.Random(args.seed)
    long_s, short_s = make_sentences(rng, 600, short=False), make_sentences(rng, 300, short=True)
    all_voices = [(v, "male") for v in st.MALE_VOICES] + [(v, "female") for v in st.FEMALE_VOICES]
    train_voices = [v for v in all_voices if v[0] not in st.TEST_VOICES]
    test_voices = [v for v in all_voices if v[0] in st.TEST_VOICES]
    num_flite = round(args.num_train * args.flite_fraction)
    flite_voices = [(v, spec["gender"]) for v, spec in st.FLITE_VOICES.items()]
    plans = {"train": plan_clips(args.seed + 1, args.num_train - num_flite, train_voices,
                                 (long_s[:500], short_s[:250]), "syn-tr-")
             + plan_clips(args.seed + 4, num_flite, flite_voices, (long_s[:500], short_s[:250]), "syn-fl-"),
             "test": plan_clips(args.seed + 2, args.num_test, test_voices,
                                (long_s[500:], short_s[250:]), "syn-te-")}
    done = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for split, clips in plans.items():
            jobs = [(data_root, str(audio_dir), c) for c in clips]
            done[split] = list(pool.map(render_clip, jobs, chunksize=16))
            print(f"{split}: {len(done[split])} clips", file=sys.stderr)
    thresholds = pitch_thresholds(done["train"])
    for split, clips in done.items():
        add_captions(clips, thresholds, args.seed + 3, args.global_captions, args.fine_captions)
        write_jsonl(args.out / f"{split}.jsonl", clips)
    (args.out / "meta.json").write_text(json.dumps({"seed": args.seed, "pitch_thresholds_hz": thresholds,
                                                    "test_voices": sorted(st.TEST_VOICES)}, indent=1))


if __name__ == "__main__":
    main()
