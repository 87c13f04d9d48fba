"""`oak smoke`: a planned imagenet run at full resolution under 2-process DDP, killed, resumed and evaluated."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]


def oak_smoke(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "oak.cli", "smoke", *arguments, f"paths.metrics={tmp_path / 'metrics'}"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def test_the_lightest_imagenet_run_trains_resumes_after_sigkill_and_evaluates_with_its_real_recipe(tmp_path: Path) -> None:
    before = sorted(p.name for p in REPO.iterdir())
    done = oak_smoke(tmp_path, "imagenet", "--run", "shufflenet_v2_x2_0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result] = json.loads((tmp_path / "metrics" / "smoke" / "imagenet.json").read_text())["runs"]
    assert result["status"] == "ok" and result["steps"] == 2
    assert (result["recipe"], result["image_size"], result["precision"]) == ("shufflenet_ma2018", 224, "bf16-mixed")
    assert result["batch"] == result["recipe_batch"] == 128 and result["peak_memory_mb"] > 0
    assert "shufflenet_v2_x2_0" in done.stdout and " ok" in done.stdout
    assert sorted(p.name for p in REPO.iterdir()) == before  # its data, checkpoints and MLflow store stay in a temporary folder


def test_an_unknown_run_is_one_clear_error(tmp_path: Path) -> None:
    done = oak_smoke(tmp_path, "imagenet", "--run", "resnet9000")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "oak smoke: error: no planned run resnet9000 in the imagenet profile; `oak plan imagenet` writes them to pipelines/plan.yaml"
    )
