"""Figures of clsp results with matplotlib (Agg backend, imported only when a figure is made).

Every ``*_figure`` function returns a matplotlib ``Figure``; :func:`save_figure` writes it
as PNG or SVG (chosen by the file extension) atomically. Metric values are given as the
library computes them (fractions in [0, 1]); figures show percentages where the tables do.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clsp.errors import ConfigError, InputError

FORMATS = {".png": "png", ".svg": "svg"}


def check_plot_path(path: str | Path) -> str:
    """The format ('png' or 'svg') for ``path``; ``ConfigError`` for any other extension."""
    fmt = FORMATS.get(Path(str(path)).suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: a figure's file name must end in .png or .svg")
    return fmt


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _escape_texts(fig) -> None:
    """Every text of ``fig`` (titles, labels, legend entries) with a file name's non-UTF-8 bytes
    (surrogate escapes, ``caf\\udce9.wav``) written as ``\\udcXX``: fonts cannot draw them."""
    from matplotlib.text import Text

    from clsp.records import utf8_encodable

    for text in fig.findobj(Text):
        value = text.get_text()
        if isinstance(value, str) and not utf8_encodable(value):
            text.set_text(value.encode("utf-8", "backslashreplace").decode("utf-8"))


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` as PNG or SVG (by extension), atomically, and close it."""
    from clsp.outfile import write_bytes_atomic

    fmt = check_plot_path(path)
    _escape_texts(fig)
    buf = io.BytesIO()
    # fixed metadata: the same figure gives the same bytes
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    plt = _pyplot()
    # SVG text stays text (searchable, small); a fixed hash salt makes SVG ids repeatable
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "clsp"}):
        with np.errstate(over="ignore", invalid="ignore"):  # a symlog axis of values near 1e308 (_fit_scale)
            fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def confusion_figure(labels: Sequence[str], matrix, title: str = ""):
    """Confusion matrix (rows: gold, columns: predicted) of shape (C, C) counts.

    Cells are coloured by the row-normalised fraction (recall on the diagonal) and show
    the count and that percentage; classes that are neither gold nor predicted are left out.
    """
    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.int64)
    if m.ndim != 2 or m.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix of shape {m.shape} for {len(labels)} labels")
    shown = [i for i in range(len(labels)) if m[i].sum() or m[:, i].sum()] or list(range(len(labels)))
    m = m[np.ix_(shown, shown)]
    names = [str(labels[i]) for i in shown]
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    size = 1.6 + 0.75 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(names)):
        for j in range(len(names)):
            if m[i, j] == 0:
                ax.text(j, i, "0", ha="center", va="center", fontsize=8, color="#bbbbbb")
                continue
            color = "white" if frac[i, j] > 0.6 else "black"
            ax.text(j, i, f"{m[i, j]}\n{100 * frac[i, j]:.0f}%", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), [f"{n} (n={rows[i, 0]})" for i, n in enumerate(names)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the gold class (recall on the diagonal)")
    return fig


def _fit_line(x: np.ndarray, y: np.ndarray):
    """Least-squares line y = a x + b, or None with fewer than two distinct x."""
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    a, b = np.polyfit(x, y, 1)
    return a, b


def correlation_label(name: str, rep: Mapping[str, Any]) -> str:
    """``name (n=N): r=.., ρ=.., τ=..`` from a ``correlation_report`` (Pearson, Spearman, Kendall tau-b)."""
    def f(key):
        v = rep.get(key)
        return "n/a" if v is None else f"{v:.2f}"

    return f"{name} (n={rep.get('n', 0)}): r={f('pearson')}, ρ={f('spearman')}, τ={f('kendall')}"


def scatter_figure(scores: Sequence[float], ratings: Sequence[float], groups: Sequence[Any] | None,
                   reports: Mapping[str, Mapping[str, Any]], rating_name: str = "rating", title: str = ""):
    """Model score (x, cosine) against a human rating (y), one colour and fitted line per group.

    ``reports`` maps each group name (or ``"all"`` without groups) to its correlation report
    (``clsp.metrics.correlation.correlation_report``: Pearson r, Spearman rho, Kendall tau-b),
    shown in the legend. Lines are least-squares fits (``numpy.polyfit``, degree 1). With no
    point (every pair failed or none was rated) the figure says so.
    """
    plt = _pyplot()
    x, y = np.asarray(scores, dtype=np.float64), np.asarray(ratings, dtype=np.float64)
    g = np.asarray([str(v) for v in groups]) if groups is not None else np.full(len(x), "all")
    fig, ax = plt.subplots(figsize=(7, 5))
    _fit_scale(ax, "x", x)
    _fit_scale(ax, "y", y)
    huge = ax.get_xscale() == "symlog" or ax.get_yscale() == "symlog"
    colors = plt.get_cmap("tab10")
    for n, name in enumerate(sorted(set(g.tolist()), key=_value_order)):
        sel = g == name
        c = colors(n % 10)
        ax.scatter(x[sel], y[sel], s=14, alpha=0.6, color=c, label=correlation_label(name, reports.get(name, {})))
        line = _fit_line(x[sel], y[sel]) if not huge else None  # a straight line is none on a log axis
        if line is not None:
            xs = np.linspace(x[sel].min(), x[sel].max(), 2)
            ax.plot(xs, line[0] * xs + line[1], color=c, linewidth=1.5)
    ax.set_xlabel("clsp similarity (cosine)")
    ax.set_ylabel(rating_name)
    ax.set_title(title, fontsize=10)
    if len(x):
        ax.legend(fontsize=8, loc="best")
    else:  # every pair failed or none was rated: an empty figure that says so
        ax.text(0.5, 0.5, "no rated pair was scored", ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def recall_curve_figure(curves: Mapping[str, Mapping[int, float]], title: str = ""):
    """R@k (fraction) against k, one line per direction or group: ``{name: {k: recall}}``; a
    ``None`` R@k (not measured) is not drawn, a curve with none measured (a pool too small for
    any ranking to miss, no query scored) is left out, and a figure with none says so."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    curves = {name: {k: v for k, v in curve.items() if v is not None} for name, curve in curves.items()}
    if not any(curves.values()):
        ax.text(0.5, 0.5, "no R@k measured: no query was scored, or every query has\nfewer than k candidates "
                "besides its relevant ones",
                ha="center", va="center", transform=ax.transAxes, fontsize=9)
    for name, curve in curves.items():
        if not curve:
            continue
        ks = sorted(curve)
        ax.plot(ks, [100 * curve[k] for k in ks], marker="o", markersize=3, label=f"{name} (R@1 {100 * curve[ks[0]]:.1f}%)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("k (hits looked at)")
    ax.set_ylabel("R@k (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend(fontsize=8)
    return fig


def read_metrics(path: str | Path, on_warning: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The records of a training run's ``metrics.jsonl`` (a run folder or the file itself),
    read as every JSONL input is (``clsp.records.read_jsonl``: compressed or not, a BOM
    dropped, lines split at ``\n`` only). ``ConfigError`` for a missing file, an audio file
    or UTF-16/32 text, and for pretty-printed JSON (a lone ``{`` or ``[`` on its first line);
    ``InputError`` naming the file and line for a line that is not a JSON object, and when
    records but none with a ``step`` are there; a file with no records gives ``[]``, as does a
    run folder (its ``config.json`` there) that has no ``metrics.jsonl`` yet. A last
    line cut short without its newline (the trainer is writing it) is left out with a warning.

    A record whose ``step`` is not an integer (a string ``"1"``, ``true``, ``2.5``) is left
    out, and a value of a plotted metric that is not a number (a string, a boolean) is not
    drawn: each is said once (per metric) through ``on_warning`` (default: the ``clsp.plots``
    logger), naming the first few lines and why. ``null`` is no value (the trainer writes a
    NaN so) and is left out quietly, as is a record without ``step``."""
    from clsp.inputs import refuse_audio_file
    from clsp.records import TruncatedInputError, read_jsonl

    p = Path(path)
    if p.is_dir():
        if not (p / "metrics.jsonl").exists() and (p / "config.json").is_file():
            return []  # a run that has started but logged no step yet: nothing to draw, as an empty file
        p = p / "metrics.jsonl"
    if not p.is_file():
        raise ConfigError(f"{p}: no such file (a training run folder holds metrics.jsonl)")
    refuse_audio_file(p, "metrics")
    warn = on_warning or logging.getLogger(__name__).warning

    def cut_tail(lineno: int) -> None:
        warn(f"{p}: line {lineno} is not complete (a run still writing it?): left out")

    try:
        records = read_jsonl(p, on_cut_tail=cut_tail)
    except TruncatedInputError:
        raise  # names the file
    except InputError as exc:
        _refuse_pretty_printed(p)
        raise InputError(f"{p}: {exc}") from None
    bad_steps = [n for n, rec in enumerate(records) if rec.get("step") is not None and _not_a_number(rec["step"], True)]
    out = [n for n, rec in enumerate(records) if _is_step(rec.get("step"))]
    bad_values: dict[str, list[int]] = {}
    for n in out:
        for key, value in records[n].items():
            if value is not None and is_plotted(key) and _not_a_number(value):
                bad_values.setdefault(key, []).append(n)
    if bad_steps or bad_values:
        _warn_left_out(p, records, bad_steps, bad_values, warn)
    if not records:  # a run that has written no metrics yet: nothing to draw, as any input with no records
        return []
    if not out:
        raise InputError(f"{p}: no metric records with a 'step'")
    return sorted((records[n] for n in out), key=lambda rec: rec["step"])  # stable: lines run by step


def is_plotted(key: Any) -> bool:
    """Whether ``training_figure`` draws the metric ``key``: loss, the learning rates, the
    validation R@1 of each kind and direction."""
    return isinstance(key, str) and (key in ("loss", "lr_encoder", "lr_heads")
                                     or key.startswith("valid/") and key.endswith("_R@1"))


def _not_a_number(value: Any, step: bool = False) -> str | None:
    """Why ``value`` cannot be drawn as a metric value (``step``: as a step), or None: a
    boolean or string is no number (JSON ``true`` is not 1), a step must be an integer, and
    a number must fit a float."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if not isinstance(value, (int, float)):
        return "null" if value is None else "a list" if isinstance(value, list) else "an object"
    try:
        number = float(value)
    except OverflowError:
        return "too large for a float"
    if not np.isfinite(number):
        return "not finite"
    if step and not number.is_integer():
        return "not an integer"
    return None


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _warn_left_out(path: Path, records: list[dict[str, Any]], bad_steps: list[int], bad_values: dict[str, list[int]],
                   warn: Callable[[str], None]) -> None:
    """One warning for the records left out for their ``step``, one per metric for its values
    not drawn: the first few of their lines (1-based, as the file numbers them), each value
    and why."""
    from clsp.records import input_name, iter_lines, open_binary_input

    stream = open_binary_input(path)  # only now: line numbers of the (few) records to name
    try:
        lines = [lineno for lineno, _ in iter_lines(stream, input_name(path))]
    finally:
        stream.close()

    def where(rows: list[int], key: str) -> str:
        shown = ", ".join(f"line {lines[n]} ({_shown(records[n][key])}: {_not_a_number(records[n][key], key == 'step')})"
                          for n in rows[:FIRST_LINES])
        return shown + (f" and {len(rows) - FIRST_LINES} more" if len(rows) > FIRST_LINES else "")

    if bad_steps:
        warn(f"{path}: {len(bad_steps)} record{'s' if len(bad_steps) > 1 else ''} left out, 'step' not an integer: "
             f"{where(bad_steps, 'step')}")
    for key, rows in bad_values.items():
        warn(f"{path}: {key!r} not drawn on {len(rows)} line{'s' if len(rows) > 1 else ''}, values that are not "
             f"numbers (booleans and strings are not metric values): {where(rows, key)}")


FIRST_LINES = 5  # lines named in a warning about values left out


def _is_step(value: Any) -> bool:
    """Whether ``value`` is a step number: an integer (``true``, ``"1"`` and ``2.5`` are no step;
    ``3.0`` is step 3) that fits a float."""
    return _not_a_number(value, True) is None


def _value_order(name: str) -> tuple:
    """Sort key for class names drawn from field values: numbers by value (``101`` before
    ``1000``), then every other name as text."""
    try:
        number = float(name)
    except ValueError:
        return (1, 0.0, name)
    return (0, number, name) if np.isfinite(number) else (1, 0.0, name)


def _refuse_pretty_printed(path: Path) -> None:
    """``ConfigError`` (a usage error, as every JSON Lines reader gives) when ``path`` starts with
    a lone ``{`` or ``[``: pretty-printed JSON (a run's config.json given for its metrics)."""
    from clsp.records import input_name, iter_lines, open_binary_input

    stream = open_binary_input(path)
    try:
        for lineno, raw in iter_lines(stream, input_name(path)):
            if raw.strip() in (b"[", b"{"):
                raise ConfigError(f"{path}: pretty-printed JSON (a lone {raw.strip().decode()!r} on line {lineno}); "
                                  "clsp reads JSON Lines, one record per line (convert with: jq -c '.[]' for an "
                                  "array, jq -c . for objects); a training run's metrics are its metrics.jsonl")
            if raw.strip():
                return
    except InputError:
        return
    finally:
        stream.close()


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the records whose ``key`` is a number (not a boolean or string), as floats."""
    pts = [(float(r["step"]), float(r[key])) for r in records
           if r.get(key) is not None and _not_a_number(r[key]) is None and _not_a_number(r["step"], True) is None]
    return [p[0] for p in pts], [p[1] for p in pts]


HUGE = 1e300  # beyond this a linear axis's limits, margins and ticks overflow float64 (1e308 - -1e308 is inf)


def _fit_scale(ax, axis: str, values, name: str = "", note: Callable[[str], None] | None = None) -> None:
    """Put ``ax``'s ``axis`` ("x" or "y") on a symmetric log scale, its limits set from
    ``values``, when they reach beyond ±``HUGE``: matplotlib cannot draw a linear axis there
    (its limits, margins and ticks overflow float64), nor autoscale a log one. ``note`` is
    told so, naming ``name``. The limits are set, not autoscaled: call it before or after
    drawing; a second call for the same axis widens them to both series."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if not v.size or np.abs(v).max() <= HUGE:
        return
    lo, hi = float(v.min()), float(v.max())
    if (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "symlog":  # a second series: span both
        old = ax.get_xlim() if axis == "x" else ax.get_ylim()
        lo, hi = min(lo, old[0]), max(hi, old[1])
    else:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("symlog")
    top = float(np.finfo(np.float64).max)
    scale = (ax.xaxis if axis == "x" else ax.yaxis).get_transform()
    # a 5% margin past ±1.8e308 overflows (clipped here); so does matplotlib's autoscaling that set_*lim ends
    with np.errstate(over="ignore", invalid="ignore"):
        ends = scale.transform(np.array([lo, hi]))
        pad = 0.05 * (ends[1] - ends[0]) or 0.5
        limits = scale.inverted().transform(np.array([ends[0] - pad, ends[1] + pad]))
        limits = np.clip(np.nan_to_num(limits, posinf=top, neginf=-top), -top, top)
        if lo >= 0:
            limits[0] = max(limits[0], 0.0)  # values that are all positive: no negative decades below them
        (ax.set_xlim if axis == "x" else ax.set_ylim)(float(limits[0]), float(limits[1]))
    if note is not None:
        note(f"{name}: values beyond ±{HUGE:g} (up to {np.abs(v).max():.3g}): drawn on a symmetric log axis")


def training_figure(records: Sequence[Mapping[str, Any]], title: str = "",
                    on_note: Callable[[str], None] | None = None):
    """Training curves from ``metrics.jsonl`` records: loss, validation R@1 and learning rates by step.

    Step records carry ``loss``, ``lr_encoder``, ``lr_heads``; validation records carry
    ``valid/<kind>/{s2t,t2s}_R@1`` (``clsp.train.validate``). Empty panels say so. Only
    numbers are drawn (booleans and strings are no values: ``read_metrics`` names them); a
    panel whose values (or steps) reach beyond ±1e300 is drawn on a symmetric log axis, and
    ``on_note`` is told so.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    steps, loss = _series(records, "loss")
    dots = {"marker": "o", "markersize": 3}  # a series of one step is a point a bare line would not show
    axes[0].plot(steps, loss, linewidth=1, **(dots if len(steps) < 2 else {}))
    axes[0].set_title("training loss")
    drawn: list[tuple[Any, str, list[float], list[float]]] = [(axes[0], "'loss'", steps, loss)]
    r1_keys = sorted({k for r in records for k in r if is_plotted(k) and k.startswith("valid/")})
    for key in r1_keys:
        s, v = _series(records, key)
        with np.errstate(over="ignore"):
            pct = (100 * np.asarray(v, dtype=np.float64)).tolist()
        axes[1].plot(s, pct, marker="o", markersize=3, label=key.removeprefix("valid/"))
        drawn.append((axes[1], repr(key), s, pct))
    axes[1].set_title("validation R@1 (%)")
    for key in ("lr_encoder", "lr_heads"):
        s, v = _series(records, key)
        if s:
            axes[2].plot(s, v, label=key.removeprefix("lr_"), **(dots if len(s) < 2 else {}))
            drawn.append((axes[2], repr(key), s, v))
    axes[2].set_title("learning rate")
    told: set[str] = set()
    for ax in axes:  # a linear axis cannot span values near ±1e308
        _fit_scale(ax, "x", [x for a, _, s, _ in drawn if a is ax for x in s], "'step'",
                   lambda text: told.add(text) if not told else None)  # the steps: said once
        for _, name, _, v in (d for d in drawn if d[0] is ax):
            _fit_scale(ax, "y", v, name, on_note)
    if told and on_note is not None:
        on_note(told.pop())
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        elif not ax.lines:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.suptitle(title, fontsize=10)
    with np.errstate(over="ignore", invalid="ignore"):  # matplotlib's arithmetic on symlog limits near 1e308
        fig.tight_layout()
    return fig


def pca_2d(vectors) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components of (N, D) ``vectors``: ((N, 2) coordinates, (2,) variance fractions).

    PCA by SVD of the centred matrix (Jolliffe, Principal Component Analysis, 2002); signs are
    fixed so each component's largest-magnitude loading is positive (deterministic output).
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise InputError(f"a 2-D map needs at least two embeddings, got {len(x)}")
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    coords = x @ vt.T
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((len(x), 1))])
    total = float((s ** 2).sum())
    var = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return coords, np.pad(var, (0, 2 - len(var)))


MODALITY_MARKERS = {"audio": ("o", "speech"), "text": ("^", "captions"), None: ("s", "unknown")}


def map_figure(coords, labels: Sequence[Any], color_by: str, variance=None, title: str = "",
               max_classes: int = 20, kinds: Sequence[str | None] | None = None):
    """Scatter of (N, 2) map coordinates coloured by ``labels`` (one colour per value).

    More than ``max_classes`` distinct values: the rarest are drawn grey as "other".
    ``kinds`` (what each point was embedded from: "audio", "text" or None) draws each kind
    with its own marker (``MODALITY_MARKERS``) and counts them apart in the legend.
    """
    from collections import Counter

    plt = _pyplot()
    xy = np.asarray(coords, dtype=np.float64)
    names = np.asarray(["<missing>" if v is None else str(v) for v in labels], dtype=object)
    counts = Counter(names.tolist())
    keep = [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], _value_order(kv[0])))[:max_classes]]
    fig, ax = plt.subplots(figsize=(7, 5.5))
    _fit_scale(ax, "x", xy[:, 0] if xy.size else xy)
    _fit_scale(ax, "y", xy[:, 1] if xy.size else xy)
    cmap = plt.get_cmap("tab20" if len(keep) > 10 else "tab10")
    rest = ~np.isin(names, keep)
    kind = np.asarray(list(kinds) if kinds is not None else [None] * len(names), dtype=object)
    shown = [k for k in MODALITY_MARKERS if (kind == k).any()] if kinds is not None else [None]

    def count(sel) -> str:
        if kinds is None:
            return str(int(sel.sum()))
        return ", ".join(f"{int((sel & (kind == k)).sum())} {MODALITY_MARKERS[k][1]}" for k in shown
                         if (sel & (kind == k)).any())

    def draw(sel, label: str, **style) -> None:
        for k in shown:
            part = sel & (kind == k) if kinds is not None else sel
            if part.any():
                marker = MODALITY_MARKERS[k][0] if kinds is not None else "o"
                ax.scatter(xy[part, 0], xy[part, 1], marker=marker, label=label, **style)
                label = "_nolegend_"  # one legend entry per colour

    if rest.any():
        draw(rest, f"other ({count(rest)})", s=10, color="lightgray")
    for n, name in enumerate(sorted(keep, key=_value_order)):
        sel = names == name
        draw(sel, f"{name} ({count(sel)})", s=16, alpha=0.8, color=cmap(n % cmap.N))
    if variance is not None:
        ax.set_xlabel(f"PC1 ({100 * variance[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * variance[1]:.1f}% of variance)")
    ax.set_title(title, fontsize=10)
    ax.legend(title=color_by, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(alpha=0.3)
    return fig
