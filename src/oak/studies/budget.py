"""The budget profile: each run of the imagenet profile made budget-scale by the rules of pipelines/budget.yaml.

A study declares no budget rows: a row's budget run is its imagenet run (the paper recipe and the row's
settings) with fewer epochs, a schedule that ends at zero, lower training sizes rising over the epochs and
evaluation at the paper's size, by the same rules for every row, so that the runs a claim compares stay
comparable. A study may still refine a row's budget run (`profiles: {budget: ...}`): a skip, or settings
applied over the derived ones.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oak.config.load import read_yaml, translated
from oak.config.schema import Difference
from oak.errors import OakError
from oak.layout import PARAMS_FILE

BUDGET = "budget"
BUDGET_FILE = Path("pipelines/budget.yaml")  # beside params.yaml, as the recipes


@dataclass
class Epochs:
    budget: int  # the budget's epochs for a run of `paper` epochs
    paper: int
    minimum: int


@dataclass
class Resolution:
    reference: int  # a paper's training size ...
    first: int  # ... and the budget's first and last training sizes for it
    last: int
    step: int  # sizes are multiples of it


@dataclass
class Ramp:
    epochs: int  # of a training whose size rises from epoch `start` to `end`
    start: int
    end: int


@dataclass
class Kept:
    setting: str
    why: str


@dataclass
class LengthClaim:
    """A study's claim whose truth depends on how long its runs train."""

    study: str  # the study file's stem
    claim: str  # the claim's text, as the study states it
    testable: str  # at budget scale: "no", or "in part"
    why: str


@dataclass
class BudgetRecipe:
    source: str  # the paper recipe it changes
    schedule: dict[str, Any] | None  # train.* keys of the budget's schedule; None: the recipe's own
    resize: bool = True  # false: its runs train at the paper's size (see pipelines/budget.yaml)
    differences: list[Difference] = field(default_factory=list)  # from the paper recipe, besides the `rules` every recipe has


@dataclass
class Budget:
    epochs: Epochs
    warmup_fraction: float
    resolution: Resolution
    ramp: Ramp
    shards: dict[str, Any]  # the `prepare` settings of the shards the profile expects
    recipes: dict[str, BudgetRecipe]
    rules: list[Difference] = field(default_factory=list)  # the rules above, as differences from every paper recipe
    unchanged: list[Kept] = field(default_factory=list)
    length_claims: list[LengthClaim] = field(default_factory=list)

    def budget_epochs(self, paper_epochs: int) -> int:
        """The budget's epochs for a run the paper trains `paper_epochs`."""
        return max(self.epochs.minimum, math.ceil(paper_epochs * self.epochs.budget / self.epochs.paper))

    def training_sizes(self, paper_size: int) -> tuple[int, int]:
        """The first and last training sizes for a run the paper trains at `paper_size`."""
        step = self.resolution.step

        def scaled(size: int) -> int:
            return max(step, round(paper_size * size / self.resolution.reference / step) * step)

        return scaled(self.resolution.first), scaled(self.resolution.last)

    def ramp_epochs(self, epochs: int) -> tuple[int, int]:
        """The epochs the training size starts and stops rising at, the same fractions of `epochs` as FFCV's."""
        return round(epochs * self.ramp.start / self.ramp.epochs), round(epochs * self.ramp.end / self.ramp.epochs)

    def settings(self, paper: DictConfig, row_sets_schedule: bool) -> dict[str, Any]:
        """The `train` keys that make a run of the resolved imagenet config `paper` budget-scale."""
        train = paper.train
        recipe = self.recipes.get(paper.recipe)
        if recipe is None:
            raise OakError(f"{BUDGET_FILE}: no budget recipe for the paper recipe {paper.recipe!r}; add one under `recipes`")
        epochs = self.budget_epochs(train.epochs)
        first, last = self.training_sizes(train.image_size) if recipe.resize else (train.image_size, train.image_size)
        start, end = self.ramp_epochs(epochs)
        changed: dict[str, Any] = {} if row_sets_schedule or recipe.schedule is None else dict(recipe.schedule)
        changed |= {
            "epochs": epochs,
            "warmup_epochs": min(train.warmup_epochs, epochs * self.warmup_fraction),
            "image_size": last,
            "eval_image_size": train.eval_image_size or train.image_size,
        }
        if first < last:
            changed |= {"progressive_min_size": first, "progressive_start_epoch": start, "progressive_end_epoch": end}
        if changed.get("schedule", train.schedule) == "step":  # as many decays as the paper's, in the budget's epochs
            changed["decay_epochs"] = round(train.decay_epochs * epochs / train.epochs, 4)
        return {key: value for key, value in changed.items() if value != train[key]}


TESTABLE = ("no", "in part")


def at_budget_scale(budget: Budget, study: str, claim: str, verdict: str, evidence: str) -> tuple[str, str]:
    """A verdict on the budget's runs, and its evidence, labelled: "at budget scale", and where the claim depends on
    the training's length, not testable or testable only in part at that scale, with why."""
    length = next((entry for entry in budget.length_claims if (entry.study, entry.claim) == (study, claim)), None)
    if length is None:
        return f"{verdict} at budget scale", evidence
    if length.testable == "no":
        return "not testable at budget scale", f"{evidence}; {length.why}"
    return f"{verdict} at budget scale, testable only in part", f"{evidence}; {length.why}"


def check_length_claims(budget: Budget, claims: dict[str, set[str]]) -> None:
    """Each length claim names a claim of a study in `claims` (the claims' texts by study), or one error naming it."""
    for entry in budget.length_claims:
        if entry.testable not in TESTABLE:
            raise OakError(f"{BUDGET_FILE}: length claim {entry.claim!r}: testable {entry.testable!r} is not one of {', '.join(TESTABLE)}")
        if entry.study in claims and entry.claim not in claims[entry.study]:
            raise OakError(
                f"{BUDGET_FILE}: length claim {entry.claim!r}: pipelines/studies/{entry.study}.yaml states no such claim; "
                "copy its text from the study's `claims`"
            )


def load_budget(params: Path = PARAMS_FILE) -> Budget:
    """pipelines/budget.yaml beside `params`, checked against the dataclasses above."""
    path = params.parent / BUDGET_FILE
    if not path.exists():
        raise OakError(f"{path}: not found; the budget profile's rules are read from it (restore it from git)")
    try:
        declared = OmegaConf.merge(OmegaConf.structured(Budget), read_yaml(path))
    except OmegaConfBaseException as error:
        raise translated(error, str(path), "the budget schema (src/oak/studies/budget.py)") from None
    return OmegaConf.to_object(declared)
