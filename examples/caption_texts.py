"""One text record per caption of a captioned manifest, for `clsp embed --modality text` and
the pool mode of `clsp search eval`.

Reads JSON lines with `id` and `global_captions` / `finegrained_captions` (or `caption`) and
writes `{"id": "<id>-global0", "text": ..., "audio_id": "<id>", "caption_type": "global"}`
per caption, in input order:

    python examples/caption_texts.py examples/data/captions.jsonl > caption_texts.jsonl
"""

from __future__ import annotations

import json
import sys

FIELDS = (("global_captions", "global"), ("finegrained_captions", "finegrained"), ("caption", "caption"))


def caption_records(record: dict):
    for field, kind in FIELDS:
        value = record.get(field)
        texts = [value] if isinstance(value, str) else value or []
        for i, text in enumerate(texts):
            yield {"id": f"{record['id']}-{kind}{i}", "text": text, "audio_id": record["id"], "caption_type": kind}


def main() -> None:
    source = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
    for n, line in enumerate(source, 1):
        if line.strip():
            record = json.loads(line)
            if "id" not in record:
                sys.exit(f"line {n}: a captioned record needs an 'id'")
            for out in caption_records(record):
                print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
