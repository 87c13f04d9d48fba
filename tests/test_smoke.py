"""`oak smoke`: planned imagenet runs at full resolution under 2-process DDP, killed, resumed and evaluated."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oak.errors import OakError

REPO = Path(__file__).parents[1]


def oak_smoke(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "oak.cli", "smoke", *arguments, f"paths.metrics={tmp_path / 'metrics'}"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


# Two runs, about a minute each alone on a 2-core machine: the per-recipe sweep (five runs) took
# 6 minutes in the suite here and more than 15 on CI's machine. These two are the recipes no other
# test trains at full size: ShuffleNet-v2's per-device batch of 128 at 224 px, and Inception-v3 at
# 299 px with its auxiliary classifier and EMA. tests/test_distributed.py covers EMA under DDP with
# a kill and resume on small images; `oak smoke imagenet --per-recipe` is the sweep to run by hand.
RUNS = ("shufflenet_v2_x2_0", "inception_v3")


@pytest.mark.slow  # DDP trainings at full resolution
def test_imagenet_runs_train_at_full_size_resume_after_sigkill_and_evaluate(tmp_path: Path) -> None:
    before = sorted(p.name for p in REPO.iterdir())
    done = oak_smoke(tmp_path, "imagenet", *(f"--run={run}" for run in RUNS))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["run"]: r for r in json.loads((tmp_path / "metrics" / "smoke" / "imagenet.json").read_text())["runs"]}
    assert set(results) == set(RUNS)
    assert all(r["status"] == "ok" and r["steps"] == 2 and r["peak_memory_mb"] > 0 for r in results.values())
    shufflenet, inception = results["shufflenet_v2_x2_0"], results["inception_v3"]
    assert (shufflenet["recipe"], shufflenet["image_size"], shufflenet["precision"]) == ("shufflenet_ma2018", 224, "bf16-mixed")
    assert shufflenet["recipe_batch"] == 128
    assert (inception["recipe"], inception["image_size"]) == ("inception_szegedy2016", 299)
    for r in results.values():  # the recipe's per-device batch, unless this machine's memory forces a smaller one, said so
        assert r["batch"] == r["recipe_batch"] or r["batch_note"].startswith(f"batch {r['recipe_batch']} -> {r['batch']}: ")
    assert all(run in done.stdout for run in RUNS)
    assert sorted(p.name for p in REPO.iterdir()) == before  # data, checkpoints and MLflow store stay in a temporary folder


def test_per_recipe_picks_the_cheapest_run_of_each_recipe() -> None:
    from oak.models.facts import model_facts
    from oak.studies.plan import plan_runs, run_config
    from oak.studies.study import load_studies
    from oak.training.smoke import lightest_per_recipe

    params = REPO / "params.yaml"
    runs = list(plan_runs(load_studies(REPO / "pipelines" / "studies"), "imagenet").values())
    chosen = lightest_per_recipe(runs, params)
    recipes = {path.stem for path in (REPO / "pipelines" / "recipes").glob("*.yaml")} - {"demo", "published"}  # published: evaluation only
    assert sorted(run.recipe for run in chosen) == sorted(recipes)  # one run for every recipe the imagenet profile trains with

    def cost(run) -> float:
        train = run_config(params, run).train
        return model_facts(run.model, train.image_size).macs * train.batch_size

    for pick in chosen:
        assert all(cost(pick) <= cost(run) for run in runs if run.recipe == pick.recipe)
    assert {"shufflenet_v2_x2_0", "inception_v3"} <= {run.name for run in chosen}  # what the test above trains


def test_an_unknown_run_is_one_clear_error(tmp_path: Path) -> None:
    done = oak_smoke(tmp_path, "imagenet", "--run", "resnet9000")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "oak smoke: error: no planned run resnet9000 in the imagenet profile; `oak plan imagenet` writes them to pipelines/plan.yaml"
    )


def test_the_committed_smoke_record_vouches_for_every_run_the_imagenet_profile_trains() -> None:
    # Binding: an entry counts only while taken with the settings the plan gives its run now. When this fails,
    # `oak smoke imagenet --run NAME` for each run named (the file keeps the other entries) and commit the file.
    from oak.studies.plan import plan_runs
    from oak.studies.study import load_studies
    from oak.training.smoke_record import uncovered_runs

    runs = {name: run for name, run in plan_runs(load_studies(REPO / "pipelines" / "studies"), "imagenet").items() if not run.weights}
    uncovered = uncovered_runs(REPO / "metrics" / "smoke" / "imagenet.json", runs, REPO / "params.yaml")
    assert not uncovered, f"metrics/smoke/imagenet.json does not vouch for {len(uncovered)} of {len(runs)} planned runs: {uncovered}"


def test_a_smoke_entry_outlives_a_change_of_numbers_but_not_of_what_the_run_builds() -> None:
    from oak.config.load import load_config
    from oak.studies.binding import smoke_fingerprint

    def fingerprint(*overrides: str) -> str:
        return smoke_fingerprint(load_config(REPO / "params.yaml", ["recipe=resnet_rs", *overrides]), "resnet50")

    tested = fingerprint()
    # numbers: a learning rate, a weight decay, RandAugment's magnitude, a crop fraction, an EMA's decay
    for numbers in (["train.lr=0.2"], ["train.weight_decay=1e-5"], ["train.auto_augment=rand-m15-n2-mmax15"],
                    ["train.eval_crop_padding=null", "train.eval_crop_pct=0.9"], ["train.ema_decay=0.999"]):  # fmt: skip
        assert fingerprint(*numbers) == tested, numbers
    # what it builds or runs: the model's modules, the optimizer, the precision, the batch, the pipeline
    for built in (["train.drop_path_rate=0.1"], ["train.ema_decay=null", "train.bn_momentum=0.1"], ["train.optimizer=adamw"], ["train.batch_size=64"],
                  ["trainer.precision=32-true"], ["train.auto_augment=null"], ["train.image_size=192"]):  # fmt: skip
        assert fingerprint(*built) != tested, built


def test_a_smoke_entry_stops_vouching_for_a_run_whose_settings_changed(tmp_path: Path) -> None:
    from oak.studies.binding import smoke_fingerprint
    from oak.studies.plan import plan_runs, run_config
    from oak.studies.study import load_studies
    from oak.training.smoke_record import uncovered_runs

    params = REPO / "params.yaml"
    run = plan_runs(load_studies(REPO / "pipelines" / "studies"), "imagenet")["resnet50"]
    config = run_config(params, run)
    entry = {"run": "resnet50", "model": "resnet50", "recipe": run.recipe, "image_size": config.train.image_size, "status": "ok"}
    entry |= {"precision": config.trainer.precision, "recipe_batch": config.train.batch_size}
    record = tmp_path / "imagenet.json"
    for fingerprint, vouches in ((smoke_fingerprint(config, "resnet50"), True), ("0" * 16, False)):
        record.write_text(json.dumps({"runs": [entry | {"fingerprint": fingerprint}]}))
        assert ("resnet50" not in uncovered_runs(record, {"resnet50": run}, params)) == vouches
    record.write_text(json.dumps({"runs": [entry | {"image_size": 160}]}))  # an entry from before fingerprints: its fields decide
    assert uncovered_runs(record, {"resnet50": run}, params) == {
        "resnet50": "tested with another model, recipe, resolution, precision or batch than the plan gives it now"
    }


BUDGET_RECORD = REPO / "metrics" / "smoke" / "budget.json"


@pytest.mark.skipif(not BUDGET_RECORD.exists(), reason="metrics/smoke/budget.json not recorded yet: `oak smoke budget` writes it")
def test_the_committed_smoke_record_vouches_for_every_run_the_budget_profile_trains() -> None:
    # As the imagenet record's test above: `oak smoke budget --run NAME` for each run named, and commit the file.
    from oak.studies.plan import plan_runs
    from oak.studies.study import load_studies
    from oak.training.smoke_record import uncovered_runs

    runs = plan_runs(load_studies(REPO / "pipelines" / "studies"), "budget", REPO / "params.yaml")
    uncovered = uncovered_runs(BUDGET_RECORD, runs, REPO / "params.yaml")
    assert not uncovered, f"metrics/smoke/budget.json does not vouch for {len(uncovered)} of {len(runs)} planned runs: {uncovered}"


def test_runs_that_differ_only_in_length_share_one_smoke_test_and_runs_of_other_sizes_do_not() -> None:
    from oak.studies.plan import plan_rows
    from oak.studies.study import load_studies
    from oak.training.smoke import _alike

    planned = plan_rows(load_studies(REPO / "pipelines" / "studies"), "budget", REPO / "params.yaml")
    resnet101 = "fig4_depth_width/ResNet-50 depth x2 (ResNet-101), {} epochs, {} px"
    runs = [planned[resnet101.format(epochs, size)] for size in (224, 128) for epochs in (350, 100, 10)]
    groups = [[run.name for run in group] for group in _alike(runs, REPO / "params.yaml")]
    assert groups == [[run.name for run in runs[:3]], [run.name for run in runs[3:]]]  # 16, 5 and 1 epochs alike; 224 px apart


def test_a_hung_invocation_is_killed_and_reported_not_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oak.training.smoke as smoke

    monkeypatch.setattr(smoke, "HANG_SECONDS", 1)
    log = tmp_path / "resumed.log"
    started = time.monotonic()
    with log.open("w") as out, pytest.raises(OakError, match="resumed: still running after .* min, killed \\(a hang\\)"):
        ranks = smoke._start_ranks([sys.executable, "-c", "print('stuck', flush=True); import time; time.sleep(60)"], out)
        smoke._wait(ranks, lambda: False, log)
    assert time.monotonic() - started < 30 and all(rank.poll() is not None for rank in ranks)
