"""The study's tables, declared one file each in pipelines/studies/: which models make each table,
and the paper's numbers with their source.

A study file is YAML checked against the schema below (an unknown key, a wrong type or an
unknown model is an error naming the file):

    title: "Table 1: top-1 error (%) on ImageNet val, plain vs residual"
    source: "Zhao 2024, Table 1, citing He et al. 2016"
    metric: top1_error            # the column the paper reports: top1, top1_error or top5_error
    rows:
      - {label: plain-18, model: plain18, paper: 27.94}
      - {label: EfficientNet-B2, model: efficientnet_b2, paper: 79.8, paper_top5: 94.9, paper_params_m: 9.2}
"""

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oak.errors import OakError
from oak.models import check_model_name

STUDIES_DIR = Path("pipelines/studies")
METRICS = {"top1": "top-1 (%)", "top1_error": "top-1 error (%)", "top5_error": "top-5 error (%)"}


@dataclass
class Row:
    label: str  # the paper's name for the model
    model: str  # the model Oak builds for that row
    paper: float  # the paper's value of the study's metric
    paper_top5: float | None = None
    paper_params_m: float | None = None  # the parameter count the paper states, in millions


@dataclass
class Study:
    title: str
    source: str
    metric: str
    rows: list[Row] = field(default_factory=list)
    name: str = ""  # the file's stem, set when read


def load_study(path: Path) -> Study:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Study), OmegaConf.load(path))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        if "not in" in str(error):
            raise OakError(f"{path}: unknown key '{key}'; the study schema is in src/oak/report/studies.py") from None
        raise OakError(f"{path}: key '{key}': {str(error).strip().splitlines()[0]}") from None
    study: Study = OmegaConf.to_object(merged)
    study.name = path.stem
    if study.metric not in METRICS:
        raise OakError(f"{path}: metric {study.metric!r} is not one of {', '.join(METRICS)}")
    for row in study.rows:
        try:
            check_model_name(row.model)
        except OakError as error:
            raise OakError(f"{path}: row {row.label!r}: {error}") from None
    return study


def load_studies(folder: Path = STUDIES_DIR) -> list[Study]:
    """Every study in `folder`, in file-name order."""
    return [load_study(path) for path in sorted(folder.glob("*.yaml"))]
