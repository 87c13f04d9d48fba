"""`oak train MODEL`: fit one model on the shards, checkpoint it, and record how it went."""

import signal
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from oak.data.info import ShardInfo, read_info
from oak.errors import OakError
from oak.files import write_atomic, write_json
from oak.layout import CHECKPOINT_FILE, CURVES_FILE, RESOLVED_CONFIG_FILE, RUN_FILE, Layout
from oak.models import check_model_name
from oak.tracking.logger import BufferedMlflowLogger
from oak.tracking.redaction import redact_config
from oak.tracking.tracker import MarkInterrupted, Tracker, dataset_input, run_params
from oak.training.checkpoints import LastCheckpoint, drop_requeue_checkpoints, run_lock, training_fingerprint, unfinished_run
from oak.training.classifier import Classifier
from oak.training.curves import EpochCurves
from oak.training.setup import build_net, datamodule_for, progress_callbacks, trainer_settings, use_cpu_threads


class TrainingMetrics(dict):
    """What `train` returns and writes to metrics/train/: a dict, printed as one line."""

    def __str__(self) -> str:
        return (
            f"trained {self['epochs']} epochs ({self['steps']} steps) at {self['image_size']} px: train loss {self['train_loss']:.4g}; "
            f"validation loss {self['val_loss']:.4g}, top-1 {self['val_top1']:.1f}% (single centre crop, during training)"
        )


def train(config: DictConfig, model: str, *, run: str | None = None, resume: bool = False) -> TrainingMetrics:
    """Train `model` with the config's recipe; write its checkpoint folder and training metrics; return those metrics.

    Files and the MLflow run are named `run` (default: the model). An interrupted training of the
    same fingerprint is resumed from its last checkpoint; with `resume`, there must be one.
    """
    run = run or model
    layout = Layout.of(config)
    out = layout.run_folder(run)  # checks the run's name
    check_model_name(model)
    tracker = Tracker(config)
    tracker.check_login()
    with run_lock(out), tempfile.TemporaryDirectory(prefix="oak-curves-") as scratch:
        return _train(config, model, run, layout, tracker, Path(scratch), resume=resume)


def _train(
    config: DictConfig, model: str, run: str, layout: Layout, tracker: Tracker, scratch: Path, *, resume: bool
) -> TrainingMetrics:
    """The training; a fresh one keeps its curves in `scratch` until its first checkpoint takes the run's folder over."""
    info = read_info(layout.shards)
    L.seed_everything(config.seed, workers=True)
    recipe = config.train
    use_cpu_threads(recipe)
    net = build_net(recipe, model, info.num_classes)
    datamodule = datamodule_for(config, batch_size=recipe.batch_size, num_workers=recipe.num_workers)
    classifier = Classifier(net, num_classes=info.num_classes, recipe=recipe, train_samples=info.samples("train"), seed=config.seed)

    out = layout.run_folder(run)
    fingerprint = training_fingerprint(config, info)
    resumed_run = unfinished_run(out, fingerprint)
    if resume and resumed_run is None:
        raise OakError(f"{out}: no checkpoint of an unfinished training with this config to resume; drop --resume to start afresh")
    drop_requeue_checkpoints(out)
    logger = _run_logger(config, model, run, tracker, info, resumed_run)
    run_record = {"tracking_uri": tracker.shown_uri, "run_id": logger.run_id, "fingerprint": fingerprint, "complete": False}
    fresh = resumed_run is None
    curves = EpochCurves((scratch if fresh else out) / CURVES_FILE, resume=not fresh)

    trainer = L.Trainer(
        **trainer_settings(config),
        max_epochs=recipe.epochs,
        logger=[logger, curves],
        callbacks=[
            LastCheckpoint(out, recipe.checkpoint_every_n_steps, fresh=fresh, run_record=run_record, curves=curves),
            MarkInterrupted(),
            *progress_callbacks(config, model),
        ],
        enable_checkpointing=False,  # LastCheckpoint writes the only checkpoint
        reload_dataloaders_every_n_epochs=1,  # a fresh shuffle per epoch, see ShardDataModule
        default_root_dir=out,
    )
    start = time.perf_counter()
    try:
        trainer.fit(classifier, datamodule=datamodule, ckpt_path=None if fresh else out / CHECKPOINT_FILE)
    except SIGTERMException:
        # Lightning's exception exits with status 0; a stopped training must not look finished to DVC
        print(f"oak train: {run} stopped by SIGTERM at step {trainer.global_step}; run it again to resume", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    seconds = time.perf_counter() - start

    logged = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics = TrainingMetrics(
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        image_size=recipe.image_size,
        train_loss=logged["train/loss"],
        val_top1=logged["val/top1"],
        val_loss=logged["val/loss"],
    )
    # this process's fit: a resumed training's covers what it trained after the checkpoint
    timings = {"seconds": round(seconds, 2), "images_per_second": round(logged["train/images_per_second"], 1)}
    if trainer.is_global_zero:
        _record(config, run, layout, logger, run_record, metrics, timings)
    return metrics


def _run_logger(
    config: DictConfig, model: str, run: str, tracker: Tracker, info: ShardInfo, resumed_run: str | None
) -> BufferedMlflowLogger:
    """The run's MLflow logger: the interrupted training's run when it resumes one, else a new run with the config as params."""
    tracker.close_abandoned_runs(run)
    run_id = resumed_run and tracker.existing_run(resumed_run)
    logger = tracker.run_logger(model=model, run=run, stage="train", info=info, run_id=run_id)
    if not logger.resumed:
        logger.log_hyperparams(run_params(config, model, info))  # opens the run: after anything that could fail before training
        logger.log_dataset(dataset_input(config, info, context="training"))
    return logger


def _record(
    config: DictConfig, run: str, layout: Layout, logger: BufferedMlflowLogger, run_record: dict, metrics: dict, timings: dict
) -> None:
    """The finished training's files for DVC (metrics, timings, curves) and for its MLflow run."""
    out = layout.run_folder(run)
    write_json(out / RUN_FILE, run_record | {"run_id": logger.run_id, "complete": True})
    write_atomic(out / RESOLVED_CONFIG_FILE, OmegaConf.to_yaml(redact_config(config)))
    write_json(layout.train_metrics(run), metrics)
    write_json(layout.timings("train", run), timings)
    write_atomic(layout.curves(run), (out / CURVES_FILE).read_text())
    logger.log_metrics({"train/seconds": timings["seconds"]}, step=metrics["epochs"] - 1)  # at the last epoch
    logger.log_artifact(out / RESOLVED_CONFIG_FILE)
    logger.log_artifact(layout.train_metrics(run))
    if config.tracking.log_checkpoints:
        logger.log_artifact(out / CHECKPOINT_FILE)
