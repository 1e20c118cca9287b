"""Result archives: one directory per benchmark run with a manifest and CSV tables.

:class:`ArchiveWriter` records simulated runs (atomically, safe against interruption) and
:func:`load` reads an archive back as pandas DataFrames; ``docs/results-format.md`` documents the
format. Importing this package does not import pandas.
"""

from __future__ import annotations

from tinysplit.results.archive import ArchiveWriter
from tinysplit.results.load import Archive, load
from tinysplit.results.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Archive", "ArchiveWriter", "load"]
