"""``clsp search query`` answers --text and --audio queries in the order they stand on the
command line (long, short and ``--opt=value`` forms), one record each; the library keeps
texts first, then audios, unless given an order."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clsp.errors import ConfigError
from clsp.index.query import query_items
from clsp_cli.app import app
from tests.conftest import write_wav


def clsp(*args: str, code: int = 0):
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    return res


@pytest.fixture
def index(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for n, f0 in enumerate((120, 180, 240)):
        write_wav(tmp_path / f"c{n}.wav", 0.8, f0, seed=n)
    clsp("embed", "c0.wav", "c1.wav", "c2.wav", "-m", "tiny-random", "-q", "-o", "e.jsonl")
    clsp("search", "build", "e.jsonl", "-o", "i.idx", "-q")
    return tmp_path / "i.idx"


@pytest.mark.parametrize("args, ids", [
    (["--audio", "c0.wav", "--text", "a man", "--audio", "c1.wav", "--text", "a woman"],
     ["c0.wav", "a man", "c1.wav", "a woman"]),
    (["-t", "calm", "-a", "c2.wav", "-t", "loud"], ["calm", "c2.wav", "loud"]),
    (["--audio=c1.wav", "--text=fast", "-ac0.wav"], ["c1.wav", "fast", "c0.wav"]),
])
def test_queries_come_back_in_command_line_order(index, args, ids):
    res = clsp("search", "query", str(index), *args, "-k", "1", "-q", "-o", "hits.jsonl")
    got = [json.loads(line)["id"] for line in (index.parent / "hits.jsonl").read_text().splitlines()]
    assert got == ids, res.output


def test_the_library_orders_as_told_and_checks_the_counts():
    items, _, _ = query_items(None, ["t1", "t2"], ["a1"])
    assert [i.id for i in items] == ["t1", "t2", "a1"]
    items, _, _ = query_items(None, ["t1", "t2"], ["a1"], order=["text", "audio", "text"])
    assert [(i.index, i.id) for i in items] == [(0, "t1"), (1, "a1"), (2, "t2")]
    with pytest.raises(ConfigError, match="order"):
        query_items(None, ["t1"], ["a1"], order=["text", "text"])
