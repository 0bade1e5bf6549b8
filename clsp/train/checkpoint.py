"""Training checkpoints: our model directory plus the trainer's state, written atomically.

Layout of ``<output_dir>/checkpoints/step-00001000/``::

    model/config.json, model/model.safetensors   # loadable with clsp.load_model
    trainer_state.pt                              # step, epoch, optimizer, config
    rank-00000.pt ...                             # per rank: sampler position and RNG states
    COMPLETE                                      # written last

Everything is written into a hidden temporary folder that is renamed into place, so a
crash (even SIGKILL) never leaves a half-written checkpoint under a ``step-*`` name. Only
the newest ``keep_last`` checkpoints are kept. The ``.pt`` files hold tensors, numbers,
strings and lists only and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from clsp.distributed import barrier
from clsp.errors import CheckpointError, ConfigError

STEP_DIR = re.compile(r"^step-(\d{8})$")
TRAINER_STATE = "trainer_state.pt"
COMPLETE = "COMPLETE"


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / COMPLETE).exists()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def resolve_resume(output_dir: str | Path, resume: str | None) -> Path | None:
    """``latest`` -> newest complete checkpoint (None if there is none); a path -> itself."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not path.exists():
        raise ConfigError(f"--resume {resume}: no such checkpoint (give a checkpoint folder, "
                          "OUT/checkpoints/step-NNNNNNNN, or latest)")
    if not (path / COMPLETE).exists() or not (path / TRAINER_STATE).exists():
        raise ConfigError(f"--resume {resume}: not a complete training checkpoint (no {COMPLETE} / {TRAINER_STATE}); "
                          "give a checkpoint folder, OUT/checkpoints/step-NNNNNNNN, or latest")
    return path


def step_of(path: Path) -> int | None:
    """The step a checkpoint was written at: from its trainer state (a copy named ``best``
    holds it too), else from its folder's name (``step-00000030`` -> 30), else None."""
    try:
        step = torch.load(Path(path) / TRAINER_STATE, map_location="cpu", weights_only=True).get("step")
        if isinstance(step, int):
            return step
    except Exception:  # noqa: BLE001 - unreadable here: resuming it names the reason
        pass
    found = STEP_DIR.match(Path(path).name)
    return int(found.group(1)) if found else None


def resume_conflict(output_dir: str | Path, path: Path) -> str | None:
    """Why resuming checkpoint ``path`` into ``output_dir`` would mix two histories, or None.

    A checkpoint of another folder (another run, or a copy) into a folder that holds a run:
    the two runs' checkpoints and metrics would mix. A checkpoint of this folder with newer
    ones beside it: they would stay next to the new steps, ``keep_last`` would remove the new
    branch's own base first, and ``--resume latest`` would go back to them."""
    out = Path(output_dir)
    found = list_checkpoints(out)
    metrics = out / "metrics.jsonl"
    if Path(path).resolve().parent != checkpoints_dir(out).resolve():
        if found or (metrics.exists() and metrics.stat().st_size > 0):
            held = f"checkpoints up to {found[-1].name}" if found else "the metrics.jsonl of a run"
            return (f"{out} already holds a training run ({held}), and {path} is not one of its checkpoints: "
                    "resuming it there would mix the two runs' checkpoints and metrics; resume it into a new "
                    "--output-dir, or continue the run there with --resume latest")
        return None
    mine = step_of(path)
    newer = [p.name for p in found if mine is not None and int(STEP_DIR.match(p.name).group(1)) > mine]
    if newer:
        return (f"{out} holds checkpoints newer than {Path(path).name} ({', '.join(newer)}): resuming from it there "
                "would leave them beside the new steps (and --resume latest would go back to them); resume it into "
                "a new --output-dir to branch from it, or remove the newer checkpoints first")
    return None


_CHECKPOINT_ENTRIES = re.compile(rf"^(model|{re.escape(TRAINER_STATE)}|{COMPLETE}|rank-\d{{5}}\.pt)$")


def not_written_by_train(folder: Path) -> str | None:
    """Why ``folder``, where a checkpoint is about to be written, must not be replaced, or
    None (nothing there, or a folder train wrote). A ``step-N`` folder is a checkpoint when it
    holds the ``COMPLETE`` marker train writes last; a ``.tmp-step-N`` folder (a write cut short)
    holds only what train writes into a checkpoint. Anything else (a model ``clsp convert``
    wrote there, a folder of yours) is never deleted."""
    if not os.path.lexists(folder):
        return None
    if folder.is_symlink() or not folder.is_dir():
        return f"{folder} exists and is not a checkpoint folder train wrote; move it out of {folder.parent}"
    if STEP_DIR.match(folder.name):
        if (folder / COMPLETE).is_file():
            return None
        return (f"{folder} exists and is not a checkpoint train wrote (no {COMPLETE} marker: a model converted "
                f"there, or a folder of yours?); train never deletes it: move it out of {folder.parent}")
    foreign = sorted(p.name for p in folder.iterdir() if not _CHECKPOINT_ENTRIES.match(p.name))
    if foreign:
        return (f"{folder} holds {', '.join(foreign[:3])}, which train does not write into a checkpoint; train never "
                f"deletes it: move it out of {folder.parent}")
    return None


def foreign_step_folders(output_dir: str | Path, after: int) -> list[Path]:
    """``step-N`` folders past step ``after`` in ``output_dir``'s checkpoints that train did not
    write (``not_written_by_train``): the run could not write its checkpoint of that step there."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and int(STEP_DIR.match(p.name).group(1)) > after
             and not_written_by_train(p)]
    return sorted(found)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: str | Path, step: int, model, trainer_state: dict[str, Any],
                    rank_state: dict[str, Any], rank: int, keep_last: int) -> Path:
    """Collective: every rank calls it; rank 0 writes the model and trainer state.

    Raises ``CheckpointError`` naming the checkpoint and the OS reason (no space left on
    device, file too large...) when a file cannot be written; the partial temporary folder
    is removed and the checkpoints written before stay as they were. ``CheckpointError``
    naming the folder, before anything is written, when a folder of the checkpoint's name is
    there that train did not write (``not_written_by_train``): it is never deleted."""
    from clsp.models.checkpoint import save_model

    root = checkpoints_dir(output_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if rank == 0:
        for folder in (final, tmp):  # replaced below: only a folder this trainer wrote
            why = not_written_by_train(folder)
            if why:
                raise CheckpointError(f"cannot write checkpoint {final}: {why}")
        shutil.rmtree(tmp, ignore_errors=True)
        _writing(final, tmp, lambda: tmp.mkdir(parents=True))
    barrier()
    _writing(final, tmp, lambda: _save_pt({**rank_state, "rng": rng_state()}, tmp / f"rank-{rank:05d}.pt"))
    barrier()
    if rank == 0:
        def write_rank0() -> None:
            save_model(model, tmp / "model")
            _save_pt(trainer_state, tmp / TRAINER_STATE)
            (tmp / COMPLETE).write_text(f"{step}\n")

        _writing(final, tmp, write_rank0)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(output_dir)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def _save_pt(obj: Any, path: Path) -> None:
    """``torch.save`` through a Python file, so that a failed write keeps its ``OSError``."""
    with open(path, "wb") as fh:
        torch.save(obj, fh)


_WRITE_REFUSALS = (errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def os_reason(exc: BaseException) -> str:
    """The operating system's reason behind ``exc`` ("No space left on device", "File too
    large" ...) found in its chain of causes, else its own message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return f"{seen.strerror} ({errno.errorcode.get(seen.errno, seen.errno)})"
        code = re.search(r"\(os error (\d+)\)", str(seen))  # Rust's io::Error (safetensors, tokenizers)
        if code is not None:
            number = int(code.group(1))
            return f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
        text = str(seen).strip()
        for number in _WRITE_REFUSALS:  # only the system's words, as a library passed them on ("File too large")
            if text and (text == os.strerror(number) or text.endswith(": " + os.strerror(number))):
                return f"{os.strerror(number)} ({errno.errorcode[number]})"
        seen = seen.__cause__ or seen.__context__
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def _writing(final: Path, tmp: Path, write) -> None:
    """Run ``write``; on failure remove ``tmp`` and raise ``CheckpointError`` naming ``final``."""
    try:
        write()
    except Exception as exc:  # OSError, torch's RuntimeError, safetensors' SafetensorError
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"cannot write checkpoint {final}: {os_reason(exc)}") from None


def load_trainer_state(path: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer state, this rank's state) of a checkpoint. A rank the checkpoint has no state
    for (a run resumed with more processes than wrote it) starts from rank 0's position in the
    epoch, with no skipped rows of its own (rank 0 reports those) and ``borrowed`` set, so that
    the caller seeds its random streams apart. ``CheckpointError`` naming the file that cannot
    be read, or when not even rank 0's state is there."""
    rank_file = path / f"rank-{rank:05d}.pt"
    borrowed = False
    if not rank_file.exists():
        if rank == 0 or not (path / "rank-00000.pt").exists():
            raise CheckpointError(f"{path}: no state for rank {rank} (was it written with fewer ranks?)")
        rank_file, borrowed = path / "rank-00000.pt", True

    def read(file: Path) -> dict[str, Any]:
        try:
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt files
            reason = str(exc).strip() or type(exc).__name__
            raise CheckpointError(f"{path}: cannot read {file.name} ({reason[:200]}){earlier_hint(path)}") from None

    trainer, mine = read(path / TRAINER_STATE), read(rank_file)
    if borrowed:
        mine = {**mine, "skipped_rows": {}, "skipped_seen": [], "borrowed": True}
    return trainer, mine


def saved_config(path: Path) -> dict[str, Any] | None:
    """The training config a checkpoint was written with (its trainer state's ``config``), or
    ``None`` when it holds none or cannot be read (``load_trainer_state`` reports that). The
    file is memory-mapped: the optimizer state in it is not read."""
    try:
        trainer = torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # torch raises several types for corrupt files
        return None
    config = trainer.get("config") if isinstance(trainer, dict) else None
    return config if isinstance(config, dict) else None


def earlier_hint(path: Path) -> str:
    """How to go on from the newest complete checkpoint before the unreadable ``path`` in its
    run folder (empty when there is none): set ``path`` aside under a name that is no
    checkpoint's, then ``--resume latest`` into the run folder takes the one before it."""
    run = path.parent.parent
    earlier = [p for p in list_checkpoints(run) if p.name < path.name]
    if not earlier:
        return ""
    return (f"; to resume from the one before it ({earlier[-1].name}), set this one aside: "
            f"mv {path} {path}.unreadable && clsp train --resume latest -o {run}")


def load_model_weights(model, path: Path) -> None:
    """Copy a checkpoint's weights into ``model`` (a stored-externally text tower and the
    packaged speaker encoders are skipped: ``clsp.models.checkpoint.apply_state_dict``)."""
    from safetensors.torch import load_file

    from clsp.models.checkpoint import WEIGHTS, apply_state_dict

    weights = path / "model" / WEIGHTS
    if not weights.exists():
        raise CheckpointError(f"{path}: no model/{WEIGHTS}")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # a truncated or corrupt file: safetensors raises its own error types
        reason = str(exc).strip() or type(exc).__name__
        raise CheckpointError(f"{weights}: cannot read the weights ({reason[:200]}){earlier_hint(path)}") from None
    apply_state_dict(model, state, skip_text=bool(getattr(model.text_encoder, "external", False)))
