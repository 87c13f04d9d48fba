"""What reproducing each study costs: the imagenet profile's runs, timed on each device measured, and the budget
profile's beside them.

`oak bench cost` writes metrics/devices/<device>/cost.json on each device (each run's training images/s at
its recipe's resolution, batch and precision); a run costs epochs x ImageNet's training images /
images/s, and a study the sum of its distinct runs. A measurement counts only while it was taken with the
settings the plan gives its run now (oak.studies.binding); the tables name the others as stale.

A budget run (oak.studies.budget) is its row's imagenet run, shorter and at lower training sizes: it is priced
from the same measurement, each epoch at its own size, the images/s scaled by the model's MACs at the measured
size over its MACs at that size (oak.models.facts) where the two differ, which the table marks.
"""

from functools import cache
from pathlib import Path

from oak.config.load import PARAMS_FILE
from oak.files import read_json
from oak.loading.progressive import image_size_at
from oak.report.paper import DASH
from oak.report.tables import Table
from oak.studies.binding import cost_differences, cost_settings
from oak.layout import cost_file
from oak.studies.plan import Run, row_key, run_config
from oak.studies.study import Study

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012's training set (Russakovsky et al. 2015, Table 2)
SCALED = "†"  # marks budget hours whose images/s were scaled by MACs from another size than measured


def read_devices(folder: Path, runs: dict[str, Run], params: Path, profile: str = "imagenet") -> dict[str, dict]:
    """Each device's measurement of `profile`'s runs, by its folder's name (`nvidia-h200`), keeping in `runs` only the
    entries taken with the settings `runs` gives their run now; the others go to `stale`, with how they differ."""
    planned = {name: cost_settings(run_config(params, run), run.model) for name, run in runs.items()}
    devices = {}
    for path in sorted(folder.glob(f"*/{cost_file(profile)}")):
        measurement = read_json(path, "measured by `oak bench cost` on that device: measure it again there, or restore the file from git")
        current, stale = {}, {}
        for name, entry in measurement["runs"].items():
            differences = cost_differences(entry, planned[name], measurement) if name in planned else ["no longer planned"]
            (stale if differences else current)[name] = differences or entry
        devices[path.parent.name] = measurement | {"runs": current, "stale": stale}
    return devices


def run_hours(measured: dict) -> float:
    """Device-hours to train one run on ImageNet, at the measured images/s."""
    return measured["epochs"] * IMAGENET_TRAIN_IMAGES / measured["images_per_second"] / 3600


def budget_run_hours(measured: dict, model: str, budget: Run, params: Path = PARAMS_FILE) -> tuple[float, bool]:
    """Device-hours of `budget` (a run of `model`) from its imagenet run's measurement, each epoch at its training size
    (oak.loading.progressive), and whether any size's images/s was scaled by MACs from the measured size."""
    train = run_config(params, budget).train
    sizes = [image_size_at(train, epoch) for epoch in range(train.epochs)]
    measured_macs = macs_at(model, measured["image_size"])
    seconds = sum(IMAGENET_TRAIN_IMAGES / measured["images_per_second"] * macs_at(model, size) / measured_macs for size in sizes)
    return seconds / 3600, any(size != measured["image_size"] for size in sizes)


@cache
def macs_at(model: str, size: int) -> int:
    """One image's MACs through `model` at `size`, as oak.models.facts counts them, each model built once (on the meta
    device: no weights) for all its sizes."""
    from oak.models.facts import count_macs_and_activations  # imports timm and torchvision: only where a budget is priced

    return count_macs_and_activations(_meta_model(model), size)[0]


@cache
def _meta_model(name: str):
    import torch

    from oak.models.registry import create_model

    with torch.device("meta"):
        return create_model(name, num_classes=1000)


def _budget_hours(pairs: list[tuple[Run, Run]], measurement: dict, params: Path) -> tuple[str, str]:
    """(the budget runs' hours, their ratio to the imagenet runs'), over the pairs (imagenet run, budget run) measured."""
    measured = [(measurement["runs"][paper.name], paper, budget) for paper, budget in pairs if paper.name in measurement["runs"]]
    if not measured:
        return DASH, DASH
    priced = [budget_run_hours(entry, paper.model, budget, params) for entry, paper, budget in measured]
    hours = sum(hours for hours, _ in priced)
    paper_hours = sum(run_hours(entry) for entry, _, _ in measured)
    cell = f"{hours:,.0f}{SCALED if any(scaled for _, scaled in priced) else ''}"
    if len(measured) < len(pairs):
        cell = f"≥ {cell} ({len(measured)} of {len(pairs)} runs measured)"
    return cell, f"{100 * hours / paper_hours:.1f}%"


def _hours(runs: list[Run], measurement: dict) -> str:
    """The runs' device-hours; at least that many where some runs were not measured on the device."""
    measured = [measurement["runs"][run.name] for run in runs if run.name in measurement["runs"]]
    if not measured:
        return DASH
    hours = f"{sum(run_hours(m) for m in measured):,.0f}"
    return hours if len(measured) == len(runs) else f"≥ {hours} ({len(measured)} of {len(runs)} runs measured)"


def study_runs(study: Study, planned: dict[str, Run | str]) -> list[Run]:
    """The distinct runs of the study's rows."""
    return list(dict.fromkeys(run for row in study.rows if isinstance(run := planned[row_key(study, row)], Run)))


def budget_pairs(study: Study, planned: dict[str, Run | str], budget: dict[str, Run | str]) -> list[tuple[Run, Run]]:
    """The study's distinct (imagenet run, budget run) pairs of its rows that run in both profiles."""
    pairs = ((planned[row_key(study, row)], budget.get(row_key(study, row))) for row in study.rows)
    return list(dict.fromkeys((paper, cheap) for paper, cheap in pairs if isinstance(paper, Run) and isinstance(cheap, Run)))


def cost_table(
    studies: list[Study],
    planned: dict[str, Run | str],
    devices: dict[str, dict],
    budget: dict[str, Run | str] | None = None,
    params: Path = PARAMS_FILE,
) -> Table:
    """Device-hours per study on each device, with the imagenet profile's recipes; with `budget` (the budget profile's
    plan), its hours and their ratio to the imagenet profile's beside them."""
    headings = ["study", "runs", "epochs"]
    for m in devices.values():
        headings += [f"{m['device']} (hours)"] + ([f"{m['device']}, budget (hours)", "budget / imagenet"] if budget else [])
    rows = []
    for study in studies:
        runs = study_runs(study, planned)
        epochs = sorted(
            {measurement["runs"][run.name]["epochs"] for measurement in devices.values() for run in runs if run.name in measurement["runs"]}
        )
        label = study.title.split(":")[0]
        cells = [label, str(len(runs)), "/".join(map(str, epochs)) or DASH]
        for m in devices.values():
            cells += [_hours(runs, m)] + (list(_budget_hours(budget_pairs(study, planned, budget), m, params)) if budget else [])
        rows.append(cells)
    every_run = list(dict.fromkeys(run for study in studies for run in study_runs(study, planned)))
    every_pair = list(dict.fromkeys(pair for study in studies for pair in budget_pairs(study, planned, budget))) if budget else []
    cells = ["all studies (shared runs once)", str(len(every_run)), ""]
    for m in devices.values():
        cells += [_hours(every_run, m)] + (list(_budget_hours(every_pair, m, params)) if budget else [])
    rows.append(cells)
    notes = [
        f"Hours on one device to train each study's runs in the imagenet profile: epochs x {IMAGENET_TRAIN_IMAGES:,} training "
        "images (ILSVRC-2012) / the training images/s `oak bench cost` measured for the run on that device "
        "(its model, resolution, per-device batch and precision; random tensors, so data loading is assumed to keep up; "
        "evaluation not counted).",
        "Data-parallel training on N devices divides these hours by at most N.",
        f"{DASH}: no run of the study measured on that device, ≥: some not measured; "
        "`oak bench cost --model MODEL` there adds a run's measurement.",
        *([_BUDGET_NOTE] if budget else []),
        *_stale_notes(devices),
    ]
    title = "Cost to reproduce each study (ImageNet, imagenet profile" + (", and the budget profile beside it)" if budget else ")")
    return Table(title, headings, rows, notes)


_BUDGET_NOTE = (
    "Budget: the budget profile's runs (pipelines/budget.yaml, docs/budget.md), priced from the same measurements: each "
    f"epoch at its training size, the measured images/s scaled by the model's MACs at the measured size over its MACs at that "
    f"size ({SCALED}: some were scaled so; a GPU is less efficient at small sizes, so these hours are a lower bound). "
    "The ratio is over the runs measured. Neither profile counts data loading (the budget's capped shards decode faster) "
    "or evaluation."
)


def _stale_notes(devices: dict[str, dict]) -> list[str]:
    """One note per device whose file holds measurements taken with other settings than the plan's, which count nowhere."""
    return [
        f"Not counted on {m['device']}, measured with other settings than the plan gives the run now (measured -> planned): "
        + "; ".join(f"`{name}` ({', '.join(differences)})" for name, differences in sorted(m["stale"].items()))
        + "."
        for m in devices.values()
        if m.get("stale")
    ]


def _cap_note(measurement: dict) -> str:
    """Where `oak bench cost --batch-size` bounded the batch (a CPU's time), as the measurement file records it."""
    precisions = ", ".join(sorted({run["precision"] for run in measurement["runs"].values()}))
    return f"; on {measurement['device']} at most {measurement['batch_size_cap']}, to bound the time ({precisions})"


def cost_runs_table(planned: dict[str, Run | str], devices: dict[str, dict]) -> Table:
    """Each imagenet-profile run's measured throughput and hours, per device."""
    runs = sorted({run for run in planned.values() if isinstance(run, Run)}, key=lambda run: run.name)
    headings = ["run", "recipe", "px", "epochs"] + [
        f"{m['device']} {what}" for m in devices.values() for what in ("images/s (batch)", "hours")
    ]
    rows = []
    for run in runs:
        measured = [m["runs"].get(run.name) for m in devices.values()]
        first = next((m for m in measured if m), None)
        cells = [f"`{run.name}`", run.recipe, str(first["image_size"]) if first else DASH, str(first["epochs"]) if first else DASH]
        for m in measured:
            cells += [f"{m['images_per_second']:,.1f} ({m['batch_size']})", f"{run_hours(m):,.0f}"] if m else [DASH, DASH]
        rows.append(cells)
    notes = [
        "Measured by `oak bench cost` on each device: "
        + ", ".join(f"{m['device']} (PyTorch {m['torch']})" for m in devices.values())
        + ".",
        "The batch in brackets is the one timed: the recipe's per-device batch, or less where it did not fit in the GPU's memory"
        + "".join(_cap_note(m) for m in devices.values() if m.get("batch_size_cap"))
        + ".",
        *_stale_notes(devices),
    ]
    return Table("Cost to reproduce, per run (ImageNet, imagenet profile)", headings, rows, notes)
