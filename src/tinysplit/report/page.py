"""Report pages: ``report.md`` (figures linked as PNG files) and a self-contained ``report.html``.

The HTML page embeds every figure as a PNG ``data:`` URI (no external resource) and escapes every
piece of text taken from the archives. Neither page holds a date or an absolute path, so the same
archive gives the same pages.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """How a table column is shown: header, unit scale and number format."""

    key: str
    header: str
    scale: float = 1.0
    fmt: str = ".4g"


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """One figure or table of the report.

    Attributes:
        id: file stem of the figure (``fig03_failure_rate``) or table id.
        title: heading.
        caption: what it shows and from which columns, with the values it is about.
        notes: one-line remarks (what is derived, what the archive does not record).
        png: path of the PNG relative to the report directory (None: no figure).
        png_bytes: contents of the PNG file, embedded in the HTML page (None: no figure).
        table: rows to show under the figure (None: none).
        columns: how to show them.
        skipped: why the section has no content (None: it has).
    """

    id: str
    title: str
    caption: str = ""
    notes: tuple[str, ...] = ()
    png: str | None = None
    png_bytes: bytes | None = None
    table: pd.DataFrame | None = None
    columns: tuple[Column, ...] = field(default_factory=tuple)
    skipped: str | None = None


def cell(value: Any, column: Column | None = None) -> str:
    """One table cell as text: numbers in the column's format, NaN and None as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and column is not None:
        return format(value * column.scale if column.scale != 1 else value, column.fmt)
    return str(value)


def _rows(section: Section) -> list[list[str]]:
    assert section.table is not None
    return [
        [cell(row[c.key], c) for c in section.columns]
        for row in section.table.to_dict(orient="records")
    ]


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return lines


def markdown(title: str, archives: pd.DataFrame, sections: Sequence[Section]) -> str:
    """The report as Markdown: archives, then every section, then the skipped ones."""
    lines = [f"# {title}", "", "Archives:", ""]
    lines += _md_table(list(archives.columns), [[cell(v) for v in r] for r in archives.values])
    for s in sections:
        if s.skipped is not None:
            continue
        lines += ["", f"## {s.title}", ""]
        if s.png is not None:
            lines += [f"![{_md_escape(s.title)}]({s.png})", ""]
        if s.caption:
            lines += [s.caption, ""]
        for note in s.notes:
            lines += [f"*Note:* {note}", ""]
        if s.table is not None:
            lines += _md_table([c.header for c in s.columns], _rows(s))
    skipped = [s for s in sections if s.skipped is not None]
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- **{s.title}**: {s.skipped}" for s in skipped]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 0.8rem 0; } figure img { max-width: 100%; height: auto; }
figcaption, .note { font-size: 0.9rem; } .note { color: #555; }
""".strip()


def _inline(text: str) -> str:
    """Escaped HTML of one line of text, with Markdown's `code` spans as ``<code>``."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</table>")
    return out


def html_page(title: str, archives: pd.DataFrame, sections: Sequence[Section]) -> str:
    """The report as one HTML file with the figures inline (no external resource)."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        "<p>Archives:</p>",
    ]
    out += _html_table(list(archives.columns), [[cell(v) for v in r] for r in archives.values])
    for s in sections:
        if s.skipped is not None:
            continue
        out.append(f'<section id="{esc(s.id)}">')
        out.append(f"<h2>{esc(s.title)}</h2>")
        if s.png_bytes is not None:
            data = base64.b64encode(s.png_bytes).decode("ascii")
            out.append("<figure>")
            out.append(f'<img src="data:image/png;base64,{data}" alt="{esc(s.title)}">')
            if s.caption:
                out.append(f"<figcaption>{_inline(s.caption)}</figcaption>")
            out.append("</figure>")
        elif s.caption:
            out.append(f"<p>{_inline(s.caption)}</p>")
        out += [f'<p class="note">Note: {_inline(n)}</p>' for n in s.notes]
        if s.table is not None:
            out += _html_table([c.header for c in s.columns], _rows(s))
        out.append("</section>")
    skipped = [s for s in sections if s.skipped is not None]
    if skipped:
        out += ['<section id="skipped">', "<h2>Skipped</h2>", "<ul>"]
        out += [f"<li><strong>{esc(s.title)}</strong>: {_inline(s.skipped or '')}</li>"
                for s in skipped]  # fmt: skip
        out += ["</ul>", "</section>"]
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
