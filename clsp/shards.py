"""Shards of an embedding run: which one this process is, and how their outputs merge.

A run over N shards gives input record ``i`` (0-based, counting every non-blank input
line) to shard ``i % N``. ``shard_from_env`` reads the shard from the launcher's own
variables, as ``torchrun`` and SLURM document them:

- torchrun (``torch.distributed.run``): ``RANK`` of ``WORLD_SIZE`` processes;
- a SLURM job array: ``SLURM_ARRAY_TASK_ID`` with ``SLURM_ARRAY_TASK_COUNT`` (or
  ``SLURM_ARRAY_TASK_MIN``/``MAX``, and ``SLURM_ARRAY_TASK_STEP`` for ``--array=0-14:2``);
- ``srun`` tasks: ``SLURM_PROCID`` of ``SLURM_NTASKS``.

An array task that itself runs torchrun (or several srun tasks) is split again: shard
``task * W + rank`` of ``tasks * W``. Shard names are ``0003-of-0008`` (index and count,
zero-padded to 4 digits, more when needed), and ``{shard}`` in an output path is replaced
by that name.

A sharded ``clsp embed`` writes into each record's provenance the shard name
(``"shard"``), the record's input position (``"input_index"``), digests of the input up to
it (``"input_prev"``, ``"input_chain"``: ``chain_inputs``) and, with ``--npy``, the
matrix its ``row`` points into (``"matrix"``). ``ShardSet`` checks a set of shard outputs
(every shard once, one model) and ``ShardSet.records`` yields the records of all shards
in input order, checking that every input record appears exactly once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping


from clsp.errors import ConfigError

# provenance keys of a sharded run's records that a merged output does not keep: those that
# differ between shards, and the run's embedding settings (``clsp merge`` compares them)
SHARD_KEYS = ("shard", "input_index", "matrix", "input_prev", "input_chain", "input_total", "input_final", "settings")
_NAME = re.compile(r"(\d+)-of-(\d+)")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count); ``source`` says where it came from."""

    index: int = 0
    count: int = 1
    source: str = "--shard"

    @property
    def name(self) -> str:
        """``0003-of-0008``: zero-padded to at least 4 digits, both numbers the same width."""
        width = max(4, len(str(self.count)))
        return f"{self.index:0{width}d}-of-{self.count:0{width}d}"

    def owns(self, input_index: int) -> bool:
        return input_index % self.count == self.index

    def fill(self, path: str | None) -> str | None:
        """``path`` with ``{shard}`` replaced by :attr:`name` (None stays None)."""
        return None if path is None else path.replace("{shard}", self.name)


def parse_shard_name(text: str) -> Shard | None:
    """The shard named in ``text`` (``...0003-of-0008...``), or None."""
    found = _NAME.findall(text)
    if not found:
        return None
    i, n = (int(x) for x in found[-1])
    return Shard(i, n, text) if 0 <= i < n else None


_DIGITS = re.compile(r"[0-9]+")


def _int(env: Mapping[str, str], key: str) -> int:
    """The launcher variable ``key`` as a number: plain decimal digits only (``int()`` would also
    take ``1_0``, ``+3``, `` 3`` and other scripts' digits)."""
    if not _DIGITS.fullmatch(env[key]):
        raise ConfigError(f"--shard auto: {key}={env[key]!r} is not a non-negative integer (plain digits 0-9)")
    return int(env[key])


def _checked(index: int, count: int, what: str) -> tuple[int, int]:
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard auto: inconsistent {what} (need 0 <= index < count)")
    return index, count


def _array_task(env: Mapping[str, str]) -> tuple[int, int, str] | None:
    """(index, count, description) of a SLURM array task, or None outside an array."""
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    low = _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else None
    high = _int(env, "SLURM_ARRAY_TASK_MAX") if "SLURM_ARRAY_TASK_MAX" in env else None
    step = _int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
    count = _int(env, "SLURM_ARRAY_TASK_COUNT") if "SLURM_ARRAY_TASK_COUNT" in env else None
    if step < 1:
        raise ConfigError(f"--shard auto: SLURM_ARRAY_TASK_STEP={step} must be positive")
    if count is None and (low is None or high is None):
        raise ConfigError("--shard auto: SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor "
                          "SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_MAX are")
    low = 0 if low is None else low
    span = None if high is None else (high - low) // step + 1
    if count is not None and span is not None and count != span:
        raise ConfigError(f"--shard auto: SLURM_ARRAY_TASK_COUNT={count} but SLURM_ARRAY_TASK_MIN={low}.."
                          f"SLURM_ARRAY_TASK_MAX={high} (step {step}) spans {span} tasks; use a contiguous "
                          f"array such as --array=0-{count - 1}")
    count = span if count is None else count
    if count == 1:
        raise ConfigError(f"--shard auto: SLURM_ARRAY_TASK_ID={task} is the only task of its array, so the number of "
                          "shards cannot be told (a task resubmitted alone, sbatch --array=N, would embed the whole "
                          "input as shard 0 of 1); give --shard I/N with the whole array's N, or run without --shard")
    if (task - low) % step:
        raise ConfigError(f"--shard auto: SLURM_ARRAY_TASK_ID={task} is not on the array's step {step} from {low}")
    index = (task - low) // step
    _checked(index, count, f"SLURM_ARRAY_TASK_ID={task} for an array of {count} tasks from {low}")
    return index, count, f"SLURM_ARRAY_TASK_ID={task} (array task {index} of {count})"


def _process(env: Mapping[str, str]) -> tuple[int, int, str] | None:
    """(rank, world, description) from torchrun's RANK/WORLD_SIZE, else srun's SLURM_PROCID/SLURM_NTASKS."""
    for rank_key, world_key, who in (("RANK", "WORLD_SIZE", "torchrun"), ("SLURM_PROCID", "SLURM_NTASKS", "srun")):
        if rank_key in env or world_key in env:
            if (rank_key not in env or world_key not in env) and who == "srun" and "SLURM_ARRAY_TASK_ID" in env:
                continue  # a batch step of an array task: the array alone decides
            if rank_key not in env or world_key not in env:
                missing = world_key if rank_key in env else rank_key
                raise ConfigError(f"--shard auto: {rank_key} and {world_key} must both be set ({missing} is missing)")
            rank, world = _int(env, rank_key), _int(env, world_key)
            _checked(rank, world, f"{rank_key}={rank} with {world_key}={world}")
            return rank, world, f"{who} {rank_key}={rank} of {world_key}={world}"
    return None


def shard_from_env(environ: Mapping[str, str] | None = None) -> Shard:
    """This process's shard from torchrun's or SLURM's variables.

    Raises ``ConfigError`` (a usage error) naming the variables when none are set or they
    disagree (RANK >= WORLD_SIZE, an array whose count does not match MIN..MAX...).
    """
    env = os.environ if environ is None else environ
    array, proc = _array_task(env), _process(env)
    if array is None and proc is None:
        raise ConfigError("--shard auto: no launcher variables found; expected RANK and WORLD_SIZE (torchrun), "
                          "SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MIN/MAX "
                          "(job array), or SLURM_PROCID and SLURM_NTASKS (srun)")
    if array is None:
        return Shard(proc[0], proc[1], proc[2])
    if proc is None or proc[1] == 1:
        return Shard(array[0], array[1], array[2])
    return Shard(array[0] * proc[1] + proc[0], array[1] * proc[1], f"{array[2]} x {proc[2]}")


def resolve_shard(spec: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """``--shard`` value -> ``Shard``: ``"I/N"`` (plain decimal digits), ``"auto"`` (the
    launcher's), or None (no ``--shard``). Raises ``ConfigError`` for any other value, an empty
    one included (an unset ``$SHARD`` in a job script would make every task embed everything)."""
    if spec is None:
        return None
    if spec.strip().lower() == "auto":
        return shard_from_env(environ)
    found = re.fullmatch(r"([0-9]+)/([0-9]+)", spec)
    if found is None:
        raise ConfigError(f"--shard {spec!r}: expected I/N in plain digits (e.g. 0/4) or auto"
                          + (" (is the variable that should hold it unset?)" if not spec.strip() else ""))
    i, n = int(found[1]), int(found[2])
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {spec!r}: need 0 <= I < N")
    return Shard(i, n, f"--shard {spec}")


def check_shard_outputs(shard: Shard, output: str | None, npy: str | None) -> None:
    """Refuse (``ConfigError``, before any work) the outputs of shard ``shard`` when they would
    replace another shard's: ``{shard}`` in one of ``-o``/``--npy`` but not in the other file
    (every shard would write that one file), or an existing ``output`` whose first record is of
    another shard (its provenance's ``"shard"``), or an existing ``npy`` that another shard's
    records point into. ``output``/``npy``: the paths as given, before ``{shard}`` is filled in."""
    files = {flag: path for flag, path in (("-o", output), ("--npy", npy)) if path not in (None, "", "-")}
    named = [flag for flag, path in files.items() if "{shard}" in path]
    if named and len(named) < len(files):
        fixed = next(flag for flag in files if flag not in named)
        raise ConfigError(f"{named[0]} names each shard's file with {{shard}} but {fixed} {files[fixed]} is one file for "
                          "every shard: the shards would overwrite each other's; put {shard} in both")
    path = shard.fill(output)
    # the published output, and the partial one a killed run left (what --resume continues)
    for file, what in () if path in (None, "", "-") else (
            (path, ""), (os.path.realpath(path) + ".partial", " (the partial output of an unfinished run, "
                                                                "which --resume would continue)")):
        held = _first_shard(file)
        if held is not None and held != shard.name:
            raise ConfigError(f"{file} holds the records of shard {held}{what}; this run is shard {shard.name} and "
                              "would replace them: give each shard its own output (e.g. -o part-{shard}.jsonl)")
    _refuse_matrix_of_other_shard(shard, path, None if npy in (None, "", "-") else shard.fill(npy),
                                  named_per_shard=npy is not None and "{shard}" in npy)


def _refuse_matrix_of_other_shard(shard: Shard, output: str | None, npy: str | None,
                                  named_per_shard: bool = False) -> None:
    """``ConfigError`` when the existing matrix ``npy`` is the one another shard's records point
    into (their provenance's ``"matrix"``): replacing it would leave that shard's finished
    records pointing at this shard's rows. The records looked at are the JSONL outputs (and
    ``.partial`` ones) beside ``output`` and beside ``npy``: where a run's shards are kept. As
    another shard's records may lie anywhere, a run of several shards also refuses an existing
    ``npy`` that its own ``output`` (or that output's ``.partial``) does not point into, unless
    the matrix is ``named_per_shard`` (``{shard}`` in its name: no other shard's)."""
    if npy is None or not os.path.isfile(npy):
        return
    target = os.path.realpath(npy)
    folders = {os.path.dirname(os.path.realpath(p)) for p in (npy, output) if p not in (None, "", "-")}
    for folder in sorted(folders):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".jsonl", ".jsonl.partial")):
                continue
            first = _first_record(os.path.join(folder, name))
            prov = first.get("provenance") if isinstance(first, dict) else None
            if not isinstance(prov, dict) or not isinstance(prov.get("matrix"), str):
                continue
            held = prov.get("shard")
            if isinstance(held, str) and held != shard.name and os.path.realpath(prov["matrix"]) == target:
                raise ConfigError(f"--npy {npy} is the matrix of shard {held} (its records in "
                                  f"{os.path.join(folder, name)} point into it); this run is shard {shard.name} and "
                                  "would replace it: give each shard its own matrix (e.g. --npy part-{shard}.npy)")
    if shard.count < 2 or named_per_shard or _points_into(output, target, shard.name):
        return
    # records of another shard may lie anywhere (another folder, a file named otherwise, stdout
    # redirected): a matrix this shard's own output does not point into is not replaced unasked
    raise ConfigError(f"--npy {npy} exists, and this shard's output ({output or 'stdout'}) does not point into "
                      f"it: it may be the matrix of another shard of this run, whose records would then point at "
                      f"shard {shard.name}'s rows; give each shard its own matrix (e.g. --npy part-{{shard}}.npy), "
                      f"or remove {npy} first if it is not in use")


def _points_into(output: str | None, target: str, name: str) -> bool:
    """Whether the output ``output`` of shard ``name`` (or its ``.partial``) has records that
    point into the matrix at the real path ``target``."""
    if output in (None, "", "-"):
        return False
    for file in (output, os.path.realpath(output) + ".partial"):
        first = _first_record(file)
        prov = first.get("provenance") if isinstance(first, dict) else None
        if (isinstance(prov, dict) and prov.get("shard") == name and isinstance(prov.get("matrix"), str)
                and os.path.realpath(prov["matrix"]) == target):
            return True
    return False


def _first_record(path: str) -> Any:
    """The first line of the regular file ``path`` as JSON, or None (no such file, not JSON)."""
    if not os.path.isfile(path):
        return None
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            return json.loads(fh.readline() or "null")
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _first_shard(path: str) -> str | None:
    """The shard named in the provenance of the first record of the regular file ``path``, or
    None (no such file, not a clsp output: replacing it is the user's call)."""
    first = _first_record(path)
    held = first.get("provenance", {}).get("shard") if isinstance(first, dict) else None
    return held if isinstance(held, str) else None


def shard_provenance(provenance: dict[str, Any], shard: Shard, input_index: int, matrix: str | None = None,
                     chain: tuple[str, str] | None = None, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance a sharded run writes for input record ``input_index``; ``chain`` is the
    item's ``input_chain`` (``chain_inputs``), written as ``input_prev`` and ``input_chain``;
    ``settings``: the run's options that change what is embedded (``--long-audio``,
    ``--max-seconds``, the resolved ``--dtype``), which all shards of one run share."""
    out = {**provenance, "shard": shard.name, "input_index": input_index}
    if matrix is not None:
        out["matrix"] = matrix
    if chain is not None:
        out["input_prev"], out["input_chain"] = chain
    if settings:
        out["settings"] = settings
    return out


def chain_inputs(items: Iterable[Any], end: dict[str, Any] | None = None) -> Iterator[Any]:
    """Every input item (``clsp.records.Item``), in order, with ``input_chain`` set to ``(digest
    of the records before it, digest of those and it)``: 16 hex digits of a SHA-256 chained
    over the records' public fields (an unreadable line: its id). Every shard of a run reads
    the whole input, so the record after ``i`` in another shard must name ``i``'s digest as
    its ``input_prev``: ``clsp merge`` refuses shards made from different inputs by that.
    When the input is exhausted, ``end`` (a dict) gets ``input_total`` (the number of input
    records) and ``input_final`` (the last digest), which a shard writes into the provenance of
    its last record (``end_mark``), so that a merge also sees records missing at the end."""
    import hashlib
    import json

    from clsp.records import public_fields

    prev, count = "", 0
    for it in items:
        body = it.id if it.record is None else json.dumps(public_fields(it.record), sort_keys=True, default=str)
        cur = hashlib.sha256(f"{prev}\n{body}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
        it.input_chain = (prev, cur)
        prev, count = cur, count + 1
        yield it
    if end is not None:
        end.update({"input_total": count, "input_final": prev})


def end_mark(record: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """``record`` (a shard's last output record) with ``end`` (``chain_inputs``'s) added to its
    provenance."""
    prov = record.get("provenance")
    return {**record, "provenance": {**prov, **end}} if isinstance(prov, dict) else record


def model_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    """Provenance without the per-shard keys: what all shards of one run share."""
    return {k: v for k, v in provenance.items() if k not in SHARD_KEYS}
