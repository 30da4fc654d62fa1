"""Plots for the Dagster UI: a small PNG embedded in markdown metadata (`![..](data:image/png;base64,..)`, as
Dagster's tutorial does), drawn from exact cents.

A `Plot` keeps the data it drew (categories, one tuple of cents per series) beside the PNG, so a test asserts the
numbers behind the picture, not its pixels. Drawing is deterministic: matplotlib's object API on the Agg canvas (no
pyplot, no global state, safe in threads), the DejaVu Sans font matplotlib ships, fixed size and DPI, and no
metadata chunk in the PNG (Pillow writes it, as indexed colour). Money is cents, half up (formatting.cents) unless the caller passes statement
cents (money.largest_remainder_cents) as the reconciliation report's actuals do.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Sequence

from cycler import cycler
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from PIL import Image

from billing_pipeline.formatting import cents, money

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 3.0, 80  # 512 x 240 pixels: readable in the metadata panel, ~10-30 KB
PALETTE = 128  # colours kept in the PNG
MAX_SERIES = 8  # more tenants / services than this: the largest, the rest as one "others"
OTHERS = "others"
STYLE = {"font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 9, "axes.spines.top": False,
         "axes.spines.right": False, "figure.dpi": DPI, "savefig.dpi": DPI, "path.simplify": False,
         "axes.prop_cycle": cycler(color=["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3",
                                    "#937860", "#DA8BC3", "#8C8C8C", "#CCB974"])}


@dataclass(frozen=True)
class Plot:
    """A picture and the exact data it shows: `series[name][i]` is the amount (cents) at `categories[i]`."""

    title: str
    currency: str
    categories: tuple[str, ...]
    series: Mapping[str, tuple[Decimal, ...]]
    png: bytes = field(repr=False)

    def markdown(self) -> str:
        encoded = base64.b64encode(self.png).decode("ascii")
        return f"**{self.title}**\n\n![{self.title}](data:image/png;base64,{encoded})"


def _render(figure: Figure) -> bytes:
    """The figure as an indexed-colour PNG (a few flat colours: a third of the RGBA size), without metadata."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    out = io.BytesIO()
    image.convert("RGB").quantize(colors=PALETTE, method=Image.Quantize.FASTOCTREE).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _axes(title: str, currency: str):
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, loc="left")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.2f}"))  # money: cents, as the text
    axes.set_ylabel(currency)
    axes.grid(axis="y", linewidth=0.4, alpha=0.6)
    axes.set_axisbelow(True)
    return figure, axes


def keep_largest(amounts: Mapping[str, Sequence[Decimal]], limit: int = MAX_SERIES) -> dict[str, tuple[Decimal, ...]]:
    """At most `limit` series: the largest by total (ties by name), the rest summed as "others"."""
    ranked = sorted(amounts, key=lambda name: (-sum(amounts[name], Decimal(0)), name))
    if len(ranked) <= limit:
        return {name: tuple(amounts[name]) for name in sorted(amounts)}
    kept = {name: tuple(amounts[name]) for name in sorted(ranked[:limit - 1])}
    rest = ranked[limit - 1:]
    kept[OTHERS] = tuple(sum(values, Decimal(0)) for values in zip(*(amounts[name] for name in rest)))
    return kept


def grouped_bars(title: str, currency: str, categories: Sequence[str], series: Mapping[str, Sequence[Decimal]],
                 marked: Sequence[str] = ()) -> Plot:
    """Bars side by side per category (estimated vs actual per tenant); `marked` categories get a ⚑ label."""
    data = {name: tuple(cents(v) for v in values) for name, values in series.items()}
    with rc_context(STYLE):
        figure, axes = _axes(title, currency)
        width = 0.8 / max(len(data), 1)
        for index, (name, values) in enumerate(data.items()):
            offsets = [i + (index - (len(data) - 1) / 2) * width for i in range(len(categories))]
            axes.bar(offsets, [float(v) for v in values], width, label=name)
        axes.set_xticks(range(len(categories)),
                        [f"⚑ {c}" if c in marked else c for c in categories], rotation=30 if len(categories) > 5 else 0,
                        ha="right" if len(categories) > 5 else "center")
        for label in axes.get_xticklabels():
            if label.get_text().startswith("⚑"):
                label.set_color("#C44E52")
        axes.axhline(0, color="black", linewidth=0.6)
        axes.legend(frameon=False, ncols=len(data))
        png = _render(figure)
    return Plot(title, currency, tuple(categories), data, png)


def stacked_bars(title: str, currency: str, categories: Sequence[str],
                 series: Mapping[str, Sequence[Decimal]]) -> Plot:
    """One bar per category (tenant) stacked by series (service); credits (negative parts) stack below zero."""
    data = keep_largest({name: tuple(cents(v) for v in values) for name, values in series.items()})
    with rc_context(STYLE):
        figure, axes = _axes(title, currency)
        above = [0.0] * len(categories)
        below = [0.0] * len(categories)
        for name, values in data.items():
            heights = [float(v) for v in values]
            bottoms = [below[i] if h < 0 else above[i] for i, h in enumerate(heights)]
            axes.bar(range(len(categories)), heights, 0.6, bottom=bottoms, label=name)
            for i, h in enumerate(heights):
                (below if h < 0 else above)[i] += h
        axes.set_xticks(range(len(categories)), list(categories), rotation=30 if len(categories) > 5 else 0,
                        ha="right" if len(categories) > 5 else "center")
        axes.axhline(0, color="black", linewidth=0.6)
        axes.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
        png = _render(figure)
    return Plot(title, currency, tuple(categories), data, png)


def lines(title: str, currency: str, categories: Sequence[str], series: Mapping[str, Sequence[Decimal]],
          tick_every: int = 1) -> Plot:
    """One line per series (tenant) over the categories (days, months)."""
    data = keep_largest({name: tuple(cents(v) for v in values) for name, values in series.items()})
    with rc_context(STYLE):
        figure, axes = _axes(title, currency)
        for name, values in data.items():
            axes.plot(range(len(categories)), [float(v) for v in values], marker="o" if len(categories) <= 12 else None,
                      markersize=3, linewidth=1.2, label=name)
        ticks = list(range(0, len(categories), max(tick_every, 1)))
        axes.set_xticks(ticks, [categories[i] for i in ticks])
        axes.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
        png = _render(figure)
    return Plot(title, currency, tuple(categories), data, png)


def totals_line(plot: Plot) -> str:
    """The plot's series totals in words, under the picture: `acc-1 12.50 USD · acc-2 4.75 USD`."""
    return " · ".join(f"{name} {money(sum(values, Decimal(0)), plot.currency)}" for name, values in plot.series.items())
