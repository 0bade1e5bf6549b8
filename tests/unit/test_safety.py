"""Safety: checkpoints load only as safetensors or weights-only state dicts (a pickle that
would run code is refused before anything runs), no shell command is built from strings,
and a manifest's relative paths resolve against the manifest's folder."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from clsp.errors import ClspError
from clsp.records import iter_items
from tests.conftest import invoke
from tests.helpers.assets import REPO

ROOT = REPO
MARKER = Path("/tmp/clsp-pickle-ran")


class Payload:
    """Unpickling this object would create MARKER: proof that code ran."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


@pytest.mark.parametrize("payload", [
    {"model": {"w": torch.zeros(2)}, "extra": Payload()},
    Payload(),
    {"model": {"w": torch.zeros(2)}, "args": __import__("argparse").Namespace(x=1)},
])
def test_pickled_objects_are_refused(tmp_path, payload):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / "epoch-1.pt"
    torch.save(payload, path)
    from clsp.models.icefall_format import read_authors_state_dict

    with pytest.raises(ClspError, match="refused|cannot read"):
        read_authors_state_dict(path)
    assert not MARKER.exists()
    proc = invoke("convert", str(path), str(tmp_path / "out"))
    assert proc.returncode in (1, 2) and b"Traceback" not in proc.stderr, proc.stderr.decode()[-2000:]
    assert not MARKER.exists() and not (tmp_path / "out").exists()


def test_raw_pickle_is_refused(tmp_path):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(Payload()))
    from clsp.models.icefall_format import read_authors_state_dict

    with pytest.raises(ClspError):
        read_authors_state_dict(path)
    assert not MARKER.exists()


def test_no_torch_load_without_weights_only():
    offenders = []
    for py in _sources():
        for n, line in enumerate(py.read_text().splitlines(), 1):
            if re.search(r"\btorch\.load\(", line) and "weights_only=True" not in line:
                offenders.append(f"{py.relative_to(ROOT)}:{n}: {line.strip()}")
            if re.search(r"\bpickle\.loads?\(|allow_pickle=True", line):
                offenders.append(f"{py.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


def _sources():
    for folder in ("clsp", "clsp_cli", "commands"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_shell_strings():
    pattern = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput|subprocess\.getstatusoutput")
    offenders = [f"{py.relative_to(ROOT)}:{n}: {line.strip()}" for py in _sources()
                 for n, line in enumerate(py.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
    assert len(list(_sources())) > 20  # the scan saw the code


def test_manifest_paths_resolve_against_its_folder(tmp_path, monkeypatch):
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "cwd").mkdir()
    manifest = tmp_path / "corpus" / "sub" / "m.jsonl"
    manifest.write_text('{"id": "rel", "audio": "a.wav"}\n{"id": "up", "audio": "../b.wav"}\n'
                        '{"id": "abs", "audio": "/data/c.wav"}\nd.wav\n')
    monkeypatch.chdir(tmp_path / "cwd")
    paths = {it.id: it.record["_path"] for it in iter_items(manifest)}
    assert paths["rel"] == str(tmp_path / "corpus" / "sub" / "a.wav")
    assert Path(paths["up"]).resolve() == tmp_path / "corpus" / "b.wav"
    assert paths["abs"] == "/data/c.wav"
    assert paths["d.wav"] == str(tmp_path / "corpus" / "sub" / "d.wav")
    # a manifest given by a relative name still resolves against its own folder
    relative = list(iter_items("../corpus/sub/m.jsonl"))
    assert relative[0].record["_path"] == str(tmp_path / "corpus" / "sub" / "a.wav")


def test_convert_replaces_only_a_model_folder_never_data_or_its_source(tmp_path):
    """`clsp convert SRC DEST` writes a model folder atomically; a DEST holding anything but a
    clsp model (a data folder, the working folder, a folder holding SRC, a file) is refused
    with exit 2 and left as it was, and a user's DEST.old is never touched."""
    from clsp.models import save_model, tiny_model

    save_model(tiny_model(seed=1), tmp_path / "m")
    assert invoke("convert", tmp_path / "m", tmp_path / "out").returncode == 0
    assert invoke("convert", tmp_path / "m", tmp_path / "out").returncode == 0  # an earlier model: replaced
    (tmp_path / "out.old").mkdir()
    (tmp_path / "out.old" / "notes.txt").write_text("mine")
    assert invoke("convert", tmp_path / "m", tmp_path / "out").returncode == 0
    assert (tmp_path / "out.old" / "notes.txt").read_text() == "mine"
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("keep")
    (tmp_path / "f.txt").write_text("keep")
    for dest, why in ((data, "not a clsp model folder"), (tmp_path, "would replace the model"),
                      (tmp_path / "f.txt", "not a folder")):
        proc = invoke("convert", tmp_path / "m", dest)
        assert proc.returncode == 2 and why in proc.stderr.decode(), proc.stderr.decode()
    assert (data / "a.txt").read_text() == "keep" and (tmp_path / "f.txt").read_text() == "keep"
    assert (tmp_path / "m" / "model.safetensors").exists()


def test_convert_never_replaces_a_training_checkpoints_model(tmp_path):
    """A checkpoint's model/ pairs with its trainer_state.pt: replaced, a --resume trained other
    weights than the saved optimizer state without a word."""
    from clsp.models import save_model, tiny_model

    save_model(tiny_model(seed=1), tmp_path / "m")
    step = tmp_path / "run" / "checkpoints" / "step-00000080"
    save_model(tiny_model(seed=2), step / "model")
    (step / "trainer_state.pt").write_bytes(b"state")
    (step / "COMPLETE").write_text("")
    before = (step / "model" / "model.safetensors").read_bytes()
    for dest in (step / "model", step, step / "model" / "sub"):
        proc = invoke("convert", tmp_path / "m", dest)
        assert proc.returncode == 2 and "inside the training run checkpoint" in proc.stderr.decode(), proc.stderr.decode()
    assert (step / "model" / "model.safetensors").read_bytes() == before


def test_the_same_weights_give_the_same_file_and_modes_the_umask_allows(tmp_path):
    """safetensors wrote its metadata keys in an order that changed between processes, so two
    conversions of one model had different checksums (and refused each other's embeddings);
    the folder came out 0700 whatever the umask."""
    import os
    import stat
    import subprocess
    import sys

    from clsp.models.weights import file_checksum

    sums = []
    for seed in ("1", "2", "3", "4"):
        out = tmp_path / f"m{seed}"
        code = ("import os; os.umask(0o022); from clsp_cli.app import main; import sys; "
                f"sys.argv=['clsp', 'convert', 'tiny-random', {str(out)!r}, '-q']; main()")
        proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        sums.append(file_checksum(out / "model.safetensors"))
        assert stat.S_IMODE(out.stat().st_mode) == 0o755
        assert stat.S_IMODE((out / "model.safetensors").stat().st_mode) == 0o644
    assert len(set(sums)) == 1, sums


def test_a_converted_model_keeps_the_checksum_of_the_model_it_was_read_from(tmp_path):
    """clsp convert default wrote the same tensors under a header in another key order, so the
    copy got another checksum and its embeddings were refused beside the default model's."""
    from clsp.models import load_model
    from clsp_cli.app import app
    from typer.testing import CliRunner

    default = load_model("default", with_text=False).provenance()
    res = CliRunner().invoke(app, ["convert", "default", str(tmp_path / "copy"), "-q"])
    assert res.exit_code == 0, res.output
    copy = load_model(str(tmp_path / "copy"), with_text=False).provenance()
    assert (copy["model"], copy["checksum"]) == (default["model"], default["checksum"])
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "copy"), str(tmp_path / "again"), "-q"])
    assert res.exit_code == 0 and load_model(str(tmp_path / "again"), with_text=False).provenance() == default
