"""Compare two result archives case by case: per metric A, B, difference, regressions.

Every case (``latency[ble]``, ``stream[wifi]``...) is reduced to one value per metric over all
its runs (:func:`case_metrics`); :func:`compare` matches the cases of two archives by name and
reports, per case and metric, A, B, ``B - A`` and the change in percent of A. Thresholds
(:class:`Threshold`, ``--fail-on metric:pct`` on the command line) know each metric's direction:
a higher latency, energy or failure rate is a regression, so is a lower throughput. pandas is
imported only when a function runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tinysplit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from tinysplit.results.load import Archive


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One figure compared between archives.

    Attributes:
        name: column name in :func:`case_metrics` and in ``--fail-on``.
        unit: unit of the value (``s``, ``1/s``, ``J``, or ``""`` for a ratio).
        higher_is_better: True for throughput; a rise of the others is a regression.
        description: how the value is reduced over the case's runs.
    """

    name: str
    unit: str
    higher_is_better: bool
    description: str


#: The metrics :func:`compare` reports, in display order.
METRICS: Mapping[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            name="latency_p50_s",
            unit="s",
            higher_is_better=False,
            description="median latency over every completed inference of the case's runs",
        ),
        Metric(
            name="latency_p95_s",
            unit="s",
            higher_is_better=False,
            description="95th percentile latency over every completed inference of the case",
        ),
        Metric(
            name="latency_mean_s",
            unit="s",
            higher_is_better=False,
            description="mean latency over every completed inference of the case",
        ),
        Metric(
            name="throughput_per_s",
            unit="1/s",
            higher_is_better=True,
            description="median over runs of the steady-state results per second (summary.csv)",
        ),
        Metric(
            name="energy_per_inference_j",
            unit="J",
            higher_is_better=False,
            description="energy of every board over all runs / completed inferences",
        ),
        Metric(
            name="failure_rate",
            unit="",
            higher_is_better=False,
            description="failed inferences / inferences injected, over all runs",
        ),
        Metric(
            name="network_to_inference",
            unit="",
            higher_is_better=False,
            description="summed transfer time / summed compute time over all runs",
        ),
    )
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """Fail when ``metric`` gets worse by more than ``pct`` percent of A's value.

    Attributes:
        metric: a key of :data:`METRICS`.
        pct: allowed worsening in percent (>= 0); worse means higher, or lower for throughput.
    """

    metric: str
    pct: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"unknown metric {self.metric!r} (valid: {', '.join(METRICS)})")
        if not 0 <= self.pct < math.inf:
            raise ConfigError(f"threshold of {self.metric} must be a percentage >= 0")

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Read ``metric:pct`` (``latency_p95_s:5`` or ``latency_p95_s:5%``).

        Raises:
            ConfigError: not of that form, an unknown metric (the message lists the valid ones)
                or a negative or non-numeric percentage.
        """
        name, sep, pct = text.partition(":")
        if not sep:
            raise ConfigError(f"expected METRIC:PCT, got {text!r} (metrics: {', '.join(METRICS)})")
        try:
            value = float(pct.strip().removesuffix("%"))
        except ValueError:
            raise ConfigError(f"threshold {text!r}: {pct!r} is not a percentage") from None
        return cls(metric=name.strip(), pct=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """The result of :func:`compare`.

    Attributes:
        a: path of archive A (the baseline), as given.
        b: path of archive B.
        rows: one row per (case, metric) where A or B has a value: ``case``, ``metric``, ``a``,
            ``b``, ``delta`` (B - A), ``delta_pct`` (100 x delta / |A|; +-inf when A is 0 and B
            is not), ``worse_pct`` (``delta_pct`` signed so that positive is worse; inf when A
            has a value and B has none), ``threshold_pct`` (NaN: none) and ``regression``.
        only_a: cases only A has (not compared).
        only_b: cases only B has.
        thresholds: the thresholds applied.
    """

    a: str
    b: str
    rows: pd.DataFrame
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    thresholds: tuple[Threshold, ...]

    @property
    def regressions(self) -> int:
        """Number of (case, metric) rows worse than their threshold."""
        return int(self.rows["regression"].sum())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (NaN and infinities as null, with ``delta_pct`` infinities as text)."""
        rows = [
            {
                key: _json_number(value) if isinstance(value, float) else value
                for key, value in row.items()
            }
            for row in self.rows.to_dict(orient="records")
        ]
        return {
            "a": self.a,
            "b": self.b,
            "thresholds": [{"metric": t.metric, "pct": t.pct} for t in self.thresholds],
            "rows": rows,
            "only_in_a": list(self.only_a),
            "only_in_b": list(self.only_b),
            "regressions": self.regressions,
        }


def case_metrics(archive: Archive) -> pd.DataFrame:
    """One row per case of ``archive`` (in recording order) with every metric of :data:`METRICS`.

    Columns: ``case``, ``transport``, ``runs``, ``inferences``, ``completed``, ``failed``, then
    the metrics (NaN where the case has no value, e.g. no latency when nothing completed, no
    throughput for single-inference runs). Latencies are pooled over every completed inference
    of every run (injection at board 1 to the last board's ``inference_end_s``), as
    ``summarize`` computes them for one run.
    """
    import numpy as np
    import pandas as pd

    summary = archive.summary
    latencies = _latencies(archive)
    rows = []
    for case, runs in summary.groupby("case", sort=False):
        lat = latencies.get(str(case), np.array([]))
        inferences = int(runs["inferences"].sum())
        completed = int(runs["completed"].sum())
        inference_s = float(runs["inference_s"].sum())
        throughput = runs["throughput_per_s"].dropna()
        rows.append(
            {
                "case": str(case),
                "transport": str(runs["transport"].iloc[0]),
                "runs": len(runs),
                "inferences": inferences,
                "completed": completed,
                "failed": int(runs["failed"].sum()),
                "latency_p50_s": float(np.percentile(lat, 50)) if len(lat) else math.nan,
                "latency_p95_s": float(np.percentile(lat, 95)) if len(lat) else math.nan,
                "latency_mean_s": float(np.mean(lat)) if len(lat) else math.nan,
                "throughput_per_s": float(throughput.median()) if len(throughput) else math.nan,
                "energy_per_inference_j": (
                    float(runs["energy_total_j"].sum()) / completed if completed else math.nan
                ),
                "failure_rate": (
                    float(runs["failed"].sum()) / inferences if inferences else math.nan
                ),
                "network_to_inference": (
                    float(runs["network_s"].sum()) / inference_s if inference_s else math.nan
                ),
            }
        )
    columns = ["case", "transport", "runs", "inferences", "completed", "failed", *METRICS]
    return pd.DataFrame(rows, columns=columns)


def _latencies(archive: Archive) -> dict[str, Any]:
    """Latency (s) of every completed inference, per case (numpy arrays)."""
    inf = archive.inferences
    done = inf[inf["completed"]]
    if done.empty:
        return {}
    keys = ["case", "run", "inference"]
    last = done.loc[done.groupby(keys, sort=False)["stage"].idxmax(), [*keys, "inference_end_s"]]
    first = done.loc[done["stage"] == 1, [*keys, "injected_s"]]
    both = last.merge(first, on=keys, how="inner")
    both["latency_s"] = both["inference_end_s"] - both["injected_s"]
    return {
        str(case): group["latency_s"].dropna().to_numpy()
        for case, group in both.groupby("case", sort=False)
    }


def compare(
    a: Archive,
    b: Archive,
    thresholds: Sequence[Threshold] = (),
    *,
    labels: tuple[str, str] | None = None,
) -> Comparison:
    """Compare archive B against baseline A case by case.

    Args:
        a: the baseline archive.
        b: the archive checked against it.
        thresholds: allowed worsening per metric; a (case, metric) row worse than its metric's
            threshold is a regression. A value A has and B lacks (nothing completed in B) is
            worse than any threshold.
        labels: names of A and B in the result (default: their paths).

    Raises:
        ConfigError: the archives have no case in common, or two thresholds name one metric.
    """
    import pandas as pd

    names = [t.metric for t in thresholds]
    if len(set(names)) != len(names):
        raise ConfigError("give one threshold per metric")
    limits = {t.metric: t.pct for t in thresholds}
    ma = case_metrics(a).set_index("case")
    mb = case_metrics(b).set_index("case")
    common = [c for c in ma.index if c in mb.index]
    if not common:
        raise ConfigError(f"{a.path} and {b.path} have no case in common: nothing to compare")
    rows = []
    for case in common:
        for metric in METRICS.values():
            va, vb = _value(ma, case, metric.name), _value(mb, case, metric.name)
            if math.isnan(va) and math.isnan(vb):
                continue
            delta = vb - va
            pct = _pct(va, vb)
            worse = -pct if metric.higher_is_better else pct
            if not math.isnan(va) and math.isnan(vb):
                worse = math.inf
            limit = limits.get(metric.name, math.nan)
            rows.append(
                {
                    "case": case,
                    "metric": metric.name,
                    "a": va,
                    "b": vb,
                    "delta": delta,
                    "delta_pct": pct,
                    "worse_pct": worse,
                    "threshold_pct": limit,
                    "regression": bool(not math.isnan(limit) and worse > limit),
                }
            )
    columns = ["case", "metric", "a", "b", "delta", "delta_pct", "worse_pct", "threshold_pct"]
    frame = pd.DataFrame(rows, columns=[*columns, "regression"])
    frame["regression"] = frame["regression"].astype(bool)
    label_a, label_b = labels or (str(a.path), str(b.path))
    return Comparison(
        a=label_a,
        b=label_b,
        rows=frame,
        only_a=tuple(str(c) for c in ma.index if c not in mb.index),
        only_b=tuple(str(c) for c in mb.index if c not in ma.index),
        thresholds=tuple(thresholds),
    )


def _value(frame: pd.DataFrame, case: Any, column: str) -> float:
    value: Any = frame.at[case, column]
    return float(value)


def _pct(a: float, b: float) -> float:
    """Change from ``a`` to ``b`` in percent of ``|a|`` (NaN when either is missing)."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if a == 0:
        return 0.0 if b == 0 else math.copysign(math.inf, b)
    return (b - a) / abs(a) * 100.0


def _json_number(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
