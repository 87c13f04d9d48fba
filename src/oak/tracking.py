"""MLflow conventions: where runs go, what they are named, what they hold, and how they end.

One experiment per study (`tracking.experiment`), one MLflow run per training run, under the name
`oak plan` gives it (the model, plus the study's variant where a study trains one model several ways);
training opens the run and evaluation adds its final metrics to the same run. A run that raises
ends FAILED, Ctrl-C ends it KILLED, and a run left RUNNING by a killed process on this host is
closed as KILLED by the next invocation for the same model.
"""

import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from oak.config import flatten
from oak.data.shards import dataset_label, is_synthetic
from oak.mlflow_logger import BufferedMlflowLogger, is_refused, is_unreachable, quick_requests, refusal
from oak.plan import planned_profile
from oak.redaction import redact_config

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def tracking_uri(config: DictConfig) -> str:
    """`tracking.uri`, else $MLFLOW_TRACKING_URI, else the SQLite file in the working folder.

    Always a URI: given none, MLflow would fall back to the `./mlruns` file store, which
    MLflow 3 refuses.
    """
    return config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def experiment_name(config: DictConfig) -> str:
    """`tracking.experiment`, else `oak-<profile>` of the plan the pipeline runs, so imagenet runs never mix with the demo's."""
    return config.tracking.experiment or f"oak-{planned_profile()}"


def run_params(config: DictConfig) -> dict[str, object]:
    """The resolved config as dotted keys, credentials redacted (see oak.redaction)."""
    return flatten(redact_config(config))


def params_hash(config: DictConfig) -> str:
    return hashlib.sha256(json.dumps(flatten(config), sort_keys=True, default=str).encode()).hexdigest()[:12]


def dataset_fingerprint(info: dict) -> str:
    """A hash of every shard's sha256: equal fingerprints mean byte-identical data."""
    digests = [digest for split in sorted(info["splits"]) for digest in info["splits"][split]["sha256"]]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:12]


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


def run_tags(config: DictConfig, stage: str, info: dict, model: str | None = None, run: str | None = None) -> dict[str, str]:
    commit, dirty = git_state()
    trainer = config.trainer
    return {
        **({"model": model, "run": run or model} if model else {}),
        **({"recipe": config.recipe} if config.recipe else {}),
        "stage": stage,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "params_hash": params_hash(config),
        "dataset": dataset_label(info),
        "dataset_fingerprint": dataset_fingerprint(info),
        "synthetic": str(is_synthetic(info)).lower(),
        "devices": f"{trainer.accelerator} x {trainer.devices} x {trainer.num_nodes} node(s)",
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
    }


class MarkInterrupted(Callback):
    """Tells the logger that training was stopped, by Ctrl-C or SIGTERM (Lightning reports it as a failure)."""

    def on_exception(self, trainer: Trainer, module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt | SIGTERMException):
            for logger in trainer.loggers:
                if isinstance(logger, BufferedMlflowLogger):
                    logger.interrupted = True


def mlflow_logger(config: DictConfig, model: str, run: str, stage: str, info: dict, run_id: str | None = None) -> BufferedMlflowLogger:
    """A Lightning logger for the run named `run`, training `model`; `run_id` continues an existing run instead of opening one."""
    return BufferedMlflowLogger(
        tracking_uri=tracking_uri(config),
        experiment=experiment_name(config),
        run_name=run,
        tags=run_tags(config, stage, info, model, run),
        run_id=run_id,
        evaluation=stage == "evaluate",
        patience_seconds=config.tracking.patience_seconds,
    )


@rank_zero_only
def existing_run(uri: str, run_id: str) -> str | None:
    """`run_id` when the store at `uri` holds that run (or cannot be asked now), else None; None on ranks but 0."""
    try:
        with quick_requests():
            MlflowClient(uri).get_run(run_id)
    except MlflowException as error:
        if is_refused(error):
            raise refusal(uri, error) from None
        return run_id if is_unreachable(error) else None
    return run_id


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@rank_zero_only
def close_abandoned_runs(config: DictConfig, run: str) -> list[str]:
    """Mark KILLED the runs named `run` left RUNNING by a process of this host that no longer exists.

    A SIGKILL gives MLflow no chance to end its run; runs of other hosts are left alone, as this
    host cannot tell whether they still live.
    """
    client = MlflowClient(tracking_uri(config))
    host = socket.gethostname().replace("'", "")
    try:
        with quick_requests():
            experiment = client.get_experiment_by_name(experiment_name(config))
            if experiment is None:
                return []
            running = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"attributes.status = 'RUNNING' and tags.run = '{run}' and tags.host = '{host}'",
            )
            closed = [run.info.run_id for run in running if not _process_alive(int(run.data.tags.get("pid", "0")))]
            for run_id in closed:
                client.set_terminated(run_id, "KILLED")
    except Exception as error:
        if is_refused(error):
            raise refusal(tracking_uri(config), error) from None
        if not is_unreachable(error):
            raise
        return []  # the server is away: the next invocation closes them
    return closed


def server_command(
    *, host: str = "127.0.0.1", port: int = 5000, store: str = DEFAULT_TRACKING_URI, artifacts: str = "mlartifacts"
) -> list[str]:
    """`mlflow server` for a team: runs in `store`, artifacts served from the `artifacts` folder.

    It binds `host`, loopback unless told otherwise; put an authenticating proxy or MLflow's
    basic-auth app in front before binding a public address.
    """
    return ["mlflow", "server", "--host", host, "--port", str(port), "--backend-store-uri", store, "--artifacts-destination", artifacts]


def log_report_run(config: DictConfig, info: dict, paths: list[Path]) -> str | None:
    """A run named "report" in the study's experiment, holding the report's tables and figures."""
    logger = BufferedMlflowLogger(
        tracking_uri=tracking_uri(config),
        experiment=experiment_name(config),
        run_name="report",
        tags=run_tags(config, "report", info),
        patience_seconds=config.tracking.patience_seconds,
    )
    for path in paths:
        logger.log_artifact(path)
    logger.finalize("success")
    return logger.run_id
