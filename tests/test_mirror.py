"""`oak sync`: MLflow holds DVC's record of every planned run, whether its stages ran against this store or not."""

import json
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf
from params_files import PARAMS
from test_train_evaluate import MODEL, tiny_config

from oak.data.info import read_info
from oak.layout import RUN_FILE, Layout
from oak.studies.plan import plan_runs, run_config
from oak.studies.study import load_studies
from oak.tracking.mirror import COMPUTED_HERE, RECORD_TAG, sync_record
from oak.training.evaluate import evaluate
from oak.training.train import train

REPO = Path(__file__).resolve().parents[1]
RECORD_FOLDERS = ("train", "curves", "eval", "timings")


def committed_record(metrics: Path, only: tuple[str, ...] = ()) -> dict[str, str]:
    """The repository's committed demo record copied to `metrics`, as a fresh clone has it; its runs (name: model),
    all of them or `only` those."""
    for folder in RECORD_FOLDERS:
        shutil.copytree(REPO / "metrics" / folder, metrics / folder)
    return {name: run.model for name, run in plan_runs(load_studies(), "demo").items() if not only or name in only}


def sync(config: DictConfig, runs: dict[str, str], shards: Path):
    configs = {name: OmegaConf.merge(config, {"recipe": "demo"}) for name in runs}
    return sync_record(config, runs, read_info(shards), configs)


def runs_by_name(config: DictConfig) -> dict[str, object]:
    client = MlflowClient(config.tracking.uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(found) == len({run.info.run_name for run in found}), "one MLflow run per planned run"
    return {run.info.run_name: run for run in found}


def test_a_store_that_missed_every_stage_receives_the_whole_record(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards)
    runs = committed_record(tmp_path / "metrics")
    summary = sync(config, runs, shards)
    assert sorted(summary.created) == sorted(runs) and not summary.updated and not summary.not_recorded
    client = MlflowClient(config.tracking.uri)
    for name, mirrored in runs_by_name(config).items():
        evaluated = json.loads((tmp_path / "metrics" / "eval" / f"{name}.json").read_text())
        trained = json.loads((tmp_path / "metrics" / "train" / f"{name}.json").read_text())
        assert mirrored.data.metrics["eval/top1"] == pytest.approx(evaluated["top1"])
        assert [point.step for point in client.get_metric_history(mirrored.info.run_id, "val/top1")] == list(range(trained["epochs"]))
        assert mirrored.data.tags["oak.source.eval"].startswith(f"DVC record: {tmp_path / 'metrics' / 'eval' / name}.json (md5 ")
        assert mirrored.data.params["model"] == runs[name]


def test_repeating_the_sync_adds_no_run_and_no_point(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards)
    runs = committed_record(tmp_path / "metrics", only=("resnet18", "plain18"))
    sync(config, runs, shards)
    client = MlflowClient(config.tracking.uri)
    points = {name: len(client.get_metric_history(run.info.run_id, "val/top1")) for name, run in runs_by_name(config).items()}
    again = sync(config, runs, shards)
    assert sorted(again.unchanged) == sorted(runs) and not again.created and not again.updated
    assert {name: len(client.get_metric_history(run.info.run_id, "val/top1")) for name, run in runs_by_name(config).items()} == points


def test_a_changed_record_completes_the_run_the_last_sync_made(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards)
    runs = committed_record(tmp_path / "metrics", only=("resnet18",))
    evaluation = tmp_path / "metrics" / "eval" / "resnet18.json"
    kept = evaluation.read_text()
    evaluation.unlink()  # a record whose evaluation had not run yet
    assert sync(config, runs, shards).created == ["resnet18"]
    assert "eval/top1" not in runs_by_name(config)["resnet18"].data.metrics
    evaluation.write_text(kept)
    assert sync(config, runs, shards).updated == ["resnet18"]
    assert runs_by_name(config)["resnet18"].data.metrics["eval/top1"] == pytest.approx(json.loads(kept)["top1"])


def test_a_planned_run_without_a_training_in_the_record_is_counted_not_invented(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards)
    runs = committed_record(tmp_path / "metrics", only=("resnet18",)) | {"never-trained": "resnet18"}
    summary = sync(config, runs, shards)
    assert summary.not_recorded == ["never-trained"] and "never-trained" not in runs_by_name(config)
    assert "not in DVC's record yet: never-trained" in summary.line("oak-demo")


@pytest.mark.slow  # one tiny training
def test_a_training_run_here_whose_evaluation_dvc_skipped_receives_it_in_its_own_run(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards)
    train(config, MODEL)
    # evaluated into another store: this one, like a fresh clone's, never saw the evaluation stage run
    evaluate(OmegaConf.merge(config, {"tracking": {"uri": f"sqlite:///{tmp_path / 'elsewhere.db'}"}}), MODEL)
    run_id = json.loads((Layout.of(config).run_folder(MODEL) / RUN_FILE).read_text())["run_id"]
    assert "eval/top1" not in MlflowClient(config.tracking.uri).get_run(run_id).data.metrics

    summary = sync(config, {MODEL: MODEL}, shards)
    assert summary.updated == [MODEL]
    [mirrored] = runs_by_name(config).values()
    assert mirrored.info.run_id == run_id
    evaluated = json.loads(Layout.of(config).eval_metrics(MODEL).read_text())
    assert mirrored.data.metrics["eval/top1"] == pytest.approx(evaluated["top1"])
    assert mirrored.data.tags["oak.source.train"] == COMPUTED_HERE
    assert mirrored.data.tags["stage"] == "train"  # the training's own tags are left as they were
    assert mirrored.data.tags["oak.source.eval"].startswith("DVC record: ")
    assert RECORD_TAG in mirrored.data.tags
    assert len(MlflowClient(config.tracking.uri).get_metric_history(run_id, "val/top1")) == 2  # the training's own, not doubled


def test_each_planned_run_resolves_its_own_settings(tmp_path: Path, shards: Path) -> None:
    # as `oak sync` does: the params of a run made from the record are those `dvc repro` trained it with
    config = tiny_config(tmp_path, shards)
    runs = {name: run for name, run in plan_runs(load_studies(), "demo").items() if name.startswith("efficientnet_b0")}
    committed_record(tmp_path / "metrics")
    configs = {name: run_config(PARAMS, run) for name, run in runs.items()}
    sync_record(config, {name: run.model for name, run in runs.items()}, read_info(shards), configs)
    mirrored = runs_by_name(config)
    assert mirrored["efficientnet_b0-64px"].data.params["train.image_size"] == "64"
    assert mirrored["efficientnet_b0"].data.params["train.image_size"] == str(configs["efficientnet_b0"].train.image_size)
