"""Progressive resizing: the training size rises by epoch as FFCV's schedule says, and a training killed
mid-epoch after the size changed resumes to the numbers and weights of an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from params_files import PARAMS

from oak.config.load import load_config
from oak.data.tar import tar_samples
from oak.errors import OakError
from oak.layout import CHECKPOINT_FILE
from oak.loading import on_device
from oak.loading.progressive import image_size_at
from oak.training.curves import read_curves
from oak.training.setup import datamodule_for
from oak.training.train import train

MODEL = "shufflenet_v2_x0_5"


def ramp(epochs: int, *, low: int, high: int, start: int, end: int) -> list[int]:
    recipe = OmegaConf.create({"image_size": high, "progressive_min_size": low, "progressive_start_epoch": start, "progressive_end_epoch": end})
    return [image_size_at(recipe, epoch) for epoch in range(epochs)]


def test_ffcv_resnet50_recipes_train_at_160_px_then_192_from_part_way_up_their_ramp() -> None:
    # libffcv/ffcv-imagenet rn50_88_epochs.yaml (ramp 65 to 76) and rn50_16_epochs.yaml (11 to 13), sizes rounded to 32 px
    assert ramp(88, low=160, high=192, start=65, end=76) == [160] * 71 + [192] * 17
    assert ramp(16, low=160, high=192, start=11, end=13) == [160] * 12 + [192] * 4


def test_the_size_rises_linearly_between_the_ramps_epochs_in_steps_of_32_px() -> None:
    assert ramp(12, low=128, high=224, start=2, end=10) == [128, 128, 128, 128, 160, 160, 192, 192, 192, 224, 224, 224]


def test_without_a_minimum_size_every_epoch_trains_at_the_image_size() -> None:
    recipe = OmegaConf.create({"image_size": 64, "progressive_min_size": None})
    assert {image_size_at(recipe, epoch) for epoch in range(5)} == {64}


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["train.progressive_min_size=96", "train.image_size=64"], "train.progressive_min_size=96"),
        (["train.progressive_min_size=32", "train.progressive_start_epoch=3", "train.progressive_end_epoch=2"], "progressive_start_epoch=3"),
        (["train.progressive_min_size=0"], "train.progressive_min_size=0: use 1 or more"),
        (["train.progressive_end_epoch=-1"], "train.progressive_end_epoch=-1: use 0 or more"),
    ],
)
def test_a_ramp_that_cannot_be_trained_is_refused_in_one_line_naming_the_keys(overrides: list[str], named: str) -> None:
    with pytest.raises(OakError, match=named) as refused:
        load_config(PARAMS, overrides)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("decode", ["loader", "device"])
def test_each_epochs_training_images_come_at_that_epochs_size(decode: str, shards: Path) -> None:
    overrides = [f"paths.shards={shards}", f"train.decode={decode}", "train.image_size=96", "train.progressive_min_size=32"]
    config = load_config(PARAMS, [*overrides, "train.progressive_end_epoch=2", "trainer.accelerator=cpu"])
    datamodule = datamodule_for(config, batch_size=4, num_workers=0)
    shard = shards / "train-000000.tar"
    jpeg = next(fields["jpg"] for _, fields in tar_samples(str(shard), shard.read_bytes()))
    for epoch, size in enumerate([32, 64, 96]):
        image = datamodule.train_transforms(epoch)(jpeg)
        if decode == "device":  # the loader plans the crop, the device decodes it at the plan's size
            image = datamodule.decoder(on_device.collate([(image, 0)]), torch.device("cpu"))[0]
        assert image.shape == (3, size, size)


def tiny(folder: Path, shards: Path) -> list[str]:
    return [
        f"paths.shards={shards}",
        f"paths.checkpoints={folder / 'models'}",
        f"paths.metrics={folder / 'metrics'}",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        "tracking.experiment=test-progressive",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "evaluate.num_workers=0",
        # 10 batches an epoch at 32, 64 and 96 px; a checkpoint every 3 steps lands mid-epoch
        "train.epochs=3",
        "train.batch_size=4",
        "train.image_size=96",
        "train.progressive_min_size=32",
        "train.progressive_end_epoch=2",
        "train.checkpoint_every_n_steps=3",
        "train.num_workers=1",
    ]


@pytest.mark.slow
def test_a_training_killed_mid_epoch_after_the_size_changed_resumes_to_the_uninterrupted_numbers_and_weights(
    tmp_path: Path, shards: Path
) -> None:
    whole = tmp_path / "whole"
    uninterrupted = train(load_config(PARAMS, tiny(whole, shards)), MODEL)

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "train", MODEL, *tiny(killed, shards)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = killed / "models" / MODEL / CHECKPOINT_FILE
    deadline, step = time.monotonic() + 300, 0
    while step <= 10 and first.poll() is None and time.monotonic() < deadline:  # into epoch 1, at 64 px
        time.sleep(0.02)
        if checkpoint.exists():  # replaced whole, never written in place
            step = torch.load(checkpoint, weights_only=True, map_location="cpu")["global_step"]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    stopped_at = torch.load(checkpoint, weights_only=True, map_location="cpu")["global_step"]
    assert 10 < stopped_at < 20  # mid-epoch 1: the first epoch trained at 32 px, this one at 64

    resumed = train(load_config(PARAMS, tiny(killed, shards)), MODEL)
    assert resumed["steps"] == uninterrupted["steps"] == 30
    for key in ("train_loss", "val_loss", "val_top1"):
        assert resumed[key] == uninterrupted[key], key
    curves = [read_curves(folder / "metrics" / "curves" / f"{MODEL}.csv") for folder in (killed, whole)]
    for row in curves[0] + curves[1]:
        del row["train/images_per_second"]
    assert curves[0] == curves[1]
    weights = [torch.load(folder / "models" / MODEL / CHECKPOINT_FILE, weights_only=True, map_location="cpu")["state_dict"] for folder in (killed, whole)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
