"""Where an output goes and who may write it: target resolution and the one-writer lock.

Rules (shared by every ``-o``, ``--report`` and ``--npy``):

- A regular file, or a path that does not exist yet, is published atomically: records go
  to ``FILE.partial`` and are renamed to ``FILE`` at the end. An existing file that holds
  audio is refused before any work (``clsp.outfile.refuse_audio_target``): clsp writes no audio.
- A symlink is followed: the output is published at the path it points to (also when that
  path does not exist yet), and the link itself stays a link.
- Anything else that exists (a character or block device such as ``/dev/null``, a FIFO,
  a socket) and every path under ``/dev/`` or ``/proc/`` (``/dev/stdout``, ``/dev/fd/N``)
  is written through: opened for writing as it is, never replaced.
- While a run writes ``FILE`` it holds an exclusive ``flock`` on ``FILE.lock``, which holds
  its PID and the settings of the run (read by ``--resume``). A second run on the same
  output fails with "FILE is in use by PID N". The lock file is removed when the output
  is published; after a crash it stays, and the kernel has already released the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from clsp.errors import ConfigError, OutputError

_DEVICE_TREES = ("/dev/", "/proc/")
_held: list["OutputLock"] = []


@dataclass(frozen=True)
class OutputTarget:
    """A resolved output path.

    ``shown`` is the path as the user gave it (for messages); ``path`` is where the file is
    published (symlinks resolved) or, when ``through`` is true, the node written through.
    """

    shown: str
    path: Path
    through: bool

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    @property
    def lock(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")


def resolve_target(path: str | os.PathLike) -> OutputTarget:
    """Decide how ``path`` is written (see the module rules).

    Raises ``OutputError`` when ``path`` is a directory, ``ConfigError`` when it is an audio
    file (``clsp.outfile.refuse_audio_target``).
    """
    shown = str(path)
    absolute = os.path.abspath(shown)
    if absolute.startswith(_DEVICE_TREES):
        return OutputTarget(shown, Path(shown), through=True)
    try:
        mode = os.stat(shown).st_mode
    except FileNotFoundError:
        mode = None  # a new path, or a dangling symlink: published at its resolved target
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"cannot write {shown}: it is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        return OutputTarget(shown, Path(shown), through=True)
    if mode is not None:
        from clsp.outfile import refuse_audio_target

        refuse_audio_target(shown)
    return OutputTarget(shown, Path(os.path.realpath(shown)), through=False)


def open_through(target: OutputTarget, binary: bool = False):
    """Open a non-regular target for writing without creating, truncating or replacing it.

    ``O_APPEND`` keeps what a shell redirection already wrote when ``/dev/stdout`` is a file.
    A FIFO blocks here until it has a reader, as ``cat > fifo`` does.
    """
    try:
        fd = os.open(target.path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise OutputError(f"cannot write {target.shown}: {exc.strerror or exc}") from None
    return os.fdopen(fd, "ab") if binary else os.fdopen(fd, "a", encoding="utf-8")


class OutputLock:
    """An exclusive, non-blocking ``flock`` on ``FILE.lock`` for the life of one writer.

    ``previous_run`` is the run record left by the last writer (``None`` if there was none).
    Raises ``OutputError`` naming the PID of the holder when another process writes ``FILE``.
    """

    pending: Callable[[], None] | None = None  # flushes what the writer of FILE still buffers

    def __init__(self, target: OutputTarget):
        self.target = target
        self.path = target.lock
        reserved = _reserved.pop(str(self.path), None)
        if reserved is not None:  # this command took the lock when it started: the writer carries it on
            self.fd, reserved.fd = reserved.fd, -1
            if reserved in _held:
                _held.remove(reserved)
        else:
            self.fd = self._acquire()
        _held.append(self)
        self.previous_run = self._read().get("run")
        try:
            self.record(self.previous_run)
        except OutputError:  # a full disk: no lock file of an output never started is left behind
            self.release(remove=not self._read() and not os.path.lexists(self.target.partial))
            raise

    def _acquire(self) -> int:
        while True:
            created = True  # whether this open made the lock file (else it was there before)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                created = False
                try:
                    fd = os.open(self.path, os.O_RDWR)
                except FileNotFoundError:  # removed by its holder in between: try again
                    continue
                except OSError as exc:
                    raise OutputError(f"cannot write {self.target.shown}: {exc.strerror or exc} ({self.path})") from None
            except OSError as exc:
                raise OutputError(f"cannot write {self.target.shown}: {exc.strerror or exc} ({self.path})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read(fd).get("pid", "unknown")
                os.close(fd)
                raise OutputError(f"{self.target.shown} is in use by PID {holder} (lock {self.path}); "
                                  "wait for it to finish or write elsewhere") from None
            # The previous holder may have removed the file between our open and flock.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._refuse_foreign(fd, created)
                return fd
            os.close(fd)

    def _refuse_foreign(self, fd: int, created: bool) -> None:
        """``ConfigError`` (the file left as it was) when ``FILE.lock`` was there before this run
        and holds no clsp run record (a user's ``poetry.lock``, an empty ``results.lock`` made
        for ``flock``), or when ``FILE.partial`` exists with no clsp run record beside it (a
        user's ``report.partial``, whatever it holds): clsp would remove or replace either. Every
        ``FILE.partial`` and ``FILE.lock`` a clsp run leaves holds its run record."""
        try:
            data = os.pread(fd, 1 << 20, 0)
        except OSError:
            data = b""
        if data.strip() or not created:
            try:
                value = json.loads(data)
            except ValueError:
                value = None
            if isinstance(value, dict) and "pid" in value:
                return
            os.close(fd)
            raise ConfigError(f"{self.path}: exists and was not written by clsp, which keeps its lock for "
                              f"{self.target.shown} there; move that file, or write the output elsewhere")
        partial = self.target.partial
        if os.path.lexists(partial):
            try:
                os.unlink(self.path)  # made just now by this open
            except OSError:
                pass
            os.close(fd)
            raise ConfigError(f"{partial}: exists, with no clsp run record beside it ({self.path}), and clsp writes "
                              f"{self.target.shown} through it; move that file, or write the output elsewhere")

    def _read(self, fd: int | None = None) -> dict[str, Any]:
        fd = self.fd if fd is None else fd
        try:
            data = os.pread(fd, 1 << 20, 0)
            value = json.loads(data) if data.strip() else {}
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def record(self, run: dict[str, Any] | None) -> None:
        """Store this writer's PID and ``run`` (the settings a resume must match)."""
        data = json.dumps({"pid": os.getpid(), "run": run}, sort_keys=True).encode() + b"\n"
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
            os.fsync(self.fd)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def release(self, remove: bool = True) -> None:
        """Drop the lock; with ``remove`` (the output is published) delete the lock file first."""
        if self.fd < 0:
            return
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = -1
        if self in _held:
            _held.remove(self)


_reserved: dict[str, OutputLock] = {}  # lock path -> the lock a command took for an output it writes later
_made: list[Path] = []  # folders reserve_outputs made for outputs (removed again when left empty)
RESERVED_PARAMS = ("report", "plot", "html")  # outputs written only when a command ends (every command)


def reserve_outputs(params: dict[str, Any], names: tuple[str, ...] = RESERVED_PARAMS) -> None:
    """Take the lock of every regular file named by ``names`` when a command starts (a missing
    folder is made for it), so a second run writing the same output, report, figure or page
    stops at once (``OutputError``, naming the PID) instead of both running and the later one
    replacing the other's file. The writer that publishes the file carries the lock on;
    ``release_reserved`` drops the others."""
    for name in names:
        path = params.get(name)
        if not isinstance(path, str) or path == "-":
            continue
        target = resolve_target(path)
        if target.through or str(target.lock) in _reserved:
            continue
        _make_folder(target.path.parent, target.shown)
        lock = OutputLock(target)
        _reserved[str(lock.path)] = lock


def _make_folder(folder: Path, shown: str) -> None:
    """Make ``folder`` (and missing parents) for the output ``shown``; remembered so that
    ``release_reserved`` (at the end of every command) removes those left empty. ``OutputError``
    naming ``shown`` when refused."""
    from clsp.outfile import missing_folders

    missing = missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc} ({exc.filename or folder})") from None
    _made.extend(missing)  # deepest first


def lock_folder(path: str | os.PathLike) -> OutputLock:
    """The one-writer lock of a folder output (``clsp convert DEST``, a new ``search build``
    index): ``DEST.lock`` beside the folder (a symlink followed), so the folder itself holds
    nothing of the lock and can be replaced whole. A second run onto ``DEST`` raises
    ``OutputError`` naming the PID; a ``DEST`` named as clsp's working files (``x.lock``) is a
    ``ConfigError``. The lock is held until ``release()`` (``remove=True`` once
    the folder is published), or dropped with its file when the command ends."""
    shown = str(path)
    if os.path.basename(os.path.realpath(shown)).endswith(WORKING_SUFFIXES):
        raise ConfigError(f"{shown}: clsp keeps its own working files under such names (DEST.lock guards the one "
                          "writer of DEST); a folder written there would stand in another run's lock; give the "
                          "folder another name")
    target = OutputTarget(shown, Path(os.path.realpath(shown)), through=False)
    _make_folder(target.path.parent, shown)
    return OutputLock(target)


def release_reserved() -> None:
    """Drop the locks ``reserve_outputs`` took that no writer carried on (their lock files go),
    and remove the folders it made that stayed empty."""
    for lock in list(_reserved.values()):
        lock.release()
    _reserved.clear()
    for folder in _made:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only an empty one
    _made.clear()


def abandon_outputs() -> list[str]:
    """Remove what a run stopped by a closed stdout (``| head``) leaves unpublished: each
    held output's ``FILE.partial`` and lock, and the reserved ``--report``/``--plot``/``--html``
    locks; returns those outputs' names (as given), none of which was written."""
    names = [lock.target.shown for lock in (*_held, *_reserved.values())]
    release_unpublished(discard=True)
    release_reserved()
    return list(dict.fromkeys(names))


def release_unpublished(discard: bool = False) -> None:
    """Drop every lock still held (a command that failed or stopped). The lock files stay,
    with their run records, for ``--resume``; with ``discard`` (a command that cannot resume)
    each unpublished ``FILE.partial`` and its lock file are removed instead, so a failed run
    leaves nothing behind; so are an empty ``FILE.partial`` (a run refused before it wrote a
    record) and its lock. Called when a command ends, however it ends."""
    for lock in list(_held):
        if not discard and lock.pending is not None:
            with contextlib.suppress(Exception):  # what the writer still buffers reaches the file first
                lock.pending()
        drop = discard or _empty(lock.target.partial)  # an empty partial output holds nothing to resume
        if drop:
            try:
                os.unlink(lock.target.partial)
            except OSError:
                pass
        lock.release(remove=drop)


def _empty(path: Path) -> bool:
    """Whether ``path`` is missing or an empty file."""
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return True


OUTPUT_PARAMS = ("output", "report", "plot", "html")  # a command's output files (plus those it names)
GLOB_CHARS = ("*", "?", "[")


def _file_key(path: str) -> tuple | None:
    """What identifies the file ``path`` would write or read: its device and inode when it
    exists as a regular file, its resolved path when it does not exist yet; None for
    ``-``, devices, FIFOs, folders and the ``/dev/`` and ``/proc/`` trees (written through
    or not a file: nothing is replaced)."""
    if not path or path == "-" or os.path.abspath(path).startswith(_DEVICE_TREES):
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        real = os.path.realpath(path)  # "new/../m.jsonl" names m.jsonl once the missing folder is made
        try:
            st = os.stat(real)
        except OSError:
            return ("path", real)
    except OSError:
        return None
    return ("inode", st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def _input_paths(value: Any) -> list[str]:
    """The existing files a parameter value names: itself, each item of a list, and what a
    glob pattern matches."""
    import glob

    out: list[str] = []
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if not isinstance(v, str) or not v or "\n" in v:
            continue
        if os.path.isfile(v):
            out.append(v)
        elif any(c in v for c in GLOB_CHARS):
            out.extend(p for p in glob.glob(v, recursive=True) if os.path.isfile(p))
    return out


def _refuse_folder(path: Any, flag: str, figure: bool = False) -> None:
    """``ConfigError`` (exit 2) for an output file named as a folder: an existing one, or a
    name ending in ``/`` (``-o results/`` wrote a file called ``results``)."""
    if not isinstance(path, str) or not path or path == "-":
        return
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: names a folder, and {flag} writes one file; give a file path, "
                          f"e.g. {_example_file(path, flag, figure)}")


WORKING_SUFFIXES = (".lock", ".tmp.npy")  # a run's lock beside its output; a matrix being written


def _refuse_working_name(path: Any, flag: str) -> None:
    """``ConfigError`` (exit 2) for an output file named as clsp names its own working files
    (``FILE.lock``, ``FILE.tmp.npy``): written there, it would replace another run's lock or
    half-written matrix. Devices and FIFOs of such names are written through, as any."""
    if not isinstance(path, str) or not os.path.basename(path).endswith(WORKING_SUFFIXES):
        return
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return
    except OSError:
        pass
    raise ConfigError(f"{flag} {path}: clsp keeps its own working files under such names (FILE.lock guards a run's "
                      "output FILE, FILE.tmp.npy holds a matrix being written); writing there would replace one "
                      "of another run; give the output another name")


def _suffix_for(flag: str) -> str:
    return {"--npy": ".npy", "--plot": ".png", "--html": ".html", "--report": ".json"}.get(flag, ".jsonl")


def _example_file(path: str, flag: str, figure: bool) -> str:
    """A file name inside the folder ``path`` for the message: a figure for plot commands."""
    return os.path.join(path, "out" + (".png" if figure else _suffix_for(flag)))


def _writes_stdout(path: Any) -> bool:
    """Whether an output path is this process's standard output, where that is a file, a pipe
    or a socket (a stream a reader parses; a terminal or /dev/null is not checked): ``-``,
    ``/dev/stdout`` and its aliases, or the very file or pipe stdout is."""
    try:
        out = os.fstat(1)
    except (OSError, ValueError):
        return False
    if stat.S_ISCHR(out.st_mode):
        return False
    if path == "-":
        return True
    if not isinstance(path, str) or not path:
        return False
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino)


MODEL_PARAMS = ("model", "select_with", "source")  # options naming a model the run loads, a folder it reads whole
DEFAULT_MODEL_NAMES = ("default", "clsp-default")


def _model_folder(value: Any) -> str | None:
    """The real path of the model folder a ``--model`` value loads: the folder itself, the
    folder of a clsp model's ``model.safetensors`` (its config and tokenizer are read too), or
    the packaged default model's folder; None for other names (built-in, hub ids, ``.pt`` files)."""
    if not isinstance(value, str) or not value:
        return None
    if value in DEFAULT_MODEL_NAMES:
        import clsp

        return os.path.realpath(os.path.join(os.path.dirname(clsp.__file__), "default_model"))
    path = os.path.expanduser(value)
    if os.path.isdir(path):
        return os.path.realpath(path)
    if path.endswith(".safetensors") and os.path.isfile(os.path.join(os.path.dirname(path) or ".", "config.json")):
        return os.path.realpath(os.path.dirname(path) or ".")
    return None


def _named_outputs(params: dict[str, Any], outputs: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """``(parameter, path, real path)`` of each output given as a path (not ``-``)."""
    for name in outputs:
        path = params.get(name)
        if isinstance(path, str) and path and path != "-":
            yield name, path, os.path.realpath(path)


def _refuse_inside_model(params: dict[str, Any], outputs: tuple[str, ...]) -> None:
    """``ConfigError`` (exit 2) for an output inside the folder of a model the run loads:
    publishing it could replace the model's weights, config or tokenizer, and the next load
    would fail."""
    folders = {name: _model_folder(params.get(name)) for name in MODEL_PARAMS}
    for name, path, real in _named_outputs(params, outputs):
        if _file_key(path) is None:
            continue
        for option, folder in folders.items():
            if folder is not None and real.startswith(folder + os.sep):
                shown = params[option] if params[option] not in DEFAULT_MODEL_NAMES else f"{params[option]} ({folder})"
                raise ConfigError(f"--{name.replace('_', '-')} {path}: lies inside the folder of the model this run "
                                  f"loads (--{option.replace('_', '-')} {shown}); writing there could replace the "
                                  "model's own files; give the output a path outside it")


def _refuse_inside_index(params: dict[str, Any], outputs: tuple[str, ...]) -> None:
    """``ConfigError`` (exit 2), before any work, for an output inside an index folder the run
    reads (``search query IDX -o IDX/index.json``): publishing it could replace the index's own
    files, and would otherwise be refused only when the run ends."""
    folders = {}
    for name, value in params.items():
        if name in outputs or not isinstance(value, str) or not value or "\n" in value:
            continue
        if os.path.isdir(value) and os.path.isfile(os.path.join(value, "index.json")):
            folders[os.path.realpath(value)] = value
    for name, path, real in _named_outputs(params, outputs) if folders else ():
        for folder, shown in folders.items():
            if real.startswith(folder + os.sep):
                raise ConfigError(f"--{name.replace('_', '-')} {path}: lies inside the index folder this run reads "
                                  f"({shown}); writing there could replace the index's own files; give the output "
                                  "a path outside it")


PLAIN_RECORD_FILES = ("report", "errors")  # outputs besides -o written as plain JSON / JSON Lines


def _refuse_compressed_names(params: dict[str, Any], outputs: tuple[str, ...], records: bool = True) -> None:
    """``ConfigError`` (exit 2), before any work, for ``--npy``, ``--report``, ``--errors`` or
    (``records``: a command whose ``-o`` gets JSON Lines) ``-o`` named as compressed
    (``x.npy.gz``, ``r.json.gz``): clsp writes them plain, and they would then sit under a name
    that promises compression."""
    from clsp_cli.output import COMPRESSED_SUFFIXES, compressed_suffix, refuse_compressed_records_name

    if records and "output" in outputs and isinstance(params.get("output"), str):
        refuse_compressed_records_name(params["output"])
    for name in ("npy", *PLAIN_RECORD_FILES):
        path = params.get(name) if name in outputs else None
        suffix = compressed_suffix(path) if isinstance(path, str) else None
        if suffix is None:
            continue
        flag, plain, tool = "--" + name, path[: -len(suffix)], COMPRESSED_SUFFIXES[suffix]
        what = "a plain .npy matrix" if name == "npy" else "plain JSON"
        raise ConfigError(f"{flag} {path}: clsp writes {what}, not compressed; write {flag} {plain} and "
                          f"compress that ({tool} {plain})")


RUN_FILES = ("config.json", "metrics.jsonl", "train.lock")  # what clsp train keeps beside its checkpoints/


def _is_training_run(folder: str) -> bool:
    """Whether ``folder`` is a ``clsp train`` output folder: it holds ``checkpoints/``, or a run
    is training there (``train.lock``), or it holds a run's ``config.json`` and ``metrics.jsonl``
    (a run that wrote no checkpoint yet)."""
    def has(name: str) -> bool:
        return os.path.lexists(os.path.join(folder, name))

    return os.path.isdir(os.path.join(folder, "checkpoints")) or has("train.lock") or (
        has("config.json") and has("metrics.jsonl"))


def training_run_part(path: str) -> str | None:
    """Why writing ``path`` would replace part of a ``clsp train`` output folder, or None: a file inside a
    checkpoint folder (``step-N/``, which holds ``trainer_state.pt``) or under a run's
    ``checkpoints/`` folder, or one of the files the run keeps beside them (``RUN_FILES``)."""
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    if os.path.basename(real) in RUN_FILES and _is_training_run(folder):
        return f"is the {os.path.basename(real)} of the training run {folder}"
    folder = real  # the path itself too: a folder output (an index) named as a checkpoint
    while folder != os.path.dirname(folder):
        if os.path.isfile(os.path.join(folder, "trainer_state.pt")):
            return f"lies inside the training checkpoint {folder}, which --resume reads whole"
        if os.path.basename(folder) == "checkpoints" and os.path.isfile(os.path.join(os.path.dirname(folder),
                                                                                     "config.json")):
            return f"lies inside the checkpoints folder of the training run {os.path.dirname(folder)}"
        folder = os.path.dirname(folder)
    return None


def _refuse_training_run_files(params: dict[str, Any], outputs: tuple[str, ...]) -> None:
    """``ConfigError`` (exit 2) for an output that would replace a file of a training run:
    a checkpoint's optimizer state or config, the run's metrics (``training_run_part``)."""
    for name in outputs:
        path = params.get(name)
        if not isinstance(path, str) or not path or path == "-" or _file_key(path) is None:
            continue
        part = training_run_part(path)
        if part is not None:
            raise ConfigError(f"--{name.replace('_', '-')} {path}: {part}; writing there could break --resume of that "
                              "run; give the output a path outside it")


def check_run_files(params: dict[str, Any], outputs: tuple[str, ...] = OUTPUT_PARAMS, records: bool = True) -> None:
    """Refuse a run whose outputs would damage its own files, before any work: ``ConfigError``
    (exit 2) when two of the ``outputs`` parameters name one file (one would overwrite the
    other), or when an output names a file the run reads (an input argument, a file given
    to any other option, or a file redirected to stdin), which publishing the output would
    replace, or when an output lies inside the folder of a model the run loads or would replace
    a file of a training run (``training_run_part``). Devices, FIFOs
    and ``-`` are written through and never replace anything."""
    seen: dict[tuple, str] = {}
    shown_as: dict[tuple, str] = {}
    figure = "run_dir" in params or "color_by" in params  # clsp plot: --output is a figure
    for name in outputs:
        _refuse_folder(params.get(name), "--" + name.replace("_", "-"), figure and name == "output")
        _refuse_working_name(params.get(name), "--" + name.replace("_", "-"))
    _refuse_inside_model(params, outputs)
    _refuse_inside_index(params, outputs)
    _refuse_training_run_files(params, outputs)
    _refuse_compressed_names(params, outputs, records)
    on_stdout = [name for name in outputs if params.get(name) is not None and _writes_stdout(params[name])]
    if len(on_stdout) > 1:
        shown = " and ".join(f"--{n.replace('_', '-')} {params[n]}" for n in on_stdout)
        raise ConfigError(f"{shown} all write to standard output, which cannot hold two outputs (the records would "
                          "be mixed with the other one); give all but one of them a file")
    for name in outputs:
        path = params.get(name)
        key = _file_key(path) if isinstance(path, str) else None
        if key is None:
            continue
        flag = "--" + name.replace("_", "-")
        real = os.path.realpath(path)
        # the run also writes FILE.partial and FILE.lock next to a regular output
        for file_key, shown in ((key, path), (_file_key(real + ".partial"), path + ".partial"),
                                (_file_key(real + ".lock"), path + ".lock")):
            if file_key is None:
                continue
            if file_key in seen:
                raise ConfigError(f"{seen[file_key]} and {flag} both name {shown_as[file_key] if shown == path else shown}: "
                                  "one would overwrite the other; give each output its own file")
            seen[file_key], shown_as[file_key] = flag, shown
    if not seen:
        return
    inputs: dict[tuple, str] = {}
    for name, value in params.items():
        if name in outputs:
            continue
        for path in _input_paths(value):
            key = _file_key(path)
            if key is not None:
                inputs.setdefault(key, path)
    reads_stdin = not params.get("input") or any(
        v == "-" or (isinstance(v, (list, tuple)) and "-" in v) for k, v in params.items() if k not in outputs)
    try:
        st = os.fstat(0)
        if reads_stdin and stat.S_ISREG(st.st_mode):
            inputs.setdefault(("inode", st.st_dev, st.st_ino), "stdin")
    except (OSError, ValueError):
        pass
    for key, flag in seen.items():
        if key in inputs:
            shown = shown_as[key]
            how = "on stdin" if inputs[key] == "stdin" else ("" if inputs[key] == shown else f"as {inputs[key]}")
            raise ConfigError(f"{flag} {shown}: this run reads that file{' ' + how if how else ''}; writing the output "
                              "there would replace its input; give the output another path")
