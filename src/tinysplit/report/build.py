"""Build a report: every figure and table the archives have data for, the rest skipped (why).

:func:`write_report` reads the archives, builds every section of
:data:`~tinysplit.report.sections.SECTIONS` (data, figure, caption), saves the figures (PNG + SVG
in ``figures/``) and writes ``report.md`` and a self-contained ``report.html``. A section whose
data the archives lack (:class:`~tinysplit.report.runs.MissingDataError`) is skipped with its
one-line reason; the others are still produced.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinysplit.errors import ConfigError
from tinysplit.fileio import current_umask
from tinysplit.report import page
from tinysplit.report.page import Section
from tinysplit.report.runs import MissingDataError, Runs, load_runs
from tinysplit.report.sections import SECTIONS, Builder
from tinysplit.report.style import save, series_colors, style

if TYPE_CHECKING:
    import pandas as pd

TITLE = "tinysplit report"
#: Files and folders a report directory holds; ``--out`` refuses a directory with anything else.
REPORT_FILES = frozenset({"report.md", "report.html", "figures"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A written report.

    Attributes:
        out: the report directory.
        markdown: ``out/report.md``.
        html: ``out/report.html``.
        sections: every section in page order, skipped ones included (``skipped`` says why).
    """

    out: Path
    markdown: Path
    html: Path
    sections: tuple[Section, ...]

    @property
    def skipped(self) -> tuple[Section, ...]:
        """The sections the archives had no data for."""
        return tuple(s for s in self.sections if s.skipped is not None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: paths and, per section, its figure files or why it was skipped."""
        return {
            "out": str(self.out),
            "markdown": str(self.markdown),
            "html": str(self.html),
            "sections": [
                {
                    "id": s.id,
                    "title": s.title,
                    "files": (
                        [s.png, s.png.removesuffix(".png") + ".svg"] if s.png is not None else []
                    ),
                    "notes": list(s.notes),
                    "skipped": s.skipped,
                }
                for s in self.sections
            ],
        }


def write_report(paths: Sequence[str | Path], out: str | Path | None = None) -> Report:
    """Write the report of the archives in ``paths`` to ``out``.

    Args:
        paths: one or more archive directories.
        out: report directory (created; a previous report there is replaced). Default for one
            archive: ``<archive>/report``; required for several.

    Raises:
        ConfigError: a path is not a readable archive, ``out`` is missing for several archives,
            or ``out`` holds files that are not a report's.
    """
    if not paths:
        raise ConfigError("name at least one archive directory")
    runs = load_runs(paths)
    if out is None:
        if len(paths) > 1:
            raise ConfigError("a report of several archives needs --out DIR")
        out = Path(paths[0]) / "report"
    target = _prepare(Path(out))
    colors = series_colors(runs.series)
    sections = []
    for section_id, title, builder in SECTIONS:
        sections.append(_section(runs, colors, target, section_id, title, builder))
    archives = _archives_table(runs)
    md = _write_text(target / "report.md", page.markdown(TITLE, archives, sections))
    html_path = _write_text(target / "report.html", page.html_page(TITLE, archives, sections))
    return Report(out=target, markdown=md, html=html_path, sections=tuple(sections))


def _section(runs: Runs, colors: Mapping[str, str], target: Path, section_id: str, title: str,
             builder: Builder) -> Section:  # fmt: skip
    """Build, draw and save one section (skipped with the reason when data is missing)."""
    with style(section_id):
        try:
            drawn = builder(runs, colors)
        except MissingDataError as exc:
            return Section(id=section_id, title=title, skipped=str(exc))
        section = Section(
            id=section_id,
            title=title,
            caption=drawn.caption,
            notes=drawn.notes,
            table=drawn.table,
            columns=drawn.columns,
        )
        if drawn.figure is None:
            return section
        png, _ = save(drawn.figure, target / "figures" / section_id)
    return replace(section, png=png.relative_to(target).as_posix(), png_bytes=png.read_bytes())


def _prepare(out: Path) -> Path:
    """Create ``out`` (and ``out/figures``), or clear the figures of a previous report there."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: not a directory")
    if out.is_dir():
        # Besides a report's files, only the temporary files of an interrupted write.
        others = sorted(
            p.name
            for p in out.iterdir()
            if p.name not in REPORT_FILES
            and not p.name.startswith((".report.md.", ".report.html."))
        )
        if others:
            raise ConfigError(
                f"--out {out} holds other files ({', '.join(others[:3])}): give a new or empty "
                "directory, or a previous report's"
            )
    figures_dir = out / "figures"
    try:
        figures_dir.mkdir(parents=True, exist_ok=True)
        for old in figures_dir.iterdir():
            if old.suffix in (".png", ".svg") and old.is_file():
                old.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be written: {exc.strerror or exc}") from exc
    return out


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` atomically (temporary file in the same directory, then rename)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def _archives_table(runs: Runs) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for label, archive in zip(runs.labels, runs.archives, strict=True):
        m = archive.manifest
        rows.append(
            {
                "archive": label,
                "testbed": m.get("testbed"),
                "transport": m.get("transport"),
                "git sha": m.get("git_sha"),
                "complete": bool(m.get("complete")),
                "created (UTC)": m.get("created_utc"),
                "cases": int(archive.summary["case"].nunique()),
                "runs": len(archive.summary),
            }
        )
    return pd.DataFrame(rows)
