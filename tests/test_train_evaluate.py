"""Training and evaluation for real: Lightning on tiny shards, logged to a real MLflow SQLite store."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from omegaconf import OmegaConf
from params_files import PARAMS

from oak.config.load import load_config
from oak.errors import OakError
from oak.layout import CHECKPOINT_FILE, Layout
from oak.models import create_model
from oak.training.curves import read_curves
from oak.training.evaluate import evaluate
from oak.training.train import train

pytestmark = pytest.mark.slow  # trainings, several killed and resumed

MODEL = "shufflenet_v2_x0_5"  # the study's lightest model: seconds per epoch here


def tiny_overrides(tmp_path: Path, shards: Path) -> list[str]:
    return [
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
    ]


def tiny_config(tmp_path: Path, shards: Path, *overrides: str):
    return load_config(PARAMS, [*tiny_overrides(tmp_path, shards), *overrides])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shards: Path):
    tmp_path = tmp_path_factory.mktemp("run")
    config = tiny_config(tmp_path, shards)
    return config, train(config, MODEL), evaluate(config, MODEL)


def test_training_writes_a_checkpoint_and_its_metrics(trained) -> None:
    config, train_metrics, _ = trained
    assert (Layout.of(config).run_folder(MODEL) / CHECKPOINT_FILE).exists()
    assert (Layout.of(config).run_folder(MODEL) / "config.yaml").exists()
    assert json.loads(Layout.of(config).train_metrics(MODEL).read_text()) == train_metrics
    assert train_metrics["epochs"] == 2
    assert train_metrics["steps"] == 2 * (40 // 8)  # drop_last: whole batches only


def test_training_writes_its_curves_one_row_per_epoch(trained) -> None:
    config, train_metrics, _ = trained
    rows = read_curves(Layout.of(config).curves(MODEL))
    assert [row["epoch"] for row in rows] == [0, 1]
    assert {"train/loss", "train/top1", "val/loss", "val/top1", "val/top5", "lr", "train/images_per_second"} <= set(rows[-1])
    assert rows[-1]["val/top1"] == pytest.approx(train_metrics["val_top1"])


def test_evaluation_counts_every_val_sample(trained) -> None:
    config, _, eval_metrics = trained
    assert json.loads(Layout.of(config).eval_metrics(MODEL).read_text()) == eval_metrics
    assert eval_metrics["samples"] == 20
    assert 0 <= eval_metrics["top1"] <= eval_metrics["top5"] <= 100  # per cent
    assert eval_metrics["top1"] * 20 == pytest.approx(round(eval_metrics["top1"] * 20))  # a whole number correct
    assert eval_metrics["params"] > 0


def test_one_mlflow_run_holds_config_epochs_and_final_metrics(trained) -> None:
    config, train_metrics, eval_metrics = trained
    client = MlflowClient(config.tracking.uri)
    experiment = client.get_experiment_by_name("test-study")
    [run] = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'train,evaluate'")
    assert run.info.run_name == MODEL
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["trainer.accelerator"] == "cpu"
    assert (run.data.params["model"], run.data.params["family"], run.data.params["recipe"]) == (MODEL, "lightweight", "demo")
    assert run.data.params["dataset.fingerprint"] == run.data.tags["dataset_fingerprint"]
    assert not {
        key for key in run.data.params if key.split(".")[0] in {"paths", "demo", "prepare", "bench", "report", "tracking", "cluster"}
    }
    assert run.data.tags["model"] == MODEL
    assert run.data.tags["stage"] == "train,evaluate"
    assert run.data.tags["dataset"] == "oak-demo (synthetic)"
    assert run.data.tags["synthetic"] == "true"
    assert len(run.data.tags["git_commit"]) in (40, len("unknown"))
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val/top1")][-1] == pytest.approx(train_metrics["val_top1"])
    assert [point.step for point in client.get_metric_history(run.info.run_id, "train/loss")] == [0, 1]  # the epoch is the step
    assert "epoch" not in run.data.metrics
    assert run.data.metrics["eval/top1"] == pytest.approx(eval_metrics["top1"])
    assert [point.step for point in client.get_metric_history(run.info.run_id, "eval/top1")] == [0]  # one point, no stray one
    assert run.data.metrics["model/parameters"] == 1_366_792  # ShuffleNet-v2 0.5x as torchvision publishes it (1000 classes)
    assert run.data.metrics["model/gmacs"] > 0 and "params" not in run.data.metrics
    assert client.get_experiment_by_name("test-study").tags["mlflow.experimentKind"] == "custom_model_development"


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


def test_given_weights_evaluate_to_the_same_numbers_as_the_checkpoint(trained, tmp_path: Path) -> None:
    config, _, eval_metrics = trained
    from safetensors.torch import save_file

    from oak.models.weights import network_state, read_state_dict

    state = network_state(read_state_dict(Layout.of(config).run_folder(MODEL) / CHECKPOINT_FILE))
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp_state_dict.pt")
    save_file(state, tmp_path / "weights.safetensors")
    for weights in (tmp_path / "ddp_state_dict.pt", tmp_path / "weights.safetensors"):
        assert evaluate(config, MODEL, weights) == eval_metrics


class Payload:
    """Unpickling this runs code: it creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_carries_code_is_refused_without_running_it(trained, tmp_path: Path) -> None:
    config, _, _ = trained
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {"net.x": torch.zeros(1)}, "payload": Payload(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(OakError, match="evil.ckpt: refused, not a file of tensors only") as refused:
        evaluate(config, MODEL, tmp_path / "evil.ckpt")
    assert not marker.exists()
    assert "weights_only" not in str(refused.value)  # PyTorch's advice to turn the check off is never passed on


@pytest.mark.parametrize(
    ("name", "message"), [("random.bin", "refused, not a file of tensors only"), ("random.safetensors", "not a readable safetensors file")]
)
def test_random_bytes_as_weights_are_one_clear_error(trained, tmp_path: Path, name: str, message: str) -> None:
    config, _, _ = trained
    (tmp_path / name).write_bytes(bytes(range(256)) * 40)
    with pytest.raises(OakError, match=rf"{name}: {message}") as refused:
        evaluate(config, MODEL, tmp_path / name)
    assert "weights_only" not in str(refused.value)


def test_weights_of_another_model_are_refused_with_the_reason(trained, tmp_path: Path) -> None:
    config, _, _ = trained
    torch.save(create_model("resnet18", num_classes=4).state_dict(), tmp_path / "resnet18.pt")
    with pytest.raises(OakError, match=r"weights do not fit ShuffleNetV2 \(missing: "):
        evaluate(config, MODEL, tmp_path / "resnet18.pt")


def slurm_job(tmp_path: Path) -> dict[str, str]:
    """The environment of a SLURM batch job. No cluster here: a two-line `scontrol` stands in for
    SLURM's, and ends the job on a requeue the way SLURM does, with SIGKILL."""
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    scontrol = bin_folder / "scontrol"
    scontrol.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/requeued"\nkill -KILL $PPID\n')
    scontrol.chmod(0o755)
    job = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "oak-test", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
    return {"PATH": f"{bin_folder}:{os.environ['PATH']}", "SLURM_NODEID": "0", **job}


# How each way of stopping shows: the signal sent, the exit status, and the run's state meanwhile.
# SIGTERM, sent to the process group as scancel, timeout and docker stop send it, so that it reaches
# the loader's workers too: they leave it to the training, Lightning stops at the next batch and Oak
# exits 143 (not Lightning's 0). A SLURM requeue (SIGUSR1): Lightning writes hpc_ckpt_1.ckpt and
# calls `scontrol requeue`, which ends the job; Oak resumes from its own last.ckpt (see
# oak.training.checkpoints.drop_requeue_checkpoints).
STOPS = {
    "SIGKILL": (signal.SIGKILL, -signal.SIGKILL, "RUNNING"),
    "SIGTERM to the group, with loader workers": (signal.SIGTERM, 128 + signal.SIGTERM, "KILLED"),
    "SLURM requeue": (signal.SIGUSR1, -signal.SIGKILL, "RUNNING"),
}


@pytest.mark.parametrize("stop", STOPS)
def test_a_stopped_training_resumes_from_its_last_checkpoint_in_the_same_run(stop: str, tmp_path: Path, shards: Path) -> None:
    epochs = 12  # long enough to be stopped part way: the stop comes 0.5 s after the first checkpoint, at step 2 of 60
    overrides = [
        f"paths.shards={shards}",
        "train.batch_size=8",
        "train.image_size=32",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        f"train.epochs={epochs}",
        "train.checkpoint_every_n_steps=2",  # and every epoch (5 steps): stops land mid-epoch too
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    if stop == "SLURM requeue":
        env |= slurm_job(tmp_path)
    sent, status, state = STOPS[stop]
    to_group = "group" in stop
    command = [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "train", MODEL, *overrides, f"train.num_workers={int(to_group)}"]
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    folder = tmp_path / "models" / MODEL
    deadline = time.monotonic() + 180
    while not (folder / CHECKPOINT_FILE).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # into a later epoch
    os.killpg(first.pid, sent) if to_group else first.send_signal(sent)
    errors = first.communicate()[1].decode(errors="replace")
    assert first.returncode == status, errors[-3000:]
    if stop == "SLURM requeue":
        assert (tmp_path / "bin" / "requeued").read_text().split() == ["requeue", "4242"]
        assert (folder / "hpc_ckpt_1.ckpt").exists()
    resume_from = folder / CHECKPOINT_FILE
    stopped_at = torch.load(resume_from, weights_only=True, map_location="cpu")["global_step"]
    assert 0 < stopped_at < epochs * 5
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    [run] = client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id])
    assert run.info.status == state

    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert f"Restoring states from the checkpoint path at {resume_from.relative_to(tmp_path)}" in second.stdout + second.stderr
    assert json.loads((tmp_path / "metrics" / "train" / f"{MODEL}.json").read_text())["steps"] == epochs * 5
    assert not list(folder.glob("hpc_ckpt_*.ckpt"))

    [run] = client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id])
    assert run.info.status == "FINISHED"
    for key in ("train/loss", "val/top1", "lr"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)) == epochs, key  # each epoch once: none lost, none repeated
    curves = read_curves(tmp_path / "metrics" / "curves" / f"{MODEL}.csv")
    assert [row["epoch"] for row in curves] == list(range(epochs))
    assert {row["train/samples"] for row in curves} == {40}  # the resumed epoch reports on all its batches


def test_an_explicit_resume_without_a_checkpoint_fails_loudly(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards)
    with pytest.raises(OakError, match=r"no checkpoint of an unfinished training with this config to resume; drop --resume"):
        train(config, MODEL, resume=True)
    assert not Layout.of(config).run_folder(MODEL).exists()


def test_a_changed_config_starts_afresh_instead_of_resuming(trained, tmp_path: Path, shards: Path) -> None:
    config, _, _ = trained
    changed = tiny_config(tmp_path, shards, f"paths.checkpoints={Layout.of(config).run_folder(MODEL).parent}", "train.lr=0.01")
    train(changed, MODEL)
    record = json.loads((Layout.of(config).run_folder(MODEL) / "run.json").read_text())
    assert record["complete"] is True
    client = MlflowClient(changed.tracking.uri)
    assert client.get_run(record["run_id"]).data.params["train.lr"] == "0.01"


def test_a_recipe_with_every_regulariser_trains_and_evaluates_its_ema_weights(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(
        tmp_path,
        shards,
        "recipe=resnet_rs",
        "train.epochs=1",
        "train.image_size=32",
        "train.eval_image_size=40",
        "train.mixup_alpha=0.2",
        "train.cutmix_alpha=1.0",
        "train.random_erasing=0.25",
        "train.drop_path_rate=0.1",
        "train.checkpoint_every_n_steps=2",
        "trainer.sync_batchnorm=false",
    )
    assert config.train.ema_decay == 0.9999 and config.trainer.precision == "bf16-mixed"
    train(config, "resnet18")
    state = torch.load(Layout.of(config).run_folder("resnet18") / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    assert any(name.startswith("ema.module.") for name in state)
    metrics = evaluate(config, "resnet18")
    assert metrics["samples"] == 20 and 0.0 <= metrics["top1"] <= 100.0


def test_oak_evaluation_equals_a_plain_pytorch_loop_over_the_image_folder(trained, demo_tree: Path) -> None:
    """Parity: the shards, loaders and metrics add nothing and lose nothing."""
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    config, _, _ = trained
    config = OmegaConf.merge(config, {"evaluate": {"batch_size": 7}})  # as the loop below: 3 unequal batches
    eval_metrics = evaluate(config, MODEL)  # of the checkpoint there now (another test may have retrained it)
    net = create_model(MODEL, num_classes=4).eval()
    state = torch.load(Layout.of(config).run_folder(MODEL) / CHECKPOINT_FILE, weights_only=True, map_location="cpu")["state_dict"]
    net.load_state_dict({name.removeprefix("net."): value for name, value in state.items() if name.startswith("net.")})
    size = config.train.image_size
    # The recipe's evaluation settings, not timm's defaults for a model without a pretrained config
    # (bicubic): with those the pixels differed, and the loss by 1.7e-5 (relative) after a retraining.
    recipe = {"input_size": (3, size, size), "interpolation": config.train.interpolation, "crop_pct": config.train.eval_crop_pct}
    transform = create_transform(**resolve_data_config(recipe, model=net), is_training=False)
    folder = ImageFolder(demo_tree / "val", transform=transform)
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for images, targets in torch.utils.data.DataLoader(folder, batch_size=7):
            logits = net(images)
            correct += int((logits.argmax(1) == targets).sum())
            loss_sum += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
    assert eval_metrics["samples"] == len(folder)
    assert round(eval_metrics["top1"] / 100 * len(folder)) == correct
    assert eval_metrics["loss"] == pytest.approx(loss_sum / len(folder), rel=1e-5)


def test_a_short_runs_ema_has_moved_from_the_initial_weights_with_the_training(tmp_path: Path, shards: Path) -> None:
    """10 updates at decay 0.9999: warmed up, the EMA keeps about 1e-5 of the initial weights, not 99.9%."""
    import lightning as L

    from oak.training.setup import build_net

    config = tiny_config(tmp_path, shards, "train.ema_decay=0.9999")
    L.seed_everything(config.seed, workers=True)  # as train() does before building the network
    initial = build_net(config.train, MODEL, 4).state_dict()
    train(config, MODEL)
    state = torch.load(Layout.of(config).run_folder(MODEL) / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    trained_weights = {name.removeprefix("net."): value for name, value in state.items() if name.startswith("net.")}
    ema = {name.removeprefix("ema.module."): value for name, value in state.items() if name.startswith("ema.module.")}
    moved = [name for name, value in initial.items() if value.is_floating_point() and not torch.equal(trained_weights[name], value)]

    def distance(weights: dict) -> float:
        return sum(float((weights[name] - initial[name]).norm() ** 2) for name in moved) ** 0.5

    assert distance(ema) > 0.5 * distance(trained_weights) > 0  # the EMA followed the training


def test_sync_batchnorm_falls_back_to_plain_batchnorm_on_a_cpu_with_a_notice(capsys: pytest.CaptureFixture) -> None:
    from oak.training.setup import trainer_settings

    config = load_config(PARAMS, ["recipe=efficientnet", "trainer.accelerator=cpu"])
    assert config.trainer.sync_batchnorm is True
    assert trainer_settings(config)["sync_batchnorm"] is False
    assert "SyncBatchNorm runs only on GPUs" in capsys.readouterr().err


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("setting", ["train.batch_size=1000", "trainer.accelerator=gpu"])  # found by Lightning, not the schema
def test_a_setting_that_fails_at_the_start_leaves_a_finished_training_as_it_was(setting: str, tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards, "train.epochs=1")
    train(config, MODEL)
    folder, metrics = Layout.of(config).run_folder(MODEL), Layout.of(config).train_metrics(MODEL)
    before, metrics_before = folder_bytes(folder), metrics.read_bytes()
    with pytest.raises(Exception, match=r"(?i)no full batch of 1000|gpu"):
        train(tiny_config(tmp_path, shards, "train.epochs=1", setting), MODEL)
    assert folder_bytes(folder) == before and metrics.read_bytes() == metrics_before


@pytest.fixture(scope="module")
def finished_root(tmp_path_factory: pytest.TempPathFactory, shards: Path) -> Path:
    """A finished 1-epoch training's folders, for tests to copy."""
    root = tmp_path_factory.mktemp("finished")
    train(tiny_config(root, shards, "train.epochs=1"), MODEL)
    return root


def broken_train_shard(tmp_path: Path, shards: Path) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    first = broken / json.loads((broken / "_info.json").read_text())["splits"]["train"]["filenames"][0]
    first.write_bytes(b"not a tar file" * 100)
    return broken


@pytest.mark.parametrize("failure", ["a setting the first step cannot use", "a corrupt training shard"])
def test_a_training_that_fails_at_its_first_step_leaves_a_finished_training_as_it_was(
    failure: str, finished_root: Path, tmp_path: Path, shards: Path
) -> None:
    shutil.copytree(finished_root, tmp_path, dirs_exist_ok=True)
    config = tiny_config(tmp_path, shards, "train.epochs=1")
    folder = Layout.of(config).run_folder(MODEL)
    before = folder_bytes(folder)
    if failure == "a corrupt training shard":
        failing = OmegaConf.merge(config, {"paths": {"shards": str(broken_train_shard(tmp_path, shards))}})
    else:  # merged past the config's value checks: what only a training step finds out
        failing = OmegaConf.merge(config, {"train": {"label_smoothing": 2.0}})
    with pytest.raises(Exception, match=r"label_smoothing|sha256"):
        train(failing, MODEL)
    assert folder_bytes(folder) == before


def test_a_second_training_of_a_run_in_progress_stops_naming_the_first(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards)
    command = [
        sys.executable,
        "-m",
        "oak.cli",
        "--params",
        str(PARAMS),
        "train",
        MODEL,
        *tiny_overrides(tmp_path, shards),
        "train.epochs=1000",
    ]
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    folder = Layout.of(config).run_folder(MODEL)
    try:
        deadline = time.monotonic() + 180
        while not (folder / CHECKPOINT_FILE).exists():
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        with pytest.raises(OakError, match=rf"{folder}: oak train \(pid {first.pid} on .*\) is training this run; wait for it"):
            train(config, MODEL)
        assert (folder / CHECKPOINT_FILE).exists() and first.poll() is None  # the first one's files and process go on
    finally:
        first.kill()
        first.wait()


def test_a_failed_evaluation_leaves_the_run_finished_and_a_new_one_becomes_its_latest_value(tmp_path: Path, shards: Path) -> None:
    config = tiny_config(tmp_path, shards, "train.epochs=1")
    train(config, MODEL)
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    info = json.loads((broken / "_info.json").read_text())
    (broken / info["splits"]["val"]["filenames"][0]).write_bytes(b"not a tar file" * 100)
    with pytest.raises(Exception):
        evaluate(OmegaConf.merge(config, {"paths": {"shards": str(broken)}}), MODEL)
    run_id = json.loads((Layout.of(config).run_folder(MODEL) / "run.json").read_text())["run_id"]
    client = MlflowClient(config.tracking.uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    again = evaluate(OmegaConf.merge(config, {"train": {"eval_crop_pct": 0.5}}), MODEL)
    assert client.get_run(run_id).data.metrics["eval/loss"] == pytest.approx(again["loss"])
    assert json.loads(Layout.of(config).eval_metrics(MODEL).read_text()) == again


def test_a_shard_error_in_a_loader_worker_is_one_line_naming_the_shard(tmp_path: Path, shards: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    first = broken / json.loads((broken / "_info.json").read_text())["splits"]["train"]["filenames"][0]
    first.write_bytes(b"not a tar file" * 100)
    overrides = [*tiny_overrides(tmp_path, broken), "train.num_workers=1"]
    done = subprocess.run(
        [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "train", MODEL, *overrides], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"oak train: error: {first}: its bytes differ from the sha256 in _info.json (truncated, corrupt or replaced); "
        "check the shards with `oak verify` and re-create them with `oak prepare`"
    )


def test_an_unreadable_checkpoint_is_set_aside_and_the_training_starts_afresh(
    tmp_path: Path, shards: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tiny_config(tmp_path, shards)
    train(config, MODEL)
    folder = Layout.of(config).run_folder(MODEL)
    record = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps(record | {"complete": False}))  # as a training killed mid-way leaves it
    truncated = (folder / CHECKPOINT_FILE).read_bytes()[:100_000]  # as a copy onto a full disk leaves it
    (folder / CHECKPOINT_FILE).write_bytes(truncated)
    metrics = train(config, MODEL)
    [aside] = folder.parent.glob(f"{MODEL}.unreadable-*.ckpt")
    assert aside.read_bytes() == truncated
    assert (
        f"{folder / CHECKPOINT_FILE}: unreadable (truncated or corrupt), moved to {aside}; the training starts afresh"
        in capsys.readouterr().err
    )
    assert metrics["epochs"] == 2 and json.loads((folder / "run.json").read_text())["complete"] is True


def test_a_training_killed_and_resumed_ends_with_the_numbers_of_an_uninterrupted_one(tmp_path: Path, shards: Path) -> None:
    random_parts = ["train.mixup_alpha=0.2", "train.auto_augment=rand-m9-mstd0.5", "train.num_workers=1"]
    settings = [*random_parts, "train.epochs=4", "train.checkpoint_every_n_steps=2"]
    uninterrupted = train(tiny_config(tmp_path / "whole", shards, *settings), MODEL)

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "train", MODEL, *tiny_overrides(killed, shards), *settings]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = killed / "models" / MODEL / CHECKPOINT_FILE
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    stopped_at = torch.load(checkpoint, weights_only=True, map_location="cpu")["global_step"]
    resumed = train(tiny_config(killed, shards, *settings), MODEL)

    assert 0 < stopped_at < resumed["steps"] == uninterrupted["steps"] == 20
    for key in ("train_loss", "val_loss", "val_top1"):
        assert resumed[key] == uninterrupted[key], key  # the same batches, crops, masks and mixes: the same numbers
    curves = [read_curves(folder / "metrics" / "curves" / f"{MODEL}.csv") for folder in (killed, tmp_path / "whole")]
    for row in curves[0] + curves[1]:
        del row["train/images_per_second"]
    assert curves[0] == curves[1]  # every epoch's metrics, the resumed epoch's included


def test_a_checkpoint_that_does_not_fit_on_the_disk_leaves_the_previous_one_whole(tmp_path: Path, shards: Path) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    # room for one 4.4 MB checkpoint, not for a second beside it
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=7m", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        config = tiny_config(tmp_path, shards, f"paths.checkpoints={disk}")
        with pytest.raises(OakError, match=rf"{disk / MODEL}: out of disk space writing a checkpoint; the previous last.ckpt is kept"):
            train(config, MODEL)
        kept = disk / MODEL / CHECKPOINT_FILE
        assert torch.load(kept, weights_only=True, map_location="cpu")["global_step"] == 6  # epoch 2's first batch
        assert not list((disk / MODEL).glob("*.partial"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
