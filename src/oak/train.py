"""`oak train MODEL`: fit one model on the shards, checkpoint it, and record how it went."""

import signal
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from oak.checkpoints import (
    CHECKPOINT,
    RUN_FILE,
    CheckpointFolder,
    LastCheckpoint,
    drop_requeue_checkpoints,
    run_lock,
    training_fingerprint,
    unfinished_run,
)
from oak.classifier import Classifier
from oak.curves import CURVES_FILE, EpochCurves
from oak.data.loader import ShardDataModule
from oak.data.shards import read_info
from oak.data.transforms import eval_transform, train_transform
from oak.errors import OakError
from oak.files import write_atomic, write_json
from oak.mlflow_logger import check_login
from oak.models import check_model_name, create_model, set_batchnorm
from oak.redaction import redact_config, redact_text
from oak.tracking import (
    MarkInterrupted,
    close_abandoned_runs,
    existing_run,
    mlflow_logger,
    run_params,
    tracking_uri,
)


def checkpoint_dir(config: DictConfig, run: str) -> Path:
    return Path(config.paths.checkpoints) / run


def train_metrics_path(config: DictConfig, run: str) -> Path:
    return Path(config.paths.metrics) / "train" / f"{run}.json"


def curves_path(config: DictConfig, run: str) -> Path:
    return Path(config.paths.metrics) / "curves" / f"{run}.csv"


def trainer_settings(config: DictConfig) -> dict:
    """The config's Trainer arguments; SyncBatchNorm only where it runs (on GPUs), so one recipe runs everywhere."""
    settings = OmegaConf.to_container(config.trainer)
    if settings["sync_batchnorm"] and not _on_gpu(settings["accelerator"]):
        _notice("trainer.sync_batchnorm: SyncBatchNorm runs only on GPUs; each CPU process keeps plain BatchNorm statistics")
        settings["sync_batchnorm"] = False
    return settings


def _on_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


@rank_zero_only
def _notice(message: str) -> None:
    print(f"oak: {message}", file=sys.stderr)


def build_net(recipe: DictConfig, model: str, num_classes: int) -> nn.Module:
    """`model` as the recipe trains and evaluates it: dropout, stochastic depth, auxiliary classifier, BatchNorm settings."""
    net = create_model(
        model,
        num_classes=num_classes,
        drop_rate=recipe.drop_rate,
        drop_path_rate=recipe.drop_path_rate,
        aux_logits=recipe.aux_loss_weight > 0,
    )
    set_batchnorm(net, momentum=recipe.bn_momentum, eps=recipe.bn_eps)
    return net


def datamodule_for(config: DictConfig, *, batch_size: int, num_workers: int, eval_crops: int = 1) -> ShardDataModule:
    """The shards, with the recipe's augmentations and evaluation protocol (see oak.data.transforms).

    Validation during training looks at the centre crop; `oak evaluate` passes the recipe's `eval_crops`.
    """
    return ShardDataModule(
        Path(config.paths.shards),
        train_transform=train_transform(config.train),
        eval_transform=eval_transform(config.train, crops=eval_crops),
        batch_size=batch_size,
        num_workers=num_workers,
        seed=config.seed,
        shuffle_buffer=config.train.shuffle_buffer,
    )


def train(config: DictConfig, model: str, *, run: str | None = None, resume: bool = False) -> dict:
    """Train `model` with the config's recipe; write its checkpoint folder and training metrics; return those metrics.

    Files and the MLflow run are named `run` (default: the model). An interrupted training of the
    same fingerprint is resumed from its last checkpoint; with `resume`, there must be one.
    """
    run = run or model
    check_model_name(model)
    check_login(tracking_uri(config))
    with run_lock(checkpoint_dir(config, run)):
        return _train(config, model, run, resume=resume)


def _train(config: DictConfig, model: str, run: str, *, resume: bool) -> dict:
    info = read_info(Path(config.paths.shards))
    L.seed_everything(config.seed, workers=True)
    recipe = config.train
    net = build_net(recipe, model, info["num_classes"])
    datamodule = datamodule_for(config, batch_size=recipe.batch_size, num_workers=recipe.num_workers)
    train_samples = info["splits"]["train"]["num_samples"]
    classifier = Classifier(net, num_classes=info["num_classes"], recipe=recipe, train_samples=train_samples, seed=config.seed)
    out = checkpoint_dir(config, run)
    fingerprint = training_fingerprint(config, info)
    resumed_run = unfinished_run(out, fingerprint)
    if resume and resumed_run is None:
        raise OakError(f"{out}: no checkpoint of an unfinished training with this config to resume; drop --resume to start afresh")
    drop_requeue_checkpoints(out)
    close_abandoned_runs(config, run)
    logger = mlflow_logger(config, model, run, "train", info, run_id=resumed_run and existing_run(tracking_uri(config), resumed_run))
    if not logger.resumed:
        logger.log_hyperparams(run_params(config))  # opens the run: after anything that could fail before training
    run_record = {"tracking_uri": redact_text(tracking_uri(config)), "run_id": logger.run_id, "fingerprint": fingerprint, "complete": False}
    trainer = L.Trainer(
        **trainer_settings(config),
        max_epochs=recipe.epochs,
        logger=[logger, EpochCurves(out / CURVES_FILE, resume=resumed_run is not None)],
        callbacks=[
            CheckpointFolder(out, clear=resumed_run is None, run_record=run_record),
            LastCheckpoint(out / CHECKPOINT, recipe.checkpoint_every_n_steps),
            MarkInterrupted(),
        ],
        enable_checkpointing=False,  # LastCheckpoint writes the only checkpoint
        reload_dataloaders_every_n_epochs=1,  # a fresh shuffle per epoch, see ShardDataModule
        default_root_dir=out,
    )
    start = time.perf_counter()
    try:
        trainer.fit(classifier, datamodule=datamodule, ckpt_path=out / CHECKPOINT if resumed_run else None)
    except SIGTERMException:
        # Lightning's exception exits with status 0; a stopped training must not look finished to DVC
        print(f"oak train: {run} stopped by SIGTERM at step {trainer.global_step}; run it again to resume", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    seconds = time.perf_counter() - start
    logged = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics = {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "image_size": config.train.image_size,
        "train_seconds": round(seconds, 2),
        "train_loss": logged["train/loss"],
        "val_top1": logged["val/top1"],
        "val_loss": logged["val/loss"],
    }
    if trainer.is_global_zero:
        write_json(out / RUN_FILE, run_record | {"run_id": logger.run_id, "complete": True})
        write_atomic(out / "config.yaml", OmegaConf.to_yaml(redact_config(config)))
        write_json(train_metrics_path(config, run), metrics)
        write_atomic(curves_path(config, run), (out / CURVES_FILE).read_text())
        logger.log_metrics({"train_seconds": seconds}, step=trainer.global_step)
        logger.log_artifact(out / "config.yaml")
        logger.log_artifact(train_metrics_path(config, run))
        if config.tracking.log_checkpoints:
            logger.log_artifact(out / CHECKPOINT)
    return metrics
