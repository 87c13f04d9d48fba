"""Where everything lives in the repository: the fixed files of the pipeline's definition, and every
output path, derived from `paths.*` in params.yaml (which dvc.yaml reads too, so both agree).

One run (a planned row of a study, or `oak train MODEL`) is one name throughout: its checkpoint
folder `<checkpoints>/<run>/`, its metrics `<metrics>/{train,eval}/<run>.json`, its curves
`<metrics>/curves/<run>.csv` and its MLflow run. Every path made from a run's name is made here, so
the name is checked here: one plain folder or file name, never a path that reaches outside its folder.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from oak.errors import OakError

PARAMS_FILE = Path("params.yaml")
RECIPES_DIR = Path("pipelines/recipes")  # <recipe>.yaml, beside params.yaml
STUDIES_DIR = Path("pipelines/studies")  # <study>.yaml
PLAN_FILE = Path("pipelines/plan.yaml")  # written by `oak plan`, read by dvc.yaml

# Inside a run's checkpoint folder
CHECKPOINT_FILE = "last.ckpt"
RUN_FILE = "run.json"  # which MLflow run the checkpoint belongs to, its fingerprint, whether training completed
CURVES_FILE = "curves.csv"  # the epochs so far, kept across resumes
RESOLVED_CONFIG_FILE = "config.yaml"  # the settings the run trained with, credentials redacted

# A run's name: as a study's variant (oak.studies.study), so no `.`, `..`, separator or hidden name, and no
# sibling's suffix (`<run>.oak-lock`); lower case, as two names that differ only in case share a folder on
# macOS's and Windows' file systems; short enough for every file name made from it.
RUN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")

# Inside a shard folder
SHARD_INFO_FILE = "_info.json"
REJECTED_FILE = "_rejected.tsv"


@dataclass(frozen=True)
class Layout:
    demo: Path
    shards: Path
    checkpoints: Path
    metrics: Path
    reports: Path
    logs: Path  # <logs>/slurm: `oak submit`'s job scripts, logs and states; <logs>/repro: `oak repro`'s stage logs
    weights: Path  # released checkpoints, named as oak.models.published says

    @classmethod
    def of(cls, config: DictConfig) -> "Layout":
        paths = config.paths
        folders = (paths.demo, paths.shards, paths.checkpoints, paths.metrics, paths.reports, paths.logs, paths.weights)
        return cls(*(Path(folder) for folder in folders))

    @property
    def jobs(self) -> Path:
        return self.logs / "slurm"

    @property
    def repro_logs(self) -> Path:
        return self.logs / "repro"

    @property
    def mirror_stamp(self) -> Path:
        """What `oak sync` brought this machine's MLflow store to: the sync stage's output, never committed."""
        return self.logs / "mlflow-sync.json"

    def run_folder(self, run: str) -> Path:
        return self.checkpoints / check_run_name(run)

    def train_metrics(self, run: str) -> Path:
        return self.metrics / "train" / f"{check_run_name(run)}.json"

    @property
    def curves_folder(self) -> Path:
        return self.metrics / "curves"

    def curves(self, run: str) -> Path:
        return self.curves_folder / f"{check_run_name(run)}.csv"

    def eval_metrics(self, run: str) -> Path:
        return self.metrics / "eval" / f"{check_run_name(run)}.json"

    def timings(self, stage: str, run: str) -> Path:
        """How long `stage` (train or evaluate) of `run` took: kept out of the DVC metrics, which hold results only."""
        return self.metrics / "timings" / stage / f"{check_run_name(run)}.json"

    def weights_metrics(self, run: str) -> Path:
        """`oak evaluate --weights`: kept apart from the pipeline's own evaluations."""
        return self.metrics / "weights" / f"{check_run_name(run)}.json"

    def published_metrics(self, run: str) -> Path:
        """`oak evaluate --published`: released weights measured on the val shards (the published profile)."""
        return self.metrics / "published" / f"{check_run_name(run)}.json"

    @property
    def facts(self) -> Path:
        return self.metrics / "facts.json"

    def bench(self, measurement: str) -> Path:
        return self.metrics / "bench" / f"{measurement}.json"

    def smoke(self, profile: str) -> Path:
        return self.metrics / "smoke" / f"{profile}.json"

    @property
    def devices(self) -> Path:
        """<device>/cost.json and <device>/g1-*.json: measurements made on other machines, which the report reads."""
        return self.metrics / "devices"

    @property
    def tables(self) -> Path:
        return self.reports / "tables"

    @property
    def figures(self) -> Path:
        return self.reports / "figures"


def check_run_name(run: str) -> str:
    """`run`, if it can name the run's folder and files (RUN_NAME); else the error that says what a name may hold."""
    if not RUN_NAME.fullmatch(run):
        raise OakError(
            f"run name {run!r}: use lower-case letters, digits, '-' and '_', starting with a letter or digit, "
            "at most 100 characters (it names the run's folder and files)"
        )
    return run


def cost_file(profile: str) -> str:
    """The name of a device's `oak bench cost` file for `profile`: cost.json for imagenet (the report's), else
    cost-<profile>.json, since profiles name their runs alike (a budget run has its imagenet run's name)."""
    return "cost.json" if profile == "imagenet" else f"cost-{profile}.json"
