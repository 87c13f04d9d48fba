"""`oak sync`: MLflow made to hold what DVC's record holds, one MLflow run per planned run.

DVC's record (metrics/, the run folders under models/) is Oak's source of truth; MLflow is where
people look and compare. A stage writes to MLflow only when it runs, and on a fresh clone DVC skips
every evaluation whose checkpoint came out byte for byte as committed (and `dvc pull` or `dvc exp
apply` restore outputs without running anything), so MLflow would miss those results. The `sync`
stage of dvc.yaml runs this after every `dvc repro`, `oak repro`, `oak submit` and `dvc exp run`:

- each planned run's MLflow run is the one its training opened here (`run.json`), else the one an
  earlier sync made for it, else a new one;
- the points it lacks are added (per-epoch curves, the training's time, the evaluation), never a point
  it already holds, so repeating the sync changes nothing;
- tags say where each part came from: `oak.source.train` and `oak.source.eval` read "computed here" when
  the stage logged it to this store, else name the record's file, its md5 (as dvc.lock records it) and
  the git commit; `oak.record` holds a digest of the record files, so an unchanged run is skipped at once.
"""

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from oak.data.info import ShardInfo
from oak.errors import OakError
from oak.layout import RESOLVED_CONFIG_FILE, RUN_FILE, Layout
from oak.tracking.logger import BufferedMlflowLogger, is_refused, is_unreachable, quick_requests, refusal
from oak.tracking.store import open_client, store_file
from oak.tracking.tracker import Tracker, dataset_input, git_state, run_params, run_tags
from oak.tracking.ui import runs_table_link

RECORD_TAG = "oak.record"
SOURCE_TAG = "oak.source.{part}"
COMPUTED_HERE = "computed here"
PER_EPOCH_EXCLUDED = {"epoch", "step"}  # the curves' row keys: MLflow holds them as each point's step


@dataclass(frozen=True)
class Record:
    """One run's files in DVC's record; a part that is missing is None."""

    name: str
    train: Path | None
    curves: Path | None
    train_timings: Path | None
    evaluation: Path | None
    eval_timings: Path | None
    config: Path | None  # the resolved settings the training wrote (credentials redacted)

    @classmethod
    def of(cls, layout: Layout, name: str) -> "Record":
        def present(path: Path) -> Path | None:
            return path if path.is_file() else None

        return cls(
            name,
            present(layout.train_metrics(name)),
            present(layout.curves(name)),
            present(layout.timings("train", name)),
            present(layout.eval_metrics(name)),
            present(layout.timings("evaluate", name)),
            present(layout.run_folder(name) / RESOLVED_CONFIG_FILE),
        )

    def files(self) -> list[Path]:
        parts = (self.train, self.curves, self.train_timings, self.evaluation, self.eval_timings, self.config)
        return [path for path in parts if path is not None]

    def digest(self) -> str:
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(f"{path}\n".encode() + path.read_bytes())
        return digest.hexdigest()[:16]


@dataclass
class SyncSummary:
    """What a sync did, run by run: the counts reconcile with the plan's runs."""

    unchanged: list[str]
    updated: list[str]
    created: list[str]
    not_recorded: list[str]  # planned runs DVC holds no training for yet
    digests: dict[str, str]  # each mirrored run's record digest

    def stamp(self) -> dict:
        """The sync stage's output: the same on every clone with the same record (dvc.lock keeps its md5)."""
        return {"mirrored": self.digests, "not_recorded": sorted(self.not_recorded)}

    def line(self, experiment: str) -> str:
        total = len(self.unchanged) + len(self.updated) + len(self.created) + len(self.not_recorded)
        parts = [f"{len(self.created)} created", f"{len(self.updated)} completed", f"{len(self.unchanged)} already complete"]
        missing = f"; not in DVC's record yet: {', '.join(self.not_recorded)}" if self.not_recorded else ""
        return f"MLflow experiment {experiment}: {total} planned runs, {', '.join(parts)}{missing}"


def sync_record(config: DictConfig, runs: dict[str, str], info: ShardInfo, configs: dict[str, DictConfig]) -> SyncSummary:
    """Make the tracking store hold DVC's record of every run in `runs` (name: model; `configs`: each run's resolved settings)."""
    tracker = Tracker(config)
    tracker.check_login()
    layout = Layout.of(config)
    client = open_client(tracker.uri)
    summary = SyncSummary([], [], [], [], {})
    try:
        with quick_requests():
            known = _runs_by_name(client, tracker.experiment)
        for name, model in sorted(runs.items()):
            record = Record.of(layout, name)
            if record.train is None:
                summary.not_recorded.append(name)
                continue
            summary.digests[name] = record.digest()
            run_id = _mirror_run(name, model, record, tracker, layout, client, known.get(name, []), info, configs[name])
            {None: summary.unchanged, "created": summary.created, "updated": summary.updated}[run_id].append(name)
    except MlflowException as error:
        if is_refused(error):
            raise refusal(tracker.uri, error) from None
        if is_unreachable(error):
            raise OakError(f"tracking {tracker.shown_uri} is unreachable: MLflow misses DVC's record until `oak sync` runs again") from None
        raise
    return summary


def results_view(config: DictConfig) -> str:
    """Where to look at the runs in MLflow: the results view's address (after `oak server` for a local store)."""
    tracker = Tracker(config)
    served = tracker.uri.startswith(("http://", "https://"))
    server = tracker.shown_uri if served else "http://127.0.0.1:5000"
    store = store_file(tracker.uri)
    if store is not None and not store.exists():  # asking would create it
        return f"MLflow ({tracker.shown_uri}) holds no runs yet"
    try:
        with quick_requests():
            experiment = open_client(tracker.uri).get_experiment_by_name(tracker.experiment)
    except MlflowException:
        experiment = None
    if experiment is None:
        return f"MLflow ({tracker.shown_uri}) holds no runs of {tracker.experiment} yet"
    link = runs_table_link(server, experiment.experiment_id)
    return f"MLflow's results view: {link}" if served else f"MLflow's results view: `oak server`, then {link}"


def _runs_by_name(client: MlflowClient, experiment: str) -> dict[str, list]:
    """The experiment's runs by their `run` tag, newest first."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    by_name: dict[str, list] = {}
    for run in client.search_runs([found.experiment_id], max_results=50000, order_by=["attributes.start_time DESC"]):
        by_name.setdefault(run.data.tags.get("run", run.info.run_name), []).append(run)
    return by_name


def _mirror_run(
    name: str,
    model: str,
    record: Record,
    tracker: Tracker,
    layout: Layout,
    client: MlflowClient,
    candidates: list,
    info: ShardInfo,
    config: DictConfig,
) -> str | None:
    """Bring `name`'s MLflow run up to its record: None when it already was, else "created" or "updated"."""
    digest = record.digest()
    target = _target_run(layout, name, candidates)
    if target is not None and target.data.tags.get(RECORD_TAG) == digest:
        return None
    held = set(target.data.metrics) if target is not None else set()
    logger = BufferedMlflowLogger(
        tracking_uri=tracker.uri,
        experiment=tracker.experiment,
        run_name=name,
        # a run of its own says what made it; a training's run keeps its own tags (stage, commit, host)
        tags=run_tags(config, "record", info, model, name) if target is None else {},
        run_id=target.info.run_id if target is not None else None,
        patience_seconds=0,
    )
    if target is None:
        logger.log_hyperparams(run_params(config, model, info))
        logger.log_dataset(dataset_input(config, info, context="training"))
    commit = git_state()[0]
    for part, metrics_file, computed_key in (("train", record.train, "val/top1"), ("eval", record.evaluation, "eval/top1")):
        if metrics_file is not None:
            source = (
                COMPUTED_HERE if computed_key in held else f"DVC record: {metrics_file} (md5 {_md5(metrics_file)}) at git commit {commit}"
            )
            logger.set_tags({SOURCE_TAG.format(part=part): source})
    for step, values in _points(record):
        logger.log_metrics(values, step=step)
    if record.config is not None and not (target and any(a.path == record.config.name for a in client.list_artifacts(target.info.run_id))):
        logger.log_artifact(record.config)
    logger.set_tags({RECORD_TAG: digest})
    logger.finalize("success")
    missing = logger.undelivered()
    logger.close()
    if missing:
        raise OakError(f"tracking {tracker.shown_uri}: run {name} did not receive {', '.join(missing)}; run `oak sync` again")
    return "updated" if target is not None else "created"


def _target_run(layout: Layout, name: str, candidates: list):
    """The run its training opened in this store, else the newest an earlier sync completed, else None."""
    run_file = layout.run_folder(name) / RUN_FILE
    trained_here = json.loads(run_file.read_text()).get("run_id") if run_file.is_file() else None
    for candidate in candidates:
        if candidate.info.run_id == trained_here:
            return candidate
    return next((candidate for candidate in candidates if RECORD_TAG in candidate.data.tags), None)


def _points(record: Record) -> list[tuple[int, dict[str, float]]]:
    """The record's metric points as the stages log them: (step, {key: value}), the step being the epoch."""

    def read(path: Path) -> dict:
        return json.loads(path.read_text())

    points = []
    if record.curves:  # written by oak.training.curves: one row per epoch, an empty cell where a metric is missing
        with record.curves.open(newline="") as rows:
            for row in csv.DictReader(rows):
                points.append((int(row["epoch"]), {k: float(v) for k, v in row.items() if k not in PER_EPOCH_EXCLUDED and v != ""}))
    if record.train_timings:
        points.append((read(record.train)["epochs"] - 1, {"train/seconds": read(record.train_timings)["seconds"]}))
    if record.evaluation:
        evaluated = read(record.evaluation)
        points.append((0, {f"eval/{key}": float(evaluated[key]) for key in ("top1", "top5", "loss", "samples")}))
    if record.eval_timings:
        points.append((0, {"eval/seconds": read(record.eval_timings)["seconds"]}))
    return points


def _md5(path: Path) -> str:
    """As dvc.lock records an output file's content."""
    return hashlib.md5(path.read_bytes()).hexdigest()
