"""The committed example archive and its report agree (regenerate with ``tox -e report``)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from tinysplit.report import load_runs
from tinysplit.report.page import cell
from tinysplit.report.partitions import partition_table
from tinysplit.report.sections import PARTITION_COLUMNS, TRANSPORT_COLUMNS
from tinysplit.report.transports import transport_table

EXAMPLE = Path(__file__).resolve().parents[2] / "results" / "examples" / "paper-pipeline-sim"


def test_example_report_tables_are_its_archives_numbers() -> None:
    runs = load_runs([EXAMPLE])
    assert runs.series == ("ble", "wifi", "espnow")
    md = (EXAMPLE / "report" / "report.md").read_text(encoding="utf-8")
    for table, columns in (
        (transport_table(runs), TRANSPORT_COLUMNS),
        (partition_table(runs), PARTITION_COLUMNS),
    ):
        for row in table.to_dict(orient="records"):
            assert "| " + " | ".join(cell(row[c.key], c) for c in columns) + " |" in md


def test_example_report_links_and_embeds_every_figure() -> None:
    report = EXAMPLE / "report"
    md = (report / "report.md").read_text(encoding="utf-8")
    html = (report / "report.html").read_text(encoding="utf-8")
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(links) == len(embedded) == 12
    for link, data in zip(links, embedded, strict=True):
        assert base64.b64decode(data) == (report / link).read_bytes()
    # Only the PNGs are committed (.gitignore): the SVG twins come back with `tox -e report`.
    pngs = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert pngs == sorted(Path(link).name for link in links)
