"""The report's input: one or more result archives, their cases sorted by family and series.

Benchmark cases are named ``family[params]`` (``latency[ble]``, ``window_sweep[espnow]``,
``partition[optimal,wifi]``, see ``bench/``); each figure reads the runs of the families it needs.
A *series* is one transport of one archive: its label is the transport, or ``transport
(archive)`` when several archives hold the same transport. Every table of every archive is
concatenated with ``archive``, ``series`` and ``family`` columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinysplit.errors import TinysplitError

if TYPE_CHECKING:
    import pandas as pd

    from tinysplit.results.load import Archive

#: Transports in the order figures show them; other transports follow, sorted.
TRANSPORT_ORDER = ("ble", "wifi", "espnow")
_CASE = re.compile(r"(?P<family>[^\[\]]+)(?:\[(?P<params>[^\[\]]*)\])?")


class MissingDataError(TinysplitError):
    """The archives lack the records a figure or table needs (the message says which)."""


def parse_case(name: str) -> tuple[str, tuple[str, ...]]:
    """Split a case name ``family[p1,p2]`` into its family and parameters.

    A name without brackets is a family without parameters.
    """
    match = _CASE.fullmatch(name)
    if match is None:
        return name, ()
    params = match.group("params")
    return match.group("family"), tuple(p.strip() for p in params.split(",")) if params else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Runs:
    """Archives read for a report.

    Attributes:
        archives: the archives, in the order given.
        labels: one label per archive (its directory name; ``-2``... appended when two match).
        cases: one row per (archive, case): ``archive``, ``case``, ``family``, ``params``
            (tuple), ``transport``, ``series``.
        series: the series labels in display order.
        summary: every archive's ``summary.csv`` rows, with ``archive``, ``series``, ``family``.
        inferences: the ``inferences.csv`` rows, with the same three columns.
        links: the ``links.csv`` rows, likewise.
        energy: the ``energy.csv`` rows, likewise.
    """

    archives: tuple[Archive, ...]
    labels: tuple[str, ...]
    cases: pd.DataFrame
    series: tuple[str, ...]
    summary: pd.DataFrame
    inferences: pd.DataFrame
    links: pd.DataFrame
    energy: pd.DataFrame

    def of(self, table: str, family: str, *, what: str) -> pd.DataFrame:
        """Rows of ``table`` from runs of ``family``.

        Raises:
            MissingDataError: there are none; the message says ``what`` needed them.
        """
        frame: pd.DataFrame = getattr(self, table)
        rows = frame[frame["family"] == family]
        if rows.empty:
            holder = "the archive has" if len(self.archives) == 1 else "the archives have"
            raise MissingDataError(f"{what} needs {family}[...] runs; {holder} none")
        return rows

    def sort_series(self, frame: pd.DataFrame, keys: Sequence[str] = ()) -> pd.DataFrame:
        """``frame`` sorted by its ``series`` in display order, then by ``keys`` (stable)."""
        if frame.empty:
            return frame.reset_index(drop=True)
        rank = {s: i for i, s in enumerate(self.series)}
        ordered = frame.assign(_series=frame["series"].map(rank)).sort_values(
            ["_series", *keys], kind="stable"
        )
        return ordered.drop(columns="_series").reset_index(drop=True)

    def archive(self, label: str) -> Archive:
        """The archive with this label."""
        return self.archives[self.labels.index(label)]

    def plan(self, label: str, plan_id: str) -> dict[str, Any]:
        """The plan ``plan_id`` of archive ``label`` (as in its manifest's ``plans``).

        Raises:
            MissingDataError: the manifest does not hold it.
        """
        plans = self.archive(label).manifest.get("plans")
        plan = plans.get(plan_id) if isinstance(plans, dict) else None
        if not isinstance(plan, dict):
            raise MissingDataError(f"{label}: the manifest has no plan {plan_id!r}")
        return plan

    def case_configs(self, label: str) -> dict[tuple[str, int], dict[str, Any]]:
        """The manifest's ``config`` of every (case, run) of archive ``label``."""
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for entry in self.archive(label).manifest.get("cases") or []:
            if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
                out[(str(entry.get("case")), int(entry.get("run", 0)))] = entry["config"]
        return out


def load_runs(paths: Iterable[str | Path]) -> Runs:
    """Read the archives in ``paths`` (see :func:`tinysplit.results.load`).

    Raises:
        ConfigError: a path is not an archive, or an archive is damaged or too new to read.
        MissingDataError: no path was given.
    """
    from tinysplit.results import load

    return from_archives([load(p) for p in paths])


def from_archives(archives: Sequence[Archive]) -> Runs:
    """Label the cases of already loaded ``archives`` (see :class:`Runs`)."""
    import pandas as pd

    if not archives:
        raise MissingDataError("no archive given")
    labels = _labels([a.path.name or str(a.path) for a in archives])
    cases = []
    for label, archive in zip(labels, archives, strict=True):
        first = archive.summary.drop_duplicates("case")
        for case, transport in zip(first["case"], first["transport"], strict=True):
            family, params = parse_case(str(case))
            cases.append(
                {
                    "archive": label,
                    "case": str(case),
                    "family": family,
                    "params": params,
                    "transport": str(transport),
                }
            )
    frame = pd.DataFrame(cases, columns=["archive", "case", "family", "params", "transport"])
    archives_of = frame.groupby("transport")["archive"].nunique().to_dict()
    frame["series"] = [
        t if archives_of[t] == 1 else f"{t} ({a})"
        for a, t in zip(frame["archive"], frame["transport"], strict=True)
    ]
    order = sorted(
        set(zip(frame["archive"], frame["transport"], frame["series"], strict=True)),
        key=lambda x: (_transport_rank(x[1]), labels.index(x[0])),
    )
    tables = {
        name: _concat(
            [
                getattr(a, name).assign(archive=label)
                for label, a in zip(labels, archives, strict=True)
            ],
            frame,
        )
        for name in ("summary", "inferences", "links", "energy")
    }
    return Runs(
        archives=tuple(archives),
        labels=labels,
        cases=frame,
        series=tuple(dict.fromkeys(s for _, _, s in order)),
        **tables,
    )


def _concat(frames: list[pd.DataFrame], cases: pd.DataFrame) -> pd.DataFrame:
    """Stack one table of every archive and add each row's ``series`` and ``family``."""
    import pandas as pd

    stacked = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    keys = cases[["archive", "case", "series", "family"]]
    return stacked.merge(keys, on=["archive", "case"], how="left")


def _labels(names: Sequence[str]) -> tuple[str, ...]:
    """Unique labels: a repeated name gets ``-2``, ``-3``..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return tuple(out)


def _transport_rank(transport: str) -> tuple[int, str]:
    if transport in TRANSPORT_ORDER:
        return TRANSPORT_ORDER.index(transport), ""
    return len(TRANSPORT_ORDER), transport
