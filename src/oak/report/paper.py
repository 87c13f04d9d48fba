"""The paper's tables set beside Oak's measurements and the models' own facts (its claims: oak.report.claims).

A cell holds a number only when Oak measured or counted it, or the paper states it (the table's
source says where from); anything else is a dash with the reason in the notes.
"""

import math
import statistics
from collections.abc import Callable, Iterable

from scipy.stats import binomtest
from scipy.stats import t as student_t

from oak.bench import g1_check
from oak.models.calculations import TABLE_3, measured_conv_macs, regular_calculations, separable_calculations
from oak.report.scaling import gmacs
from oak.report.tables import Table
from oak.studies.plan import PUBLISHED, Run, row_key
from oak.studies.study import METRICS, Row, Study, run_spec

DASH = "—"
STAND_IN = "(stand-in)"
FLAG = "⚠"
ROUNDING_SLACK = 1.05  # a stated "2M" stands for anything that rounds to it, and a little more


def measured_value(metric: str, evaluated: dict) -> float:
    """The study's metric, in percent, from an evaluation's metrics file."""
    top1, top5 = evaluated["top1"], evaluated["top5"]
    return {"top1": top1, "top5": top5, "top1_error": 100 - top1, "top5_error": 100 - top5}[metric]


def seed_mean(evaluations: list[dict]) -> dict:
    """One run's evaluation from its seeds' (`Run.repeats`): each accuracy's mean, and every seed's under `per_seed`."""
    if len(evaluations) == 1:
        return evaluations[0]
    means = {key: statistics.fmean(evaluated[key] for evaluated in evaluations) for key in ("top1", "top5")}
    return evaluations[0] | means | {"per_seed": [{key: evaluated[key] for key in ("top1", "top5")} for evaluated in evaluations]}


def seed_values(metric: str, evaluated: dict) -> list[float]:
    """The metric of each seed of a run over several seeds (`seed_mean`); none for a single training."""
    return [measured_value(metric, seed) for seed in evaluated.get("per_seed", [])]


def measured_interval(metric: str, evaluated: dict) -> float:
    """Half the 95% interval of a measured value: the validation set's sampling noise and, for a mean over
    seeds, the seeds' spread (Student's t interval of their mean), independent, so in quadrature."""
    interval = sampling_interval(measured_value(metric, evaluated), evaluated["samples"])
    seeds = seed_values(metric, evaluated)
    if seeds:
        spread = student_t.ppf(0.975, len(seeds) - 1) * statistics.stdev(seeds) / math.sqrt(len(seeds))
        interval = math.hypot(interval, spread)
    return interval


def measured_cell(metric: str, evaluated: dict | None) -> str:
    """A measured value with half its 95% interval; a mean over seeds says how many, and their standard deviation."""
    if not evaluated:
        return DASH
    value = measured_value(metric, evaluated)
    cell = f"{value:.2f} ± {measured_interval(metric, evaluated):.2f}"
    seeds = seed_values(metric, evaluated)
    return f"{cell} (mean of {len(seeds)} seeds, sd {statistics.stdev(seeds):.2f})" if seeds else cell


def sampling_interval(percent: float, samples: int) -> float:
    """Half the width of the 95% interval of a top-1 (or error) measured on `samples` images, in points.

    Wilson's score interval: where the normal approximation's collapses to ± 0 at 0% and 100% (a top-5 error
    of 0 on 1,000 images is not certain), Wilson's keeps a width (0.19 points there); between 10% and 90% on
    1,000 images the two differ by under 0.01 points."""
    correct = round(percent / 100 * samples)
    low, high = binomtest(correct, samples).proportion_ci(confidence_level=0.95, method="wilson")
    return 100 * (high - low) / 2


def paper_format(values: Iterable[float | None]) -> Callable[[float | None], str]:
    """A column of the paper's accuracies as the paper prints them: one precision per column, so Table 5's
    84.0 keeps its decimal beside 83.3 (YAML reads both as floats, and `:g` would print "84")."""
    digits = max((len(repr(float(value)).split(".")[1].rstrip("0")) for value in values if value is not None), default=0)
    return lambda value: DASH if value is None else f"{value:.{digits}f}"


def paper_states_count(paper_millions: float, counted: int) -> bool:
    """Whether the paper's parameter count, as precisely as it writes it, is the count of the model itself."""
    decimals = 0 if float(paper_millions).is_integer() else len(repr(float(paper_millions)).split(".")[1])
    return round(counted / 1e6, decimals) == paper_millions


def study_table(
    study: Study,
    planned: dict[str, Run | str],
    facts: dict[str, dict],
    measured: dict[str, dict],
    data_label: str,
    published: dict[str, dict] | None = None,
    resolutions: dict[str, int] | None = None,
) -> Table:
    """The study's rows: the paper's value, Oak's measured one, and parameters and MACs counted from each model.

    `planned` gives each row's run (or why it has none), `measured` each run's evaluation metrics,
    `published` the released weights' metrics by row key, where measured (a column of their own then),
    `resolutions` the size each row is evaluated at in the paper (its imagenet run's), where its MACs are counted.
    """
    heading = METRICS[study.metric]
    with_params = any(row.paper_params_m is not None for row in study.rows)
    released = {row.label: released_evaluation(study, row, published) for row in study.rows}
    headings = ["model (paper)", "Oak model", "Oak run", f"paper {heading}"]
    headings += [f"published weights, Oak {heading}"] if any(released.values()) else []
    headings += [f"Oak {heading}"]
    with_top5 = any(row.paper_top5 is not None for row in study.rows)  # a top-1 study that also states top-5 (Table 5)
    headings += ["paper top-5 (%)", "Oak top-5 (%)"] if with_top5 else []
    headings += ["paper params (M)", "Oak params (M)"] if with_params else ["Oak params (M)"]
    headings += ["Oak GMACs (at px)"]
    runs = {row.label: planned[row_key(study, row)] for row in study.rows}
    paper = (paper_format(row.paper for row in study.rows), paper_format(row.paper_top5 for row in study.rows))
    sizes = {row_key(study, row): (resolutions or {}).get(row_key(study, row), facts[row.model]["resolution"]) for row in study.rows}
    rows = [
        [*_row(study, row, runs[row.label], facts, measured, with_params, with_top5, paper), _macs_cell(row.model, size)]
        for row, size in zip(study.rows, sizes.values(), strict=True)
    ]
    if any(released.values()):
        for row, cells in zip(study.rows, rows, strict=True):
            evaluated, weights = released[row.label], run_spec(study, row, PUBLISHED).weights
            cells.insert(4, f"not measured (`{weights}`)" if weights and not evaluated else measured_cell(study.metric, evaluated))
    notes = [f"Paper values: {study.source}."]
    notes += _published_notes(study, released)
    notes.append(
        f"Oak's measured values: {data_label}, each ± half its 95% interval (Wilson's, from the number of validation images, and for a "
        "mean over seeds their spread too); "
        "params and MACs are counted from each model as Oak builds it (1000 classes)."
    )
    if any(isinstance(run, Run) and run.model != row.model for row, run in zip(study.rows, runs.values(), strict=True)):
        notes.append(
            f"{STAND_IN}: the run trains a lighter model in the paper model's place at this scale; params and MACs are the paper's model's."
        )
    unstated = [row.label for row in study.rows if row.paper is None]
    if unstated:
        notes.append(f"{DASH} in the paper's column: its figure shows these points without numbers: {', '.join(unstated)}.")
    notes.append(
        "GMACs: one image at the resolution the row is evaluated at in the paper (its run's in the imagenet profile), "
        "else at the model's own test size."
    )
    for row in study.rows:
        run = runs[row.label]
        if not isinstance(run, Run):
            notes.append(f"{DASH} {row.label}: {run}.")
    if any(FLAG in cell for cell in sum(rows, [])):
        notes.append(
            f"{FLAG}: the paper's parameter count differs from the model's trainable parameters at the paper's precision "
            "(one rule for every row; the claims say what counting BatchNorm's moving statistics too, as TensorFlow does, gives)."
        )
    if any(row.paper_params_model for row in study.rows):
        notes.append(
            "A model named beside the paper's parameter count: the variant the count is of, where the paper's row "
            "states one variant's accuracy and another's parameters."
        )
    return Table(study.title, headings, rows, notes)


def released_evaluation(study: Study, row: Row, published: dict[str, dict] | None) -> dict | None:
    """The released weights' evaluation of the row, only where it measured the weights the study names now: the file
    is named by run (`<model>-published`), so a changed tag leaves the old tag's number there until it is measured again."""
    evaluated = (published or {}).get(row_key(study, row))
    return evaluated if evaluated and evaluated.get("weights") == run_spec(study, row, PUBLISHED).weights else None


def _published_notes(study: Study, released: dict[str, dict | None]) -> list[str]:
    """Which weights each published value measured, on which data, and with which evaluation protocol; a dash's
    reason is in the study file."""
    from oak.models.published import evaluation_protocol, release_note  # imports timm and torchvision: only where weights were measured

    measured = {label: evaluated for label, evaluated in released.items() if evaluated}
    if not measured:
        return []
    data = sorted({evaluated["data"] for evaluated in measured.values()})
    specs = {row.label: run_spec(study, row, PUBLISHED) for row in study.rows if row.label in measured}
    protocols = {label: evaluation_protocol(spec.weights, spec.settings) for label, spec in specs.items()}
    notes = [
        "Published weights, Oak-measured: the released checkpoint each row names in its study file, evaluated by "
        f"`oak evaluate --published` with the weights' own preprocessing under the row's settings, on {', '.join(data)}: "
        + "; ".join(f"{label}: `{evaluated['weights']}` at {protocols[label]}" for label, evaluated in measured.items())
        + "."
    ]
    releases = [note for spec in specs.values() if (note := release_note(spec.weights))]
    notes += [f"Releases: {'; '.join(releases)}."] if releases else []
    if any("synthetic" in label for label in data):
        notes.append("On synthetic data these values only show that the path works: they say nothing of the weights.")
    return notes


def _row(
    study: Study,
    row: Row,
    run: Run | str,
    facts: dict[str, dict],
    measured: dict[str, dict],
    with_params: bool,
    with_top5: bool,
    paper: tuple[Callable[[float | None], str], Callable[[float | None], str]],
) -> list[str]:
    evaluated = measured.get(run.name) if isinstance(run, Run) else None
    run_cell = DASH if not isinstance(run, Run) else f"`{run.name}`" + (f" {STAND_IN}" if run.model != row.model else "")
    oak_value = measured_cell(study.metric, evaluated)
    paper_value, paper_top5 = paper
    cells = [row.label, f"`{row.model}`", run_cell, paper_value(row.paper), oak_value]
    if with_top5:
        cells += [paper_top5(row.paper_top5), measured_cell("top5", evaluated)]
    counted = f"{facts[row.model]['params'] / 1e6:.2f}"
    if with_params:
        stated = DASH if row.paper_params_m is None else f"{row.paper_params_m:g}"
        of = row.paper_params_model or row.model
        # one rule for every row: the trainable parameters (oak.report.model_claims says what TensorFlow's count gives)
        stated += f" {FLAG}" if row.paper_params_m is not None and not paper_states_count(row.paper_params_m, facts[of]["params"]) else ""
        stated += f" (`{of}`: {facts[of]['params'] / 1e6:.2f})" if of != row.model else ""
        cells += [stated, counted]
    else:
        cells += [counted]
    return cells


def _macs_cell(model: str, resolution: int) -> str:
    return f"{gmacs(model, resolution):.2f} at {resolution}"


def calculation_table() -> Table:
    """Table 3: the paper's arithmetic, Oak's formula, and real PyTorch layers counted, for the same shape."""
    shape = TABLE_3
    depthwise, pointwise = separable_calculations(shape)
    regular = regular_calculations(shape)
    measured_regular, measured_separable = measured_conv_macs(shape)
    rows = [
        ["depthwise separable", "675 + 9600 = 10275", f"{depthwise} + {pointwise} = {depthwise + pointwise}", str(measured_separable)],
        ["regular", "86400", str(regular), str(measured_regular)],
        ["ratio", "about 8.4x", f"{regular / (depthwise + pointwise):.2f}x", f"{measured_regular / measured_separable:.2f}x"],
    ]
    return Table(
        "Table 3: calculations of depthwise separable vs regular 3x3 filters, 7x7x3 input to 5x5x128 output",
        ["filters", "paper", "Oak formula", "PyTorch layers (FlopCounterMode, MACs)"],
        rows,
        ["Paper values: Zhao 2024, Table 3."],
    )


def g1_table(result: dict) -> Table:
    """Table 4 as measured by `oak bench g1`: each width's speed beside the paper's, for the device's channel pairs,
    each the median of its rounds with the 95% interval of that median, and the claim judged on them."""
    per_image = result["unit"] != "batches/s"  # a CPU's images/s: batches/s times the batch
    scale = result["settings"]["batch_size"] if per_image else 1
    headings = ["c1:c2", "(c1,c2) at x1"] + [f"{label} x{width}" for width in (1, 2, 4) for label in ("paper", "Oak")]
    rows = []
    for column in dict.fromkeys(cell["column"] for cell in result["cells"]):
        for ratio in dict.fromkeys(cell["ratio"] for cell in result["cells"]):
            cells = sorted((c for c in result["cells"] if (c["column"], c["ratio"]) == (column, ratio)), key=lambda c: c["width"])
            pair = f"({cells[0]['c1']},{cells[0]['c2']})"
            speeds = [(f"{cell['paper']:g}", g1_check.cell_speed(cell).scaled(scale).text()) for cell in cells]
            rows.append([ratio, pair] + [text for pair_of_texts in speeds for text in pair_of_texts])
    settings = result["settings"]
    check = g1_check.claim_check(result["cells"])
    notes = [
        "Paper values: Zhao 2024, Table 4, citing Ma et al. 2018 (GTX 1080Ti in batches/s, Snapdragon 810 in images/s).",
        f"Oak's values: `oak bench g1` on {result['device']} in {result['unit']}, {settings['blocks']} blocks at "
        f"{settings['resolution']}x{settings['resolution']}, batch {settings['batch_size']}, {settings['rounds']} rounds: "
        f"{g1_check.STATISTIC}.",
        f"The claim '{check['claim']}' on these measurements: {check['verdict']} ({g1_check.check_text(check)}).",
    ]
    title = f"Table 4: ShuffleNet-v2 guideline G1, speed at fixed FLOPs, on {result['device']} at batch {settings['batch_size']}"
    return Table(title, headings, rows, notes)
