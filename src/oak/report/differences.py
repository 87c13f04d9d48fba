"""`reports/differences.md`: every recipe's differences from the source it follows, then every study's, on one page.

Each recipe declares its source and its differences as data (`source:` and `differences:`, checked
as the recipe loads: oak.config.notes). The page lists them recipe by recipe, with a row of its own
where the global batch the repository's settings give a run differs from the source's: the lr is
rescaled for it and the EMA's decay per update too (oak.config.resolve), but the number of updates,
and with it the noise of each, is not the source's. A study declares the differences of its own
settings or rows the same way (oak.studies.study); they follow the recipes, one section per study.
"""

from pathlib import Path

from omegaconf import DictConfig

from oak.config.load import load_config, read_yaml
from oak.config.notes import recipe_notes
from oak.config.schema import Difference
from oak.layout import RECIPES_DIR, STUDIES_DIR
from oak.studies.study import Study, load_studies

COLUMNS = ("setting", "source", "Oak", "why", "where the source says so")


def differences_page(params: Path) -> str:
    """The page's Markdown for the recipes beside `params` (pipelines/recipes/), with the batch its settings give."""
    recipes = sorted((params.parent / RECIPES_DIR).glob("*.yaml"))
    sections = [_section(path, load_config(params, [f"recipe={path.stem}"])) for path in recipes]
    studies = [_study_section(study) for study in load_studies(params.parent / STUDIES_DIR) if study.differences]
    intro = (
        "# Differences from the sources\n\n"
        "Every way a training recipe departs from the paper or reference code it follows, as the recipe declares it "
        f"(`differences:` in `{RECIPES_DIR}/<recipe>.yaml`). The global batch is the one this repository's settings "
        "(params.yaml's trainer: devices, nodes, gradient accumulation) give each run; a study may change it per run.\n"
    )
    if studies:
        studies.insert(0, (
            "# Differences of the studies\n\n"
            "Where a study's own settings or rows depart from the paper it cites, beyond its recipes' differences above, "
            f"as the study declares it (`differences:` in `{STUDIES_DIR}/<study>.yaml`).\n"
        ))
    return "\n".join([intro, *sections, *studies])


def _section(path: Path, config: DictConfig) -> str:
    notes = recipe_notes(read_yaml(path), path)
    rows = [*notes.differences, *_batch_difference(config.train, notes.source or path.stem)]
    lines = [f"## `{path.stem}`\n", f"Source: {notes.source or 'not declared'}.\n"]
    if not rows:
        return "\n".join([*lines, "No differences declared.\n"])
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(value) for value in _row(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _study_section(study: Study) -> str:
    lines = [f"## `{study.name}`: {study.title}\n", f"Source: {study.source}.\n"]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(value) for value in _row(row)) + " |" for row in study.differences]
    return "\n".join(lines) + "\n"


def _batch_difference(train: DictConfig, source: str) -> list[Difference]:
    """The row for a global batch other than the source's, with what Oak scales for it."""
    reference, actual = train.reference_batch_size, train.global_batch_size
    if reference is None or reference == actual:
        return []
    lr = f"lr {train.lr * actual / train.lr_batch_size:g} (linear scaling)" if train.lr_batch_size else "lr as given"
    ema = f"; EMA decay per update {train.ema_decay_per_update:.7f}, the same average over epochs" if train.ema_decay else ""
    ratio = f"{reference / actual:g}x more" if reference > actual else f"{actual / reference:g}x fewer"
    return [
        Difference(
            setting="train.global_batch_size",
            source_value=str(reference),
            oak_value=f"{actual} ({train.batch_size} per device, as params.yaml's devices give it)",
            why=f"{lr}{ema}; {ratio} updates per epoch",
            cited=source,
        )
    ]


def _row(difference: Difference) -> tuple[str, ...]:
    return (f"`{difference.setting}`" if difference.setting.startswith(("train.", "trainer.")) else difference.setting,
            difference.source_value, difference.oak_value, difference.why, difference.cited)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
