"""What MLflow's UI shows of Oak's runs: links to them, and the runs table's columns.

MLflow 3.17's runs table shows no metric or param column until the user picks them, and keeps the
choice in the browser only. A view saved in the experiment's `mlflow.sharedViewState.<key>` tag is
the one thing the server can set: the runs link below opens it (the URL parameter `viewStateShareKey`
works on the `/runs` page only, and only without other search parameters). Found in MLflow 3.17's
UI code and checked in a real browser by tests/test_ui.py.
"""

import json
import time

EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
VIEW_KEY = "oak"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# What a researcher compares, few enough to fit beside the run names: the results, what was trained,
# on which data (`Columns` adds the others: times, every param).
COLUMNS = [
    "attributes.`Dataset`",
    "metrics.`eval/top1`",
    "metrics.`eval/top5`",
    "params.`model`",
    "params.`recipe`",
    "params.`train.epochs`",
]


def runs_view() -> str:
    """The saved view, as MLflow's UI writes one: its name, times and the table's state (as JSON text)."""
    now = int(time.time() * 1000)
    state = {"selectedColumns": COLUMNS, "orderByKey": "metrics.`eval/top1`", "orderByAsc": False}
    return json.dumps({"name": "Oak: results", "createdAt": now, "updatedAt": now, "state": json.dumps(state)})


def experiment_tags() -> dict[str, str]:
    """Tags of an experiment Oak creates: the kind makes the UI open its runs, not its GenAI overview."""
    return {EXPERIMENT_KIND: MODEL_TRAINING, VIEW_TAG: runs_view()}


def run_page_link(server: str, experiment_id: str, run_id: str) -> str:
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def runs_table_link(server: str, experiment_id: str) -> str:
    """The experiment's runs table with Oak's columns (the workflow too: MLflow 3 may open its GenAI overview otherwise)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"
