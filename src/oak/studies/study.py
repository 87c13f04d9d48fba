"""The paper's studies, declared one file each in pipelines/studies/: the rows of a table or figure,
the paper's numbers with their source, and how each row's model is trained in each profile.

A study file is YAML checked against the schema below (an unknown key, a wrong type, an unknown
model, recipe or setting is an error naming the file and row):

    title: "Table 1: top-1 error (%) on ImageNet val, plain vs residual"
    source: "Zhao 2024, Table 1, citing He et al. 2016"
    metric: top1_error            # the column the paper reports: top1, top1_error or top5_error
    profiles:                     # how every row is trained in each profile (see oak.studies.plan)
      demo: {recipe: demo}
      imagenet: {recipe: resnet_he2016}
    rows:
      - {label: plain-18, model: plain18, paper: 27.94}
      - label: EfficientNet-B7
        model: efficientnet_b7
        paper: 84.4
        profiles:                 # a row refines its study's profiles
          demo: {skip: "60 s per epoch on 2 CPU cores at 64 px"}
          imagenet: {settings: {train: {image_size: 600}}}

A claim of the paper that one row beats another is declared with the rows it compares; the report
judges it on the paper's numbers, on Oak's runs and on released weights, each against its sampling noise:

    claims:
      - {claim: "plain-34 is worse than plain-18 (degradation)", better: plain-18, than: plain-34}

and a claim that one gain is larger than another (Fig. 3: training methods +3.2, architecture +1.2)
adds the gain it exceeds:

      - claim: "the training methods gain more than the architecture changes"
        better: all training methods
        than: standard training
        exceeds: {better: ResNet-RS-200, than: all training methods}

A difference smaller than one training's seed-to-seed spread says nothing either: a profile may train
every row several times, seeds 0 to N-1, and the tables then show each row's mean with the seeds' spread
in its interval:

    profiles:
      demo: {recipe: demo, seeds: 3}

Where a study's runs depart from the paper beyond what their recipes declare (a schedule the study sets,
a subset of images the paper scored), the study declares it as a recipe does, and the report lists it:

    differences:
      - setting: train.schedule
        source_value: "x0.1 at 30, 60 and 80 of 90 epochs"
        oak_value: "x0.1 at 30 and 60"
        why: "timm's step schedule decays at a fixed interval"
        cited: "tensorflow/tpu models/official/resnet/resnet_main.py (get_lr_schedule)"

A study of one of the paper's scaling figures (top-1 against MACs) names it in `scaling` and puts
each row on the figure's lines; a row has a `paper` value only where a table of the cited paper gives
that point's number (Fig. 9's ~4x-FLOPs points, Tan and Le 2019, Table 7), none where the figure alone plots it:

    scaling: "Fig. 4"
    rows:
      - {label: ResNet-50, model: resnet50, series: [depth, width]}
      - {label: "ResNet-50, depth x2", model: resnet101, series: [depth]}
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oak.config.load import PROFILES, Layer, merged, read_yaml, translated
from oak.config.notes import declared_differences
from oak.config.schema import Difference
from oak.errors import OakError
from oak.layout import STUDIES_DIR
from oak.models import check_model_name

VARIANT = re.compile(r"[a-z0-9][a-z0-9_-]*")
METRICS = {"top1": "top-1 (%)", "top1_error": "top-1 error (%)", "top5_error": "top-5 error (%)"}
# What a row may change: how it trains and is evaluated, and its cluster job's size. Paths and tracking
# stay as params.yaml sets them, where dvc.yaml reads its outputs from.
STUDY_SECTIONS = {"train", "trainer", "evaluate", "cluster"}


@dataclass
class RunSpec:
    """How a row's model is trained in one profile. A row's spec refines its study's, key by key."""

    recipe: str | None = None  # pipelines/recipes/<recipe>.yaml
    stand_in: str | None = None  # a lighter model trained in the row's place, where its own cannot run in this profile
    settings: dict[str, Any] = field(default_factory=dict)  # config keys as in params.yaml, e.g. {train: {image_size: 300}}
    skip: str | None = None  # no run in this profile, and why: tables show a dash with this reason
    variant: str | None = None  # the run's variant in this profile, in place of the row's
    weights: str | None = None  # the published profile's released weights for the row (oak.models.published), evaluated only
    seeds: int | None = None  # trainings of the row, seeds 0 to N-1, whose mean the tables show; None: one, at params.yaml's seed


@dataclass
class Row:
    label: str  # the paper's name for the model
    model: str  # the model Oak builds for that row
    paper: float | None = None  # the paper's value of the study's metric; None where it gives none (a figure's point)
    paper_top5: float | None = None
    paper_params_m: float | None = None  # the parameter count the paper states, in millions
    # the variant the stated count is of, where a table naming a family states another variant's count than its accuracy's
    paper_params_model: str | None = None
    variant: str | None = None  # names the run where several rows train one model differently
    series: list[str] = field(default_factory=list)  # the lines of the study's scaling figure the row's run is on
    profiles: dict[str, RunSpec] = field(default_factory=dict)


@dataclass
class Gain:
    """What row `better` gains over row `than` on the study's metric."""

    better: str  # a row's label
    than: str


@dataclass
class Comparison:
    """The paper's claim that row `better` scores better than row `than` on the study's metric, or, with
    `exceeds`, that its gain over `than` is larger than that other gain."""

    claim: str
    better: str  # a row's label
    than: str
    exceeds: Gain | None = None
    tie: bool = False  # the claim is that the two rows score the same (oak.report.claims judges it within noise)
    at_equal_epochs: bool = False  # judged on the runs' per-epoch curves (the study's `curves`), not their final scores

    def gains(self) -> list[Gain]:
        """The claimed gain, then the one it exceeds where there is one."""
        return [Gain(self.better, self.than)] + ([self.exceeds] if self.exceeds else [])

    def labels(self) -> list[str]:
        """The rows compared, each once, in the claim's order."""
        return list(dict.fromkeys(label for gain in self.gains() for label in (gain.better, gain.than)))


@dataclass
class Study:
    title: str
    source: str
    metric: str
    profiles: dict[str, RunSpec] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    claims: list[Comparison] = field(default_factory=list)
    curves: str | None = None  # the paper's figure of the runs' per-epoch curves, where it has one
    scaling: str | None = None  # the paper's figure of top-1 against cost, one line per row `series`, where it has one
    steps: str | None = None  # the paper's figure of the rows as successive steps, coloured by each row's `series` (its kind)
    # how the study's runs or rows depart from the paper it cites beyond their recipes' own differences (a schedule the
    # study sets, a subset of images the paper scored), as a recipe declares them (oak.config.notes); read when loaded
    differences: list[Difference] = field(default_factory=list)
    name: str = ""  # the file's stem, set when read


def load_study(path: Path) -> Study:
    text = read_yaml(path)
    # checked by oak.config.notes, as a recipe's are: one error naming the file and the entry's missing or unknown field
    differences = declared_differences(text.pop("differences", None), path)
    try:
        declared = OmegaConf.merge(OmegaConf.structured(Study), text)
    except OmegaConfBaseException as error:
        raise translated(error, str(path), "the study schema (src/oak/studies/study.py)") from None
    study: Study = OmegaConf.to_object(declared)
    study.name = path.stem
    study.differences = differences
    labels = [row.label for row in study.rows]
    repeated = next((label for label in labels if labels.count(label) > 1), None)
    if repeated is not None:
        # the label keys the row's run, table line and claims: a second row of it would replace the first
        raise OakError(f"{path}: two rows are labelled {repeated!r}; give each row its own label")
    if study.metric not in METRICS:
        raise OakError(f"{path}: metric {study.metric!r} is not one of {', '.join(METRICS)}")
    _check_profiles(path, "", study.profiles)
    for row in study.rows:
        where = f"row {row.label!r}: "
        for model in filter(None, (row.model, row.paper_params_model)):
            try:
                check_model_name(model)
            except OakError as error:
                raise OakError(f"{path}: {where}{error}") from None
        _check_variant(path, where, row.variant)
        _check_profiles(path, where, row.profiles)
        if study.scaling and not row.series:
            raise OakError(f"{path}: {where}no `series`: in a study with a scaling figure every row names the lines it is on")
        if row.series and not (study.scaling or study.steps):
            raise OakError(f"{path}: {where}`series` without a figure to draw: name the paper's figure in the study's `scaling` or `steps`")
    for comparison in study.claims:
        unknown = [label for label in comparison.labels() if label not in labels]
        if unknown:
            raise OakError(f"{path}: claim {comparison.claim!r}: no row labelled {unknown[0]!r}; use one of the rows' labels")
    return study


def load_studies(folder: Path = STUDIES_DIR) -> list[Study]:
    """Every study in `folder`, in file-name order."""
    return [load_study(path) for path in sorted(folder.glob("*.yaml"))]


def run_spec(study: Study, row: Row, profile: str) -> RunSpec:
    """The row's spec in `profile`: its own keys over its study's."""
    base, own = study.profiles.get(profile, RunSpec()), row.profiles.get(profile, RunSpec())
    settings = OmegaConf.to_container(OmegaConf.merge(base.settings, own.settings))
    return RunSpec(
        recipe=own.recipe or base.recipe,
        stand_in=own.stand_in or base.stand_in,
        settings=settings,
        skip=own.skip or (None if own.weights else base.skip),  # a row naming released weights is not its study's default
        variant=own.variant or base.variant,
        weights=own.weights or base.weights,
        seeds=own.seeds or base.seeds,
    )


def _check_variant(path: Path, where: str, variant: str | None) -> None:
    if variant is not None and not VARIANT.fullmatch(variant):
        raise OakError(f"{path}: {where}variant {variant!r}: use lower-case letters, digits, '-' and '_' (it names files and stages)")


def _check_profiles(path: Path, where: str, profiles: dict[str, RunSpec]) -> None:
    for profile, spec in profiles.items():
        if profile not in PROFILES:
            raise OakError(f"{path}: {where}profile {profile!r} is not one of {', '.join(PROFILES)}")
        _check_variant(path, f"{where}{profile}: ", spec.variant)
        if spec.seeds is not None and spec.seeds < 1:
            raise OakError(f"{path}: {where}{profile}: seeds={spec.seeds}: a row trains at least once; give 1 or more")
        if spec.seeds and profile == "published":
            raise OakError(f"{path}: {where}published: seeds: released weights are evaluated once, nothing is trained; drop `seeds`")
        if spec.recipe and not (path.parents[1] / "recipes" / f"{spec.recipe}.yaml").exists():
            raise OakError(f"{path}: {where}{profile}: recipe {spec.recipe!r} has no file pipelines/recipes/{spec.recipe}.yaml")
        if spec.stand_in:
            try:
                check_model_name(spec.stand_in)
            except OakError as error:
                raise OakError(f"{path}: {where}{profile}: stand-in: {error}") from None
        stray = sorted(set(spec.settings) - STUDY_SECTIONS)
        if stray:
            raise OakError(
                f"{path}: {where}{profile}: settings may set only {', '.join(sorted(STUDY_SECTIONS))}; "
                f"{', '.join(stray)} belong(s) in params.yaml (dvc.yaml's outputs and the tracking store are set there once)"
            )
        if spec.settings:
            merged([Layer(f"{path}: {where}{profile}: settings", OmegaConf.create(spec.settings))])
