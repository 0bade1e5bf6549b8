"""Per-record costs of the bookkeeping around embedding records, against writing the record.

Prints microseconds per record (best of ``--repeats`` runs of ``--n`` records, one thread) for:
writing a 256-d embedding record as JSON (``clsp.records.dumps``, the baseline), the
``row_sha256`` of its row (``clsp.index.records.row_checksum``), checking a read row against
it (``check_row``), and one step of a sharded run's input digest chain
(``clsp.shards.chain_inputs``); each with its ratio to the baseline.

    python benchmarks/records.py --n 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best(fn, n: int, repeats: int) -> float:
    """Best microseconds per call of ``fn(i)`` over ``repeats`` runs of ``n`` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        times.append((time.perf_counter() - t) / n * 1e6)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dim", type=int, default=256)
    args = ap.parse_args()
    from clsp.index.records import check_row, row_checksum
    from clsp.records import Item, dumps, json_vector
    from clsp.shards import chain_inputs

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((64, args.dim)).astype(np.float32)
    sums = [row_checksum(r) for r in rows]
    prov = {"model": "clsp-default", "checksum": "sha256:0123456789abcdef", "dim": args.dim, "normalized": True,
            "sample_rate": 16000}
    recs = [{"id": f"clips/c{i}.wav", "audio": f"/data/clips/c{i}.wav", "embedding": json_vector(rows[i]),
             "provenance": prov} for i in range(64)]
    items = [Item(index=i, id=f"clips/c{i}.wav", record={"id": f"clips/c{i}.wav", "audio": f"/data/clips/c{i}.wav"})
             for i in range(args.n)]

    base = best(lambda i: dumps(recs[i % 64]), args.n, args.repeats)
    rowsum = best(lambda i: row_checksum(rows[i % 64]), args.n, args.repeats)
    check = best(lambda i: check_row({"row": i % 64, "row_sha256": sums[i % 64]}, rows[i % 64], rows, "x"),
                 args.n, args.repeats)
    chain_times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for _it in chain_inputs(items):
            pass
        chain_times.append((time.perf_counter() - t) / args.n * 1e6)
    chain = min(chain_times)
    print(f"dim {args.dim}, {args.n} records, best of {args.repeats}")
    print(f"dumps (baseline)        {base:7.2f} us/record  1.000x")
    for name, us in (("row_sha256 (write)", rowsum), ("check_row (read)", check), ("input chain step", chain)):
        print(f"{name:23s} {us:7.2f} us/record  {us / base:.3f}x")


if __name__ == "__main__":
    main()
