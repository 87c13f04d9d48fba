"""`oak smoke`: planned imagenet runs at full resolution under 2-process DDP, killed, resumed and evaluated."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # oak smoke: DDP trainings at full resolution

REPO = Path(__file__).parents[1]


def oak_smoke(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "oak.cli", "smoke", *arguments, f"paths.metrics={tmp_path / 'metrics'}"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def test_the_lightest_imagenet_run_of_each_recipe_trains_resumes_after_sigkill_and_evaluates(tmp_path: Path) -> None:
    before = sorted(p.name for p in REPO.iterdir())
    done = oak_smoke(tmp_path, "imagenet", "--per-recipe")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["recipe"]: r for r in json.loads((tmp_path / "metrics" / "smoke" / "imagenet.json").read_text())["runs"]}
    recipes = {path.stem for path in (REPO / "pipelines" / "recipes").glob("*.yaml")} - {"demo"}
    assert set(results) == recipes  # every recipe the imagenet profile trains with
    assert all(r["status"] == "ok" and r["steps"] == 2 and r["peak_memory_mb"] > 0 for r in results.values())
    shufflenet = results["shufflenet_ma2018"]
    assert (shufflenet["run"], shufflenet["image_size"], shufflenet["precision"]) == ("shufflenet_v2_x2_0", 224, "bf16-mixed")
    assert shufflenet["recipe_batch"] == 128
    for r in results.values():  # the recipe's per-device batch, unless this machine's memory forces a smaller one, said so
        assert r["batch"] == r["recipe_batch"] or r["batch_note"].startswith(f"batch {r['recipe_batch']} -> {r['batch']}: ")
    assert all(r["run"] in done.stdout for r in results.values())
    assert sorted(p.name for p in REPO.iterdir()) == before  # data, checkpoints and MLflow store stay in a temporary folder


def test_an_unknown_run_is_one_clear_error(tmp_path: Path) -> None:
    done = oak_smoke(tmp_path, "imagenet", "--run", "resnet9000")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "oak smoke: error: no planned run resnet9000 in the imagenet profile; `oak plan imagenet` writes them to pipelines/plan.yaml"
    )
