"""Decoding and augmenting on the device: the same draws as the loader path, the same pixels within a
stated tolerance, run here with the same functions on CPU tensors (a GPU runs them with nvJPEG)."""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from params_files import PARAMS
from PIL import Image

from oak.config.load import load_config
from oak.errors import OakError
from oak.loading import on_device
from oak.loading.transforms import eval_transform, train_transform
from oak.seeding import seed_cpu_generators
from oak.training.setup import decodes_on_device

CPU = torch.device("cpu")
# The recipes whose augmentations run on the device (the others have AutoAugment or RandAugment).
DEVICE_RECIPES = ["demo", "resnet_he2016", "shufflenet_ma2018", "inception_szegedy2016"]


def jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: smooth colour fields, as ImageNet's images are mostly smooth at pixel scale."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(max(1, height // 25), max(1, width // 25), 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).resize((width, height), Image.BILINEAR).save(out, "JPEG", quality=90)
    return out.getvalue()


# ImageNet's most common size (crops scaled down), and a small image (crops scaled up)
IMAGES = [jpeg(500, 375, seed) if seed % 2 else jpeg(60, 45, seed) for seed in range(12)]


def recipe(name: str, *overrides: str):
    return load_config(PARAMS, [f"recipe={name}", *overrides]).train


def on_the_device(batch: on_device.JpegBatch, decoder: on_device.DeviceDecoder) -> torch.Tensor:
    return decoder(batch, CPU)


@pytest.mark.parametrize("name", DEVICE_RECIPES)
def test_training_crops_match_the_loader_paths_for_the_same_seed(name: str) -> None:
    """The same crop, flip and jitter drawn for each sample; only the resampling differs (torch's
    antialiased interpolation against Pillow's): measured here at most 0.40 levels on average and 4
    at worst (bicubic with colour jitter), 0.03 and 1 for the bilinear recipes."""
    settings = recipe(name)
    loader, planner, decoder = train_transform(settings), on_device.TrainPlanner(settings), on_device.DeviceDecoder(settings)
    for position, data in enumerate(IMAGES):
        seed_cpu_generators("stream", position)
        expected = loader(data)
        seed_cpu_generators("stream", position)
        [image] = on_the_device(on_device.collate([(planner(data), 0)]), decoder)
        difference = (expected.int() - image.int()).abs().float()
        assert image.shape == expected.shape and image.dtype == torch.uint8
        assert difference.mean() < 0.5 and difference.max() <= 6, (position, difference.mean(), difference.max())


@pytest.mark.parametrize("crops", [1, 10])
def test_evaluation_pixels_match_timms_eval_transform_within_one_level(crops: int) -> None:
    settings = recipe("resnet_he2016")  # bicubic, crop fraction 0.875
    loader, decoder = eval_transform(settings, crops=crops), on_device.DeviceDecoder(settings, crops=crops)
    jpegs = [jpeg(500, 375, seed) for seed in range(4)]
    images = on_the_device(on_device.collate([(on_device.eval_jpeg(data), label) for label, data in enumerate(jpegs)]), decoder)
    for data, image in zip(jpegs, images):
        expected = loader(data)
        assert image.shape == expected.shape
        assert (expected.int() - image.int()).abs().max() <= 1


def test_the_planned_crops_are_the_loader_paths_draws_and_follow_random_resized_crop(monkeypatch: pytest.MonkeyPatch) -> None:
    from timm.data.transforms import RandomResizedCropAndInterpolation

    settings = recipe("shufflenet_ma2018")  # scale 0.08-1 (Inception-style crops), flip 0.5, colour jitter 0.4
    planner, loader = on_device.TrainPlanner(settings), train_transform(settings)
    data = jpeg(500, 375, 0)
    plans, drawn = [], []
    for position in range(300):
        seed_cpu_generators("statistics", position)
        plans.append(planner(data)[1])
    draw = RandomResizedCropAndInterpolation.get_params
    monkeypatch.setattr(RandomResizedCropAndInterpolation, "get_params", staticmethod(lambda *a: drawn.append(draw(*a)) or drawn[-1]))
    for position in range(300):
        seed_cpu_generators("statistics", position)
        loader(data)
    assert [(plan.top, plan.left, plan.height, plan.width) for plan in plans] == drawn  # the loader path's crops, draw for draw
    areas = np.array([plan.height * plan.width / (500 * 375) for plan in plans])
    ratios = np.array([plan.width / plan.height for plan in plans])
    assert areas.min() >= settings.scale_min - 0.01 and areas.max() <= 1
    assert np.all((ratios > 3 / 4 - 0.02) & (ratios < 4 / 3 + 0.02))
    assert abs(np.mean([plan.flip for plan in plans]) - 0.5) < 0.1  # 300 draws: 0.5 +- 0.03 (1 sd)
    assert all(0 <= plan.top <= 375 - plan.height and 0 <= plan.left <= 500 - plan.width for plan in plans)
    brightness = [plan.jitter[0] for plan in plans]
    assert min(brightness) >= 0.6 and max(brightness) <= 1.4 and not math.isclose(min(brightness), max(brightness))


def test_auto_decodes_on_the_device_only_on_a_gpu_and_without_autoaugment() -> None:
    assert not decodes_on_device(load_config(PARAMS, ["recipe=resnet_he2016", "trainer.accelerator=cpu"]))
    assert decodes_on_device(load_config(PARAMS, ["recipe=resnet_he2016", "train.decode=device"]))
    assert not decodes_on_device(load_config(PARAMS, ["recipe=efficientnet", "trainer.accelerator=gpu"]))  # AutoAugment
    assert not decodes_on_device(load_config(PARAMS, ["recipe=resnet_he2016", "trainer.accelerator=gpu", "train.decode=loader"]))


def test_device_decoding_refuses_autoaugment_with_one_line() -> None:
    with pytest.raises(OakError, match=r"^train.decode=device: train.auto_augment=v0r runs on Pillow images only; use train.decode=loader"):
        load_config(PARAMS, ["recipe=efficientnet", "train.decode=device"])


@pytest.mark.slow
def test_a_run_trains_and_evaluates_with_device_decoding(tmp_path: Path, shards: Path) -> None:
    from oak.training.evaluate import evaluate
    from oak.training.train import train

    overrides = [f"paths.shards={shards}", f"paths.checkpoints={tmp_path / 'models'}", f"paths.metrics={tmp_path / 'metrics'}"]
    overrides += [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "train.epochs=1", "train.batch_size=8", "train.image_size=32"]
    overrides += ["train.decode=device", "train.color_jitter=0.4", "train.random_erasing=0.25", "train.eval_crops=10"]
    overrides += ["trainer.accelerator=cpu", "train.num_workers=1", "evaluate.num_workers=1"]
    config = load_config(PARAMS, overrides)
    assert train(config, "resnet18")["steps"] == 40 // 8
    evaluated = evaluate(config, "resnet18")
    assert evaluated["samples"] == 20 and 0 <= evaluated["top1"] <= 100
