"""Training speed in the report: the setting a speed was timed at, and the paper's Fig. 5 (Bello et al. 2021, Fig. 1),
ResNet-RS against EfficientNet, top-1 against training speed.

Bello et al. time both families' training on TPU v3 and find ResNet-RS "1.7x - 2.7x faster than EfficientNets
on TPUs, while achieving similar accuracies on ImageNet" (abstract). Oak draws the same comparison from one
device's `oak bench cost` measurement: every planned point of both families (Fig. 5's ResNet-RS rows, every
compound-scaled EfficientNet row), at the paper's top-1, placed at the training images/s measured on that device
at one batch and precision. A point not measured at that setting is listed as missing, with why, never dropped.

Bello et al.'s benchmarking rule sets the batch: "an initial training batch size of 128 images, which is divided by 2
until it fits" (tensorflow/tpu, models/official/resnet/resnet_rs/README.md at commit bee9c4f6, "Benchmarking details").
So a point timed at a smaller batch because the recipe's did not fit in the device's memory (the entry's
`batch_limited_by`, as `oak bench cost` halves it) is the source's protocol: it is drawn, and marked. Each family is
timed in its recipe's memory format (the entry's `channels_last`), which the figure and the claim state.
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
# The pair the paper names: Zhao 2024, Table 6, "ResNet-RS and EfficientNet-B7 have the highest top-1 accuracy"
# (84.4 both); its ResNet-RS is Fig. 5's ResNet-RS-420 at 320 px.
NAMED_PAIR = ("ResNet-RS-420-320", "EfficientNet-B7")
# A timing judges a speed claim only when it follows the source's protocol: each run at its recipe's batch (or the
# largest half of it that fits, Bello et al.'s rule) and enough timed steps to average a step's jitter. A device file
# whose batch is capped to bound the time (the CPU's `batch_size_cap`: 2 images) or that times fewer steps than this
# is drawn, and named, but not judged. 20 steps after 5 warm-up ones is what the H200's file times.
MIN_TIMED_STEPS = 10
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
    batch: int = 0  # the batch it was timed at
    channels_last: bool | None = None  # the memory format it was timed in
    halved: bool = False  # timed at a smaller batch than the figure's because that one did not fit (Bello et al.'s rule)


def family_rows(studies: list[Study], planned: dict[str, Run | str]) -> list[tuple[str, str, float, Run]]:
    """(label, family, the paper's top-1, run) of each planned point: Fig. 5's ResNet-RS rows and every
    compound-scaled EfficientNet row with a paper top-1, each run once (Table 6's B3 is Table 5's)."""
    points, seen = [], set()
    for study in studies:
        for row in study.rows:
            run = planned[row_key(study, row)]
            if study.metric != "top1" or row.paper is None or not isinstance(run, Run) or run.name in seen:
                continue
            # EfficientNets from the tables (5 and 6): Fig. 9's rows include B0 at other resolutions, not compound points
            efficientnet = not study.scaling and COMPOUND_EFFICIENTNET.fullmatch(row.model)
            family = RESNET_RS if study.scaling == "Fig. 5" else EFFICIENTNET if efficientnet else None
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
        if measured and _comparable(measured, setting):
            speed, batch = measured["images_per_second"], measured["batch_size"]
            points.append(SpeedPoint(label, family, top1, run.name, speed, "", batch, measured.get("channels_last"), batch < setting[0]))
        else:
            points.append(SpeedPoint(label, family, top1, run.name, None, _why_missing(run.name, measured, measurement)))
    return setting, points


def _comparable(measured: dict, setting: tuple[int, str]) -> bool:
    """Timed at the setting's precision and batch, or at a smaller batch because the setting's did not fit in memory."""
    batch, precision = setting
    halved = measured.get("batch_limited_by") == "memory" and measured["batch_size"] < batch
    return measured["precision"] == precision and (measured["batch_size"] == batch or halved)


def why_unjudgeable(measurement: dict) -> str:
    """Why the device's timings cannot judge a speed claim, or "" where they can (MIN_TIMED_STEPS)."""
    reasons = []
    if measurement.get("batch_size_cap"):
        cap = measurement["batch_size_cap"]
        reasons.append(f"batch capped at {cap} to bound the time, not each recipe's (Bello et al. time at 128, halved until it fits)")
    steps = measurement.get("steps")
    if steps is not None and steps < MIN_TIMED_STEPS:
        warmup = measurement.get("warmup", 0)
        reasons.append(f"{steps} timed steps after {warmup} warm-up, no repeats (at least {MIN_TIMED_STEPS} steps needed)")
    return "; ".join(reasons)


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


def memory_formats(points: list[SpeedPoint]) -> dict[str, str]:
    """Each family's memory format as its measured points were timed in: "channels_last", "NCHW", or both named."""
    formats: dict[str, set[str]] = {}
    for point in points:
        if point.images_per_second and point.channels_last is not None:
            formats.setdefault(point.family, set()).add("channels_last" if point.channels_last else "NCHW")
    return {family: " and ".join(sorted(formats[family])) for family in (RESNET_RS, EFFICIENTNET) if family in formats}


def setting_words(points: list[SpeedPoint], device: str, setting: tuple[int, str]) -> str:
    """"on NVIDIA H200, batch 128 (EfficientNet-B7: 64, the largest that fit), bf16-mixed, ResNet-RS channels_last,
    EfficientNet NCHW": what the figure's and the claim's speeds were timed at."""
    halved = [f"{p.label}: {p.batch}" for p in points if p.images_per_second and p.halved]
    batch = f"batch {setting[0]}" + (f" ({', '.join(halved)}, the largest that fit)" if halved else "")
    formats = ", ".join(f"{family} {fmt}" for family, fmt in memory_formats(points).items())
    return f"on {device}, {batch}, {setting[1]}" + (f", {formats} (each its recipe's memory format)" if formats else "")


def speed_claim(points: list[SpeedPoint], device: str, setting: tuple[int, str], *, unjudged: str = "") -> Claim:
    """Bello et al.'s "ResNet-RS trains faster than EfficientNet at similar accuracy", on one device's timings, judged
    on the pair the paper names (NAMED_PAIR); the other pairs of similar top-1 are listed beside it. `unjudged` says
    why the device's timings cannot judge it (`why_unjudgeable`), if they cannot."""
    where = setting_words(points, device, setting)
    text = f"at similar top-1, ResNet-RS trains faster than EfficientNet (1.7x-2.7x on TPU v3 in Bello et al.); timed {where}"
    if unjudged:
        return Claim(text, SOURCE, UNCHECKED, f"not judged: {unjudged}; the figure draws these timings, named as such")
    measured = {point.label: point for point in points if point.images_per_second}
    others = [(e, rs) for e, rs in similar_pairs(points) if (rs.label, e.label) != NAMED_PAIR]
    context = "; other pairs of similar top-1 (not judged on): " + "; ".join(_ratio(rs, e) for e, rs in others) if others else ""
    unpaired = len([point for point in points if point.images_per_second is None])
    missing = f"; {unpaired} planned points not measured at this setting" if unpaired else ""
    if not all(label in measured for label in NAMED_PAIR):
        absent = ", ".join(label for label in NAMED_PAIR if label not in measured)
        why = f"the paper's pair ({' vs '.join(NAMED_PAIR)}) not both timed: {absent} missing"
        return Claim(text, SOURCE, UNCHECKED, why + context + missing)
    rs, efficientnet = (measured[label] for label in NAMED_PAIR)
    ratio = rs.images_per_second / efficientnet.images_per_second
    verdict = HOLDS if ratio > 1 + TIMING_TOLERANCE else FAILS if ratio < 1 - TIMING_TOLERANCE else UNRESOLVED
    named = f"the paper's pair (Zhao 2024, Table 6), training images/s: {_ratio(rs, efficientnet)}"
    named += f", one timing each (within {TIMING_TOLERANCE:.0%} not told apart)"
    return Claim(text, SOURCE, verdict, named + context + missing)


def _ratio(rs: SpeedPoint, efficientnet: SpeedPoint) -> str:
    """"ResNet-RS-420-320 (84.4, batch 128) 4.60x EfficientNet-B7 (84.4, batch 64)"."""
    ratio = rs.images_per_second / efficientnet.images_per_second
    return f"{rs.label} ({rs.top1}, batch {rs.batch}) {ratio:.2f}x {efficientnet.label} ({efficientnet.top1}, batch {efficientnet.batch})"


STYLES = {RESNET_RS: {"color": "tab:blue", "marker": "o"}, EFFICIENTNET: {"color": "tab:red", "marker": "s"}}


def speed_figure(points: list[SpeedPoint], device: str, setting: tuple[int, str], *, unjudged: str = "") -> Figure:
    """Each family's measured points and its speed-accuracy Pareto front (the paper's curves), at the paper's
    top-1, its memory format in the legend, a point timed at a halved batch hollow and marked, and the planned points
    missing at this setting listed under the plot (and, where the timings cannot judge a speed claim, why)."""
    figure = Figure(figsize=(8, 5.8), dpi=120)
    axes = figure.subplots()
    formats = memory_formats(points)
    for family, style in STYLES.items():
        measured = {p.label: (p.images_per_second, p.top1) for p in points if p.family == family and p.images_per_second}
        full = [p for p in points if p.family == family and p.images_per_second and not p.halved]
        halved = [p for p in points if p.family == family and p.images_per_second and p.halved]
        name = f"{family} ({formats[family]})" if family in formats else family
        axes.scatter([p.images_per_second for p in full], [p.top1 for p in full], label=name, **style)
        if halved:
            batches = ", ".join(sorted({str(p.batch) for p in halved}))
            axes.scatter(
                [p.images_per_second for p in halved], [p.top1 for p in halved], facecolors="none", edgecolors=style["color"],
                marker=style["marker"], linewidths=1.5,
                label=f"{family} at batch {batches}: {setting[0]} did not fit (Bello et al.'s rule)",
            )
        front = [measured[label] for label in pareto_front(measured)]
        axes.plot([x for x, _ in front], [y for _, y in front], linestyle="--", label=f"{family}, Pareto front", color=style["color"])
    axes.set_xscale("log")  # the families' speeds span two orders of magnitude
    axes.margins(x=0.2, y=0.1)
    axes.set_xlabel(f"training images/s on {device}, batch {setting[0]}, {setting[1]} (oak bench cost; log scale)")
    axes.set_ylabel("top-1 accuracy (%), the paper's")
    words = "\n".join(textwrap.wrap(setting_words(points, device, setting), 90))
    title = f"Fig. 5: ResNet-RS against EfficientNet, training speed\n{words}"
    axes.set_title(title + ("\n(not judged: timings too short to compare)" if unjudged else ""), fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    note = _missing_note(points) + (f" Not judged: {unjudged}." if unjudged else "")
    note = "\n".join(textwrap.wrap(note, 140))
    figure.text(0.01, 0.01, note, fontsize=7, va="bottom")
    figure.tight_layout(rect=(0, 0.03 + 0.025 * len(note.splitlines()), 1, 1))
    label_points(axes, [(p.images_per_second, p.top1, _short(p)) for p in points if p.images_per_second], fontsize=7)
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


def _short(point: SpeedPoint) -> str:
    label = point.label.removeprefix("EfficientNet-").replace("ResNet-RS-", "RS-")
    return f"{label} (batch {point.batch})" if point.halved else label
