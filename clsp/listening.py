"""Listening pages: one self-contained HTML file with an audio player per clip.

The page has no external script, style or font. Audio is referenced by a path relative to
the page's folder (so the page and the audio can move together, and the page also works
behind a web server); with ``embed=True`` each file is inlined as a base64 ``data:`` URI
instead, so the page can be shared alone. A clip with ``start``/``end`` (seconds) plays
only that segment: the source carries a media fragment ``#t=start,end`` and a small
script seeks to ``start`` and pauses at ``end``. Every player reports whether its audio
loaded in ``data-state`` (``ok`` or ``error``); the page totals them in ``#status``.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".opus": "audio/ogg",
        ".m4a": "audio/mp4", ".webm": "audio/webm", ".aac": "audio/aac"}
TOP_PROBABILITIES = 5
HIDDEN = ("embedding", "provenance", "row", "hits", "scores", "top_k", "audio", "id", "start", "end")


@dataclass
class Clip:
    """One player: an audio file (absolute path), optional segment (seconds) and what to show."""

    path: str
    title: str
    start: float | None = None
    end: float | None = None
    score: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    probabilities: dict[str, float] = field(default_factory=dict)
    text: str | None = None  # a caption shown instead of a player (a text hit; ``path`` is then "")


@dataclass
class Section:
    """A heading, an optional query (text or clip) and its clips."""

    heading: str
    clips: list[Clip]
    query_text: str | None = None
    query_clip: Clip | None = None
    note: str = ""


def clip_from_record(rec: Mapping[str, Any], base: Path, score: float | None = None) -> Clip | None:
    """A ``Clip`` for a record's ``audio`` (relative paths resolve against ``base``); None without audio."""
    audio = rec.get("audio")
    if not isinstance(audio, str) or not audio:
        return None
    from clsp.records import home_path

    p = home_path(audio)
    path = p if p.is_absolute() else Path(base) / p
    fields = {k: v for k, v in rec.items() if k not in HIDDEN and not str(k).startswith("_") and k != "score"}
    from clsp.errors import ClspError
    from clsp.audio import record_span

    try:
        start, end = record_span(rec)  # the segment clsp embed read (end from start + duration)
    except ClspError:
        start, end = rec.get("start"), rec.get("end")
    return Clip(str(path.resolve()), str(rec.get("id", audio)), _seconds(start), _seconds(end), score, fields)


def hit_from_record(rec: Mapping[str, Any], base: Path, score: float | None = None) -> Clip | None:
    """``clip_from_record`` for a record with ``audio``; for a caption (a ``text`` and no
    ``audio``, a hit of a caption index) a ``Clip`` that shows its text; None for neither."""
    clip = clip_from_record(rec, base, score)
    text = rec.get("text")
    if clip is not None or not isinstance(text, str) or not text:
        return clip
    fields = {k: v for k, v in rec.items()
              if k not in HIDDEN and k not in ("text", "score") and not str(k).startswith("_")}
    return Clip("", str(rec.get("id", text)), score=score, fields=fields, text=text)


def _seconds(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def audio_source(path: str, page_dir: Path, embed: bool = False) -> str:
    """The ``src`` of a player: a path relative to ``page_dir`` (URL-quoted), a file:// URI when no
    relative path exists, or a base64 ``data:`` URI with ``embed`` (unreadable files stay paths)."""
    if embed:
        try:
            data = Path(path).read_bytes()
            mime = MIME.get(Path(path).suffix.lower(), "application/octet-stream")
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        except OSError:
            pass
    try:
        rel = os.path.relpath(path, page_dir)
    except ValueError:  # another drive
        return Path(path).as_uri()
    # the file name's own bytes, percent-encoded: a name that is not UTF-8 (held as \udcXX
    # escapes) links to its file as well
    return quote(os.fsencode(Path(rel).as_posix()))


def _fragment(clip: Clip) -> str:
    if clip.start is None and clip.end is None:
        return ""
    start = f"{clip.start:g}" if clip.start is not None else "0"
    return f"#t={start}" + (f",{clip.end:g}" if clip.end is not None else "")


def _player(clip: Clip, page_dir: Path, embed: bool) -> str:
    src = audio_source(clip.path, page_dir, embed) + _fragment(clip)
    seg = ""
    if clip.start is not None:
        seg += f' data-start="{clip.start:g}"'
    if clip.end is not None:
        seg += f' data-end="{clip.end:g}"'
    return (f'<audio controls preload="metadata" data-state="pending"{seg} src="{html.escape(src, quote=True)}" '
            f'title="{html.escape(clip.path, quote=True)}"></audio>')


def _value(v: Any) -> str:
    return html.escape(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))


def _clip_html(clip: Clip, page_dir: Path, embed: bool) -> str:
    head = f'<span class="id">{html.escape(clip.title)}</span>'
    if clip.score is not None:
        head += f' <span class="score">score {clip.score:.4f}</span>'
    if clip.start is not None or clip.end is not None:
        head += f' <span class="seg">{clip.start or 0:g}-{"end" if clip.end is None else f"{clip.end:g}"} s</span>'
    meta = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{_value(v)}</dd>" for k, v in clip.fields.items())
    probs = ""
    if clip.probabilities:
        rows = sorted(clip.probabilities.items(), key=lambda kv: -kv[1])[:TOP_PROBABILITIES]
        probs = '<table class="probs">' + "".join(
            f'<tr><td>{html.escape(str(k))}</td><td class="bar"><span style="width:{100 * p:.1f}%"></span></td>'
            f'<td>{100 * p:.1f}%</td></tr>' for k, p in rows) + "</table>"
    if clip.text is not None:  # a caption: its words instead of a player
        return (f'<li class="clip"><div class="head">{head}</div><p class="caption"><q>{html.escape(clip.text)}</q></p>'
                f'<div class="details">{probs}<dl>{meta}</dl></div></li>')
    return (f'<li class="clip"><div class="head">{head}</div>{_player(clip, page_dir, embed)}'
            f'<div class="path">{html.escape(clip.path)}</div><div class="details">{probs}<dl>{meta}</dl></div></li>')


def render_page(title: str, sections: Sequence[Section], page_dir: Path, embed: bool = False, intro: str = "") -> str:
    """The HTML text of a listening page; audio sources are relative to ``page_dir``."""
    parts = []
    for sec in sections:
        query = ""
        if sec.query_text is not None:
            query = f'<p class="query">query: <q>{html.escape(sec.query_text)}</q></p>'
        elif sec.query_clip is not None:
            query = f'<div class="query">query clip:<ul class="clips">{_clip_html(sec.query_clip, page_dir, embed)}</ul></div>'
        note = f'<p class="note">{html.escape(sec.note)}</p>' if sec.note else ""
        items = "".join(_clip_html(c, page_dir, embed) for c in sec.clips) or "<li>no clips</li>"
        parts.append(f'<section><h2>{html.escape(sec.heading)}</h2>{query}{note}<ol class="clips">{items}</ol></section>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>'
            f'<p class="intro">{html.escape(intro)}</p><p id="status" data-total="0" data-ok="0" data-error="0">'
            f'</p>{"".join(parts)}<script>{_JS}</script></body></html>\n')


def write_page(path: str | Path, title: str, sections: Sequence[Section], embed: bool = False, intro: str = "") -> Path:
    """Write a listening page to ``path`` atomically; audio paths are made relative to its folder."""
    from clsp.outfile import write_bytes_atomic

    page_dir = Path(os.path.realpath(path)).parent
    # names that are not UTF-8 show as \udcXX escapes in the page's text (their links use their bytes)
    text = render_page(title, sections, page_dir, embed, intro)
    return write_bytes_atomic(path, text.encode("utf-8", errors="backslashreplace"))


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.intro,#status,.note,.path{color:#555;font-size:.9em}.query{background:#f3f6fb;padding:.5em .8em;border-radius:6px}
ol.clips,ul.clips{padding-left:1.4em}li.clip{margin:.7em 0;padding:.4em .6em;border:1px solid #e3e3e3;border-radius:6px}
.head .id{font-weight:600}.score{color:#0a5;font-variant-numeric:tabular-nums;margin-left:.6em}.seg{color:#777}
audio{display:block;width:100%;max-width:32em;margin:.3em 0}audio[data-state=error]{outline:2px solid #c00}
.details{display:flex;flex-wrap:wrap;gap:0 2.5em;align-items:flex-start}
.path{font-family:monospace;font-size:.8em;word-break:break-all}
dl{display:grid;grid-template-columns:max-content auto;gap:0 .8em;margin:.3em 0;font-size:.9em}dt{color:#666}dd{margin:0}
table.probs{border-collapse:collapse;font-size:.85em;margin:.3em 0}table.probs td{padding:0 .4em}
td.bar{width:12em}td.bar span{display:block;height:.7em;background:#4a7fc1;border-radius:2px}
"""

_JS = """
(function(){
  var players=document.querySelectorAll('audio'), status=document.getElementById('status');
  function tally(){
    var ok=0,err=0;
    players.forEach(function(a){if(a.dataset.state==='ok')ok++;else if(a.dataset.state==='error')err++;});
    status.dataset.total=players.length;status.dataset.ok=ok;status.dataset.error=err;
    status.textContent=players.length+' players: '+ok+' loaded'+(err?', '+err+' could not load their audio':'');
  }
  players.forEach(function(a){
    var start=parseFloat(a.dataset.start||'0'), end=a.dataset.end?parseFloat(a.dataset.end):null;
    a.addEventListener('loadedmetadata',function(){a.dataset.state='ok';a.dataset.duration=a.duration;tally();});
    a.addEventListener('error',function(){a.dataset.state='error';tally();});
    a.addEventListener('play',function(){if(a.currentTime<start||(end!==null&&a.currentTime>=end))a.currentTime=start;});
    a.addEventListener('timeupdate',function(){if(end!==null&&a.currentTime>=end){a.pause();a.currentTime=start;}});
    if(a.readyState>=1){a.dataset.state='ok';}
    if(a.error){a.dataset.state='error';}
  });
  tally();
})();
"""
