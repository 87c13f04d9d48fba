"""The results of this pipeline's own runs: a table (Markdown, CSV) and top-1 against parameters.

Built only from the DVC-tracked metrics files, never from the MLflow database.
"""

import csv
import io
import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from omegaconf import DictConfig

from oak.data.shards import dataset_label, is_synthetic
from oak.errors import OakError
from oak.evaluate import eval_metrics_path
from oak.plan import Run
from oak.report.figures import figure_bytes
from oak.train import train_metrics_path

COLUMNS = ("run", "model", "recipe", "top1_pct", "top5_pct", "params_m", "epochs", "train_seconds")
HEADINGS = ("run", "model", "recipe", "top-1 (%)", "top-5 (%)", "params (M)", "epochs", "training time (s)")


def read_metrics(path: Path) -> dict:
    if not path.exists():
        raise OakError(f"{path}: metrics file not found; run `dvc repro` (or `oak train` and `oak evaluate`) for this model")
    return json.loads(path.read_text())


def result_rows(config: DictConfig, runs: list[Run]) -> list[dict]:
    """One row per run, joined from its training and evaluation metrics."""
    rows = []
    for run in runs:
        trained = read_metrics(train_metrics_path(config, run.name))
        evaluated = read_metrics(eval_metrics_path(config, run.name))
        rows.append(
            {
                "run": run.name,
                "model": run.model,
                "recipe": run.recipe,
                "top1_pct": round(100 * evaluated["top1"], 2),
                "top5_pct": round(100 * evaluated["top5"], 2),
                "params_m": round(evaluated["params"] / 1e6, 3),
                "epochs": trained["epochs"],
                "train_seconds": trained["train_seconds"],
            }
        )
    return rows


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows: list[dict], *, title: str, info: dict) -> str:
    val = info["splits"]["val"]["num_samples"]
    train = info["splits"]["train"]["num_samples"]
    lines = [
        f"# {title}",
        "",
        f"Data: {dataset_label(info)}, {info['num_classes']} classes, {train} training and {val} validation images.",
    ]
    if is_synthetic(info):
        chance = 100 / info["num_classes"]
        lines.append(
            f"These are synthetic demo images, not ImageNet: the numbers check the pipeline, not the study. Chance top-1 is {chance:.1f}%."
        )
    lines += ["", "| " + " | ".join(HEADINGS) + " |", "|" + "---|" * len(HEADINGS)]
    lines += ["| " + " | ".join(str(row[column]) for column in COLUMNS) + " |" for row in rows]
    lines += ["", "![top-1 against parameter count](top1_vs_params.png)", ""]
    return "\n".join(lines)


def top1_vs_params(rows: list[dict], *, title: str) -> Figure:
    figure = Figure(figsize=(6, 4), dpi=120)  # no pyplot: no GUI backend, no global figure state
    axes = figure.subplots()
    for row in rows:
        axes.scatter(row["params_m"], row["top1_pct"])
        axes.annotate(row["run"], (row["params_m"], row["top1_pct"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
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
    return figure


def results_outputs(config: DictConfig, info: dict, runs: list[Run]) -> dict[Path, str | bytes]:
    """The results files, by path under `paths.reports`."""
    rows = result_rows(config, runs)
    out = Path(config.paths.reports)
    title = f"{config.report.title}: {dataset_label(info)}"
    figure = top1_vs_params(rows, title=title)
    return {
        out / "results.csv": to_csv(rows),
        out / "results.md": to_markdown(rows, title=config.report.title, info=info),
        out / "top1_vs_params.png": figure_bytes(figure, "png"),
        out / "top1_vs_params.svg": figure_bytes(figure, "svg"),
    }
