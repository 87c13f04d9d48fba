"""Figures with matplotlib, as PNG and SVG whose bytes depend only on the data (no timestamps)."""

import io
from pathlib import Path

import matplotlib
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

matplotlib.rcParams["svg.hashsalt"] = "oak"  # fixed element ids: the same figure gives the same SVG
NO_DATE = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


MARKER_POINTS = 3.5  # half a scatter or line marker's size: labels keep off every point, not only other labels
# Label offsets tried in turn, in points: beside the point on the right, moved up (+) or down (-), then on the left,
# then centred above or below it. The first that stays inside the figure and covers no label or point is kept, else
# the one that covers least.
LEADER_RISE = 12  # points: a label further above or below its point than this is linked to it by a line
RISES = (4, -11, 12, -19, 20, -27, 28, -35, 36, -43, 44, -51)
LABEL_OFFSETS = [(4, dy, "left") for dy in RISES] + [(-4, dy, "right") for dy in RISES] + [(0, dy, "center") for dy in (8, -16, 20, -28)]


def label_points(axes: Axes, points: list[tuple[float, float, str]], *, fontsize: float) -> None:
    """Label each (x, y, text) point beside it, where it overlaps no other label and no point and stays inside the
    axes (a label inside only the figure may touch its edge, or cross a neighbouring panel). Call it once the
    figure's layout is final: it measures the labels where they are drawn."""
    renderer = FigureCanvasAgg(axes.figure).get_renderer()
    frame = axes.bbox
    marker = MARKER_POINTS * axes.figure.dpi / 72  # in pixels
    centres = axes.transData.transform([(x, y) for x, y, _ in points])
    placed = [Bbox.from_extents(px - marker, py - marker, px + marker, py + marker) for px, py in centres]
    for x, y, text in sorted(points, key=lambda point: (point[1], point[0])):
        candidates = []
        for dx, dy, align in LABEL_OFFSETS:
            note = axes.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize, ha=align)
            box = note.get_window_extent(renderer)
            note.remove()
            outside = not (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1)
            covered = sum(_overlap(box, other) for other in placed)
            candidates.append((outside, covered, (dx, dy, align), box))
            if not outside and covered == 0:
                break
        _, _, (dx, dy, align), box = min(candidates, key=lambda candidate: candidate[:2])
        # a label moved away from its point gets a thin line to it, so that it is never read as a neighbour's
        leader = {"arrowstyle": "-", "color": "0.6", "linewidth": 0.5} if abs(dy) > LEADER_RISE else None
        axes.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize, ha=align, arrowprops=leader)
        placed.append(box)


def _overlap(box: Bbox, other: Bbox) -> float:
    """The area two boxes share, in square pixels."""
    shared = Bbox.intersection(box, other)
    return shared.width * shared.height if shared else 0.0


def figure_bytes(figure: Figure, format: str) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format, metadata=NO_DATE[format])
    return buffer.getvalue()


def figure_files(figure: Figure, folder: Path, name: str) -> dict[Path, bytes]:
    """`<name>.png` and `<name>.svg` under `folder`, by path: every figure is written both ways (PNG for pages, SVG to scale)."""
    return {folder / f"{name}.{format}": figure_bytes(figure, format) for format in ("png", "svg")}


LEGEND_ROWS = 24  # entries a legend column holds beside a plot before the next column starts
# A distinct look for each of up to 40 runs: the ten colours of tab10 with a solid line, then dashed, ...
RUN_STYLES = cycler(linestyle=["-", "--", ":", "-."]) * cycler(color=matplotlib.colormaps["tab10"].colors)


def training_curves(curves: dict[str, list[dict[str, float]]], key: str, label: str, *, title: str, error: bool = False) -> Figure:
    """`key` (in per cent) per epoch, or its error 100 - `key`, one line per run.

    No pyplot: no GUI backend, no global figure state. The legend sits beside the plot, never over it, and each run
    has its own colour and line style (ten colours, then the next line style).
    """
    columns = 1 + len(curves) // (LEGEND_ROWS + 1)
    height = max(4.0, 1 + 0.2 * min(len(curves), LEGEND_ROWS))  # the legend's column fits beside the plot
    figure = Figure(figsize=(6 + 2.2 * columns, height), dpi=120, layout="constrained")
    axes = figure.subplots()
    axes.set_prop_cycle(RUN_STYLES)
    for name, rows in curves.items():
        points = [(row["epoch"] + 1, 100 - row[key] if error else row[key]) for row in rows if key in row]
        axes.plot([epoch for epoch, _ in points], [value for _, value in points], marker="o", markersize=3, label=name)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(label)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, ncols=columns, handlelength=3.5)
    return figure


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names no other point matches or beats on both coordinates (higher is better), by x."""
    front = [name for name, (x, y) in points.items() if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points.values())]
    return sorted(front, key=lambda name: points[name][0])


def accuracy_vs_throughput(points: dict[str, tuple[float, float]], *, xlabel: str, title: str) -> Figure:
    """Top-1 (%) against measured throughput, one point per model, with the Pareto front drawn."""
    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.subplots()
    for x, y in points.values():
        axes.scatter(x, y)
    front = pareto_front(points)
    axes.plot([points[name][0] for name in front], [points[name][1] for name in front], linestyle="--", color="gray", label="Pareto front")
    axes.margins(0.15)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    label_points(axes, [(x, y, name) for name, (x, y) in points.items()], fontsize=8)
    return figure


KIND_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]  # a line style and marker per way of scaling


def series_styles(names: list[str]) -> dict[str, dict]:
    """A series named "<way of scaling>, <group>" ("depth, 128 px") gets its way's line style and marker and its
    group's colour, so that Fig. 4's depth and width lines at one resolution share a colour; series without groups
    are coloured by their way."""
    kinds = list(dict.fromkeys(name.split(", ")[0] for name in names))
    groups = list(dict.fromkeys(name.partition(", ")[2] for name in names))
    colours = matplotlib.colormaps["tab10"].colors
    styles = {}
    for name in names:
        kind, _, group = name.partition(", ")
        linestyle, marker = KIND_STYLES[kinds.index(kind) % len(KIND_STYLES)]
        colour = colours[(groups.index(group) if len(groups) > 1 else kinds.index(kind)) % len(colours)]
        styles[name] = {"linestyle": linestyle, "marker": marker, "color": colour}
    return styles


def scaling_figure(
    panels: dict[str, dict[str, list[tuple[float, float, str]]]], *, title: str, reference: tuple[float, str] | None = None
) -> Figure:
    """One panel per training length (and one of the paper's values, where it gives them): top-1 against
    GMACs, a line per way of scaling, each point labelled once (the base model starts several lines), and one
    legend for every panel, under them. `reference` (top-1, words) is a level the paper reads off its figure, drawn
    across the first panel (the paper's values, where there are any)."""
    names = sorted({series for lines in panels.values() for series in lines})
    styles = series_styles(names)
    figure = Figure(figsize=(max(6, 4.5 * len(panels)), 5), dpi=120)
    axes_list = figure.subplots(1, max(1, len(panels)), squeeze=False)[0]  # own y axes: the paper's panel is at ImageNet's scale
    for axes, (panel, lines) in zip(axes_list, panels.items()):
        for series, points in sorted(lines.items()):
            axes.plot([p[0] for p in points], [p[1] for p in points], **styles[series])
        axes.margins(x=0.15)
        axes.set_xlabel("GMACs per image (at the run's resolution)")
        axes.set_title(panel)
        axes.grid(True, alpha=0.3)
        axes.set_ylabel("top-1 accuracy (%)")
    if reference and panels:
        level, words = reference
        axes_list[0].axhline(level, color="0.5", linestyle=":", linewidth=1)
        axes_list[0].annotate(
            words, (0.02, level), xycoords=("axes fraction", "data"), xytext=(0, 3), textcoords="offset points", fontsize=7, color="0.4"
        )
    handles = [Line2D([], [], label=name, **styles[name]) for name in names]
    figure.legend(handles=handles, loc="lower center", ncols=min(len(names), 4), fontsize=8, frameon=False)
    figure.suptitle(title)
    rows = -(-len(names) // 4)
    figure.tight_layout(rect=(0, 0.025 + 0.04 * rows, 1, 1))
    for axes, lines in zip(axes_list, panels.values()):
        label_points(axes, sorted({point for points in lines.values() for point in points}), fontsize=7)
    return figure
