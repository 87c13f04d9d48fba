"""Training speed in the report: the setting a speed was timed at, and the paper's Fig. 5 (Bello et al. 2021, Fig. 1),
ResNet-RS against EfficientNet, top-1 against training speed.

Bello et al. time both families' training on TPU v3 and find ResNet-RS "1.7x - 2.7x faster than EfficientNets
on TPUs, while achieving similar accuracies on ImageNet" (abstract). Oak draws the same comparison from one
device's `oak bench cost` measurement: every planned point of both families (Fig. 5's ResNet-RS rows, every
compound-scaled EfficientNet row), at the paper's top-1, placed at the training images/s measured on that device
at one batch and precision. A point not measured at that setting is listed as missing, with why, never dropped.
"""

import re
import textwrap
from collections import Counter
from dataclasses import dataclass

from matplotlib.figure import Figure
from omegaconf import DictConfig

from oak.report.claims import FAILS, HOLDS, UNCHECKED, UNRESOLVED, Claim
from oak.report.figures import label_points, pareto_front
from oak.studies.plan import Run, row_key
from oak.studies.study import Study

RESNET_RS, EFFICIENTNET = "ResNet-RS", "EfficientNet"
COMPOUND_EFFICIENTNET = re.compile(r"efficientnet_b\d")  # B0-B7, not the one-dimension scalings of Fig. 9
SOURCE = "Zhao 2024, Fig. 5, citing Bello et al. 2021 (Revisiting ResNets, abstract and Fig. 1)"
# "Similar accuracy": a ResNet-RS is compared with an EfficientNet when it is at least as accurate and by at most
# this many points (the paper's top-1); Bello et al.'s pairs, e.g. RS-350-256 and B6 at 84.0, are that close.
SIMILAR_TOP1 = 0.5
# One timing per run (oak bench cost, not repeated): speeds within 10% are not told apart. The nine timings of
# ResNet-200 at 256 px on x86_64 (2 threads), which differ only in regularisation, span 1.59-1.75 images/s.
TIMING_TOLERANCE = 0.10


def training_setting(configs: list[DictConfig]) -> str:
    """The batch, precision and CPU threads of the runs' trainings, as their resolved configs set them (what their
    images/s were timed at), the commonest first where the runs differ: "batch 32, 32-true, 1 CPU thread"."""
    settings = Counter((c.train.batch_size, c.trainer.precision, c.train.cpu_threads) for c in configs)
    clauses = []
    for (batch, precision, threads), runs in settings.most_common():
        cpu = "one CPU thread per core" if threads is None else f"{threads} CPU thread" + ("s" if threads > 1 else "")
        clauses.append(f"batch {batch}, {precision}, {cpu}" + (f" ({runs} run{'s' if runs > 1 else ''})" if len(settings) > 1 else ""))
    return "; ".join(clauses)


@dataclass(frozen=True)
class SpeedPoint:
    label: str  # the study row's
    family: str
    top1: float  # the paper's
    run: str
    images_per_second: float | None  # at the figure's batch and precision; None: missing
    missing: str = ""  # why there is no measurement at that setting


def family_rows(studies: list[Study], planned: dict[str, Run | str]) -> list[tuple[str, str, float, Run]]:
    """(label, family, the paper's top-1, run) of each planned point: Fig. 5's ResNet-RS rows and every
    compound-scaled EfficientNet row with a paper top-1, each run once (Table 6's B3 is Table 5's)."""
    points, seen = [], set()
    for study in studies:
        for row in study.rows:
            run = planned[row_key(study, row)]
            if study.metric != "top1" or row.paper is None or not isinstance(run, Run) or run.name in seen:
                continue
            family = RESNET_RS if study.scaling == "Fig. 5" else EFFICIENTNET if COMPOUND_EFFICIENTNET.fullmatch(row.model) else None
            if family:
                points.append((row.label, family, row.paper, run))
                seen.add(run.name)
    return points


def speed_setting(runs: list[str], measurement: dict) -> tuple[int, str]:
    """The (batch, precision) most of the runs were timed at on the device; speeds compare only at one."""
    timed = Counter((m["batch_size"], m["precision"]) for name, m in measurement["runs"].items() if name in runs)
    return max(timed, key=lambda setting: (timed[setting], setting)) if timed else (0, "")


def speed_points(studies: list[Study], planned: dict[str, Run | str], measurement: dict) -> tuple[tuple[int, str], list[SpeedPoint]]:
    """Every planned point of both families, measured at the device's common setting or missing, and that setting."""
    rows = family_rows(studies, planned)
    setting = speed_setting([run.name for *_, run in rows], measurement)
    points = []
    for label, family, top1, run in rows:
        measured = measurement["runs"].get(run.name)
        if measured and (measured["batch_size"], measured["precision"]) == setting:
            points.append(SpeedPoint(label, family, top1, run.name, measured["images_per_second"]))
        else:
            points.append(SpeedPoint(label, family, top1, run.name, None, _why_missing(run.name, measured, measurement)))
    return setting, points


def _why_missing(run: str, measured: dict | None, measurement: dict) -> str:
    if measured:
        return f"timed at batch {measured['batch_size']}, {measured['precision']}"
    if run in measurement.get("stale", {}):
        return "timed with other settings than the plan's: " + ", ".join(measurement["stale"][run])
    return "not measured"


def similar_pairs(points: list[SpeedPoint]) -> list[tuple[SpeedPoint, SpeedPoint]]:
    """(EfficientNet, ResNet-RS) pairs of similar top-1: for each measured EfficientNet, the fastest measured
    ResNet-RS at least as accurate by at most SIMILAR_TOP1 points."""
    measured = [point for point in points if point.images_per_second]
    pairs = []
    for efficientnet in (point for point in measured if point.family == EFFICIENTNET):
        similar = [
            point for point in measured if point.family == RESNET_RS and 0 <= point.top1 - efficientnet.top1 <= SIMILAR_TOP1
        ]
        if similar:
            pairs.append((efficientnet, max(similar, key=lambda point: point.images_per_second)))
    return pairs


def speed_claim(points: list[SpeedPoint], device: str, setting: tuple[int, str]) -> Claim:
    """Bello et al.'s "ResNet-RS trains faster than EfficientNet at similar accuracy", on one device's timings."""
    text = "at similar top-1, ResNet-RS trains faster than EfficientNet (1.7x-2.7x on TPU v3 in Bello et al.)"
    pairs = similar_pairs(points)
    where = f"on {device}, batch {setting[0]}, {setting[1]}"
    if not pairs:
        return Claim(text, SOURCE, UNCHECKED, f"{where}: no EfficientNet and ResNet-RS of similar top-1 both measured")
    ratios = [rs.images_per_second / efficientnet.images_per_second for efficientnet, rs in pairs]
    faster = [ratio > 1 + TIMING_TOLERANCE for ratio in ratios]
    slower = [ratio < 1 - TIMING_TOLERANCE for ratio in ratios]
    verdict = HOLDS if all(faster) else FAILS if all(slower) else UNRESOLVED
    compared = "; ".join(
        f"{rs.label} ({rs.top1}) {ratio:.2f}x {efficientnet.label} ({efficientnet.top1})"
        for (efficientnet, rs), ratio in zip(pairs, ratios)
    )
    unpaired = len([point for point in points if point.images_per_second is None])
    missing = f"; {unpaired} planned points not measured at this setting" if unpaired else ""
    return Claim(text, SOURCE, verdict, f"{where}, training images/s (paper's top-1): {compared}{missing}")


STYLES = {RESNET_RS: {"color": "tab:blue", "marker": "o"}, EFFICIENTNET: {"color": "tab:red", "marker": "s"}}


def speed_figure(points: list[SpeedPoint], device: str, setting: tuple[int, str]) -> Figure:
    """Each family's measured points and its speed-accuracy Pareto front (the paper's curves), at the paper's
    top-1, with the planned points missing at this setting listed under the plot."""
    figure = Figure(figsize=(8, 5.5), dpi=120)
    axes = figure.subplots()
    for family, style in STYLES.items():
        measured = {p.label: (p.images_per_second, p.top1) for p in points if p.family == family and p.images_per_second}
        axes.scatter([x for x, _ in measured.values()], [y for _, y in measured.values()], label=family, **style)
        front = [measured[label] for label in pareto_front(measured)]
        axes.plot([x for x, _ in front], [y for _, y in front], linestyle="--", label=f"{family}, Pareto front", color=style["color"])
    axes.set_xscale("log")  # the families' speeds span two orders of magnitude
    axes.margins(x=0.2, y=0.1)
    axes.set_xlabel(f"training images/s on {device}, batch {setting[0]}, {setting[1]} (oak bench cost; log scale)")
    axes.set_ylabel("top-1 accuracy (%), the paper's")
    axes.set_title(f"Fig. 5: ResNet-RS against EfficientNet, training speed on {device}\nat batch {setting[0]}, {setting[1]}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    note = "\n".join(textwrap.wrap(_missing_note(points), 140))
    figure.text(0.01, 0.01, note, fontsize=7, va="bottom")
    figure.tight_layout(rect=(0, 0.03 + 0.025 * len(note.splitlines()), 1, 1))
    label_points(axes, [(p.images_per_second, p.top1, _short(p.label)) for p in points if p.images_per_second], fontsize=7)
    return figure


def _missing_note(points: list[SpeedPoint]) -> str:
    """The planned points without a measurement at the figure's setting, grouped by why."""
    reasons: dict[str, list[str]] = {}
    for point in points:
        if point.images_per_second is None:
            reasons.setdefault(point.missing, []).append(point.label)
    if not reasons:
        return "Every planned point of both families is measured at this setting."
    return "Planned, missing at this setting: " + "; ".join(f"{why}: {', '.join(labels)}" for why, labels in reasons.items()) + "."


def _short(label: str) -> str:
    return label.removeprefix("EfficientNet-").replace("ResNet-RS-", "RS-")
