"""Evaluation summaries drawn as tables on the stderr console (never on stdout)."""

from __future__ import annotations

from typing import Any


def _table(title: str):
    from rich.table import Table

    return Table(title=title, title_justify="left")


def _print(renderable: Any, markup: bool = True) -> None:
    from clsp_cli.console import console

    console.print(renderable, markup=markup)


def retrieval_table(summary: dict) -> None:
    """``clsp search eval``: one row per metric, one column per group, 95% CIs in brackets."""
    columns = [("all", summary["metrics"])] + list(summary.get("groups", {}).items())
    names = [k for k in summary["metrics"] if not k.endswith(("_lo", "_hi", "count"))]
    table = _table(f"{summary['task']} (95% bootstrap CI)")
    table.add_column("metric")
    for name, _ in columns:
        table.add_column(str(name))
    for metric in names:
        cells = []
        for _, m in columns:
            value = m.get(metric)
            ci = f" [{m[metric + '_lo']:.3f}, {m[metric + '_hi']:.3f}]" if m.get(metric + "_lo") is not None else ""
            cells.append("n/a" if value is None else f"{value:.3f}{ci}")
        table.add_row(metric, *cells)
    _print(table)


def _percent(value, ci=None) -> str:
    text = "n/a" if value is None else f"{100 * value:.1f}"
    return text + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci and ci[0] is not None else "")


def classification_table(summary: dict) -> None:
    """``clsp classify --label-key``: WA/UA line, then the confusion matrix of the classes seen."""
    _print(f"{summary['attribute']}: n={summary['n']}  WA {_percent(summary['wa'], summary.get('wa_ci'))}  "
           f"UA {_percent(summary['ua'], summary.get('ua_ci'))}  (%, 95% bootstrap CI)", markup=False)
    labels, matrix = summary["confusion"]["labels"], summary["confusion"]["matrix"]
    # show only classes that occur as gold or prediction; the summary keeps the full matrix
    shown = [i for i, _ in enumerate(labels) if sum(matrix[i]) or sum(row[i] for row in matrix)]
    table = _table("confusion (rows: gold, columns: predicted)")
    table.add_column("gold \\ pred")
    for i in shown:
        table.add_column(labels[i], justify="right")
    table.add_column("recall %", justify="right")
    for i in shown:
        recall = summary["per_class_recall"].get(labels[i])
        table.add_row(labels[i], *[str(matrix[i][j]) for j in shown], "-" if recall is None else _percent(recall))
    _print(table)


def _with_ci(rep: dict, name: str) -> str:
    value, ci = rep.get(name), rep.get(f"{name}_ci")
    text = "n/a" if value is None else f"{value:.3f}"
    if name in rep.get("ci_undefined", {}):
        return text + " [no CI]"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else "")


def correlation_table(summary: dict) -> None:
    """``clsp similarity --human-key``: Pearson, Spearman and Kendall per group, with 95% CIs."""
    table = _table(f"score vs '{summary['human_key']}' (95% bootstrap CI)")
    for col in ("pairs", "n", "Pearson r", "Spearman rho", "Kendall tau-b"):
        table.add_column(col)
    rows = [("all", summary["overall"])] + list(summary.get("groups", {}).items())
    for name, rep in rows:
        table.add_row(str(name), str(rep["n"]), _with_ci(rep, "pearson"), _with_ci(rep, "spearman"),
                      _with_ci(rep, "kendall"))
    _print(table)
    if any("ci_undefined" in rep for _, rep in rows):
        _print("no CI: too few items or distinct values for a bootstrap interval (see 'ci_undefined')", markup=False)
