"""`oak train MODEL`: fit one model on the shards, checkpoint it, and record how it went."""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from torch import nn

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
    dataset_fingerprint,
    existing_run,
    mlflow_logger,
    run_params,
    tracking_uri,
)

CHECKPOINT = "last.ckpt"
LOCK_SUFFIX = ".oak-lock"
# Which MLflow run the checkpoint belongs to (for `oak evaluate`), what it trained, and whether
# training completed (an incomplete one is resumed).
RUN_FILE = "run.json"


def checkpoint_dir(config: DictConfig, run: str) -> Path:
    return Path(config.paths.checkpoints) / run


def train_metrics_path(config: DictConfig, run: str) -> Path:
    return Path(config.paths.metrics) / "train" / f"{run}.json"


def curves_path(config: DictConfig, run: str) -> Path:
    return Path(config.paths.metrics) / "curves" / f"{run}.csv"


class LastCheckpoint(Callback):
    """Writes `last.ckpt` (atomically: written whole, then renamed) after the first batch of
    every epoch but the first, every `every_n_steps` steps when set, and when training ends.

    Never at an epoch's end: Lightning logs the epoch's training metrics and steps the scheduler
    after its epoch-end checkpoint hooks, so a kill in between would lose them for good. Never
    after an epoch's last batch either: Lightning cannot resume an epoch from there.
    """

    def __init__(self, path: Path, every_n_steps: int | None) -> None:
        self.path = path
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int) -> None:
        epoch_start = batch_index == 0 and trainer.current_epoch > 0
        periodic = bool(self.every_n_steps) and trainer.global_step % self.every_n_steps == 0
        if (epoch_start or periodic) and batch_index + 1 < trainer.num_training_batches:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        # Written beside its final name and renamed when whole: a kill or a full disk mid-write leaves
        # the previous checkpoint in place, never a truncated one under its name.
        partial = self.path.with_name(self.path.name + ".partial")
        trainer.save_checkpoint(partial, weights_only=False)  # with the optimizer and loop states, to resume
        if trainer.is_global_zero:
            partial.replace(self.path)
        trainer.strategy.barrier("oak-last-checkpoint")


def drop_requeue_checkpoints(out: Path) -> None:
    """Delete the `hpc_ckpt_N.ckpt` Lightning writes when SLURM signals a requeue.

    Lightning writes it from the signal handler, at any instant: also between an epoch's last
    batch and the epoch's end, from which no resume is exact (the epoch's validation, scheduler
    step and metrics would be skipped). Oak resumes from its own `last.ckpt` instead, and Lightning
    would load these by itself on a fresh start.
    """
    for stale in out.glob("hpc_ckpt_*.ckpt"):
        stale.unlink(missing_ok=True)


class CheckpointFolder(Callback):
    """Prepares `out` once every process has started and before any trains: rank 0 clears it
    (when not resuming) and records the run; the others wait, so no rank deletes another's files.

    At `on_train_start`: after Lightning has built the optimizer, the scheduler and the data loaders,
    so a setting that fails there leaves a finished training's checkpoint and record as they were.
    """

    def __init__(self, out: Path, *, clear: bool, run_record: dict) -> None:
        self.out = out
        self.clear = clear
        self.run_record = run_record

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            if self.clear:
                shutil.rmtree(self.out, ignore_errors=True)  # another config's or a completed training
            write_json(self.out / RUN_FILE, self.run_record)
        trainer.strategy.barrier("oak-checkpoint-folder")


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


def trainer_settings(config: DictConfig) -> dict:
    """The config's Trainer arguments; SyncBatchNorm only where it runs (on GPUs), so one recipe runs everywhere."""
    settings = OmegaConf.to_container(config.trainer)
    if settings["sync_batchnorm"] and not _on_gpu(settings["accelerator"]):
        _notice("trainer.sync_batchnorm: SyncBatchNorm runs only on GPUs; each CPU process keeps plain BatchNorm statistics")
        settings["sync_batchnorm"] = False
    return settings


def _on_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Holds `<out>.oak-lock` (beside the folder, which a fresh start deletes) while this process trains
    the run: a second `oak train` of it stops, naming the first, instead of deleting its files."""
    if rank_zero_only.rank != 0:  # the other ranks of this training
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(out.with_name(out.name + LOCK_SUFFIX), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 200).decode(errors="replace").strip() or "another process"
            raise OakError(f"{out}: {holder} is training this run; wait for it to end or stop it first") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"oak train (pid {os.getpid()} on {socket.gethostname()})".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


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
    classifier = Classifier(net, num_classes=info["num_classes"], recipe=recipe)
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
