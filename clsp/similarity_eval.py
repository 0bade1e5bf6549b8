"""Similarity scores against human ratings: the ``clsp similarity --human-key`` report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from clsp.results import PairScore, group_names


def numeric_rating(value: Any) -> float | None:
    """A rating as a finite float (numbers and numeric strings), else None (booleans too). A
    string must be a plain ASCII decimal (``clsp.streams.PLAIN_NUMBER``): ``"1_0"`` or other
    scripts' digits, which Python's ``float`` reads as 10 or 1, are no rating."""
    from clsp.streams import PLAIN_NUMBER

    if isinstance(value, bool) or (isinstance(value, str) and not PLAIN_NUMBER.fullmatch(value)):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class RatingTally:
    """``(score, rating, group)`` of each scored pair whose ``human_key`` field is a number."""

    human_key: str
    group_key: str | None = None
    ratings: list[tuple[float, float, Any]] = field(default_factory=list)
    unrated: int = 0
    keyed: int = 0  # scored pairs whose record has the field at all (null too)
    fields: set = field(default_factory=set)  # the fields the scored pairs' records have
    rated_fields: set = field(default_factory=set)  # the fields the rated pairs' records have
    failed_keyed: int = 0  # pairs that failed (not scored) whose record has the field

    def note_failed(self, fields: Iterable[str]) -> None:
        """Note a pair that failed, by its record's field names: a ``human_key`` some failed
        pair has is no typo, so :meth:`check_key` does not call it one."""
        self.failed_keyed += self.human_key in set(fields)

    def add(self, pair: PairScore) -> bool:
        """Count one scored pair; False (and counted in ``unrated``) when it has no numeric rating."""
        self.fields.update(pair.fields)
        self.fields.update(pair.metadata or {})
        self.keyed += self.human_key in pair.fields or self.human_key in (pair.metadata or {})
        rating = numeric_rating(pair.field(self.human_key))
        if rating is None:
            self.unrated += 1
            return False
        self.ratings.append((pair.score, rating, pair.field(self.group_key) if self.group_key else None))
        self.rated_fields.update(pair.fields)
        self.rated_fields.update(pair.metadata or {})
        return True

    def check_key(self) -> None:
        """``ConfigError`` naming ``human_key`` (and the fields the pairs have) when pairs were
        scored and none of them has that field: a mistyped key, not pairs left unrated; the
        same for a ``group_key`` that no rated pair has (one group named None)."""
        from clsp.errors import ConfigError

        sides = {f"{s}{k}" for s in ("a", "b") for k in ("", "_audio", "_text", "_embedding", "_row")}
        rated = "the rated pairs'"

        def listed(names: set, whose: str) -> str:
            shown = sorted(names - sides)
            return (f"{whose} fields besides the two sides: {', '.join(shown[:12]) or 'none'}"
                    f"{', ...' if len(shown) > 12 else ''}")

        if self.unrated and not self.keyed and not self.failed_keyed:
            raise ConfigError(f"--human-key {self.human_key!r}: no pair record has this field "
                              f"({listed(self.fields, 'their')})")
        if self.unrated and not self.ratings and not self.failed_keyed:
            raise ConfigError(f"--human-key {self.human_key!r}: no pair has a numeric rating there ({self.keyed} "
                              f"of {self.unrated} scored pairs have the field, null or not a number); rate some "
                              "pairs, or leave --human-key out to score them only")
        if self.group_key and self.ratings and all(group is None for _, _, group in self.ratings):
            raise ConfigError(f"--group-key {self.group_key!r}: no rated pair record has this field "
                              f"({listed(self.rated_fields, rated)})")

    def summary(self, provenance: dict, n_boot: int = 1000) -> dict[str, Any]:
        """Pearson, Spearman and Kendall tau-b with 95% bootstrap CIs, overall and per group
        (``clsp.metrics.correlation.correlation_report``). Every report has the same keys
        whatever its size: a statistic or interval undefined for too few pairs is ``None``
        (``[None, None]`` for an interval), as README says."""
        from clsp.metrics.correlation import CORRELATIONS, correlation_report

        def report(rows):
            out = correlation_report([r[0] for r in rows], [r[1] for r in rows], n_boot=n_boot)
            if n_boot > 0:
                out.setdefault("ci_level", 0.95)
                for name in CORRELATIONS:
                    out.setdefault(f"{name}_ci", [None, None])
            return out

        summary = {"task": "similarity", "human_key": self.human_key, "model": provenance,
                   "overall": report(self.ratings)}
        if self.group_key:
            summary["group_key"] = self.group_key
            names = group_names([r[2] for r in self.ratings])
            summary["groups"] = {g: report([r for r, name in zip(self.ratings, names) if name == g])
                                 for g in sorted(set(names))}
        summary["unrated"] = self.unrated
        return summary
