"""Whole reports: files, a valid self-contained HTML page, skipped figures, bad input, CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.report.archives import Recorded, write_bench_like
from tinysplit.cli import main
from tinysplit.report import Report, write_report
from tinysplit.report.sections import SECTIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input"}
#: A directory name with markup characters: the page must show it as text.
ODD_NAME = 'run <b>&"1"'


class _Page(HTMLParser):
    """Collects images, text and nesting errors of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def full(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of the bench-like archive, copied under a name with markup characters."""
    odd = tmp_path_factory.mktemp("odd") / ODD_NAME
    shutil.copytree(recorded.path, odd)
    return write_report([odd], tmp_path_factory.mktemp("report"))


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_figure_with_data_is_written(full: Report) -> None:
    written = {s.id for s in full.sections if s.png is not None}
    assert written == {section_id for section_id, _, _ in SECTIONS}
    assert "beyond" in written and full.skipped == ()
    for section in full.sections:
        if section.png is None:
            continue
        png = full.out / section.png
        assert png.read_bytes().startswith(PNG_SIGNATURE)
        svg = ET.parse(png.with_suffix(".svg")).getroot()
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        assert "Date" not in png.with_suffix(".svg").read_text(encoding="utf-8")


def test_html_page_is_valid_self_contained_and_escaped(full: Report) -> None:
    text = full.html.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    assert page.errors == [] and page.stack == []
    assert text.startswith("<!DOCTYPE html>")
    assert not {"script", "link", "iframe"} & set(page.tags)
    figures = [s for s in full.sections if s.png is not None]
    assert len(page.images) == len(figures)
    for image, section in zip(page.images, figures, strict=True):
        src = image["src"] or ""
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_SIGNATURE)
        assert data == (full.out / str(section.png)).read_bytes()
        assert image["alt"] == section.title
    assert ODD_NAME in "".join(page.text)  # shown as text...
    assert "<b>" not in text and "run &lt;b&gt;&amp;&quot;1&quot;" in text  # ...escaped
    assert "Skipped" not in page.text


def test_markdown_links_the_figures_and_lists_what_was_skipped(full: Report) -> None:
    md = full.markdown.read_text(encoding="utf-8")
    for section in full.sections:
        if section.png is not None:
            assert f"]({section.png})" in md
    assert "## Skipped" not in md
    assert "| ble | joint | 1 | 2 | 3,1 | 1,2,4 / 3 | paper | yes | " in md  # the beyond table
    assert "| ble | " in md and "| espnow | " in md  # the transport table
    assert "Pearson r of time with bytes: ble +" in md


@pytest.mark.skipif(
    not (shutil.which("chromium-headless-shell") or shutil.which("chromium")),
    reason="headless Chromium is not installed (apt-get install chromium-headless-shell)",
)
def test_chromium_renders_the_figures(full: Report, tmp_path: Path) -> None:
    from PIL import Image

    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    shot = tmp_path / "page.png"
    subprocess.run(
        [str(browser), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=1200,1400", full.html.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(shot) as image:
        colors = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert (0x1F, 0x77, 0xB4) in colors  # the first series' bars: the embedded PNG was drawn


def test_missing_data_skips_figures_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = write_bench_like(tmp_path / "results", families=("stream",)).path
    assert main(["report", str(archive)]) == 0  # default: ARCHIVE/report
    out = " ".join(capsys.readouterr().out.split())
    report = archive / "report"
    drawn = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert drawn == ["current.png", "timeline.png", "transports.png"]
    assert "skipped: the failure rate by window (Fig. 3) needs window_sweep[...] runs" in out
    assert "note (transports): latency: the archive has no latency[...] runs" in out
    md = (report / "report.md").read_text(encoding="utf-8")
    skipped = md.split("## Skipped")[1]
    assert (
        "- **Fig. 3: failure rate vs window size per device**: the failure rate by window "
        "(Fig. 3) needs window_sweep[...] runs; the archive has none"
    ) in skipped
    assert "**Fig. 10: intermediate tensor size per layer**" in skipped
    beyond = (
        "- **Beyond the paper: placement, windows, replication**: beyond the paper needs "
        "beyond[...] runs; the archive has none (bench/test_beyond_paper.py records them)"
    )
    assert beyond in skipped
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "Skipped" in html and "beyond the paper needs beyond[...] runs" in html

    # Written again over itself: byte for byte the same files, and no stale figure left.
    before = _tree(report)
    (report / "figures" / "stale.png").write_bytes(PNG_SIGNATURE)
    again = write_report([archive])
    assert again.out == report and _tree(report) == before
    assert again.to_dict()["sections"][0]["files"] == [
        "figures/transports.png",
        "figures/transports.svg",
    ]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not-archive", "not a result archive (no manifest.json)"),
        ("too-new", "archive schema_version 99 is newer than this tinysplit reads"),
        ("two-without-out", "a report of several archives needs --out DIR"),
        ("out-not-empty", "holds other files (notes.txt)"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
    message: str,
) -> None:  # fmt: skip
    argv = ["report", str(recorded.path), "--out", str(tmp_path / "out")]
    if case == "not-archive":
        argv[1] = str(tmp_path)
    elif case == "too-new":
        copy = tmp_path / "copy"
        shutil.copytree(recorded.path, copy)
        manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
        (copy / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
        argv[1] = str(copy)
    elif case == "two-without-out":
        argv = ["report", str(recorded.path), str(recorded.path)]
    else:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "notes.txt").write_text("mine")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out" / "report.html").exists()
