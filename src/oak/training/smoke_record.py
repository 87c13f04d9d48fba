"""The smoke record, `<paths.metrics>/smoke/<PROFILE>.json`: one entry per run `oak smoke` tested (oak.training.smoke),
and which planned runs it vouches for now (oak.studies.binding.smoke_fingerprint says what an entry is bound to)."""

import json
from dataclasses import dataclass
from pathlib import Path

from oak.studies.binding import smoke_fingerprint
from oak.studies.plan import Run, run_config


@dataclass
class SmokeResult:
    run: str
    model: str
    recipe: str
    image_size: int
    precision: str
    recipe_batch: int  # per device
    batch: int  # per device, as run here
    steps: int
    seconds_per_step: float | None  # the resumed process's fit: its one step, validating 8 images, the final checkpoint
    peak_memory_mb: int | None  # the largest process's resident memory
    status: str  # ok, or the error
    batch_note: str = ""
    fingerprint: str = ""  # what the test exercised of the run's settings (oak.studies.binding.smoke_fingerprint); empty in old entries
    smoked_as: str = ""  # the run whose smoke test stands for this one, which trains alike in it (oak.training.smoke); empty: itself


def earlier_results(out: Path, profile: str, rerun: set[str]) -> list[SmokeResult]:
    if not out.exists() or json.loads(out.read_text())["profile"] != profile:
        return []
    return [SmokeResult(**entry) for entry in json.loads(out.read_text())["runs"] if entry["run"] not in rerun]


def result_line(result: SmokeResult) -> str:
    seconds = f"{result.seconds_per_step:.1f}" if result.seconds_per_step is not None else "-"
    note = f" ({result.batch_note})" if result.batch_note else ""
    note += f" (as {result.smoked_as})" if result.smoked_as else ""
    return (
        f"{result.run:42} {result.recipe:22} {result.image_size:>4} {result.precision:10} {result.batch:>5} {result.steps:>5}"
        f" {seconds:>7} {result.peak_memory_mb or '-':>8}  {result.status}{note}"
    )


def fingerprint(run: Run, params: Path) -> str:
    return smoke_fingerprint(run_config(params, run), run.model)


def uncovered_runs(record: Path, runs: dict[str, Run], params: Path) -> dict[str, str]:
    """The planned runs the smoke record does not vouch for, each with why: no entry, not ok, or other settings.

    An entry vouches for a run while it was taken with the settings the plan gives the run now: the same
    fingerprint, or, for entries made before fingerprints were recorded, the same model, recipe, resolution,
    precision and per-device batch (what those entries hold).
    """
    entries = {entry["run"]: entry for entry in json.loads(record.read_text())["runs"]} if record.exists() else {}
    uncovered = {}
    for name, run in runs.items():
        config, entry = run_config(params, run), entries.get(name)
        planned = (run.model, run.recipe, config.train.image_size, config.trainer.precision, config.train.batch_size)
        if entry is None:
            uncovered[name] = "never smoke-tested"
        elif entry["status"] != "ok":
            uncovered[name] = f"failed: {entry['status']}"
        elif entry.get("fingerprint") and entry["fingerprint"] != smoke_fingerprint(config, run.model):
            uncovered[name] = "tested with other settings than the plan gives it now"
        elif (entry["model"], entry["recipe"], entry["image_size"], entry["precision"], entry["recipe_batch"]) != planned:
            uncovered[name] = "tested with another model, recipe, resolution, precision or batch than the plan gives it now"
    return uncovered
