"""The LightningModule's guards during a real (tiny) Lightning fit."""

from pathlib import Path

import lightning as L
import pytest
import torch
from params_files import PARAMS
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from oak.config.load import load_config
from oak.errors import OakError
from oak.training.classifier import Classifier


class Diverged(nn.Module):
    """A classifier whose logits turn NaN at its third forward pass, as a training that diverges does."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = self.head(images.mean((2, 3)))
        return logits * float("nan") if self.calls == 3 else logits


def fit(net: nn.Module, folder: Path, *overrides: str) -> None:
    """`net` trained one epoch on 8 random 4x4 images, as `oak train` trains a run whose checkpoint folder is `folder`."""
    recipe = load_config(PARAMS, ["train.epochs=1", *overrides]).train
    data = DataLoader(TensorDataset(torch.rand(8, 3, 4, 4), torch.tensor([0, 1] * 4)), batch_size=recipe.batch_size)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    trainer.fit(Classifier(net, num_classes=2, recipe=recipe, train_samples=8), train_dataloaders=data)


def test_a_non_finite_training_loss_stops_the_run_naming_it_and_the_step(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"^resnet18-ls: the training loss is nan at step 2 \(epoch 0\); try a lower train.lr"):
        fit(Diverged(), tmp_path / "resnet18-ls", "train.batch_size=2")


def test_one_image_per_device_through_a_batchnorm_is_one_error_naming_the_batch_size(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))  # as after a global pooling
    with pytest.raises(OakError, match=r"^resnet18: train.batch_size=1: a BatchNorm layer .* use a batch of 2 or more images per device$"):
        fit(net, tmp_path / "resnet18", "train.batch_size=1")


def test_images_smaller_than_the_network_takes_are_one_error_naming_the_size_setting(tmp_path: Path) -> None:
    # a pooling window larger than what the convolution leaves of a 4x4 image, as Inception-v3 below 75 px or VGG below 32
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(OakError, match=r"^plain18: train.image_size: 4 px images are too small for this network \(.*\); use a larger"):
        fit(net, tmp_path / "plain18", "train.batch_size=2")


class Oracle(nn.Module):
    """Predicts class 1 for bright images and class 0 for dark ones: right on every image of `labelled_by_brightness`."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        brightness = images.mean((1, 2, 3))
        return torch.stack([-brightness, brightness], dim=1)


def test_top1_and_top5_are_logged_in_per_cent_the_scale_of_the_reports() -> None:
    labels = torch.tensor([0, 1] * 4)
    images = (2.0 * labels - 1).view(-1, 1, 1, 1).expand(-1, 3, 4, 4).clone()  # class 1 bright, class 0 dark
    recipe = load_config(PARAMS, ["train.epochs=1"]).train
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(Classifier(Oracle(), num_classes=2, recipe=recipe, train_samples=8), DataLoader(TensorDataset(images, labels), batch_size=4))
    assert trainer.callback_metrics["val/top1"].item() == 100.0
    assert trainer.callback_metrics["val/top5"].item() == 100.0
