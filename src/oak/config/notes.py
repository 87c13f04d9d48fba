"""What a recipe file says of itself beside its settings: its source, and each difference from it as data.

A recipe declares `source:` (the paper and reference code it follows) and `differences:`, a list of
{setting, source_value, oak_value, why, cited} (oak.config.schema.Difference), checked as the recipe
loads and rendered for every recipe on one page of the report (oak.report.differences).
"""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oak.config.schema import OakConfig, RecipeNotes
from oak.errors import OakError

NOTE_SECTIONS = ("source", "differences")


def recipe_notes(recipe: DictConfig, path: Path) -> RecipeNotes:
    """The recipe's source and differences, typed by the schema: one error naming the file and the entry."""
    notes = {key: recipe[key] for key in NOTE_SECTIONS if key in recipe}
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RecipeNotes), notes))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        raise OakError(
            f"{path}: '{key}': {str(error).strip().splitlines()[0]}; a recipe declares `source:` and `differences:` "
            "as RecipeNotes in src/oak/config/schema.py"
        ) from None
    for number, difference in enumerate(typed.differences, 1):
        empty = [name for name, value in vars(difference).items() if not str(value).strip()]
        if empty:
            raise OakError(f"{path}: difference {number} ({difference.setting!r}): '{empty[0]}' is empty; say what it is")
        if difference.setting.split(".")[0] in ("train", "trainer") and OmegaConf.select(_schema(), difference.setting, default=KeyError) is KeyError:
            raise OakError(f"{path}: difference {number}: no setting {difference.setting!r} in src/oak/config/schema.py; name a key or the part of the method")
    return typed


def _schema() -> DictConfig:
    return OmegaConf.structured(OakConfig)
