"""The repository's params.yaml, for tests that run Oak outside the repository or change its settings."""

import shutil
from pathlib import Path

import yaml
from omegaconf import OmegaConf

REPO = Path(__file__).parents[1]
PARAMS = REPO / "params.yaml"


def params_file(folder: Path, changes: str = "") -> Path:
    """`folder/params.yaml`: the repository's, with `changes` (YAML) merged over it; its recipes beside it."""
    merged = OmegaConf.merge(OmegaConf.create(yaml.safe_load(PARAMS.read_text())), OmegaConf.create(yaml.safe_load(changes) or {}))
    path = folder / "params.yaml"
    path.write_text(OmegaConf.to_yaml(merged))
    recipes = folder / "pipelines" / "recipes"
    if not recipes.exists():
        shutil.copytree(REPO / "pipelines" / "recipes", recipes)
    return path
