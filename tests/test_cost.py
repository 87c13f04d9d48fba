"""Cost to reproduce: each planned run timed on a device, turned into device-hours per study."""

import json
from pathlib import Path

import pytest
import torch

from oak.bench.cost import bench_cost
from oak.config.load import load_config
from oak.report.cost import IMAGENET_TRAIN_IMAGES, cost_runs_table, cost_table, read_devices, run_hours
from oak.report.paper import DASH
from oak.studies.plan import plan_rows
from oak.studies.study import load_studies

REPO = Path(__file__).resolve().parents[1]
STUDIES = load_studies(REPO / "pipelines" / "studies")


def test_a_run_is_timed_as_its_recipe_trains_and_written_after_each_run(tmp_path: Path) -> None:
    config = load_config(REPO / "params.yaml", ["recipe=resnet_he2016", "train.image_size=32", "train.epochs=3"])
    out = tmp_path / "cost.json"
    result = bench_cost({"resnet18": ("resnet18", config)}, out, device=torch.device("cpu"), batch_size=2, steps=1, warmup=1)
    measured = result["runs"]["resnet18"]
    assert measured | {"images_per_second": None} == {
        "model": "resnet18",
        "recipe": "resnet_he2016",
        "image_size": 32,
        "batch_size": 2,
        "precision": "32-true",  # the recipe's 16-mixed is a GPU setting
        "channels_last": True,  # the recipe trains channels_last
        "epochs": 3,
        "images_per_second": None,
    }
    assert measured["images_per_second"] > 0
    assert json.loads(out.read_text()) == result
    assert (result["device_kind"], result["batch_size_cap"]) == ("cpu", 2)  # what a reader compares the batch and precision with


def test_a_measurement_keeps_the_runs_it_does_not_measure_again_and_each_profile_has_its_own_file(tmp_path: Path) -> None:
    from oak.layout import cost_file

    config = load_config(REPO / "params.yaml", ["recipe=resnet_he2016", "train.image_size=32", "train.epochs=3"])
    out = tmp_path / "cost.json"
    out.write_text(json.dumps({"runs": {"resnet200": {"model": "resnet200", "images_per_second": 1185.0}}}))  # hours of a GPU
    result = bench_cost({"resnet18": ("resnet18", config)}, out, device=torch.device("cpu"), batch_size=2, steps=1, warmup=1)
    assert set(result["runs"]) == {"resnet200", "resnet18"} and result["runs"]["resnet200"]["images_per_second"] == 1185.0
    # a budget run has its imagenet run's name: measuring the budget profile must not replace the imagenet entries
    assert {cost_file("imagenet"), cost_file("budget")} == {"cost.json", "cost-budget.json"}


def test_hours_are_epochs_times_imagenet_over_throughput() -> None:
    assert run_hours({"epochs": 90, "images_per_second": IMAGENET_TRAIN_IMAGES / 3600}) == pytest.approx(90)


def test_each_study_costs_the_sum_of_its_distinct_runs_on_each_device() -> None:
    planned = plan_rows(STUDIES, "imagenet")
    per_image = IMAGENET_TRAIN_IMAGES / 3600  # images/s at which one epoch takes an hour
    runs = {run.name: {"epochs": 10, "images_per_second": per_image, "image_size": 224, "batch_size": 8} for run in planned.values()}
    devices = {
        "a": {"device": "GPU A", "torch": "2", "runs": runs},
        "b": {"device": "GPU B", "torch": "2", "runs": {name: runs[name] for name in ("plain18", "resnet18a", "plain34")}},
    }
    table = cost_table(STUDIES, planned, devices)
    rows = {row[0]: row for row in table.rows}
    assert rows["Table 1"][1:] == ["4", "10", "40", "≥ 30 (3 of 4 runs measured)"]  # 4 runs x 10 epochs x 1 hour; GPU B has 3
    assert rows["Table 6"][4] == DASH  # none of its runs measured on GPU B
    assert rows["Table 6"][1:4] == ["5", "10", "50"]
    distinct = len(set(runs))
    assert distinct < len(planned)  # rows of several studies share runs
    assert rows["all studies (shared runs once)"][1:4] == [str(distinct), "", f"{10 * distinct:,}"]
    per_run = {row[0]: row for row in cost_runs_table(planned, devices).rows}
    assert per_run["`efficientnet_b7`"][4:] == [f"{per_image:,.1f} (8)", "10", DASH, DASH]


def test_the_committed_device_measurements_are_runs_of_the_imagenet_plan() -> None:
    planned = {run.name: run for run in plan_rows(STUDIES, "imagenet").values() if not isinstance(run, str)}
    devices = read_devices(REPO / "metrics" / "devices", planned, REPO / "params.yaml")
    assert devices["nvidia-h200"]["device"] == "NVIDIA H200"
    cpu = devices["x86-64-2-threads"]
    assert set(cpu["runs"]) | set(cpu["stale"]) == set(planned)  # this machine's measures every run
    for device, measurement in devices.items():
        for name, measured in measurement["runs"].items():
            assert measured["model"] == planned[name].model, (device, name)


def test_a_measurement_taken_with_other_settings_than_the_plans_is_named_and_not_counted(tmp_path: Path) -> None:
    planned = {run.name: run for run in plan_rows(STUDIES, "imagenet").values() if not isinstance(run, str)}
    settings = load_config(REPO / "params.yaml", ["recipe=resnet_he2016"])
    entry = {"model": "plain18", "image_size": 224, "batch_size": settings.train.batch_size, "precision": settings.trainer.precision}
    entry |= {"channels_last": settings.train.channels_last, "epochs": settings.train.epochs, "images_per_second": 1000.0}
    runs = {"plain18": entry, "plain34": entry | {"model": "plain34", "epochs": 30}}
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "cost.json").write_text(json.dumps({"device": "GPU", "device_kind": "cuda", "torch": "2", "runs": runs}))
    [measurement] = read_devices(tmp_path, planned, REPO / "params.yaml").values()
    assert set(measurement["runs"]) == {"plain18"}
    assert measurement["stale"] == {"plain34": [f"epochs 30 -> {settings.train.epochs}"]}
    table = cost_table(STUDIES, plan_rows(STUDIES, "imagenet"), {"gpu": measurement})
    assert "Table 1" in {row[0] for row in table.rows} and "≥" in {row[0]: row for row in table.rows}["Table 1"][3]
    assert f"`plain34` (epochs 30 -> {settings.train.epochs})" in " ".join(table.notes)


def test_a_budget_run_is_priced_epoch_by_epoch_at_its_size_scaling_the_measured_speed_by_macs() -> None:
    from oak.models.facts import model_facts
    from oak.report.cost import budget_run_hours

    budget = plan_rows(STUDIES, "budget")["fig4_depth_width/ResNet-50, 350 epochs, 224 px"]  # 12 epochs at 160 px, 4 at 192
    measured = {"image_size": 224, "images_per_second": IMAGENET_TRAIN_IMAGES / 3600}  # an hour an epoch at 224 px
    hours, scaled = budget_run_hours(measured, "resnet50", budget, REPO / "params.yaml")
    macs = {size: model_facts("resnet50", size).macs for size in (160, 192, 224)}
    assert hours == pytest.approx((12 * macs[160] + 4 * macs[192]) / macs[224])
    assert scaled and 0.5 < hours / 16 < 0.6  # about (5/7)² to (6/7)² of an epoch at 224 px


def test_the_cost_table_sets_the_budget_beside_the_imagenet_profile_with_their_ratio() -> None:
    table1 = [study for study in STUDIES if study.name == "table1"]
    planned, budget = plan_rows(table1, "imagenet"), plan_rows(table1, "budget")
    per_image = IMAGENET_TRAIN_IMAGES / 3600
    runs = {run.name: {"epochs": 90, "images_per_second": per_image, "image_size": 224} for run in planned.values()}
    table = cost_table(table1, planned, {"a": {"device": "GPU A", "torch": "2", "runs": runs}}, budget=budget)
    assert table.headings[3:] == ["GPU A (hours)", "GPU A, budget (hours)", "budget / imagenet"]
    row = table.rows[0]
    assert row[3] == "360"  # 4 runs x 90 epochs x an hour
    budget_hours = float(row[4].removesuffix("†"))  # 5 epochs each, at 160 and 192 px: scaled by MACs, marked
    assert 4 * 5 * 0.5 < budget_hours < 4 * 5 * 0.6 and row[5] == f"{100 * budget_hours / 360:.1f}%"
    assert any(note.startswith("Budget: ") for note in table.notes)


@pytest.mark.slow  # the MACs of every planned model at every budget size: about a minute
def test_the_budget_profile_costs_at_most_3_percent_of_the_imagenet_profile_on_every_device_measured() -> None:
    planned = plan_rows(STUDIES, "imagenet")
    runs = {run.name: run for run in planned.values() if not isinstance(run, str)}
    devices = read_devices(REPO / "metrics" / "devices", runs, REPO / "params.yaml")
    table = cost_table(STUDIES, planned, devices, budget=plan_rows(STUDIES, "budget"))
    total = table.rows[-1]
    ratios = [float(cell.removesuffix("%")) for heading, cell in zip(table.headings, total) if heading == "budget / imagenet"]
    assert len(ratios) == len(devices) and max(ratios) <= 3.0
    summary = (REPO / "docs" / "budget.md").read_text()
    h200 = table.headings.index("NVIDIA H200 (hours)")
    assert f"{total[h200]} hours for the imagenet profile, {total[h200 + 1]} for the budget ({total[h200 + 2]})" in " ".join(summary.split())
    cpu = table.headings.index("x86_64 (2 threads) (hours)")
    assert f"Over the {total[cpu].split('(')[1].split(' of')[0]} runs this machine's CPU measurement prices" in " ".join(summary.split())
    assert f"ratio is {total[cpu + 2]}:" in " ".join(summary.split())
