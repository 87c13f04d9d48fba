"""`oak compare`: DVC's experiment table reduced to the params that differ and one metric per run."""

import pytest

from oak.errors import OakError
from oak.report.compare import compare_table

SECTIONS = {"seed", "train", "trainer"}


def row(name: str | None, rev: str, epochs: float, top1: dict[str, float]) -> dict:
    metrics = {f"metrics/eval/{run}.json:{key}": value for run, value in top1.items() for key, value in (("top1", value), ("loss", 1.0))}
    timings = {"metrics/train/resnet18.json:steps": 10 * epochs}
    return {"Experiment": name, "rev": rev, "typ": "x", "seed": 0, "train.epochs": epochs, **timings, **metrics}


def test_the_params_that_differ_then_each_runs_metric_per_experiment() -> None:
    rows = [
        row(None, "workspace", 4, {"resnet18": 50.0, "plain18": 25.0}),
        row(None, "main", 3.0, {"resnet18": 40.0, "plain18": 20.0}),  # DVC reads some numbers as floats
        row("longer", "a1b2c3d", 4, {"resnet18": 50.0, "plain18": 25.0}),
    ]
    assert compare_table(rows, SECTIONS).splitlines() == [
        "train.epochs: workspace 4 | main 3 | longer 4",
        "",
        "top1         workspace          main        longer",
        "plain18           25.0          20.0          25.0",
        "resnet18          50.0          40.0          50.0",
    ]


def test_a_run_missing_from_an_experiment_is_a_dash() -> None:
    rows = [row(None, "workspace", 3, {"resnet18": 50.0, "plain18": 25.0}), row(None, "main", 3, {"resnet18": 40.0})]
    assert compare_table(rows, SECTIONS).splitlines()[1] == "plain18           25.0             -"


def test_no_metric_of_that_name_is_one_clear_error() -> None:
    with pytest.raises(OakError, match=r"no experiment holds metrics/eval/\*.json:top5"):
        compare_table([row(None, "workspace", 3, {"resnet18": 50.0})], SECTIONS, "top5")
