"""A stage's MLflow: where its runs go, what they are named, what they hold, and how they end.

One experiment per profile (`tracking.experiment`), one MLflow run per run, under the name `oak plan`
gives it (the model, plus the study's variant where a study trains one model several ways);
training opens the run and evaluation adds its final metrics to the same run. A run that raises
ends FAILED, Ctrl-C ends it KILLED, and a run left RUNNING by a killed process on this host is
closed as KILLED by the next invocation for the same run.
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
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from omegaconf import DictConfig

from oak.config.load import flatten, planned_profile
from oak.config.resolve import batch_note
from oak.config.schema import DECISIVE_TRAINER_KEYS
from oak.data.info import ShardInfo
from oak.errors import OakError
from oak.tracking.logger import (
    BufferedMlflowLogger,
    check_login,
    is_refused,
    is_unreachable,
    quick_requests,
    refusal,
)
from oak.tracking.redaction import redact_config, redact_text
from oak.tracking.store import open_client
from oak.tracking.ui import run_page_link

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


def run_params(config: DictConfig, model: str, info: ShardInfo) -> dict[str, object]:
    """The run's params: what it trains, on what, with which resolved recipe (credentials redacted)."""
    from oak.models.cards import model_card

    config = redact_config(config)
    described = {
        "model": model,
        "family": model_card(model).family,
        "profile": planned_profile(),
        "recipe": config.recipe,
        "seed": config.seed,
    }
    described |= {"dataset": info.label, "dataset.fingerprint": info.fingerprint}
    described |= {f"train.{key}": value for key, value in flatten(config.train).items()}
    return described | {f"trainer.{key}": config.trainer[key] for key in DECISIVE_TRAINER_KEYS}


def dataset_input(config: DictConfig, info: ShardInfo, *, context: str) -> DatasetInput:
    """The shards as an MLflow dataset: named by their label, digest the shard fingerprint, source the
    folder they were prepared from (`context`: training or evaluation, as MLflow's own tag says)."""
    source = json.dumps({"uri": redact_text(str(config.data.source)), "shards": str(config.paths.shards)})
    dataset = Dataset(name=info.label, digest=info.fingerprint[:16], source_type="local", source=source)
    return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])


class Tracker:
    """Made once per stage from its config: every MLflow call of the stage goes through it."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self.uri = tracking_uri(config)
        self.experiment = experiment_name(config)
        _check_nodes(self.uri, config.trainer.num_nodes)

    @property
    def shown_uri(self) -> str:
        """The URI without its login, for files and messages."""
        return redact_text(self.uri)

    def check_login(self) -> None:
        """One request before any work: a refused login stops here, not after training."""
        check_login(self.uri)

    def run_logger(self, *, model: str, run: str, stage: str, info: ShardInfo, run_id: str | None = None) -> BufferedMlflowLogger:
        """A Lightning logger for the run named `run`, training `model`; `run_id` continues an existing run instead of opening one."""
        return BufferedMlflowLogger(
            tracking_uri=self.uri,
            experiment=self.experiment,
            run_name=run,
            tags=run_tags(self.config, stage, info, model, run),
            run_id=run_id,
            evaluation=stage == "evaluate",
            patience_seconds=self.config.tracking.patience_seconds,
        )

    def run_link(self, run_id: str) -> str:
        """Where to see the run: its page in the server's UI, else its id and store."""
        if not self.uri.startswith(("http://", "https://")):
            return f"run {run_id} in {self.shown_uri}"
        try:
            with quick_requests():
                experiment_id = open_client(self.uri).get_run(run_id).info.experiment_id
        except Exception:  # the server is away or lost the run: the id still says which
            return f"run {run_id} at {self.shown_uri}"
        return run_page_link(self.shown_uri, experiment_id, run_id)

    @rank_zero_only
    def existing_run(self, run_id: str) -> str | None:
        """`run_id` when the store holds that run (or cannot be asked now), else None; None on ranks but 0."""
        try:
            with quick_requests():
                open_client(self.uri).get_run(run_id)
        except MlflowException as error:
            if is_refused(error):
                raise refusal(self.uri, error) from None
            return run_id if is_unreachable(error) else None
        return run_id

    @rank_zero_only
    def close_abandoned_runs(self, run: str) -> list[str]:
        """Mark KILLED the runs named `run` left RUNNING by a process of this host that no longer exists.

        A SIGKILL gives MLflow no chance to end its run; runs of other hosts are left alone, as this
        host cannot tell whether they still live.
        """
        client = open_client(self.uri)
        host = socket.gethostname().replace("'", "")
        try:
            with quick_requests():
                experiment = client.get_experiment_by_name(self.experiment)
                if experiment is None:
                    return []
                running = client.search_runs(
                    [experiment.experiment_id],
                    filter_string=f"attributes.status = 'RUNNING' and tags.run = '{run}' and tags.host = '{host}'",
                )
                closed = [found.info.run_id for found in running if not _process_alive(int(found.data.tags.get("pid", "0")))]
                for run_id in closed:
                    client.set_terminated(run_id, "KILLED")
        except Exception as error:
            if is_refused(error):
                raise refusal(self.uri, error) from None
            if not is_unreachable(error):
                raise
            return []  # the server is away: the next invocation closes them
        return closed

    def log_report(self, info: ShardInfo, paths: list[Path]) -> str | None:
        """A run named "report" in `<experiment>-reports`, holding the report's tables and figures: the model
        runs' experiment holds model runs only, so that its table and comparisons show nothing else."""
        logger = BufferedMlflowLogger(
            tracking_uri=self.uri,
            experiment=f"{self.experiment}-reports",
            run_name="report",
            tags=run_tags(self.config, "report", info),
            patience_seconds=self.config.tracking.patience_seconds,
        )
        for path in paths:
            logger.log_artifact(path)
        logger.finalize("success")
        logger.close()
        return logger.run_id


class MarkInterrupted(Callback):
    """Tells the logger that training was stopped, by Ctrl-C or SIGTERM (Lightning reports it as a failure)."""

    def on_exception(self, trainer: Trainer, module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt | SIGTERMException):
            for logger in trainer.loggers:
                if isinstance(logger, BufferedMlflowLogger):
                    logger.interrupted = True


def _check_nodes(uri: str, num_nodes: int) -> None:
    """SQLite on a shared filesystem corrupts under writers on several nodes: those need a tracking server."""
    nodes = max(num_nodes, int(os.environ.get("SLURM_JOB_NUM_NODES", "1")))
    if nodes > 1 and uri.startswith("sqlite:"):
        raise OakError(
            f"tracking {redact_text(uri)}: a run on {nodes} nodes cannot log to an SQLite file; start `oak server` on a host "
            "every node reaches and set tracking.uri (or MLFLOW_TRACKING_URI) to its http:// address"
        )


def run_tags(config: DictConfig, stage: str, info: ShardInfo, model: str | None = None, run: str | None = None) -> dict[str, str]:
    commit, dirty = git_state()
    trainer = config.trainer
    return {
        **({"model": model, "run": run or model} if model else {}),
        **({"recipe": config.recipe} if config.recipe else {}),
        "stage": stage,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "params_hash": params_hash(config),
        "dataset": info.label,
        "dataset_fingerprint": info.fingerprint,
        "synthetic": str(info.synthetic).lower(),
        "devices": f"{trainer.accelerator} x {trainer.devices} x {trainer.num_nodes} node(s)",
        # where the run's global batch is not its source's, and what Oak scaled for it (oak.config.resolve)
        **({"global_batch": note} if (note := batch_note(config.train)) else {}),
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
    }


def params_hash(config: DictConfig) -> str:
    return hashlib.sha256(json.dumps(flatten(config), sort_keys=True, default=str).encode()).hexdigest()[:12]


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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
