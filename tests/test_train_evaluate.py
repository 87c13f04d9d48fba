"""Training and evaluation for real: Lightning on tiny shards, logged to a real MLflow SQLite store."""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from oak.config import load_config
from oak.errors import OakError
from oak.evaluate import evaluate, eval_metrics_path
from oak.train import CHECKPOINT, checkpoint_dir, train, train_metrics_path

MODEL = "shufflenet_v2_x0_5"  # the study's lightest model: seconds per epoch here


def tiny_config(tmp_path: Path, shards: Path, *overrides: str):
    return load_config(
        Path("no-params-file.yaml"),
        [
            f"paths.shards={shards}",
            f"paths.checkpoints={tmp_path / 'models'}",
            f"paths.metrics={tmp_path / 'metrics'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "tracking.experiment=test-study",
            "train.epochs=2",
            "train.batch_size=8",
            "train.image_size=32",
            "train.num_workers=0",
            "evaluate.num_workers=0",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shards: Path):
    tmp_path = tmp_path_factory.mktemp("run")
    config = tiny_config(tmp_path, shards)
    return config, train(config, MODEL), evaluate(config, MODEL)


def test_training_writes_a_checkpoint_and_its_metrics(trained) -> None:
    config, train_metrics, _ = trained
    assert (checkpoint_dir(config, MODEL) / CHECKPOINT).exists()
    assert (checkpoint_dir(config, MODEL) / "config.yaml").exists()
    assert json.loads(train_metrics_path(config, MODEL).read_text()) == train_metrics
    assert train_metrics["epochs"] == 2
    assert train_metrics["steps"] == 2 * (40 // 8)  # drop_last: whole batches only


def test_evaluation_counts_every_val_sample(trained) -> None:
    config, _, eval_metrics = trained
    assert json.loads(eval_metrics_path(config, MODEL).read_text()) == eval_metrics
    assert eval_metrics["samples"] == 20
    assert 0 <= eval_metrics["top1"] <= eval_metrics["top5"] <= 1
    assert eval_metrics["top1"] * 20 == pytest.approx(round(eval_metrics["top1"] * 20))  # a whole number correct
    assert eval_metrics["params"] > 0


def test_one_mlflow_run_holds_config_epochs_and_final_metrics(trained) -> None:
    config, train_metrics, eval_metrics = trained
    client = MlflowClient(config.tracking.uri)
    experiment = client.get_experiment_by_name("test-study")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == MODEL
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["trainer.accelerator"] == "cpu"
    assert run.data.tags["model"] == MODEL
    assert run.data.tags["stage"] == "train,evaluate"
    assert run.data.tags["dataset"] == "oak-demo (synthetic)"
    assert run.data.tags["synthetic"] == "true"
    assert len(run.data.tags["git_commit"]) in (40, len("unknown"))
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val/top1")][-1] == pytest.approx(train_metrics["val_top1"])
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 2  # one point per epoch
    assert run.data.metrics["eval/top1"] == pytest.approx(eval_metrics["top1"])
    assert run.data.metrics["params"] == eval_metrics["params"]


def test_training_is_deterministic_on_cpu(trained, tmp_path: Path, shards: Path) -> None:
    config, train_metrics, eval_metrics = trained
    again = tiny_config(tmp_path, shards)
    assert {k: v for k, v in train(again, MODEL).items() if k != "train_seconds"} == {
        k: v for k, v in train_metrics.items() if k != "train_seconds"
    }
    assert evaluate(again, MODEL) == eval_metrics


def test_evaluating_an_untrained_model_says_what_to_run(tmp_path: Path, shards: Path) -> None:
    with pytest.raises(OakError, match="checkpoint not found; run `oak train`"):
        evaluate(tiny_config(tmp_path, shards), "resnet18")
