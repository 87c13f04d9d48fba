"""Per-epoch training curves as CSV files: for DVC plots, and the report's training-curve figures.

A Lightning logger keeps every epoch's metrics in the checkpoint folder, where they survive a
resume (Lightning's CSVLogger deletes an existing file when it starts); the finished training
copies them to `metrics/curves/<model>.csv`.
"""

import csv
import io
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from oak.files import write_atomic


def read_curves(path: Path) -> list[dict[str, float]]:
    """The rows of a curves file, one per epoch, numbers as floats (a metric missing in an epoch is absent)."""
    if not path.exists():
        return []
    with path.open(newline="") as stream:
        return [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(stream)]


def curves_csv(rows: list[dict[str, float]]) -> str:
    columns = ["epoch", *sorted({key for row in rows for key in row} - {"epoch", "step"}), "step"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _plain(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class EpochCurves(Logger):
    """Merges the epoch-level metrics Lightning logs at each step into one row per epoch, in `path`.

    `resume` keeps the rows already there (the epochs a resumed training does not repeat).
    """

    def __init__(self, path: Path, *, resume: bool) -> None:
        super().__init__()
        self.path = path
        self.rows: dict[int, dict[str, float]] = {int(row["step"]): row for row in read_curves(path)} if resume else {}

    @property
    def name(self) -> str:
        return "curves"

    @property
    def version(self) -> str:
        return "0"

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the resolved config is saved beside the checkpoint and logged to MLflow

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "epoch" not in metrics:
            return  # step-level metrics: Oak logs per epoch only
        self.rows.setdefault(step or 0, {"step": step or 0}).update({key: float(value) for key, value in metrics.items()})
        self.save()  # small, and a kill right after an epoch must not lose it

    @rank_zero_only
    def save(self) -> None:
        if not self.rows:
            return  # Lightning saves loggers as fitting starts: a new training must not blank a finished one's curves yet
        write_atomic(self.path, curves_csv([self.rows[step] for step in sorted(self.rows)]))
