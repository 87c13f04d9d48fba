"""The results of this pipeline's own runs: a table (Markdown, CSV) and top-1 against parameters.

Built only from the DVC-tracked metrics and timings files, never from the MLflow database.
"""

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from oak.data.info import ShardInfo
from oak.layout import Layout
from oak.report.figures import figure_files, label_points
from oak.report.tables import Table, to_csv, to_markdown
from oak.studies.plan import Run

COLUMNS = ("run", "model", "recipe", "seeds", "top1_pct", "top5_pct", "params_m", "epochs", "train_seconds", "studies")
HEADINGS = ("run", "model", "recipe", "seeds", "evaluation top-1 (%)", "evaluation top-5 (%)", "params (M)", "epochs", "training time (s)")
FIGURE = "top1_vs_params"
# Two top-1s reach users: the evaluation's, in every report table, and the validation top-1 logged per epoch during
# training (MLflow's val/top1, the training-curve figures). They differ where a study evaluates several crops or
# seeds, so every table says which one it shows.
PROTOCOL = (
    "Top-1 and top-5 are `oak evaluate`'s, the study's evaluation protocol: the whole validation split at each run's "
    "evaluation size and crops (`train.eval_image_size`, `train.eval_crops`), the mean over seeds for a run trained "
    "with several. The validation top-1 logged each epoch during training (MLflow's `val/top1`, the training curves) "
    "is one centre crop of the first seed's training, so it can differ."
)


def result_rows(
    runs: list[Run], trained: dict[str, dict], evaluated: dict[str, dict], timings: dict[str, dict], studies: dict[str, list[str]]
) -> list[dict]:
    """One row per run, best top-1 first, joined from its training and evaluation metrics and its training time
    (by run name), with the studies it serves; a run over several seeds shows their mean accuracy and its first
    seed's training."""
    rows = [
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
            "studies": " ".join(studies.get(run.name, [])),
        }
        for run in runs
    ]
    return sorted(rows, key=lambda row: (-row["top1_pct"], row["run"]))


def data_lines(info: ShardInfo) -> list[str]:
    """A word on the data the results were measured on."""
    train, val = info.samples("train"), info.samples("val")
    lines = [f"Data: {info.label}, {info.num_classes} classes, {train} training and {val} validation images."]
    if info.synthetic:
        chance = 100 / info.num_classes
        lines.append(
            f"These are synthetic demo images, not ImageNet: the numbers check the pipeline, not the study. Chance top-1 is {chance:.1f}%."
        )
    return lines


def study_tables(rows: list[dict], study_titles: dict[str, str]) -> list[Table]:
    """One table per study, its runs best top-1 first (a run serving several studies is in each)."""
    tables = []
    for name, title in study_titles.items():
        own = [row for row in rows if name in row["studies"].split()]
        if own:
            cells = [[str(row[column]) for column in COLUMNS[:-1]] for row in own]
            tables.append(Table(f"{title.split(':')[0]} (`{name}`)", list(HEADINGS), cells))
    return tables


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


def results_outputs(
    layout: Layout, title: str, info: ShardInfo, rows: list[dict], study_titles: dict[str, str]
) -> dict[Path, str | bytes]:
    """The results files by path, in the report's folder: results.md, headed by the report's own title at level 1,
    has a table per study; results.csv one row per run, for scripts."""
    page = "\n".join([f"# {title}", "", *data_lines(info), "", PROTOCOL, "", ""])
    page += "\n".join(to_markdown(table, level=2) for table in study_tables(rows, study_titles))
    figure = top1_vs_params(rows, title=f"{title}: {info.label}")
    csv = Table(title, list(COLUMNS), [[str(row[column]) for column in COLUMNS] for row in rows])  # keys, not headings: for scripts
    return {
        layout.reports / "results.csv": to_csv(csv),
        layout.reports / "results.md": page + f"\n![top-1 against parameter count]({FIGURE}.png)\n",
        **figure_files(figure, layout.reports, FIGURE),
    }
