"""What training and evaluation both build from the config: the network, the data, the Trainer's arguments."""

import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import default_collate

from oak.loading import on_device
from oak.loading.datamodule import ShardDataModule
from oak.loading.progressive import TransformsByEpoch
from oak.loading.transforms import DevicePixels, eval_transform, train_transform
from oak.models import create_model, set_batchnorm, zero_init_residual
from oak.training.progress import ModelLine, ProgressLines, shows_bar


def build_net(recipe: DictConfig, model: str, num_classes: int) -> nn.Module:
    """`model` as the recipe trains and evaluates it: dropout, stochastic depth, auxiliary classifier, BatchNorm, init."""
    net = create_model(
        model,
        num_classes=num_classes,
        drop_rate=recipe.drop_rate,
        drop_path_rate=recipe.drop_path_rate,
        aux_logits=recipe.aux_loss_weight > 0,
    )
    set_batchnorm(net, momentum=recipe.bn_momentum, eps=recipe.bn_eps)
    if recipe.zero_init_residual:
        zero_init_residual(net)
    return net


def use_cpu_threads(recipe: DictConfig) -> None:
    """`train.cpu_threads`, where the recipe fixes them."""
    if recipe.cpu_threads is not None:
        torch.set_num_threads(recipe.cpu_threads)


def datamodule_for(config: DictConfig, *, batch_size: int, num_workers: int | None, eval_crops: int = 1) -> ShardDataModule:
    """The shards, with the recipe's augmentations and evaluation protocol, decoded in the loader
    (oak.loading.transforms) or on the device (oak.loading.on_device) as `train.decode` says.

    Validation during training looks at the centre crop; `oak evaluate` passes the recipe's `eval_crops`.
    """
    recipe = config.train
    common = {"pixels": DevicePixels(recipe), "batch_size": batch_size, "num_workers": num_workers}
    common |= {"seed": config.seed, "shuffle_buffer": recipe.shuffle_buffer}
    if decodes_on_device(config):
        return ShardDataModule(
            Path(config.paths.shards),
            train_transforms=TransformsByEpoch(recipe, on_device.TrainPlanner),
            eval_transform=on_device.eval_jpeg,
            decoder=on_device.DeviceDecoder(recipe, crops=eval_crops),
            collate=on_device.collate,
            **common,
        )
    return ShardDataModule(
        Path(config.paths.shards),
        train_transforms=TransformsByEpoch(recipe, train_transform),
        eval_transform=eval_transform(recipe, crops=eval_crops),
        decoder=None,
        collate=default_collate,
        **common,
    )


def decodes_on_device(config: DictConfig) -> bool:
    """`train.decode`: device, loader, or auto: on the device when it is a GPU and the recipe's
    augmentations run there (AutoAugment and RandAugment run on Pillow images only)."""
    decode = config.train.decode
    if decode == "auto":
        return _on_gpu(config.trainer.accelerator) and not config.train.auto_augment
    return decode == "device"


def trainer_settings(config: DictConfig) -> dict:
    """The config's Trainer arguments; SyncBatchNorm only where it runs (on GPUs), so one recipe runs everywhere;
    the progress bar where `trainer.enable_progress_bar` asks for it (see progress_callbacks)."""
    settings = OmegaConf.to_container(config.trainer)
    if settings["sync_batchnorm"] and not _on_gpu(settings["accelerator"]):
        _notice("trainer.sync_batchnorm: SyncBatchNorm runs only on GPUs; each CPU process keeps plain BatchNorm statistics")
        settings["sync_batchnorm"] = False
    settings["enable_progress_bar"] = shows_bar(settings["enable_progress_bar"])
    settings["enable_model_summary"] = False  # ModelLine's one line instead of the table
    return settings


def progress_callbacks(config: DictConfig, model: str) -> list[Callback]:
    """The network's size in one line, and lines of progress where Lightning's bar does not show (oak.training.progress)."""
    lines = [] if shows_bar(config.trainer.enable_progress_bar) else [ProgressLines(config.trainer.log_every_n_steps)]
    return [ModelLine(model), *lines]


def _on_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


@rank_zero_only
def _notice(message: str) -> None:
    print(f"oak: {message}", file=sys.stderr)
