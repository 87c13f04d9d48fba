"""`oak train MODEL`: fit one model on the shards, checkpoint it, and record how it went."""

import hashlib
import json
import shutil
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from timm.data import create_transform, resolve_data_config
from torch import nn

from oak.classifier import Classifier
from oak.data.loader import ShardDataModule
from oak.data.shards import read_info
from oak.files import write_atomic, write_json
from oak.models import check_model_name, create_model
from oak.tracking import (
    MarkInterrupted,
    close_abandoned_runs,
    dataset_fingerprint,
    existing_run,
    mlflow_logger,
    run_params,
    tracking_uri,
)

CHECKPOINT = "last.ckpt"
# Which MLflow run the checkpoint belongs to (for `oak evaluate`), what it trained, and whether
# training completed (an incomplete one is resumed).
RUN_FILE = "run.json"


def checkpoint_dir(config: DictConfig, model: str) -> Path:
    return Path(config.paths.checkpoints) / model


def train_metrics_path(config: DictConfig, model: str) -> Path:
    return Path(config.paths.metrics) / "train" / f"{model}.json"


def last_checkpoint(out: Path) -> ModelCheckpoint:
    """`out/last.ckpt`, replaced (atomically, by Lightning's checkpoint IO) at the end of every epoch.

    Not `save_last=True`: without a top-k checkpoint, Lightning writes "last" only when training ends.
    """
    return ModelCheckpoint(dirpath=out, filename=Path(CHECKPOINT).stem, save_top_k=1, every_n_epochs=1, enable_version_counter=False)


def training_fingerprint(config: DictConfig, info: dict) -> str:
    """Everything that decides a training's outcome; a checkpoint resumes only under the same one."""
    decisive = {"seed": config.seed, "train": OmegaConf.to_container(config.train), "trainer": OmegaConf.to_container(config.trainer)}
    return hashlib.sha256(json.dumps([decisive, dataset_fingerprint(info)], sort_keys=True).encode()).hexdigest()[:16]


def unfinished_run(out: Path, fingerprint: str) -> str | None:
    """The MLflow run id of an interrupted training of the same fingerprint in `out`, if any."""
    run_file = out / RUN_FILE
    if not (run_file.exists() and (out / CHECKPOINT).exists()):
        return None
    run = json.loads(run_file.read_text())
    return run["run_id"] if run.get("fingerprint") == fingerprint and not run.get("complete") else None


def datamodule_for(config: DictConfig, net: nn.Module, *, batch_size: int, num_workers: int) -> ShardDataModule:
    """The shards, with timm's transforms for `net` (its mean, std, interpolation, crop) at `train.image_size`."""
    size = config.train.image_size
    data_config = resolve_data_config({"input_size": (3, size, size)}, model=net)
    return ShardDataModule(
        Path(config.paths.shards),
        train_transform=create_transform(
            **data_config,
            is_training=True,
            scale=(config.train.scale_min, 1.0),
            hflip=config.train.hflip,
            color_jitter=config.train.color_jitter,
        ),
        eval_transform=create_transform(**data_config, is_training=False),
        batch_size=batch_size,
        num_workers=num_workers,
        seed=config.seed,
        shuffle_buffer=config.train.shuffle_buffer,
    )


def train(config: DictConfig, model: str) -> dict:
    """Train `model` from scratch; write its checkpoint folder and training metrics; return those metrics."""
    check_model_name(model)
    info = read_info(Path(config.paths.shards))
    L.seed_everything(config.seed, workers=True)
    net = create_model(model, num_classes=info["num_classes"], drop_rate=config.train.drop_rate)
    datamodule = datamodule_for(config, net, batch_size=config.train.batch_size, num_workers=config.train.num_workers)
    classifier = Classifier(
        net,
        num_classes=info["num_classes"],
        optimizer=config.train.optimizer,
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        epochs=config.train.epochs,
        warmup_epochs=config.train.warmup_epochs,
    )
    out = checkpoint_dir(config, model)
    fingerprint = training_fingerprint(config, info)
    resumed_run = unfinished_run(out, fingerprint)
    if resumed_run is None:
        shutil.rmtree(out, ignore_errors=True)  # another config's or a completed training: start afresh
    close_abandoned_runs(config, model)
    logger = mlflow_logger(config, model, "train", info, run_id=resumed_run and existing_run(tracking_uri(config), resumed_run))
    trainer = L.Trainer(
        **OmegaConf.to_container(config.trainer),
        max_epochs=config.train.epochs,
        logger=logger,
        callbacks=[last_checkpoint(out), MarkInterrupted()],
        reload_dataloaders_every_n_epochs=1,  # a fresh shuffle per epoch, see ShardDataModule
        default_root_dir=out,
    )
    if not logger.resumed:
        logger.log_hyperparams(run_params(config))  # opens the run: after anything that could fail before training
    run_record = {"tracking_uri": tracking_uri(config), "run_id": logger.run_id, "fingerprint": fingerprint, "complete": False}
    if trainer.is_global_zero:
        write_json(out / RUN_FILE, run_record)
    start = time.perf_counter()
    trainer.fit(classifier, datamodule=datamodule, ckpt_path=out / CHECKPOINT if resumed_run else None)
    seconds = time.perf_counter() - start
    logged = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics = {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "train_seconds": round(seconds, 2),
        "train_loss": logged["train/loss"],
        "val_top1": logged["val/top1"],
        "val_loss": logged["val/loss"],
    }
    if trainer.is_global_zero:
        write_json(out / RUN_FILE, run_record | {"run_id": logger.run_id, "complete": True})
        write_atomic(out / "config.yaml", OmegaConf.to_yaml(config))
        write_json(train_metrics_path(config, model), metrics)
        logger.log_metrics({"train_seconds": seconds}, step=trainer.global_step)
        logger.log_artifact(out / "config.yaml")
        logger.log_artifact(train_metrics_path(config, model))
        if config.tracking.log_checkpoints:
            logger.log_artifact(out / CHECKPOINT)
    return metrics
