"""What a recipe file says of itself beside its settings: its source, and each difference from it as data.

A recipe declares `source:` (the paper and reference code it follows) and `differences:`, a list of
{setting, source_value, oak_value, why, cited} (oak.config.schema.Difference), checked as the recipe
loads and rendered for every recipe on one page of the report (oak.report.differences). A study
declares the differences of its own runs or rows (a schedule it sets, a subset the paper scored) the
same way, checked as the study loads (oak.studies.study).
"""

from dataclasses import fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from oak.config.schema import Difference, RecipeNotes, TrainConfig, TrainerConfig
from oak.errors import OakError

NOTE_SECTIONS = ("source", "differences")
FIELDS = tuple(field.name for field in fields(Difference))
SECTIONS = {"train": TrainConfig, "trainer": TrainerConfig}  # a difference's setting named by its key is checked against these


def recipe_notes(recipe: DictConfig, path: Path) -> RecipeNotes:
    """The recipe's source and differences as the schema types them, or one error naming the file and the entry.

    Checked by hand, not by OmegaConf's structured merge, which takes tens of milliseconds a recipe (a plan loads hundreds)."""
    source = recipe.get("source")
    if source is not None and not isinstance(source, str):
        raise OakError(f"{path}: 'source' is {source!r}; cite the paper and reference code as one line of text")
    return RecipeNotes(source, declared_differences(recipe.get("differences"), path))


def declared_differences(entries: object, path: Path) -> list[Difference]:
    """A file's `differences:` list (a recipe's or a study's) as the schema types it, or one error naming the file and the entry."""
    if entries is None:
        return []
    if not OmegaConf.is_list(entries):
        raise OakError(f"{path}: 'differences' must be a list of {{{', '.join(FIELDS)}}}")
    return [_difference(entry, number, path) for number, entry in enumerate(entries, 1)]


def _difference(entry: object, number: int, path: Path) -> Difference:
    where = f"{path}: difference {number}"
    if not OmegaConf.is_dict(entry):
        raise OakError(f"{where} is {entry!r}; give {', '.join(FIELDS)}")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise OakError(f"{where}: unknown field {unknown[0]!r}; a difference has {', '.join(FIELDS)}")
    empty = [name for name in FIELDS if entry.get(name) is None or not str(entry[name]).strip()]
    if empty:
        raise OakError(f"{where} ({entry.get('setting')!r}): no {empty[0]!r}; say what it is")
    difference = Difference(**{name: str(entry[name]) for name in FIELDS})
    section, _, key = difference.setting.partition(".")
    if section in SECTIONS and key not in {setting.name for setting in fields(SECTIONS[section])}:
        raise OakError(f"{where}: no setting {difference.setting!r} in src/oak/config/schema.py; name a key or the part of the method")
    return difference
