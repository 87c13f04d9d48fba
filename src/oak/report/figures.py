"""Figures with matplotlib, as PNG and SVG whose bytes depend only on the data (no timestamps)."""

import io

import matplotlib
from matplotlib.figure import Figure

matplotlib.rcParams["svg.hashsalt"] = "oak"  # fixed element ids: the same figure gives the same SVG
NO_DATE = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def figure_bytes(figure: Figure, format: str) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format, metadata=NO_DATE[format])
    return buffer.getvalue()


def training_curves(curves: dict[str, list[dict[str, float]]], key: str, label: str, *, title: str) -> Figure:
    """`key` per epoch, one line per model (no pyplot: no GUI backend, no global figure state)."""
    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.subplots()
    for model, rows in curves.items():
        points = [(row["epoch"] + 1, row[key]) for row in rows if key in row]
        axes.plot([epoch for epoch, _ in points], [100 * value for _, value in points], marker="o", markersize=3, label=model)
    axes.set_xlabel("epoch")
    axes.set_ylabel(label)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
