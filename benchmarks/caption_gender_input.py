"""What the caption's gender head hears, compared: gender stated by the speaker encoders' head
(``clsp.caption.gender.speaker_female_logits``, female when the log-odds are above 0) for each
clip heard five ways, on real speech with gender labels, no labels given to the head.

    python benchmarks/caption_gender_input.py --tess /tmp/tess --savee /tmp/savee

Ways: ``whole`` (the clip as decoded), ``region`` (``clsp.caption.acoustic.speech_region``: its
speech frames joined, what ``clsp caption`` gives the head), ``region_peak`` (that, scaled to a
peak of 1), ``edges`` (from the first to the last speech frame, pauses kept), ``edges_peak``.
Sets: every third EmoDB clip (``--emodb``), TESS (10 clips per speaker and emotion, seed 0, as
``examples/default_model/evaluate_real.py`` draws them) and all of SAVEE, read in place
(evaluation only). Prints the share right per set and way, and each way's clips of 3 s of
digital silence before and after 20 EmoDB clips: the largest change of the log-odds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "default_model"))
from evaluate_real import savee_rows, tess_rows  # noqa: E402

EMODB = ROOT.parent / "shared" / "data" / "emodb"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emodb", type=Path, default=EMODB)
    ap.add_argument("--tess", type=Path)
    ap.add_argument("--savee", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from clsp.audio import load_audio
    from clsp.caption.acoustic import AcousticConfig, _runs, frame_levels, speech_mask, speech_region
    from clsp.caption.gender import speaker_female_logits

    cfg = AcousticConfig()
    hop = int(round(cfg.pitch.hop_s * cfg.sample_rate))
    win = int(round(cfg.pitch.window_s * cfg.sample_rate))

    def edges(x: np.ndarray) -> np.ndarray:
        runs = list(_runs(speech_mask(frame_levels(x - x.mean(), cfg), cfg)))
        return x[runs[0][0] * hop : (runs[-1][1] - 1) * hop + win] if runs else x

    def peak(x: np.ndarray) -> np.ndarray:
        top = float(np.abs(x).max()) if len(x) else 0.0
        return x / top if top > 0 else x

    ways = {"whole": lambda x: x, "region": lambda x: speech_region(x, cfg),
            "region_peak": lambda x: peak(speech_region(x, cfg)), "edges": edges, "edges_peak": lambda x: peak(edges(x))}
    rows = []
    if args.emodb and (args.emodb / "labels.jsonl").is_file():
        for i, line in enumerate((args.emodb / "labels.jsonl").read_text().splitlines()):
            rec = json.loads(line)
            if i % 3 == 0:
                rows.append({"set": "emodb", "audio": str(args.emodb / rec["audio"]), "gender": rec["gender"]})
    if args.tess:
        rows += [{"set": "tess", **r} for r in tess_rows(args.tess, 10, 0)]
    if args.savee:
        rows += [{"set": "savee", **r} for r in savee_rows(args.savee)]
    waves = [load_audio(r["audio"]).numpy().astype(np.float64) for r in rows]
    emodb = [w for r, w in zip(rows, waves) if r["set"] == "emodb"][:20]
    silence = np.zeros(3 * cfg.sample_rate)
    padded = [np.concatenate([silence, w, silence]) for w in emodb]
    print(f"{len(rows)} clips: " + ", ".join(f"{s} {sum(r['set'] == s for r in rows)}" for s in ("emodb", "tess", "savee")))
    print("| way | " + " | ".join(f"{s} % right" for s in ("emodb", "tess", "savee")) + " | all % | 3 s silence: max log-odds change |")
    print("|---|---|---|---|---|---|")
    for name, hear in ways.items():
        logits = speaker_female_logits([hear(w) for w in waves], cfg.sample_rate)
        right = {}
        for r, logit in zip(rows, logits):
            said = "female" if logit is not None and logit > 0 else "male"
            n, k = right.get(r["set"], (0, 0))
            right[r["set"]] = (n + 1, k + (said == r["gender"]))
        cells = [f"{100 * right[s][1] / right[s][0]:.1f} ({right[s][1]}/{right[s][0]})" if s in right else "-"
                 for s in ("emodb", "tess", "savee")]
        total = sum(k for _, k in right.values()) / max(1, sum(n for n, _ in right.values()))
        a = speaker_female_logits([hear(w) for w in emodb], cfg.sample_rate)
        b = speaker_female_logits([hear(w) for w in padded], cfg.sample_rate)
        moved = max(abs(x - y) for x, y in zip(a, b) if x is not None and y is not None) if emodb else float("nan")
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * total:.1f} | {moved:.3f} |", flush=True)


if __name__ == "__main__":
    main()
