"""What reproducing each study costs: the imagenet profile's runs, timed on each device measured.

`oak bench cost` writes metrics/devices/<device>/cost.json on each device (each run's training images/s at
its recipe's resolution, batch and precision); a run costs epochs x ImageNet's training images /
images/s, and a study the sum of its distinct runs. A measurement counts only while it was taken with the
settings the plan gives its run now (oak.studies.binding); the tables name the others as stale.
"""

from collections import Counter
from pathlib import Path

from oak.files import read_json
from oak.report.paper import DASH
from oak.report.tables import Table
from oak.studies.binding import cost_differences, cost_settings
from oak.studies.plan import Run, row_key, run_config
from oak.studies.study import Study

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012's training set (Russakovsky et al. 2015, Table 2)


def read_devices(folder: Path, runs: dict[str, Run], params: Path) -> dict[str, dict]:
    """Each device's measurement, by its folder's name (`nvidia-h200`), keeping in `runs` only the entries taken with
    the settings `runs` (the imagenet plan) gives their run now; the others go to `stale`, with how they differ."""
    planned = {name: cost_settings(run_config(params, run), run.model) for name, run in runs.items()}
    devices = {}
    for path in sorted(folder.glob("*/cost.json")):
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


def cost_table(studies: list[Study], planned: dict[str, Run | str], devices: dict[str, dict]) -> Table:
    """Device-hours per study on each device, with the imagenet profile's recipes."""
    headings = ["study", "runs", "epochs"] + [f"{m['device']} (hours)" for m in devices.values()]
    rows = []
    for study in studies:
        runs = study_runs(study, planned)
        epochs = sorted(
            {measurement["runs"][run.name]["epochs"] for measurement in devices.values() for run in runs if run.name in measurement["runs"]}
        )
        label = study.title.split(":")[0]
        rows.append([label, str(len(runs)), "/".join(map(str, epochs)) or DASH] + [_hours(runs, m) for m in devices.values()])
    every_run = list(dict.fromkeys(run for study in studies for run in study_runs(study, planned)))
    rows.append(["all studies (shared runs once)", str(len(every_run)), ""] + [_hours(every_run, m) for m in devices.values()])
    notes = [
        f"Hours on one device to train each study's runs in the imagenet profile: epochs x {IMAGENET_TRAIN_IMAGES:,} training "
        "images (ILSVRC-2012) / the training images/s `oak bench cost` measured for the run on that device "
        "(its model, resolution, per-device batch and precision; random tensors, so data loading is assumed to keep up; "
        "evaluation not counted).",
        "Data-parallel training on N devices divides these hours by at most N.",
        f"{DASH}: no run of the study measured on that device, ≥: some not measured; "
        "`oak bench cost --model MODEL` there adds a run's measurement.",
        *_stale_notes(devices),
    ]
    return Table("Cost to reproduce each study (ImageNet, imagenet profile)", headings, rows, notes)


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


def common_setting(measurement: dict) -> tuple[int, str]:
    """The (batch, precision) most of a device's runs were timed at: speeds compare only at one setting, since the
    batch alone can double a GPU's images/s (ResNet-200 on an H200: 594 at 32, 1185 at 128)."""
    settings = Counter((run["batch_size"], run["precision"]) for run in measurement["runs"].values())
    return max(settings, key=lambda setting: (settings[setting], setting))


def paper_speed_accuracy(studies: list[Study], planned: dict[str, Run | str], measurement: dict) -> dict[str, tuple[float, float]]:
    """(measured training images/s, the paper's top-1) of each imagenet-profile run a top-1 study row names, by row label,
    for the runs timed at the device's common batch and precision: one point per run, labelled by the first row that
    names it (Fig. 5's ResNet-RS-420-320 is Table 6's ResNet-RS)."""
    setting = common_setting(measurement)
    measured = {name: run for name, run in measurement["runs"].items() if (run["batch_size"], run["precision"]) == setting}
    points, drawn = {}, set()
    for study in studies:
        if study.metric != "top1":
            continue
        for row in study.rows:
            run = planned[row_key(study, row)]
            if row.paper is not None and isinstance(run, Run) and run.name in measured and run.name not in drawn:
                points[row.label] = (measured[run.name]["images_per_second"], row.paper)
                drawn.add(run.name)
    return points
