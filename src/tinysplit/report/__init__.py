"""Reports: the paper's figures, the transport, partition and beyond-the-paper comparisons.

:func:`write_report` turns one or more archives into PNG and SVG figures, ``report.md`` and a
self-contained ``report.html`` (``tinysplit report``); ``docs/report.md`` describes every figure.
The data behind each figure comes from pure pandas functions (:mod:`tinysplit.report.paper`,
:mod:`~tinysplit.report.transports`, :mod:`~tinysplit.report.partitions`,
:mod:`~tinysplit.report.beyond`) that tests check; matplotlib is imported only while figures are
drawn, never by importing this package.
"""

from __future__ import annotations

from tinysplit.report.build import Report, write_report
from tinysplit.report.runs import MissingDataError, Runs, load_runs

__all__ = ["MissingDataError", "Report", "Runs", "load_runs", "write_report"]
