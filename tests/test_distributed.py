"""DDP on CPU for real: two processes (gloo) started by Lightning from the `oak` command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from params_files import PARAMS

from oak.preparing.shards import prepare_shards

pytestmark = pytest.mark.slow  # 2-process DDP trainings

MODEL = "shufflenet_v2_x0_5"
EPOCHS = 2
COMMON = [
    "paths.shards=shards",
    "train.image_size=32",
    "train.batch_size=4",
    "train.num_workers=0",
    "evaluate.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
]
TWO_PROCESSES = ["trainer.devices=2", "trainer.strategy=ddp"]


def oak(folder: Path, *arguments: str) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), *arguments],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def trained_on_two(demo_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ddp")
    prepare_shards(demo_tree, folder / "shards", samples_per_shard=8, seed=0)  # 5 train and 3 val shards
    oak(folder, "train", MODEL, f"train.epochs={EPOCHS}", *COMMON, *TWO_PROCESSES)
    return folder


def eval_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics" / "eval" / f"{MODEL}.json").read_text())


def test_two_processes_split_each_epoch_into_equal_halves(trained_on_two: Path) -> None:
    metrics = json.loads((trained_on_two / "metrics" / "train" / f"{MODEL}.json").read_text())
    assert metrics["steps"] == EPOCHS * 40 // (2 * 4)  # 40 samples, 2 ranks x batches of 4


def test_only_rank_zero_logs_one_run_with_one_point_per_epoch(trained_on_two: Path) -> None:
    client = MlflowClient(f"sqlite:///{trained_on_two / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["devices"] == "cpu x 2 x 1 node(s)"
    for key in ("train/loss", "train/top1", "val/top1", "lr", "train/images_per_second"):
        assert len(client.get_metric_history(run.info.run_id, key)) == EPOCHS, key
    samples = client.get_metric_history(run.info.run_id, "train/samples")
    assert [point.value for point in samples] == [40.0] * EPOCHS  # both ranks' halves, summed


def test_evaluation_on_one_and_on_two_processes_counts_every_sample_once(trained_on_two: Path) -> None:
    oak(trained_on_two, "evaluate", MODEL, *COMMON)
    one = eval_metrics(trained_on_two)
    oak(trained_on_two, "evaluate", MODEL, *COMMON, *TWO_PROCESSES)
    two = eval_metrics(trained_on_two)
    assert one["samples"] == two["samples"] == 20
    assert round(one["top1"] * 20) == round(two["top1"] * 20)  # the same correct count
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)


def test_ddp_with_ema_and_the_efficientnet_recipe_trains_resumes_after_sigkill_and_evaluates(demo_tree: Path, tmp_path: Path) -> None:
    """The imagenet profile's recipe under 2-process DDP: EMA, bf16, stochastic depth, AutoAugment and
    SyncBatchNorm (plain BatchNorm on CPU), killed mid-training and resumed into the same MLflow run."""
    import signal
    import time

    import torch

    prepare_shards(demo_tree, tmp_path / "shards", samples_per_shard=8, seed=0)
    arguments = ["--run", "ddp-eff", "efficientnet_b0", "recipe=efficientnet", "train.epochs=8", "train.checkpoint_every_n_steps=2"]
    arguments += [*COMMON, *TWO_PROCESSES]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "train", *arguments]
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = tmp_path / "models" / "ddp-eff" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(first.pid, signal.SIGKILL)  # both ranks at once, as a node failure
    first.wait()
    stopped_at = torch.load(checkpoint, weights_only=True, map_location="cpu")["global_step"]
    assert 0 < stopped_at < 8 * 5, "training ended before it could be killed"

    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in second.stdout + second.stderr
    assert "SyncBatchNorm runs only on GPUs" in second.stderr
    assert json.loads((tmp_path / "metrics" / "train" / "ddp-eff.json").read_text())["steps"] == 8 * 5
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]
    assert any(name.startswith("ema.module.") for name in state)

    oak(tmp_path, "evaluate", "--run", "ddp-eff", "efficientnet_b0", "recipe=efficientnet", *COMMON, *TWO_PROCESSES)
    evaluated = json.loads((tmp_path / "metrics" / "eval" / "ddp-eff.json").read_text())
    assert evaluated["samples"] == 20
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    [run] = client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id])
    assert run.info.status == "FINISHED" and "eval/top1" in run.data.metrics


def test_ddp_trains_every_regulariser_at_once_compiled_and_evaluates(demo_tree: Path, tmp_path: Path) -> None:
    """mixup, cutmix, RandAugment, stochastic depth, EMA, bf16, channels_last and torch.compile, on 2 processes."""
    prepare_shards(demo_tree, tmp_path / "shards", samples_per_shard=8, seed=0)
    recipe = ["train.mixup_alpha=0.2", "train.cutmix_alpha=1.0", "train.auto_augment=rand-m9-mstd0.5", "train.drop_path_rate=0.1"]
    recipe += ["train.ema_decay=0.999", "train.channels_last=true", "train.compile=true", "trainer.precision=bf16-mixed"]
    oak(tmp_path, "train", "resnet18", "train.epochs=1", *recipe, *COMMON, *TWO_PROCESSES)
    oak(tmp_path, "evaluate", "resnet18", *recipe, *COMMON, *TWO_PROCESSES)
    assert json.loads((tmp_path / "metrics" / "train" / "resnet18.json").read_text())["steps"] == 40 // (2 * 4)
    assert json.loads((tmp_path / "metrics" / "eval" / "resnet18.json").read_text())["samples"] == 20
