"""`oak evaluate MODEL`: top-1, top-5 and loss of a trained checkpoint on the val shards."""

import json
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from oak.classifier import Classifier
from oak.data.shards import read_info
from oak.errors import OakError
from oak.files import write_json
from oak.models import check_model_name, create_model, parameter_count
from oak.tracking import existing_run, log_artifacts, mlflow_logger, tracking_uri
from oak.train import CHECKPOINT, RUN_FILE, checkpoint_dir, datamodule_for


def eval_metrics_path(config: DictConfig, model: str) -> Path:
    return Path(config.paths.metrics) / "eval" / f"{model}.json"


def load_weights(net: torch.nn.Module, checkpoint: Path) -> None:
    """Load a Lightning checkpoint's `net.*` weights; `weights_only` refuses pickled code."""
    if not checkpoint.exists():
        raise OakError(f"{checkpoint}: checkpoint not found; run `oak train` for this model first")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict({name.removeprefix("net."): value for name, value in state.items() if name.startswith("net.")})


def evaluate(config: DictConfig, model: str) -> dict:
    """Evaluate `model`'s checkpoint on every val sample, add the results to its training run, write its metrics."""
    check_model_name(model)
    info = read_info(Path(config.paths.shards))
    net = create_model(model, num_classes=info["num_classes"])
    folder = checkpoint_dir(config, model)
    load_weights(net, folder / CHECKPOINT)
    run_file = folder / RUN_FILE
    run_id = json.loads(run_file.read_text())["run_id"] if run_file.exists() else None
    run_id = run_id and existing_run(tracking_uri(config), run_id)
    logger = mlflow_logger(config, model, "evaluate", info, run_id=run_id)
    trainer = L.Trainer(
        accelerator=config.trainer.accelerator,
        devices=1,  # one process sees every val sample exactly once
        precision=config.trainer.precision,
        logger=logger,
        enable_progress_bar=config.trainer.enable_progress_bar,
    )
    [results] = trainer.test(Classifier(net, num_classes=info["num_classes"]), datamodule=datamodule_for(config, net, batch_size=config.evaluate.batch_size, num_workers=config.evaluate.num_workers))
    metrics = {
        "top1": results["eval/top1"],
        "top5": results["eval/top5"],
        "loss": results["eval/loss"],
        "params": parameter_count(net),
        "samples": info["splits"]["val"]["num_samples"],
    }
    write_json(eval_metrics_path(config, model), metrics)
    logger.log_metrics({"params": metrics["params"]})
    logger.experiment.set_tag(logger.run_id, "stage", "train,evaluate" if run_id else "evaluate")
    log_artifacts(logger, eval_metrics_path(config, model))
    return metrics
