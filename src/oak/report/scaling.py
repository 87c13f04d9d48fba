"""The points of the paper's scaling figures (Fig. 4, depth versus width; Fig. 9, one dimension versus
compound): each run's measured top-1 against its MACs at the resolution it trained at, one line per way of
scaling, one panel per training length.

The paper's versions plot ImageNet runs from Bello et al. 2021 and Tan and Le 2019 and give no
numbers; Oak's plot its own runs of the study's rows, in the profile the plan was made for.
"""

from functools import cache

from oak.models.facts import model_facts
from oak.studies.plan import Run, row_key
from oak.studies.study import Study

Point = tuple[float, float, str]  # (GMACs, top-1 %, the point's label)


@cache
def gmacs(model: str, image_size: int) -> float:
    """Multiply-accumulates of one image at `image_size`, in billions, counted on the meta device."""
    return model_facts(model, image_size).macs / 1e9


PAPER_PANEL = "the paper's values (ImageNet)"

# The paper's Fig. 5 is Bello et al.'s speed-accuracy comparison of ResNet-RS with EfficientNet (oak.report.speed
# draws it, fig5_speed_<device>); the Fig. 5 study's top-1 against MACs holds only the ResNet-RS points of that
# curve, so it is titled for what it shows, never as the paper's figure.
NOT_THE_PAPERS_FIGURE = {"Fig. 5": "ResNet-RS scaling in depth and resolution (Bello et al. 2021)"}


# A level the paper reads off its figure, drawn across the paper's panel: Zhao 2024 on Fig. 9, "the accuracy rate is
# saturate when it reaches around 80%" (Tan and Le's single-dimension curves; compound scaling passes it).
REFERENCE_LEVELS = {"Fig. 9": (80.0, "about 80%: where one dimension saturates (Zhao 2024)")}


def scaling_reference(study: Study) -> tuple[float, str] | None:
    """The (top-1, words) level the paper reads off the study's figure, if it names one."""
    return REFERENCE_LEVELS.get(study.scaling or "")


def scaling_title(study: Study) -> str:
    """What a study's top-1-against-MACs figure is: the paper's figure ("Fig. 4"), or what it shows where the
    paper's figure of that number is another comparison."""
    return NOT_THE_PAPERS_FIGURE.get(study.scaling or "", study.title.split(":")[0])


def scaling_caption(study: Study) -> str:
    """The index's words for the figure: "the paper's Fig. 4" or, where it is not the paper's figure, what it is."""
    if study.scaling in NOT_THE_PAPERS_FIGURE:
        return f"{NOT_THE_PAPERS_FIGURE[study.scaling]}, not the paper's {study.scaling} (its speed comparison is fig5_speed_<device>)"
    return f"the paper's {study.scaling}"


def scaling_panels(
    study: Study,
    planned: dict[str, Run | str],
    trained: dict[str, dict],
    evaluated: dict[str, dict],
    paper_sizes: dict[str, int] | None = None,
) -> dict[str, dict[str, list[Point]]]:
    """Points by panel ("3 epochs") and series, ordered by cost, from each run's training and
    evaluation metrics files; rows without a run are left out. Where the paper gives the rows' values
    (Fig. 5's), they come first, in a panel of their own, at each row's size in `paper_sizes`."""
    paper = _paper_panel(study, paper_sizes or {})
    panels: dict[tuple[int, str], dict[str, list[Point]]] = {(-1, PAPER_PANEL): paper} if paper else {}
    for row in study.rows:
        run = planned[row_key(study, row)]
        if not isinstance(run, Run):
            continue
        epochs, size = trained[run.name]["epochs"], trained[run.name]["image_size"]
        point = (gmacs(run.model, size), evaluated[run.name]["top1"], f"{run.model} {size}px")
        panel = (epochs, f"{epochs} epoch" + ("" if epochs == 1 else "s"))
        for series in row.series:
            panels.setdefault(panel, {}).setdefault(series, []).append(point)
    return {label: {name: sorted(points) for name, points in lines.items()} for (_, label), lines in sorted(panels.items())}


def _paper_panel(study: Study, paper_sizes: dict[str, int]) -> dict[str, list[Point]]:
    lines: dict[str, list[Point]] = {}
    for row in study.rows:
        size = paper_sizes.get(row_key(study, row))
        if row.paper is None or size is None:
            continue
        for series in row.series:
            lines.setdefault(series, []).append((gmacs(row.model, size), row.paper, row.label))
    return lines
