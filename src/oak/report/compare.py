"""`oak compare`: DVC experiments side by side, one row per run, readable at 120 columns.

`dvc exp show` gives every param and metric of every file as its own column (hundreds here). This
reads the same table (dvc.api.exp_show) and prints what differs between the experiments: the
params whose values differ, then each run's metric (top-1 by default) per experiment, in percent.
"""

import argparse
import re
from pathlib import Path

from omegaconf import DictConfig

from oak.config.load import read_yaml
from oak.errors import OakError

EVAL_METRIC = re.compile(r"^metrics/eval/(?P<run>.+)\.json:(?P<metric>\w+)$")


def compare(config: DictConfig, args: argparse.Namespace) -> None:
    """`oak compare`: the workspace, its commit and their DVC experiments."""
    import dvc.api

    print(compare_table(dvc.api.exp_show(repo=str(Path(args.params).resolve().parent)), set(read_yaml(args.params)), args.metric))


def compare_table(rows: list[dict], sections: set[str], metric: str = "top1") -> str:
    """The text of `oak compare` from dvc.api.exp_show's rows (workspace, its commit, the experiments);
    `sections`: the params file's top-level keys, which tell its params from metrics."""
    if not rows:
        raise OakError("dvc exp show lists nothing: run `dvc repro` or `dvc exp run` first")
    names = [_name(row) for row in rows]
    lines = []
    changed = [key for key in rows[0] if key.split(".")[0] in sections and _differs(rows, key)]
    for key in changed:
        lines.append(f"{key}: " + " | ".join(f"{name} {_param(row.get(key))}" for name, row in zip(names, rows)))
    runs = sorted({m["run"] for key in rows[0] if (m := EVAL_METRIC.match(key)) and m["metric"] == metric})
    if not runs:
        raise OakError(f"no experiment holds metrics/eval/*.json:{metric}; metrics are top1, top5, loss and samples")
    width = max(len(run) for run in runs)
    lines += [""] if lines else []
    lines.append(f"{metric:{width}}  " + "  ".join(f"{name[:12]:>12}" for name in names))
    for run in runs:
        values = [row.get(f"metrics/eval/{run}.json:{metric}") for row in rows]
        lines.append(f"{run:{width}}  " + "  ".join(f"{_shown(value, metric):>12}" for value in values))
    return "\n".join(lines)


def _name(row: dict) -> str:
    return row.get("Experiment") or row["rev"]


def _param(value: object) -> object:
    """DVC's table reads numbers as floats: 3.0 epochs are shown as 3."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _differs(rows: list[dict], key: str) -> bool:
    return len({repr(row.get(key)) for row in rows}) > 1


def _shown(value: object, metric: str) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.1f}" if metric in ("top1", "top5") else f"{value:.3g}"
