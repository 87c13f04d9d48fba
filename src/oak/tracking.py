"""MLflow conventions: where runs go, what they are named, and what they are tagged with.

One experiment per study (`tracking.experiment`), one run per model named after the model;
training opens the run and evaluation adds its final metrics to the same run.
"""

import os
import socket
import subprocess

from lightning.pytorch.loggers import MLFlowLogger
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from oak.data.shards import dataset_label, is_synthetic

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def tracking_uri(config: DictConfig) -> str:
    """`tracking.uri`, else $MLFLOW_TRACKING_URI, else the SQLite file in the working folder.

    Always a URI: given none, MLflow would fall back to the `./mlruns` file store, which
    MLflow 3 refuses.
    """
    return config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def git_state() -> tuple[str, bool]:
    """The commit checked out and whether tracked files differ from it; ("unknown", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return commit, bool(changes.strip())


def run_tags(model: str, stage: str, info: dict) -> dict[str, str]:
    commit, dirty = git_state()
    return {
        "model": model,
        "stage": stage,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "dataset": dataset_label(info),
        "synthetic": str(is_synthetic(info)).lower(),
        "host": socket.gethostname(),
    }


def mlflow_logger(config: DictConfig, model: str, stage: str, info: dict, run_id: str | None = None) -> MLFlowLogger:
    """A Lightning logger for `model`'s run; `run_id` continues an existing run instead of opening one."""
    return MLFlowLogger(
        experiment_name=config.tracking.experiment,
        run_name=model,
        tracking_uri=tracking_uri(config),
        tags=run_tags(model, stage, info),
        run_id=run_id,
    )


def existing_run(uri: str, run_id: str) -> str | None:
    """`run_id` when the store at `uri` holds that run, else None."""
    try:
        MlflowClient(uri).get_run(run_id)
    except MlflowException:
        return None
    return run_id
