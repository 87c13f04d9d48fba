"""The results of this pipeline's own runs: a table (Markdown, CSV) and top-1 against parameters.

Built only from the DVC-tracked metrics and timings files, never from the MLflow database.
"""

from dataclasses import replace
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from oak.data.info import ShardInfo
from oak.layout import Layout
from oak.report.figures import figure_files, label_points
from oak.report.tables import Table, to_csv, to_markdown
from oak.studies.plan import Run

COLUMNS = ("run", "model", "recipe", "seeds", "top1_pct", "top5_pct", "params_m", "epochs", "train_seconds")
HEADINGS = ("run", "model", "recipe", "seeds", "top-1 (%)", "top-5 (%)", "params (M)", "epochs", "training time (s)")
FIGURE = "top1_vs_params"


def result_rows(runs: list[Run], trained: dict[str, dict], evaluated: dict[str, dict], timings: dict[str, dict]) -> list[dict]:
    """One row per run, joined from its training and evaluation metrics and its training time (by run name); a run
    over several seeds shows their mean accuracy and its first seed's training."""
    return [
        {
            "run": run.name,
            "model": run.model,
            "recipe": run.recipe,
            "seeds": run.seeds,
            "top1_pct": round(evaluated[run.name]["top1"], 2),
            "top5_pct": round(evaluated[run.name]["top5"], 2),
            "params_m": round(evaluated[run.name]["params"] / 1e6, 3),
            "epochs": trained[run.name]["epochs"],
            "train_seconds": timings[run.name]["seconds"],
        }
        for run in runs
    ]


def results_table(rows: list[dict], *, title: str, info: ShardInfo) -> Table:
    """The rows under readable headings, after a word on the data they were measured on."""
    train, val = info.samples("train"), info.samples("val")
    preamble = [f"Data: {info.label}, {info.num_classes} classes, {train} training and {val} validation images."]
    if info.synthetic:
        chance = 100 / info.num_classes
        preamble.append(
            f"These are synthetic demo images, not ImageNet: the numbers check the pipeline, not the study. Chance top-1 is {chance:.1f}%."
        )
    cells = [[str(row[column]) for column in COLUMNS] for row in rows]
    return Table(title, list(HEADINGS), cells, preamble=preamble)


def top1_vs_params(rows: list[dict], *, title: str) -> Figure:
    figure = Figure(figsize=(6, 4), dpi=120)  # no pyplot: no GUI backend, no global figure state
    axes = figure.subplots()
    for row in rows:
        axes.scatter(row["params_m"], row["top1_pct"])
    axes.set_xscale("log")
    plain_numbers = FuncFormatter(lambda value, _: f"{value:g}")  # 2, not 2x10^0
    axes.xaxis.set_major_formatter(plain_numbers)
    axes.xaxis.set_minor_formatter(plain_numbers)
    axes.margins(0.15)  # room for the labels of the outermost points
    axes.set_xlabel("parameters (M, log scale)")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    label_points(axes, [(row["params_m"], row["top1_pct"], row["run"]) for row in rows], fontsize=8)
    return figure


def results_outputs(layout: Layout, title: str, info: ShardInfo, rows: list[dict]) -> dict[Path, str | bytes]:
    """The results files by path, in the report's folder; results.md is headed by the report's own title, at level 1."""
    table = results_table(rows, title=title, info=info)
    figure = top1_vs_params(rows, title=f"{title}: {info.label}")
    return {
        layout.reports / "results.csv": to_csv(replace(table, headings=list(COLUMNS))),  # keys, not headings: the CSV is for scripts
        layout.reports / "results.md": to_markdown(table, level=1) + f"\n![top-1 against parameter count]({FIGURE}.png)\n",
        **figure_files(figure, layout.reports, FIGURE),
    }
