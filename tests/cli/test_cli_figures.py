"""``--plot`` and ``--html`` of the commands and ``clsp plot``, in-process (tiny random model)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsp_cli.app import app

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["-m", "tiny-random", "-q"]


def clsp(*args, cwd: Path, stdin: str | None = None):
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args], input=stdin)
    finally:
        os.chdir(old)


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Page(HTMLParser):
    """The <audio> players (their attributes) and the visible text of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.players: list[dict] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "audio":
            self.players.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def embedded(clips):
    r = clsp("embed", "clips.jsonl", *TINY, "-o", "emb.jsonl", cwd=clips)
    assert r.exit_code == 0, r.output
    return clips


def test_classify_plot_and_page_of_misclassified_clips(clips):
    recs = [json.loads(line) for line in (clips / "clips.jsonl").read_text().splitlines()]
    # the same clip under both genders: at least one of the two is misclassified whatever the model says
    rows = [{**r, "gender": "male" if i % 2 else "female"} for i, r in enumerate(recs)]
    rows.append({**recs[0], "id": "c0-again", "gender": "male" if rows[0]["gender"] == "female" else "female",
                 "start": 0.25, "end": 0.75})
    (clips / "g.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = clsp("classify", "g.jsonl", "--pack", "gender", "--label-key", "gender", "--n-boot", "0", "--plot", "cm.svg",
             "--html", "miss.html", *TINY, cwd=clips)
    assert r.exit_code == 0, r.output
    out = records(r.stdout)[:-1]
    summary = records(r.stdout)[-1]["summary"]
    svg = (clips / "cm.svg").read_text()
    assert "female" in svg and "male (n=" in svg
    assert f"WA {100 * summary['wa']:.1f}%" in svg and f"UA {100 * summary['ua']:.1f}%" in svg
    wrong = [o for o in out if o["label"] != o["gender"]]
    assert wrong
    page = Page((clips / "miss.html").read_text())
    assert len(page.players) == len(wrong)
    text = " ".join(page.text)
    for o in wrong:
        assert f"{o['id']} — gold {o['gender']}, predicted {o['label']}" in text
    for gold in {o["gender"] for o in wrong}:
        assert f"gold: {gold} ({sum(o['gender'] == gold for o in wrong)} misclassified)" in text
    srcs = {p["src"] for p in page.players}
    seg = [p for p in page.players if p.get("data-start")]
    if any(o["id"] == "c0-again" for o in wrong):
        assert seg and seg[0]["src"] == "c0.wav#t=0.25,0.75" and seg[0]["data-end"] == "0.75"
    assert all((clips / s.split("#")[0]).is_file() for s in srcs)  # relative to the page


def test_plot_and_html_options_are_checked_before_any_work(clips):
    r = clsp("classify", "clips.jsonl", "--plot", "cm.png", *TINY, cwd=clips)
    assert r.exit_code == 2 and "--label-key" in r.output
    r = clsp("classify", "clips.jsonl", "--label-key", "speaker", "--plot", "cm.jpg", *TINY, cwd=clips)
    assert r.exit_code == 2 and ".png or .svg" in r.output
    r = clsp("similarity", "pairs.jsonl", "--plot", "s.png", *TINY, cwd=clips)
    assert r.exit_code == 2 and "--human-key" in r.output
    r = clsp("search", "query", "x.idx", "--text", "calm", "--html", "hits.txt", cwd=clips)
    assert r.exit_code == 2 and ".html" in r.output
    assert not list(clips.glob("cm.*")) and not (clips / "hits.txt").exists()


def test_similarity_scatter_per_group(clips):
    from clsp.metrics.correlation import correlation_report

    pairs = [{"id": f"p{i}-{j}", "a": f"c{i}.wav", "b": f"c{(i + j) % 6}.wav", "rating": (i * 7 + j * 3) % 5,
              "kind": "near" if j == 1 else "far"} for i in range(6) for j in (1, 2)]
    (clips / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    r = clsp("similarity", "pairs.jsonl", "--human-key", "rating", "--group-key", "kind", "--n-boot", "0",
             "--plot", "s.svg", *TINY, cwd=clips)
    assert r.exit_code == 0, r.output
    out = records(r.stdout)
    scored = {o["id"]: o["score"] for o in out if "score" in o}
    svg = (clips / "s.svg").read_text()
    for kind in ("near", "far"):
        sel = [p for p in pairs if p["kind"] == kind]
        rep = correlation_report([scored[p["id"]] for p in sel], [p["rating"] for p in sel], n_boot=0)
        assert f"{kind} (n=6): r={rep['pearson']:.2f}, ρ={rep['spearman']:.2f}, τ={rep['kendall']:.2f}" in svg
    assert "all pairs (n=12)" in svg
    r = clsp("similarity", "pairs.jsonl", "--human-key", "rating", "--n-boot", "0", "--plot", "s.png", *TINY, cwd=clips)
    assert r.exit_code == 0 and (clips / "s.png").read_bytes().startswith(PNG_MAGIC)


def test_search_eval_recall_curves(embedded):
    caps = [{"id": f"t{i}", "text": f"caption {i}", "audio_id": r["id"], "embedding": r["embedding"],
             "provenance": {**r["provenance"], "modality": "text"}}  # stand-ins for caption embeddings
            for i, r in enumerate(records((embedded / "emb.jsonl").read_text()))]
    (embedded / "caps.jsonl").write_text("".join(json.dumps(c) + "\n" for c in caps))
    r = clsp("search", "eval", "--speech", "emb.jsonl", "--captions", "caps.jsonl", "--n-boot", "0",
             "--plot", "r.svg", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    svg = (embedded / "r.svg").read_text()
    r1 = records(r.stdout)[0]["metrics"]
    assert f"speech to text (R@1 {100 * r1['s2t_R@1']:.1f}%)" in svg
    assert f"text to speech (R@1 {100 * r1['t2s_R@1']:.1f}%)" in svg
    assert clsp("search", "build", "emb.jsonl", "-o", "c.idx", "-q", cwd=embedded).exit_code == 0
    q = [{"id": f"q{i}", "embedding": c["embedding"], "relevant": c["audio_id"]} for i, c in enumerate(caps)]
    (embedded / "q.jsonl").write_text("".join(json.dumps(x) + "\n" for x in q))
    r = clsp("search", "eval", "c.idx", "--queries", "q.jsonl", "--n-boot", "0", "--plot", "ri.png", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    assert (embedded / "ri.png").read_bytes().startswith(PNG_MAGIC)
    # one caption text for every clip: each is relevant to all, nothing can be missed, no curve to
    # draw; the plot said nothing measured instead of an IndexError traceback
    (embedded / "same.jsonl").write_text("".join(json.dumps({**c, "text": "a voice"}) + "\n" for c in caps))
    r = clsp("search", "eval", "--speech", "emb.jsonl", "--captions", "same.jsonl", "--n-boot", "0",
             "--plot", "n.svg", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    assert records(r.stdout)[0]["metrics"]["s2t_R@1"] is None
    assert "no R@k measured" in (embedded / "n.svg").read_text()


def test_search_query_page_has_a_player_per_hit(embedded):
    assert clsp("search", "build", "emb.jsonl", "-o", "c.idx", "-q", cwd=embedded).exit_code == 0
    (embedded / "blocker").write_text("a file where the page's folder would go\n")
    r = clsp("search", "query", "c.idx", "--text", "a calm <low> voice", "--audio", "c2.wav", "-k", "4",
             "--html", "blocker/hits.html", "-m", "tiny-random", "-q", cwd=embedded)
    assert r.exit_code != 0 and "Traceback" not in r.output  # a clear output error, not a traceback
    assert "blocker/hits.html" in r.output
    assert (embedded / "blocker").read_text() == "a file where the page's folder would go\n"
    # a missing folder is made, as for -o
    r = clsp("search", "query", "c.idx", "--text", "a calm <low> voice", "--audio", "c2.wav", "-k", "4",
             "--html", "out/hits.html", "-m", "tiny-random", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    results = records(r.stdout)
    html = (embedded / "out" / "hits.html").read_text()
    page = Page(html)
    assert len(page.players) == 1 + sum(len(q["hits"]) for q in results)  # the audio query has its own player
    assert "a calm &lt;low&gt; voice" in html  # escaped
    for hit in results[0]["hits"]:
        assert f"score {hit['score']:.4f}" in html
    hit_srcs = [p["src"] for p in page.players[:4]]
    assert hit_srcs == [f"../{Path(h['audio']).name}" for h in results[0]["hits"]]  # relative to the page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", html)  # nothing external
    r = clsp("search", "query", "c.idx", "--text", "calm", "-k", "2", "--html", "e.html", "--html-embed",
             "-m", "tiny-random", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    players = Page((embedded / "e.html").read_text()).players
    assert len(players) == 2 and all(p["src"].startswith("data:audio/wav;base64,") for p in players)


def test_search_page_of_a_caption_index_shows_each_hit_caption(tmp_path):
    (tmp_path / "caps.txt").write_text("a calm <low> voice\nan angry shout\na whispering child\n")
    r = clsp("embed", "caps.txt", "--modality", "text", *TINY, "-o", "caps.emb.jsonl", "-q", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert clsp("search", "build", "caps.emb.jsonl", "-o", "t.idx", "-q", cwd=tmp_path).exit_code == 0
    r = clsp("search", "query", "t.idx", "--text", "shouting", "-k", "3", "--html", "t.html", "-m", "tiny-random", "-q",
             cwd=tmp_path)
    assert r.exit_code == 0, r.output
    html = (tmp_path / "t.html").read_text()
    assert "a calm &lt;low&gt; voice" in html and "an angry shout" in html and "a whispering child" in html
    assert "not shown" not in html and not Page(html).players
    for hit in records(r.stdout)[0]["hits"]:
        assert f"score {hit['score']:.4f}" in html


def test_plot_map_and_run(embedded):
    r = clsp("plot", "map", "emb.jsonl", "--color-by", "speaker", "-o", "map.svg", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    svg = (embedded / "map.svg").read_text()
    assert "s0 (3)" in svg and "s1 (3)" in svg and "6 embeddings" in svg
    r = clsp("plot", "map", "emb.jsonl", "--color-by", "speakr", "-o", "typo.svg", cwd=embedded)
    assert r.exit_code == 2 and "speakr" in r.output and "speaker" in r.output  # names the fields there are
    assert not (embedded / "typo.svg").exists()
    r = clsp("plot", "map", "emb.jsonl", "-c", "speaker", "-o", "new/folder/map.svg", "-q", cwd=embedded)
    assert r.exit_code == 0 and (embedded / "new" / "folder" / "map.svg").exists()  # a missing folder is made
    with open(embedded / "emb.jsonl", "a") as fh:
        fh.write('{"id": "broken", "embedding": "nope"}\n')
    r = clsp("plot", "map", "emb.jsonl", "--color-by", "speaker", "-o", "map.png", cwd=embedded)
    assert r.exit_code == 3 and "broken" in r.output
    assert (embedded / "map.png").read_bytes().startswith(PNG_MAGIC)
    run = embedded / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0, "lr_encoder": 0.001}\n'
                                       '{"step": 1, "valid/global/t2s_R@1": 0.5}\n')
    r = clsp("plot", "run", "run", "-o", "curves.svg", cwd=embedded)
    assert r.exit_code == 0, r.output
    assert "global/t2s_R@1" in (embedded / "curves.svg").read_text()
    r = clsp("plot", "run", "nowhere", "-o", "curves.svg", cwd=embedded)
    assert r.exit_code != 0 and "metrics.jsonl" in r.output
    from clsp.plots import training_figure  # one logged step: drawn as a point, not as an invisible line

    fig = training_figure([{"step": 3, "loss": 2.0, "lr_encoder": 1e-4, "lr_heads": 1e-4}])
    assert fig.axes[0].lines[0].get_marker() == "o" and fig.axes[2].lines[0].get_marker() == "o"
    (embedded / "empty.jsonl").write_text("")
    r = clsp("plot", "map", "empty.jsonl", "-o", "empty.png", cwd=embedded)  # as every command: exit 0, a warning
    assert r.exit_code == 0 and "no records; no figure written" in r.output and not (embedded / "empty.png").exists()


def test_plot_map_of_speech_and_captions_draws_and_counts_them_apart(embedded):
    speech = [json.loads(line) for line in (embedded / "emb.jsonl").read_text().splitlines()]
    caps = "".join(json.dumps({"id": f"{r['id']}-cap", "text": f"voice of {r['speaker']}", "speaker": r["speaker"]})
                   + "\n" for r in speech)
    (embedded / "caps.jsonl").write_text(caps)
    r = clsp("embed", "caps.jsonl", "--modality", "text", *TINY, "-o", "caps.emb.jsonl", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    both = (embedded / "emb.jsonl").read_text() + (embedded / "caps.emb.jsonl").read_text()
    (embedded / "both.jsonl").write_text(both)
    r = clsp("plot", "map", "both.jsonl", "-c", "speaker", "-o", "both.svg", cwd=embedded)
    assert r.exit_code == 0, r.output
    assert "6 speech and 6 caption embeddings on one map" in r.output
    svg = (embedded / "both.svg").read_text()
    assert "s0 (3 speech, 3 captions)" in svg and "s1 (3 speech, 3 captions)" in svg
    r = clsp("plot", "map", "emb.jsonl", "-c", "speaker", "-o", "one.svg", cwd=embedded)
    assert "caption embeddings" not in r.output and "s0 (3)" in (embedded / "one.svg").read_text()


def test_figures_show_a_file_names_non_utf8_bytes_escaped(embedded):
    # ids and groups from files whose names hold a Latin-1 byte (read as surrogate escapes): fonts
    # cannot draw them, and the figure crashed (similarity then lost its whole output)
    recs = [json.loads(line) for line in (embedded / "emb.jsonl").read_text().splitlines()]
    odd = "".join(json.dumps({**r, "id": f"caf\udce9-{n}"}) + "\n" for n, r in enumerate(recs))
    (embedded / "odd.jsonl").write_text(odd)
    r = clsp("plot", "map", "odd.jsonl", "-c", "id", "-o", "odd.svg", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    assert "caf\\udce9-0 (1)" in (embedded / "odd.svg").read_text()
    pairs = "".join(json.dumps({"a": a["audio"], "b": b["audio"], "rating": n % 3, "kind": f"k\udce9{n % 2}"}) + "\n"
                    for n, (a, b) in enumerate(zip(recs, recs[1:] + recs[:1])))
    (embedded / "pairs.jsonl").write_text(pairs)
    r = clsp("similarity", "pairs.jsonl", *TINY, "--human-key", "rating", "--group-key", "kind", "--plot", "sim.svg",
             "-o", "sim.jsonl", "-q", cwd=embedded)
    assert r.exit_code == 0, r.output
    assert len(records((embedded / "sim.jsonl").read_text())) == len(recs) + 1  # every pair and the summary
    assert "k\\udce90" in (embedded / "sim.svg").read_text()


def test_a_figure_that_fails_loses_no_record(embedded, monkeypatch):
    from clsp import plots

    def broken(fig, path, dpi=110):
        raise RuntimeError("the font cannot draw this")

    monkeypatch.setattr(plots, "save_figure", broken)
    recs = [json.loads(line) for line in (embedded / "emb.jsonl").read_text().splitlines()]
    pairs = "".join(json.dumps({"a": a["audio"], "b": b["audio"], "rating": n % 3}) + "\n"
                    for n, (a, b) in enumerate(zip(recs, recs[1:] + recs[:1])))
    (embedded / "pairs.jsonl").write_text(pairs)
    r = clsp("similarity", "pairs.jsonl", *TINY, "--human-key", "rating", "--plot", "sim.svg", "-o", "sim.jsonl",
             cwd=embedded)
    assert r.exit_code == 1 and "the font cannot draw this" in str(r.exception)
    assert len(records((embedded / "sim.jsonl").read_text())) == len(recs) + 1 and not (embedded / "sim.svg").exists()
    r = clsp("classify", "emb.jsonl", *TINY, "--pack", "gender", "--label-key", "speaker", "--plot", "c.svg",
             "-o", "c.jsonl", cwd=embedded)
    assert r.exit_code == 1 and len(records((embedded / "c.jsonl").read_text())) >= len(recs)


def test_plot_map_of_row_records_without_their_matrix_warns_once(clips):
    r = clsp("embed", "clips.jsonl", *TINY, "--npy", "emb.npy", "-o", "rows.jsonl", "-q", cwd=clips)
    assert r.exit_code == 0, r.output
    r = clsp("plot", "map", "rows.jsonl", "-o", "m.svg", cwd=clips)
    assert r.exit_code == 1 and r.output.count("give that matrix with --npy") == 1 and "skipped" not in r.output
    r = clsp("plot", "map", "rows.jsonl", "--npy", "emb.npy", "-o", "m.svg", "-q", cwd=clips)
    assert r.exit_code == 0 and (clips / "m.svg").exists()


def test_plot_run_reads_metrics_as_every_jsonl_reader_does(tmp_path):
    """metrics.jsonl was read with a plain reader: a BOM was 'not valid JSON', gzip, UTF-16, a
    byte 0xff or an audio file a traceback, and a U+2028 in a string split the line."""
    import gzip

    from tests.conftest import write_wav

    text = '{"step": 1, "loss": 2.0, "note": "a\u2028b"}\n{"step": 2, "loss": 1.5}\n'
    variants = {"plain.jsonl": text.encode(), "bom.jsonl": b"\xef\xbb\xbf" + text.encode(),
                "zipped.jsonl": gzip.compress(text.encode())}
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
        r = clsp("plot", "run", name, "-o", f"{name}.svg", "-q", cwd=tmp_path)
        assert r.exit_code == 0, (name, r.output)
        assert (tmp_path / f"{name}.svg").exists()
    (tmp_path / "wide.jsonl").write_bytes(text.encode("utf-16"))
    write_wav(tmp_path / "a.wav", 0.3)
    (tmp_path / "ff.jsonl").write_bytes(b'{"step": 1, "loss": 2.0}\n\xff\n')
    for name, code, said in (("wide.jsonl", 2, "UTF-16 text; clsp reads UTF-8"),
                             ("a.wav", 2, "a.wav is an audio file; expected a training run folder"),
                             ("ff.jsonl", 1, "ff.jsonl: line 2: not valid UTF-8")):
        r = clsp("plot", "run", name, "-o", "bad.svg", cwd=tmp_path)
        assert r.exit_code == code and said in r.output, (name, r.output)
        assert not isinstance(r.exception, UnicodeDecodeError) and "Traceback" not in r.output
    assert not (tmp_path / "bad.svg").exists()


def test_plot_run_of_a_run_not_yet_logging_is_a_warning_and_binary_metrics_name_what_is_expected(tmp_path):
    """A run folder whose metrics.jsonl the trainer has not written yet was a usage error (exit 2)
    while an empty metrics.jsonl was a warning; binary data was told to give audio or a manifest."""
    run = tmp_path / "exp"
    run.mkdir()
    (run / "config.json").write_text("{}")
    r = clsp("plot", "run", "exp", "-o", "c.svg", cwd=tmp_path)
    assert r.exit_code == 0 and "no metric records yet" in r.output, r.output
    assert not (tmp_path / "c.svg").exists()
    (tmp_path / "other").mkdir()  # no run here at all: still refused
    r = clsp("plot", "run", "other", "-o", "c.svg", cwd=tmp_path)
    assert r.exit_code == 2 and "no such file (a training run folder holds metrics.jsonl)" in r.output
    (tmp_path / "nul.jsonl").write_bytes(b'{"step": 1, "loss": 2.0}\n' + b"\0" * 16 + b"\n")
    r = clsp("plot", "run", "nul.jsonl", "-o", "c.svg", cwd=tmp_path)
    assert r.exit_code == 2 and "binary data); give a training run folder or its metrics.jsonl" in r.output, r.output
    r = clsp("search", "build", "nul.jsonl", "-o", "x.idx", cwd=tmp_path)
    assert r.exit_code == 2 and "give embedding records (what clsp embed writes) or a .npy matrix" in r.output
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 2.0}\n')
    r = clsp("plot", "run", "exp", "-o", "c.svg", cwd=tmp_path)
    assert r.exit_code == 0 and "1 metric record of exp" in r.output, r.output
