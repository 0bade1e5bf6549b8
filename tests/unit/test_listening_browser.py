"""Listening pages opened in a real headless Chromium: every player finds its audio (skipped without Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from clsp.listening import Clip, Section, write_page
from tests.conftest import tone, write_wav

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
         "--virtual-time-budget=8000", "--user-data-dir={profile}"]


def chromium(tmp_path: Path, *args: str) -> str:
    flags = [f.format(profile=tmp_path / "profile") for f in FLAGS]
    out = subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def players(dom: str) -> list[str]:
    return re.findall(r"<audio[^>]*>", dom)


def attr(tag: str, name: str) -> str | None:
    m = re.search(rf'{name}="([^"]*)"', tag)
    return m.group(1) if m else None


@pytest.fixture
def page(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_wav(audio / "long name & co.wav", 2.0)
    sf.write(str(audio / "b.flac"), tone(3.0, 180), 16000)
    clips = [Clip(str(audio / "long name & co.wav"), "wav clip", score=0.91, fields={"speaker": "s1"}),
             Clip(str(audio / "b.flac"), "flac segment", start=0.5, end=1.25, score=0.5,
                  probabilities={"angry": 0.7, "calm": 0.3})]
    missing = Clip(str(audio / "gone.wav"), "missing clip", score=0.1)
    (tmp_path / "pages").mkdir()
    path = write_page(tmp_path / "pages" / "p.html", "results", [Section("query 1", clips + [missing], "a calm voice")])
    return path


def test_every_player_loads_its_audio_and_a_missing_file_says_so(tmp_path, page):
    dom = chromium(tmp_path, "--dump-dom", page.resolve().as_uri())
    tags = players(dom)
    assert len(tags) == 3
    assert [attr(t, "data-state") for t in tags] == ["ok", "ok", "error"]
    assert float(attr(tags[0], "data-duration")) == pytest.approx(2.0, abs=0.05)
    assert float(attr(tags[1], "data-duration")) == pytest.approx(3.0, abs=0.05)
    assert attr(tags[1], "src").endswith("b.flac#t=0.5,1.25")
    status = re.search(r'<p id="status"[^>]*>([^<]*)', dom)
    assert status and "3 players: 2 loaded, 1 could not load" in status.group(1)
    shot = tmp_path / "page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,900", page.resolve().as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_embedded_audio_plays_without_the_files(tmp_path):
    write_wav(tmp_path / "a.wav", 1.0)
    path = write_page(tmp_path / "e.html", "shared", [Section("q", [Clip(str(tmp_path / "a.wav"), "a")])], embed=True)
    (tmp_path / "a.wav").unlink()
    dom = chromium(tmp_path, "--dump-dom", path.resolve().as_uri())
    [tag] = players(dom)
    assert attr(tag, "data-state") == "ok"
    assert float(attr(tag, "data-duration")) == pytest.approx(1.0, abs=0.05)


def test_a_segment_plays_from_its_start(tmp_path, page):
    probe = ("<script>document.querySelectorAll('audio[data-start]').forEach(function(a){"
             "a.addEventListener('timeupdate',function(){a.dataset.t=a.currentTime;});a.play();});</script></body>")
    played = page.with_name("played.html")
    played.write_text(page.read_text().replace("</body>", probe))
    dom = chromium(tmp_path, "--autoplay-policy=no-user-gesture-required", "--dump-dom", played.resolve().as_uri())
    segment = players(dom)[1]
    assert 0.5 <= float(attr(segment, "data-t")) < 1.25  # starts at 'start', not at 0, and stays before 'end'
