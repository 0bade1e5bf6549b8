"""The ``--plot`` figures and ``--html`` listening pages of the commands (calls into
``clsp.plots`` and ``clsp.listening``), so each command needs an option and one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clsp.errors import ConfigError


def check_outputs(plot: str | None, html: str | None, needed: Any = True, needed_name: str = "",
                  report: str | None = None) -> None:
    """Refuse a bad --plot extension or a --plot/--html/--report without the option they need
    (the evaluation they show: without it they would be silently never written), before any work."""
    if (plot or html or report) and not needed:
        which = " and ".join(n for n, v in (("--plot", plot), ("--html", html), ("--report", report)) if v)
        raise ConfigError(f"{which} needs {needed_name}")
    if plot:
        from clsp.plots import check_plot_path

        check_plot_path(plot)
    if html and not str(html).lower().endswith((".html", ".htm")):
        raise ConfigError(f"--html {html}: the file name must end in .html")


def _done(kind: str, path: str) -> None:
    from clsp_cli.console import log

    log(f"wrote {kind} {path}")


def classify_outputs(summary: dict, misses: Sequence[dict], plot: str | None, html: str | None, embed: bool) -> None:
    """Confusion-matrix figure and the page of misclassified clips, grouped by gold class."""
    if plot:
        from clsp.plots import confusion_figure, save_figure

        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
        title = (f"{summary['attribute']} (pack {summary['pack']}): n={summary['n']}, WA {pct(summary['wa'])}, "
                 f"UA {pct(summary['ua'])}")
        save_figure(confusion_figure(summary["confusion"]["labels"], summary["confusion"]["matrix"], title), plot)
        _done("figure", plot)
    if html:
        from clsp.listening import Section, clip_from_record, write_page

        base = Path.cwd()  # records carry absolute audio paths; a relative one is relative to here
        sections = []
        for gold in summary["confusion"]["labels"]:
            clips = []
            for rec in (m for m in misses if m["gold"] == gold):
                clip = clip_from_record(rec, base)
                if clip is not None:
                    clip.title += f" — gold {gold}, predicted {rec['label']}"
                    for shown in ("label", "gold"):  # both are in the title
                        clip.fields.pop(shown, None)
                    clip.probabilities = dict(rec.get("scores") or {})
                    clips.append(clip)
            if clips:
                recall = summary["per_class_recall"].get(gold)
                note = f"recall {100 * recall:.1f}%" if recall is not None else ""
                sections.append(Section(f"gold: {gold} ({len(clips)} misclassified)", clips, note=note))
        title = f"clsp classify: misclassified clips ({summary['attribute']}, pack {summary['pack']})"
        intro = f"{len(misses)} of {summary['n']} clips misclassified; label field '{summary['label_key']}'."
        write_page(html, title, sections, embed, intro)
        _done("listening page", html)


def similarity_plot(plot: str | None, ratings: Sequence[tuple[float, float, Any]], summary: dict) -> None:
    """Score-vs-rating scatter with fitted lines and correlations per group (or overall)."""
    if not plot:
        return
    from clsp.plots import save_figure, scatter_figure
    from clsp.results import group_names

    grouped = "groups" in summary
    reports = summary["groups"] if grouped else {"all": summary["overall"]}
    groups = group_names([r[2] for r in ratings]) if grouped else None
    from clsp.plots import correlation_label

    title = f"clsp similarity vs '{summary['human_key']}'" + (f" by '{summary['group_key']}'" if grouped else "")
    title += "\n" + correlation_label("all pairs", summary["overall"])
    fig = scatter_figure([r[0] for r in ratings], [r[1] for r in ratings], groups, reports, summary["human_key"], title)
    save_figure(fig, plot)
    _done("figure", plot)


def recall_plot(plot: str | None, curves: dict[str, dict[int, float]], title: str) -> None:
    """R@k curves, ``{name: {k: recall}}``."""
    if not plot:
        return
    from clsp.plots import recall_curve_figure, save_figure

    save_figure(recall_curve_figure(curves, title), plot)
    _done("figure", plot)


def search_page(html: str | None, results: Sequence[tuple[dict, list[dict]]], query_base: Path | None,
                embed: bool) -> None:
    """The listening page of ``clsp search query``: each query and its hits (hit audio resolves against cwd;
    a caption hit shows its text)."""
    if not html:
        return
    from clsp.listening import Section, clip_from_record, hit_from_record, write_page

    sections = []
    for n, (query, hits) in enumerate(results, start=1):
        clips = [c for c in (hit_from_record(h, Path.cwd(), h.get("score")) for h in hits) if c is not None]
        text = query.get("text") if isinstance(query.get("text"), str) else None
        qclip = None if text is not None else clip_from_record(query, query_base or Path.cwd())
        note = "" if text is not None or qclip is not None else "query by embedding"
        missing = len(hits) - len(clips)
        if missing:
            note += f"{'; ' if note else ''}{missing} hits without an 'audio' or 'text' field are not shown"
        heading = f"query {n}" + ("" if text is not None and str(query.get("id")) == text else f": {query.get('id')}")
        sections.append(Section(heading, clips, text, qclip, note))
    write_page(html, "clsp search: results", sections, embed, f"{len(results)} queries, scores are cosine similarities.")
    _done("listening page", html)
