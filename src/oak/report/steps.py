"""The paper's Fig. 6 (Bello et al. 2021, Table 1): a ResNet-200 improved one step at a time, each step coloured by
its kind (training methods purple, regularisation green, architecture yellow, as the paper's caption says).

A study names the figure in `steps`; its rows are the steps in order and each row's `series` is its kind. One panel
holds the paper's values, one Oak's runs of the rows in the profile the plan was made for (a step without a run there
is named, not drawn).
"""

from matplotlib.figure import Figure

from oak.studies.plan import Run, row_key
from oak.studies.study import Study

# Zhao 2024, Fig. 6's caption: "Purple-training methods, Green-regularization methods, Yellow-architecture improvements"
KIND_COLOURS = {"training methods": "tab:purple", "regularisation": "tab:green", "architecture": "goldenrod"}
BASELINE_COLOUR = "0.4"  # the chain's first row, which no method changes

Step = tuple[str, str, float | None]  # (the row's label, its kind, top-1 % or None where there is none)


def paper_steps(study: Study) -> list[Step]:
    return [(row.label, _kind(row.series), row.paper) for row in study.rows]


def run_steps(study: Study, planned: dict[str, Run | str], evaluated: dict[str, dict]) -> list[Step]:
    """Each step's top-1 in Oak's run of it, None where the profile has no run of the row."""
    steps = []
    for row in study.rows:
        run = planned[row_key(study, row)]
        steps.append((row.label, _kind(row.series), evaluated[run.name]["top1"] if isinstance(run, Run) else None))
    return steps


def _kind(series: list[str]) -> str:
    return series[0] if series else ""


def steps_figure(panels: dict[str, list[Step]], *, title: str) -> Figure:
    """One panel per source of values: the steps top to bottom, each a point at its top-1 coloured by its kind, joined
    in order, with its gain over the step before (a step without a value is skipped and says so)."""
    labels = [label for label, _, _ in next(iter(panels.values()))]
    figure = Figure(figsize=(6 + 3.5 * len(panels), 0.38 * len(labels) + 2), dpi=120)
    axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for axes, (panel, steps) in zip(axes_list, panels.items()):
        drawn = [(position, value) for position, (_, _, value) in enumerate(steps) if value is not None]
        axes.plot([value for _, value in drawn], [position for position, _ in drawn], color="0.75", zorder=1)
        previous = None
        for position, (_, kind, value) in enumerate(steps):
            if value is None:
                axes.annotate("no run", (0.02, position), xycoords=("axes fraction", "data"), va="center", fontsize=7, color="0.5")
                continue
            axes.scatter([value], [position], color=KIND_COLOURS.get(kind, BASELINE_COLOUR), zorder=2, s=36)
            gain = "" if previous is None else f" ({value - previous:+.1f})"
            axes.annotate(f"{value:.1f}{gain}", (value, position), textcoords="offset points", xytext=(6, -3), fontsize=7)
            previous = value
        axes.margins(x=0.25)
        axes.set_title(panel, fontsize=9)
        axes.set_xlabel("top-1 accuracy (%)")
        axes.grid(True, axis="x", alpha=0.3)
    axes_list[0].set_yticks(range(len(labels)), labels, fontsize=8)
    axes_list[0].invert_yaxis()  # the chain reads top to bottom, as the paper's table
    kinds = {"baseline": BASELINE_COLOUR} | KIND_COLOURS
    handles = [axes_list[0].scatter([], [], color=colour, label=kind) for kind, colour in kinds.items()]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure
