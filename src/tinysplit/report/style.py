"""How figures look and are saved: fixed matplotlib settings so the same data gives the same files.

matplotlib is imported only inside these functions (importing ``tinysplit`` never loads it). No
pyplot and no global backend: figures are plain ``matplotlib.figure.Figure`` objects rendered by
Agg (PNG) and the SVG backend. Saved files carry no date and no matplotlib version, and SVG ids
come from a fixed salt per figure, so a report of the same archive is byte-identical on the same
matplotlib version.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Series colours in display order (matplotlib's tab10, fixed here so reports do not depend on
#: the user's matplotlibrc).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: Colours of the per-board activities and energy states.
ACTIVITY_COLORS = {"receive": "#9ecae1", "inference": "#31a354", "send": "#fd8d3c"}
STATE_COLORS = {
    "idle": "#bdbdbd",
    "inference": "#31a354",
    "radio_tx": "#fd8d3c",
    "radio_rx": "#6baed6",
}
#: Resolution of the PNG files (pixels per inch).
PNG_DPI = 100
#: Colours in the PNG files' palette.
PNG_COLORS = 64

_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs everywhere
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 8.5,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": None,  # set in style() (needs matplotlib's cycler)
    "figure.dpi": PNG_DPI,
    "savefig.dpi": PNG_DPI,
    "svg.fonttype": "none",  # text stays text: small, searchable files
    "path.simplify": True,
}


def series_colors(series: Sequence[str]) -> dict[str, str]:
    """One colour per series, in order (the palette repeats after ten)."""
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}


@contextmanager
def style(figure_id: str) -> Iterator[None]:
    """Fixed matplotlib settings while a figure is drawn and saved.

    ``svg.hashsalt`` is the figure id, so the ids inside each SVG are stable and differ between
    figures.
    """
    import matplotlib as mpl
    from cycler import cycler

    rc = dict(_RC, **{"axes.prop_cycle": cycler(color=PALETTE), "svg.hashsalt": figure_id})
    with mpl.rc_context(cast(Any, rc)):  # the stubs list every key; ours are valid ones
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure with the constrained layout (call inside :func:`style`)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def panels(
    count: int, *, width_in: float = 3.4, height_in: float = 2.8, per_row: int = 3
) -> tuple[Figure, list[Any]]:
    """A figure of ``count`` panels side by side, up to ``per_row`` per row."""
    columns = min(count, per_row)
    rows = -(-count // columns)
    fig = new_figure(width_in * columns, height_in * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def save(fig: Figure, base: Path) -> tuple[Path, Path]:
    """Write ``base.png`` and ``base.svg`` without dates or version strings (inside
    :func:`style`); returns both paths.

    The PNG is reduced to a palette of :data:`PNG_COLORS` colours (median cut, deterministic):
    the figures are flat colours and antialiased edges, and the file shrinks about threefold.
    """
    import io

    from PIL import Image  # matplotlib depends on Pillow

    png, svg = base.with_suffix(".png"), base.with_suffix(".svg")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    buffer.seek(0)
    with Image.open(buffer) as image:
        flat = image.convert("RGB").quantize(colors=PNG_COLORS, method=Image.Quantize.MEDIANCUT)
    flat.save(png, format="PNG", optimize=True)
    # The PNG's draw placed every axes; keeping them saves the layout pass, a third of the time.
    fig.set_layout_engine("none")
    fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png, svg
