"""A Lightning logger for MLflow that a tracking-server outage cannot stop.

Everything a run receives (tags, params, metric points, artifacts, its end status) is queued
here and delivered in order. A delivery that fails because the server cannot be reached leaves
the queue as it was, warns once, and is tried again at the next log call after a pause. The
patient wait for an absent server comes last, in `close`: the stage calls it once its results are
on disk (Lightning's `finalize` comes before a stage writes them, and a stage logs its files and
times after it), and the process calls it at exit for whatever is still queued then. What stays
undelivered is named in a warning, never reported as up to date. After a failure, and in a resumed
run, the points the server already holds are looked up, and any point logged again at a (key,
step) it holds is left out, so each arrives once: a resumed training replays the steps after its
checkpoint, and with them the metrics of an epoch that ended before the stop.

An evaluation adds to its training's finished run: it leaves the run's status alone (a failed
evaluation does not make the training FAILED) and looks up only the points it sent itself, so a
re-evaluation's value becomes the run's latest, as in the DVC metrics.
"""

import atexit
import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, Metric, Param, RunTag
from mlflow.exceptions import MlflowException, RestException
from requests.exceptions import RequestException

from oak.errors import OakError
from oak.tracking.redaction import redact_text, without_login
from oak.tracking.store import local_artifact_location, open_client
from oak.tracking.ui import VIEW_TAG, experiment_tags, run_page_link, runs_table_link, runs_view

log = logging.getLogger(__name__)

# While training, a request to an absent server fails fast instead of MLflow's minutes of retries.
QUICK_REQUESTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# MLflow prints the run's link with the tracking URI's login in it; Oak prints it without.
QUICK_REQUESTS["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
BATCH = 1000  # metric points per request (MLflow's limit)


@contextlib.contextmanager
def quick_requests() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in QUICK_REQUESTS}
    os.environ.update(QUICK_REQUESTS)
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


REFUSALS = {
    401: "refused the login (HTTP 401): check the user and password (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or the URI's)",
    403: "refused access (HTTP 403): the user lacks permission on this experiment; ask the server's admin for it",
}


def is_refused(error: Exception) -> bool:
    return isinstance(error, MlflowException) and error.get_http_status_code() in REFUSALS


def refusal(tracking_uri: str, error: MlflowException) -> OakError:
    return OakError(f"MLflow at {redact_text(tracking_uri)} {REFUSALS[error.get_http_status_code()]}")


def is_unreachable(error: Exception) -> bool:
    """True for a server that does not answer (or answers 5xx while it restarts), not for a refusal."""
    if isinstance(error, (OSError, RequestException)):
        return True
    if isinstance(error, MlflowException) and not is_refused(error):
        status = error.get_http_status_code()
        return str(error).startswith("API request to") or status >= 500
    return False


# MLflow's client words for an answer that is not MLflow's JSON. The statuses of a server, or a proxy in
# front of it, while it restarts (502, 503, ...) never come as such: MLflow's retries take them, and with
# none left say "failed with exception", an outage.
NOT_JSON_STATUS = re.compile(r"API request to endpoint \S+ failed with error code (\d+) != \d+\. Response body")
NOT_JSON_OK = "API request to endpoint was successful but the response body was not in a valid JSON format"


def foreign_answer(error: Exception) -> str | None:
    """What an address answered that no MLflow tracking server answers ("HTTP 404, not MLflow's JSON"); None for any other error."""
    if isinstance(error, RestException):  # JSON: MLflow's always names its error code
        return None if "error_code" in error.json else "JSON without MLflow's error code"
    status = NOT_JSON_STATUS.match(str(error)) if isinstance(error, MlflowException) else None
    if status and int(status[1]) not in REFUSALS:
        return f"HTTP {status[1]}, not MLflow's JSON"
    return "HTTP 200, not MLflow's JSON" if str(error).startswith(NOT_JSON_OK) else None


def described(error: Exception) -> str:
    """The error's first line, without the page a server answered with and without credentials."""
    line = (str(error).splitlines() or [type(error).__name__])[0]
    return redact_text(line.split(". Response body:")[0])


@rank_zero_only
def check_login(tracking_uri: str) -> None:
    """One request before any work: a refused login or an address that is no MLflow server stops here, not
    after training (an absent server does not: runs wait for it)."""
    try:
        with quick_requests():
            open_client(tracking_uri).search_experiments(max_results=1)
    except Exception as error:
        if is_refused(error):
            raise refusal(tracking_uri, error) from None
        if answer := foreign_answer(error):
            raise OakError(
                f"{redact_text(tracking_uri)} answers ({answer}) but is not an MLflow tracking server: "
                "set tracking.uri (or MLFLOW_TRACKING_URI) to the server's address"
            ) from None
        if not is_unreachable(error):
            raise


class BufferedMlflowLogger(Logger):
    def __init__(
        self,
        *,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        tags: dict[str, str],
        run_id: str | None = None,
        evaluation: bool = False,
        retry_seconds: float = 30.0,
        patience_seconds: float = 600.0,
    ) -> None:
        super().__init__()
        self.evaluation = evaluation and run_id is not None
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        self.run_name = run_name
        self.run_id = run_id
        self.resumed = run_id is not None
        self.interrupted = False  # set on Ctrl-C: the run ends KILLED, not FAILED
        self.retry_seconds = retry_seconds
        self.patience_seconds = patience_seconds
        self._tags = dict(tags)
        self._params: dict[str, str] = {}
        self._metrics: list[Metric] = []
        self._artifacts: list[str] = []
        self._datasets: list[DatasetInput] = []
        self._status: str | None = "RUNNING" if self.resumed and not self.evaluation else None
        self._held: set[tuple[str, int]] = set()  # (key, step) of the points the server holds, when looked up
        self._look_up_held = self.resumed and not self.evaluation
        self._since_ms = int(time.time() * 1000) if self.evaluation else 0  # the held points that count
        self._next_try = 0.0
        self._warned = False
        atexit.register(self._close_at_exit)

    @property
    def name(self) -> str:
        return self.experiment_name

    @property
    def version(self) -> str:
        return self.run_id or "undelivered"

    @functools.cached_property
    def client(self) -> MlflowClient:
        # Made on first use, so on rank 0 only: the other ranks have no run to open the store for.
        return open_client(self.tracking_uri)

    @property
    def pending(self) -> int:
        """Metric points not yet delivered."""
        return len(self._metrics)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self._params.update({key: str(value) for key, value in _flatten_dict(_convert_params(params)).items()})
        self.deliver()

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Oak logs per epoch: the epoch Lightning adds to each call becomes the points' step, not a metric."""
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        step = int(epoch) if epoch is not None else step or 0
        timestamp = int(time.time() * 1000)
        self._metrics += [Metric(key, float(value), timestamp, step) for key, value in metrics.items()]
        self.deliver()

    @rank_zero_only
    def set_tags(self, tags: dict[str, str]) -> None:
        self._tags.update(tags)
        self.deliver()

    @rank_zero_only
    def log_dataset(self, dataset: DatasetInput) -> None:
        """The data the run trained or evaluated on, as an MLflow dataset input (the UI's Dataset column)."""
        self._datasets.append(dataset)
        self.deliver()

    @rank_zero_only
    def log_artifact(self, path: str) -> None:
        self._artifacts.append(str(path))
        self.deliver()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's end of a fit or test: the run's end status joins the queue (`close` waits for the server)."""
        # "finished" comes only from Lightning's SLURM requeue handler: the job is about to be stopped
        # and requeued, and the requeued job continues this run, so it stays RUNNING.
        ended = {"success": "FINISHED", "finished": self._status, "failed": "KILLED" if self.interrupted else "FAILED"}
        self._status = None if self.evaluation else ended.get(status, status)
        self.deliver()

    @rank_zero_only
    def close(self) -> None:
        """Deliver everything queued, waiting up to `patience_seconds` for an absent server; what stays
        undelivered is named in a warning. Call it once the stage's results are on disk."""
        atexit.unregister(self._close_at_exit)
        if not self.undelivered():
            return
        try:
            delivered = self.deliver(patience=self.patience_seconds)
        except KeyboardInterrupt:
            self._warn_undelivered("Ctrl-C stopped the wait for the tracking server")
            raise
        if not delivered:
            self._warn_undelivered(f"the tracking server stayed unreachable for {self.patience_seconds:.0f} s")

    def _close_at_exit(self) -> None:
        """`close` for what a stage queued after its last call of it, or that an error left (a FAILED status)."""
        try:
            self.close()
        except KeyboardInterrupt:
            pass  # `close` named what was left; the process is ending anyway
        except Exception as error:  # raised here, it would be a traceback after the command's last line
            self._warn_undelivered(described(error))

    def undelivered(self) -> list[str]:
        """What the server has not received, by kind, with the names of metrics and artifacts; empty when nothing is queued."""
        metrics = ", ".join(sorted({point.key for point in self._metrics}))
        artifacts = ", ".join(os.path.basename(path) for path in self._artifacts)
        parts = [
            *([f"{len(self._metrics)} metric points ({metrics})"] if self._metrics else []),
            *([f"{len(self._artifacts)} artifacts ({artifacts})"] if self._artifacts else []),
            *([f"{len(self._params)} params"] if self._params else []),
            *([f"{len(self._tags)} tags"] if self._tags else []),
            *([f"{len(self._datasets)} dataset inputs"] if self._datasets else []),
            *([f"its status {self._status}"] if self._status else []),
        ]
        return ["the run itself", *parts] if parts and self.run_id is None else parts

    def _warn_undelivered(self, why: str) -> None:
        log.warning(
            "MLflow: %s; run %s at %s lacks %s (the files on disk hold the results)",
            why,
            self.run_name,
            redact_text(self.tracking_uri),
            "; ".join(self.undelivered()),
        )

    def deliver(self, patience: float | None = None) -> bool:
        """Send what is queued; True once nothing is left. Without `patience`, only when the pause after a
        failure is over; with it, now, and every few seconds for up to `patience` seconds."""
        deadline = time.monotonic() + (patience or 0.0)
        while True:
            if patience is not None or time.monotonic() >= self._next_try:
                try:
                    with quick_requests():
                        self._send()
                    if self._warned:
                        log.warning("MLflow: tracking server reachable again, run %s is up to date", self.run_name)
                        self._warned = False
                    return True
                except Exception as error:
                    if is_refused(error):
                        raise refusal(self.tracking_uri, error) from None
                    if not is_unreachable(error):
                        raise
                    self._look_up_held = True
                    self._next_try = time.monotonic() + self.retry_seconds
                    if not self._warned:
                        log.warning(
                            "MLflow: tracking server unreachable (%s); the run's data is kept and sent when it answers", described(error)
                        )
                        self._warned = True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment:
            if VIEW_TAG not in experiment.tags:  # made by an earlier Oak, or by hand
                self.client.set_experiment_tag(experiment.experiment_id, VIEW_TAG, runs_view())
            return experiment.experiment_id
        try:
            return self.client.create_experiment(
                self.experiment_name, artifact_location=local_artifact_location(self.tracking_uri), tags=experiment_tags()
            )
        except MlflowException as error:
            # Parallel jobs on a fresh server: another one created it since the look-up.
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(self.experiment_name).experiment_id

    def _log_datasets(self) -> None:
        try:
            self.client.log_inputs(self.run_id, datasets=self._datasets)
        except MlflowException as error:
            # Runs logging one dataset at once race to add it to the experiment (a UNIQUE constraint
            # refuses all but the first): once more finds the first one's. A bad input fails again.
            if error.error_code != "BAD_REQUEST":
                raise
            self.client.log_inputs(self.run_id, datasets=self._datasets)

    def _send(self) -> None:
        if self.run_id is None:
            experiment_id = self._experiment_id()
            self.run_id = self.client.create_run(experiment_id, run_name=self.run_name, tags=self._tags).info.run_id
            self._tags = {}
        if self._status == "RUNNING":
            self.client.update_run(self.run_id, status="RUNNING")
            self._status = None
        if self._tags or self._params:
            tags, params = [RunTag(k, v) for k, v in self._tags.items()], [Param(k, v) for k, v in self._params.items()]
            for start in range(0, max(len(tags), len(params)), 100):
                self.client.log_batch(self.run_id, params=params[start : start + 100], tags=tags[start : start + 100])
            self._tags, self._params = {}, {}
        if self._look_up_held:
            self._held = self._points_on_server()
            self._look_up_held = False
        self._metrics = [point for point in self._metrics if (point.key, point.step) not in self._held]
        while self._metrics:
            self.client.log_batch(self.run_id, metrics=self._metrics[:BATCH])
            self._metrics = self._metrics[BATCH:]
        if self._datasets:
            self._log_datasets()
            self._datasets = []
        while self._artifacts:
            self.client.log_artifact(self.run_id, self._artifacts[0])
            self._artifacts.pop(0)
        if self._status:
            self.client.set_terminated(self.run_id, self._status)
            self._status = None
            self._print_link()

    def _print_link(self) -> None:
        if self.tracking_uri.startswith(("http://", "https://")):
            experiment = self.client.get_run(self.run_id).info.experiment_id
            server = without_login(self.tracking_uri)
            print(f"MLflow run {self.run_name}: {run_page_link(server, experiment, self.run_id)}")
            print(f"MLflow runs of {self.experiment_name}: {runs_table_link(server, experiment)}")

    def _points_on_server(self) -> set[tuple[str, int]]:
        """(key, step) of every metric point the run holds (an evaluation's: those since it started)."""
        keys = self.client.get_run(self.run_id).data.metrics
        history = [(key, point) for key in keys for point in self.client.get_metric_history(self.run_id, key)]
        return {(key, point.step) for key, point in history if point.timestamp >= self._since_ms}
