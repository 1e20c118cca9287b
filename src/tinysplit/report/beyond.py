"""The data behind "Beyond the paper": each technique against the paper configuration.

``bench/test_beyond_paper.py`` records, per (technique, transport, spare boards), latency rounds
``beyond[technique,transport,spare<n>]`` (one inference on an idle pipeline per run) and a
back-to-back stream ``beyond_stream[technique,transport,spare<n>]``; the runs' ``extra`` holds
``technique`` and ``spare`` too. Where each stage ran is the manifest's ``cases[].placement``, the
modelled period the plan's ``deployment`` (``docs/plan-format.md``).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from tinysplit.report.runs import MissingDataError, Runs, parse_case

if TYPE_CHECKING:
    import pandas as pd

#: Techniques in display order (``bench/test_beyond_paper.py``); others follow, sorted.
TECHNIQUE_ORDER = ("paper", "cuts", "placement", "window", "link", "replication", "joint", "all")
#: Case families: latency rounds, and the stream that gives the throughput.
LATENCY_FAMILY = "beyond"
STREAM_FAMILY = "beyond_stream"
#: The reference every ratio is taken against: the paper configuration, no spare board.
REFERENCE = ("paper", 0)
_SPARE = re.compile(r"spare(\d+)")


def beyond_table(runs: Runs) -> pd.DataFrame:
    """One row per (series, technique, spare boards) of the ``beyond`` and ``beyond_stream`` runs.

    Columns: ``series``, ``technique``, ``spare`` (boards beyond the session's, int),
    ``stages``, ``replicas`` (per stage, ``2,2,1``), ``placement`` (per stage the physical
    boards running it, 1-based as in the archive's tables: ``1,2 / 3,4 / 5``), ``boards_used``,
    ``boards`` (physical boards of the run, used or not), ``link_profile`` (the summary's
    ``profile``), ``adaptive_window`` (bool), ``modelled_period_s`` (the plan deployment's
    ``period_s``, else its slowest stage, compute + send), ``latency_p50_s`` (median over the
    completed inferences of the ``beyond`` runs, s), ``throughput_per_s`` (the
    ``beyond_stream`` run's steady rate, inferences / s; NaN without one) and
    ``throughput_vs_paper`` (ratio to technique ``paper`` with no spare board, same series).

    Raises:
        MissingDataError: the archives hold no ``beyond[...]`` or ``beyond_stream[...]`` run.
    """
    import pandas as pd

    from tinysplit.report.transports import case_table

    summary = runs.summary[runs.summary["family"].isin((LATENCY_FAMILY, STREAM_FAMILY))]
    if summary.empty:
        holder = "the archive has" if len(runs.archives) == 1 else "the archives have"
        raise MissingDataError(
            f"beyond the paper needs beyond[...] runs; {holder} none "
            "(bench/test_beyond_paper.py records them)"
        )
    metrics = case_table(runs).set_index(["archive", "case"])
    keyed: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for (label, case), group in summary.groupby(["archive", "case"], sort=False):
        family, params = parse_case(str(case))
        first = group.iloc[0]
        technique, spare = _technique(params, first)
        key = (str(label), str(first["series"]), technique, spare)
        if key not in keyed:
            keyed[key] = {
                **_describe(runs, str(label), str(case), first),
                "latency_p50_s": math.nan,
                "throughput_per_s": math.nan,
            }
        # The latency comes from the idle-pipeline rounds, the throughput from the stream.
        metric = "latency_p50_s" if family == LATENCY_FAMILY else "throughput_per_s"
        keyed[key][metric] = _float(metrics.at[(label, case), metric])
    frame = pd.DataFrame(
        [{"series": s, "technique": t, "spare": n, **row} for (_, s, t, n), row in keyed.items()]
    )
    paper = frame[(frame["technique"] == REFERENCE[0]) & (frame["spare"] == REFERENCE[1])]
    reference = paper.set_index("series")["throughput_per_s"]
    frame["throughput_vs_paper"] = [
        t / reference[s] if s in reference.index and reference[s] else math.nan
        for s, t in zip(frame["series"], frame["throughput_per_s"], strict=True)
    ]
    others = sorted(set(frame["technique"]) - set(TECHNIQUE_ORDER))
    rank = {t: i for i, t in enumerate((*TECHNIQUE_ORDER, *others))}
    ranked = frame.assign(_technique=frame["technique"].map(rank))
    ordered = runs.sort_series(ranked, ["_technique", "spare"]).drop(columns="_technique")
    columns = ["series", "technique", "spare", "stages", "replicas", "placement", "boards_used",
               "boards", "link_profile", "adaptive_window", "modelled_period_s",
               "latency_p50_s", "throughput_per_s", "throughput_vs_paper"]  # fmt: skip
    return ordered[columns]


def _technique(params: tuple[str, ...], first: pd.Series) -> tuple[str, int]:
    """(technique, spare boards) from ``beyond[technique,transport,spare<n>]``, else the extra."""
    technique = params[0] if params else str(first.get("extra_technique", ""))
    match = _SPARE.fullmatch(params[2]) if len(params) > 2 else None
    if match is not None:
        return technique, int(match.group(1))
    spare = first.get("extra_spare", 0)
    return technique, 0 if spare is None or spare != spare else int(spare)


def _describe(runs: Runs, label: str, case: str, first: pd.Series) -> dict[str, Any]:
    """What ran: stages, replicas and boards (the manifest's placement), profile, period."""
    plan = runs.plan(label, str(first["plan"]))
    stages = plan.get("stages") or []
    run = int(first["run"])
    entry = next(
        (
            c
            for c in runs.archive(label).manifest.get("cases") or []
            if isinstance(c, dict) and c.get("case") == case and int(c.get("run", 0)) == run
        ),
        {},
    )
    deployment = plan.get("deployment") if isinstance(plan.get("deployment"), dict) else None
    placement = entry.get("placement") or (deployment or {}).get("boards")
    if placement:
        groups = [[int(b) for b in g] for g in placement]
    else:  # every stage on its own board
        groups = [[k] for k in range(len(stages))]
    config = entry.get("config")
    adaptive = bool(config.get("adaptive_window", False)) if isinstance(config, dict) else False
    period = (deployment or {}).get("period_s")
    if period is None:
        period = max(
            (float(s["estimated_compute_s"]) + float(s["estimated_send_s"]) for s in stages),
            default=math.nan,
        )
    return {
        "stages": len(groups),
        "replicas": ",".join(str(len(g)) for g in groups),
        "placement": " / ".join(",".join(str(b + 1) for b in g) for g in groups),
        "boards_used": sum(len(g) for g in groups),
        "boards": int(first["boards"]),
        "link_profile": str(first["profile"]),
        "adaptive_window": adaptive,
        "modelled_period_s": float(period),
    }


def _float(value: Any) -> float:
    return float(value)
